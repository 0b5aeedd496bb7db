use std::time::Duration;
use durable::{
    activity, orchestrator, ActivityContext, OrchestrationContext, RetryPolicy,
};
#[allow(non_camel_case_types)]
#[derive(
    ::core::clone::Clone,
    ::core::marker::Copy,
    ::core::fmt::Debug,
    ::core::default::Default
)]
pub(crate) struct charge;
impl charge {
    /// The body of `charge`, run directly without the runtime (for unit tests, with `ActivityContext::for_test`).
    pub(crate) async fn run(
        _ctx: ActivityContext,
        (order, cents): (u64, u64),
    ) -> Result<u64, String> {
        Ok(order * cents)
    }
}
#[automatically_derived]
impl ::durable::__private::Activity for charge {
    const NAME: &'static str = "charge-card";
    type Input = (u64, u64);
    type Output = <Result<u64, String> as ::durable::__private::Returns>::Ok;
    type Error = <Result<u64, String> as ::durable::__private::Returns>::Err;
    fn default_retry() -> ::core::option::Option<::durable::__private::RetryPolicy> {
        ::core::option::Option::Some(RetryPolicy::new(5, Duration::from_secs(1)))
    }
    fn __invoke(
        ctx: ::durable::__private::ActivityContext,
        input: Self::Input,
        _: ::durable::__private::Seal,
    ) -> ::durable::__private::BoxFuture<
        'static,
        ::core::result::Result<Self::Output, Self::Error>,
    > {
        let __durable_future = ::durable::__private::box_pin(Self::run(ctx, input));
        __durable_future
    }
}
#[allow(non_camel_case_types)]
#[derive(
    ::core::clone::Clone,
    ::core::marker::Copy,
    ::core::fmt::Debug,
    ::core::default::Default
)]
pub struct checkout;
impl checkout {
    /// The body of `checkout`. Its context exists only inside a turn: unit-test it with `durable_runtime::testing::OrchestrationTest`.
    pub async fn run(ctx: OrchestrationContext, order: u64) -> Result<u64, String> {
        let _started = std::time::SystemTime::now();
        ctx.call(charge, (order, 100)).await.map_err(|e| e.to_string())
    }
}
#[automatically_derived]
impl ::durable::__private::Orchestrator for checkout {
    const NAME: &'static str = "checkout";
    const VERSION: u32 = 2;
    type Input = u64;
    type Output = <Result<u64, String> as ::durable::__private::Returns>::Ok;
    type Error = <Result<u64, String> as ::durable::__private::Returns>::Err;
    fn __invoke(
        ctx: ::durable::__private::OrchestrationContext,
        input: Self::Input,
        _: ::durable::__private::Seal,
    ) -> ::durable::__private::BoxFuture<
        'static,
        ::core::result::Result<Self::Output, Self::Error>,
    > {
        let __durable_future = ::durable::__private::box_pin(Self::run(ctx, input));
        __durable_future
    }
}
