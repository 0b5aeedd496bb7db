//! The store conformance suite: every [`Store`] implementation runs it.
//!
//! Each check is a `pub async fn` taking a fresh, empty store (`Arc<S>`) and panicking with the
//! check's name and what went wrong. [`run_all`] runs every check, each on a new store from an
//! async factory, and reports all failures at once;
//! [`store_conformance_tests!`](crate::store_conformance_tests) generates one `#[tokio::test]`
//! per check, so that a failure names its check; [`checks`] lists them for any other runner.
//!
//! The kit tests the contract documented on [`Store`] and nothing of any store's internals. It
//! passes time in explicitly: every `now` is a fixed instant (whole seconds after
//! 2023-11-14T22:13:20Z), it never sleeps and never reads the wall clock. Notifications are
//! awaited with a generous one-second `tokio::time::timeout`: a check only fails when a signal
//! never arrives. The kit needs a Tokio runtime with the time driver; the concurrency checks
//! spawn tasks, so a multi-threaded runtime exercises them best.
//!
//! ```no_run
//! use std::sync::Arc;
//! use durable_runtime::store::{conformance, FileStore, MemoryStore};
//!
//! # async fn demo() {
//! // Everything at once, each check on a new store:
//! conformance::run_all(|| async { MemoryStore::new() }).await;
//! // A store that opens asynchronously, each check in a directory of its own:
//! let root = tempfile::tempdir().unwrap();
//! let mut n = 0;
//! conformance::run_all(|| {
//!     n += 1;
//!     let dir = root.path().join(n.to_string());
//!     async move { FileStore::open(dir).await.unwrap() }
//! })
//! .await;
//! // Or one check:
//! conformance::commit_with_stale_lease_conflicts_and_changes_nothing(Arc::new(MemoryStore::new()))
//!     .await;
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::Store;

mod activities;
mod clients;
mod concurrency;
mod delivery;
mod effects;
mod fencing;
mod history_pages;
mod instances;
mod renewal;
mod selection;
mod signals;
mod support;
mod time;
mod unreadable;

pub use activities::*;
pub use clients::*;
pub use concurrency::*;
pub use delivery::*;
pub use effects::*;
pub use fencing::*;
pub use history_pages::*;
pub use instances::*;
pub use renewal::*;
pub use selection::*;
pub use signals::*;
pub use time::*;
pub use unreadable::*;

/// One named check of the kit.
pub struct Check<S> {
    /// The check's name: the name of its `pub async fn`.
    pub name: &'static str,
    run: fn(Arc<S>) -> BoxFuture<'static, ()>,
}

impl<S: Store> Check<S> {
    #[doc(hidden)]
    pub fn __new(name: &'static str, run: fn(Arc<S>) -> BoxFuture<'static, ()>) -> Self {
        Check { name, run }
    }

    /// Runs the check on `store`, which must be new and empty; panics if the store fails it.
    pub fn run(&self, store: Arc<S>) -> BoxFuture<'static, ()> {
        (self.run)(store)
    }
}

impl<S> fmt::Debug for Check<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

