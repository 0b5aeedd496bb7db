use durable_runtime::{activity, ActivityContext};
/// Sends the step's notification; safe to repeat.
#[allow(non_camel_case_types)]
#[derive(
    ::core::clone::Clone,
    ::core::marker::Copy,
    ::core::fmt::Debug,
    ::core::default::Default
)]
pub struct reliable_activity;
impl reliable_activity {
    /// The body of `reliable_activity`, run directly without the runtime (for unit tests, with `ActivityContext::for_test`).
    pub async fn run(
        ctx: ActivityContext,
        step: String,
    ) -> Result<String, anyhow::Error> {
        Ok(format!("{step} done by {}", ctx.idempotency_key()))
    }
}
#[automatically_derived]
impl ::durable_runtime::__private::Activity for reliable_activity {
    const NAME: &'static str = "reliable_activity";
    type Input = String;
    type Output = <Result<
        String,
        anyhow::Error,
    > as ::durable_runtime::__private::Returns>::Ok;
    type Error = <Result<
        String,
        anyhow::Error,
    > as ::durable_runtime::__private::Returns>::Err;
    fn __invoke(
        ctx: ::durable_runtime::__private::ActivityContext,
        input: Self::Input,
        _: ::durable_runtime::__private::Seal,
    ) -> ::durable_runtime::__private::BoxFuture<
        'static,
        ::core::result::Result<Self::Output, Self::Error>,
    > {
        let __durable_future = ::durable_runtime::__private::box_pin(
            Self::run(ctx, input),
        );
        __durable_future
    }
}
