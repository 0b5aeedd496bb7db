//! The store conformance kit run on [`MemoryStore`]: one test per check, so a failure names it.

use std::sync::Arc;

use durable_runtime::store::{conformance, MemoryStore};

macro_rules! conformance_tests {
    ($($(#[$attr:meta])* $name:ident,)*) => {
        $(
            $(#[$attr])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                conformance::$name(Arc::new(MemoryStore::new())).await;
            }
        )*

        /// Every check the tests above run, to catch a check added to the kit but not here.
        const TESTED: &[&str] = &[$(stringify!($name)),*];
    };
}

conformance_tests! {
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
    commit_with_wrong_version_conflicts_and_changes_nothing,
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
    activity_result_for_finished_instance_is_dropped,
    completed_activities_commit_with_the_turn,
    completed_activities_with_stale_lease_conflict_and_change_nothing,
    lease_orchestration_leases_idle_instances_only,
    send_to_finished_instance_is_refused,
    has_work_reflects_ready_messages_and_activities,
    list_filters_by_status_name_and_creation_time,
    list_pages_return_every_instance_once_in_order,
    list_of_nothing_is_empty,
    purge_only_finished_instances,
    purged_id_can_be_reused,
    watch_status_sees_status_changes,
    signals_wake_orchestration_workers,
    signals_wake_activity_workers,
    concurrent_orchestration_workers_commit_each_turn_once,
    concurrent_activity_workers_run_each_attempt_once,
    scheduled_start_is_delivered_at_start_at,
    replace_finished_recreates_only_finished_instances,
    sub_instances_are_created_with_the_turn,
    messages_reach_other_instances_with_the_turn,
    replace_history_drops_the_old_generation,
}

#[test]
fn every_check_of_the_kit_has_a_test() {
    let kit: Vec<&str> = conformance::checks::<MemoryStore>()
        .iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        kit, TESTED,
        "keep this file's list in step with conformance::checks()"
    );
}

/// The runner an implementer uses in one line, skipping the checks MemoryStore is known to fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_kit_through_run_all_except() {
    conformance::run_all_except(
        MemoryStore::new,
        &[
            "history_round_trips_floats_exactly",
            "timer_due_while_leased_is_delivered_after_commit",
            "abandoned_fired_timer_is_delivered_again",
        ],
    )
    .await;
}

/// The runner reports a failing check by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all_names_the_failing_checks() {
    use futures::FutureExt;
    let outcome = std::panic::AssertUnwindSafe(conformance::run_all(MemoryStore::new))
        .catch_unwind()
        .await;
    let Err(panic) = outcome else {
        // MemoryStore passes everything: nothing to name.
        return;
    };
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("timer_due_while_leased_is_delivered_after_commit"),
        "the report should name the failed checks: {message}"
    );
}