/// Calls `$callback!` with every check's name: the one list of the kit.
#[doc(hidden)]
#[macro_export]
macro_rules! __durable_store_checks {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! {
            ($($args)*)
            create_and_status_round_trip,
            create_twice_is_already_exists,
            unknown_instance_is_not_found,
            ids_are_plain_keys,
            start_message_is_delivered_with_a_lease,
            leased_instance_is_not_handed_out_twice,
            messages_sent_while_leased_are_delivered_after_commit,
            message_order_is_preserved,
            commit_appends_history_across_turns,
            history_round_trips_every_event_kind,
            history_round_trips_floats_exactly,
            commit_consumes_only_listed_messages,
            commit_updates_status,
            commit_with_stale_lease_conflicts_and_changes_nothing,
            commit_with_wrong_history_len_conflicts_and_changes_nothing,
            expired_lease_is_taken_over_and_old_holder_is_fenced,
            abandon_makes_messages_deliverable_again,
            delayed_send_is_delivered_from_visible_at,
            timer_fires_at_fire_at,
            next_wakeup_reports_earliest_timer_and_lease,
            cancelled_timer_is_not_delivered,
            finishing_drops_timers_and_inbox,
            timer_due_while_leased_is_delivered_after_commit,
            abandoned_fired_timer_is_delivered_again,
            activities_are_handed_out_once_with_a_lease,
            activity_result_is_delivered_to_the_instance,
            activity_completion_with_stale_lease_conflicts,
            expired_activity_lease_is_handed_out_again,
            abandoned_activity_is_handed_out_again,
            renewed_activity_lease_is_not_handed_out_again,
            expired_activity_lease_not_taken_over_still_counts,
            renewal_of_an_attempt_no_longer_held_conflicts,
            activity_result_for_finished_instance_is_dropped,
            completed_activities_commit_with_the_turn,
            completed_activities_with_stale_lease_conflict_and_change_nothing,
            lease_orchestration_leases_idle_instances_only,
            send_to_finished_instance_is_refused,
            has_work_reflects_ready_messages_and_activities,
            list_filters_by_status_name_and_creation_time,
            list_pages_return_every_instance_once_in_order,
            list_of_nothing_is_empty,
            list_filters_by_id_prefix_and_custom_status,
            count_counts_per_status,
            history_page_reads_a_range_of_positions,
            purge_only_finished_instances,
            purged_id_can_be_reused,
            watch_status_sees_status_changes,
            signals_wake_orchestration_workers,
            signals_wake_activity_workers,
            concurrent_orchestration_workers_commit_each_turn_once,
            concurrent_activity_workers_run_each_attempt_once,
            scheduled_start_is_delivered_at_start_at,
            next_timer_reports_timers_not_leases,
            replace_finished_recreates_only_finished_instances,
            create_without_replace_finished_refuses_finished_instances,
            sub_instances_are_created_with_the_turn,
            messages_reach_other_instances_with_the_turn,
            replace_history_drops_the_old_generation,
            unreadable_message_is_delivered_as_a_failure,
            unreadable_task_is_handed_back_to_be_failed,
            unreadable_payloads_never_block_status_list_or_purge,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __durable_named_checks {
    (($store:ty) $($name:ident,)*) => {
        vec![$($crate::store::conformance::Check::<$store>::__new(
            stringify!($name),
            |store| ::futures::FutureExt::boxed($crate::store::conformance::$name(store)),
        )),*]
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __durable_store_test_fns {
    ((let $fixture:pat = $setup:expr; $new_store:expr) $($name:ident,)*) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let $fixture = $setup;
                let store = $new_store;
                $crate::store::conformance::$name(::std::sync::Arc::new(store)).await;
            }
        )*
    };
}

/// Generates one `#[tokio::test]` per check of the kit, each on a store made by `$new_store`,
/// so a failure names its check. `$new_store` is an expression evaluated in each (async) test,
/// so it may `.await` an async constructor. What must outlive the store, such as its temporary
/// directory, goes in a `let` before it, also evaluated once per test. The calling crate needs
/// `tokio` (with the `macros` and `rt-multi-thread` features) among its dev-dependencies.
///
/// ```ignore
/// durable_runtime::store_conformance_tests!(durable_runtime::store::MemoryStore::new());
///
/// mod file_store {
///     durable_runtime::store_conformance_tests!(
///         let dir = tempfile::tempdir().unwrap();
///         durable_runtime::store::FileStore::open(dir.path()).await.unwrap()
///     );
/// }
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    (let $fixture:pat = $setup:expr; $new_store:expr $(,)?) => {
        $crate::__durable_store_checks!(
            __durable_store_test_fns!(let $fixture = $setup; $new_store)
        );
    };
    ($new_store:expr $(,)?) => {
        $crate::store_conformance_tests!(let () = (); $new_store);
    };
}

/// Every check of the kit, in a stable order.
pub fn checks<S: Store>() -> Vec<Check<S>> {
    crate::__durable_store_checks!(__durable_named_checks!(S))
}

/// Runs every check, each on a new store from the async factory `new_store`; panics listing
/// every failed check.
pub async fn run_all<S, F, Fut>(new_store: F)
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    run_all_except(new_store, &[]).await
}

/// Runs every check but those named in `skip` (known failures), each on a new store from the
/// async factory `new_store`; panics listing every failed check, or if `skip` names no check.
pub async fn run_all_except<S, F, Fut>(mut new_store: F, skip: &[&str])
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    let all = checks::<S>();
    for name in skip {
        assert!(
            all.iter().any(|c| c.name == *name),
            "store conformance: `{name}` in the skip list is not a check of the kit"
        );
    }
    let mut failures = Vec::new();
    for check in all.iter().filter(|c| !skip.contains(&c.name)) {
        let store = new_store().await;
        let outcome = AssertUnwindSafe(check.run(Arc::new(store)))
            .catch_unwind()
            .await;
        if let Err(panic) = outcome {
            failures.push(format!("  {}: {}", check.name, panic_message(&*panic)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} store conformance check(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".into())
}
