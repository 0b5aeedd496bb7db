use durable_runtime::{activity, ActivityContext};
/// Resizes the image on the blocking thread pool.
#[allow(non_camel_case_types)]
#[derive(
    ::core::clone::Clone,
    ::core::marker::Copy,
    ::core::fmt::Debug,
    ::core::default::Default
)]
pub struct resize;
impl resize {
    /// The body of `resize`, run directly without the runtime (for unit tests, with `ActivityContext::for_test`).
    pub fn run(
        ctx: ActivityContext,
        (width, height): (u32, u32),
    ) -> Result<Vec<u8>, std::io::Error> {
        let _ = ctx.attempt();
        Ok(vec![0; (width * height) as usize])
    }
}
#[automatically_derived]
impl ::durable_runtime::__private::Activity for resize {
    const NAME: &'static str = "resize";
    type Input = (u32, u32);
    type Output = <Result<
        Vec<u8>,
        std::io::Error,
    > as ::durable_runtime::__private::Returns>::Ok;
    type Error = <Result<
        Vec<u8>,
        std::io::Error,
    > as ::durable_runtime::__private::Returns>::Err;
    fn __invoke(
        ctx: ::durable_runtime::__private::ActivityContext,
        input: Self::Input,
        _: ::durable_runtime::__private::Seal,
    ) -> ::durable_runtime::__private::BoxFuture<
        'static,
        ::core::result::Result<Self::Output, Self::Error>,
    > {
        ::durable_runtime::__private::run_blocking(move || Self::run(ctx, input))
    }
}
#[allow(non_camel_case_types)]
#[derive(
    ::core::clone::Clone,
    ::core::marker::Copy,
    ::core::fmt::Debug,
    ::core::default::Default
)]
struct checksum;
impl checksum {
    /// The body of `checksum`, run directly without the runtime (for unit tests, with `ActivityContext::for_test`).
    fn run(_ctx: ActivityContext) -> Result<u32, String> {
        Ok(0)
    }
}
#[automatically_derived]
impl ::durable_runtime::__private::Activity for checksum {
    const NAME: &'static str = "checksum";
    type Input = ();
    type Output = <Result<u32, String> as ::durable_runtime::__private::Returns>::Ok;
    type Error = <Result<u32, String> as ::durable_runtime::__private::Returns>::Err;
    fn __invoke(
        ctx: ::durable_runtime::__private::ActivityContext,
        (): Self::Input,
        _: ::durable_runtime::__private::Seal,
    ) -> ::durable_runtime::__private::BoxFuture<
        'static,
        ::core::result::Result<Self::Output, Self::Error>,
    > {
        ::durable_runtime::__private::run_blocking(move || Self::run(ctx))
    }
}
