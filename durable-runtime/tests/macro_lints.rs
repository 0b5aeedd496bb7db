//! The code `#[activity]` and `#[orchestrator]` generate is lint-clean and refers only to
//! absolute paths: this file denies the lints a careful crate turns on, and shadows the names
//! the expansion could otherwise pick up by accident (`core`, `Result`, `Option`, `Box`, …).
//! It must compile without a warning.

#![deny(
    warnings,
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    unused_qualifications,
    unused_extern_crates,
    unused_results,
    elided_lifetimes_in_paths,
    trivial_casts,
    trivial_numeric_casts,
    unsafe_code,
    single_use_lifetimes,
    clippy::all
)]

use durable_runtime::{
    activity, orchestrator, Activity, ActivityContext, OrchestrationContext, Orchestrator,
    RetryPolicy,
};

/// A local `core` that would capture `core::…` paths written without the leading `::`.
#[allow(dead_code)]
mod core {}

/// Local types named like the prelude's: the expansion must not resolve to them.
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
struct Clone;
#[allow(dead_code)]
struct Default;
#[allow(dead_code)]
struct Send;
#[allow(dead_code)]
struct Some;

/// Adds two numbers (documented: `missing_docs` is denied).
#[activity(retry = RetryPolicy::new(3, ::std::time::Duration::from_millis(1)))]
pub async fn add(
    _ctx: ActivityContext,
    (a, b): (u32, u32),
) -> ::core::result::Result<u32, ::std::string::String> {
    a.checked_add(b).ok_or_else(|| "overflow".into())
}

/// Sums a list through the activity.
#[orchestrator(version = 3)]
pub async fn sum(
    ctx: OrchestrationContext,
    numbers: ::std::vec::Vec<u32>,
) -> ::core::result::Result<u32, durable_runtime::TaskError> {
    let mut total = 0;
    for n in numbers {
        total = ctx.call(add, (total, n)).await?;
    }
    ::core::result::Result::Ok(total)
}

/// Takes no input at all.
#[orchestrator]
pub async fn noop(_ctx: OrchestrationContext) -> anyhow::Result<()> {
    ::core::result::Result::Ok(())
}

#[test]
fn generated_items_are_usable_under_strict_lints() {
    assert_eq!(<add as Activity>::NAME, "add");
    assert!(<add as Activity>::default_retry().is_some());
    assert_eq!(<sum as Orchestrator>::NAME, "sum");
    assert_eq!(<sum as Orchestrator>::VERSION, 3);
    assert_eq!(<noop as Orchestrator>::VERSION, 1);
    assert_eq!(format!("{:?}", sum), "sum");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let three = runtime.block_on(add::run(ActivityContext::for_test("lints-1", 1), (1, 2)));
    assert_eq!(three, ::core::result::Result::Ok(3));
}
