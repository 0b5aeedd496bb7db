use durable_runtime::{orchestrator, OrchestrationContext};
/// Runs the two steps in order.
#[allow(non_camel_case_types)]
#[derive(
    ::core::clone::Clone,
    ::core::marker::Copy,
    ::core::fmt::Debug,
    ::core::default::Default
)]
struct two_steps;
impl two_steps {
    /// The body of `two_steps`. Its context exists only inside a turn: unit-test it with `durable_runtime::testing::OrchestrationTest`.
    async fn run(ctx: OrchestrationContext) -> anyhow::Result<Vec<String>> {
        let first = ctx.call(reliable_activity, "first".to_string()).await?;
        let second = ctx.call(reliable_activity, "second".to_string()).await?;
        Ok(vec![first, second])
    }
}
#[automatically_derived]
impl ::durable_runtime::__private::Orchestrator for two_steps {
    const NAME: &'static str = "two_steps";
    type Input = ();
    type Output = <anyhow::Result<
        Vec<String>,
    > as ::durable_runtime::__private::Returns>::Ok;
    type Error = <anyhow::Result<
        Vec<String>,
    > as ::durable_runtime::__private::Returns>::Err;
    fn __invoke(
        ctx: ::durable_runtime::__private::OrchestrationContext,
        (): Self::Input,
        _: ::durable_runtime::__private::Seal,
    ) -> ::durable_runtime::__private::BoxFuture<
        'static,
        ::core::result::Result<Self::Output, Self::Error>,
    > {
        let __durable_future = ::durable_runtime::__private::box_pin(Self::run(ctx));
        __durable_future
    }
}
