//! History pages: part of a history, read by position.

use std::sync::Arc;

use super::support::*;
use crate::history::HistoryEvent;
use crate::store::{Store, StoreError};

/// `load_history_page` returns the events of a range of positions and the history's length,
/// as `load_history` has them; past the end, nothing; an unknown instance is `NotFound`.
pub async fn history_page_reads_a_range_of_positions<S: Store>(store: Arc<S>) {
    let id = running(&*store, "paged").await;
    for turn_no in 1..=4u64 {
        ok(
            store
                .send(&id, raised(&format!("e{turn_no}"), turn_no.into()), None)
                .await,
            "send",
        );
        ok(
            store
                .send(&id, raised(&format!("f{turn_no}"), turn_no.into()), None)
                .await,
            "send",
        );
        let work = fetch(&*store, t(turn_no), "a turn").await;
        commit(&*store, turn(&work, t(turn_no)), "a turn").await;
    }
    let whole = history(&*store, &id, "the whole history").await;
    let len = whole.len() as u64;
    assert!(len >= 13, "five turns of events: {len}");
    let page = |from: u64, limit: usize| {
        let store = Arc::clone(&store);
        let id = id.clone();
        async move {
            ok(
                store.load_history_page(&id, from, limit).await,
                &format!("load_history_page({from}, {limit})"),
            )
        }
    };
    let slice = |from: u64, limit: usize| -> Vec<HistoryEvent> {
        let from = (from as usize).min(whole.len());
        whole[from..from.saturating_add(limit).min(whole.len())].to_vec()
    };
    for (from, limit) in [
        (0, 1),
        (0, 2),
        (1, 3),
        (2, 5),
        (len - 1, 10),
        (0, len as usize),
        (3, usize::MAX),
        (len, 10),
        (len + 5, 10),
        (u64::MAX, usize::MAX),
        (4, 0),
    ] {
        let got = page(from, limit).await;
        assert_eq!(got.len, len, "the history's length, at ({from}, {limit})");
        assert_eq!(
            got.events,
            slice(from, limit),
            "events at ({from}, {limit})"
        );
    }
    // Paging through returns the whole history once.
    let mut all = Vec::new();
    let mut from = 0;
    loop {
        let got = page(from, 3).await;
        if got.events.is_empty() {
            break;
        }
        from += got.events.len() as u64;
        all.extend(got.events);
    }
    assert_eq!(all, whole, "pages of 3 put together");
    assert!(
        matches!(
            store.load_history_page(&iid("no-such"), 0, 10).await,
            Err(StoreError::NotFound(_))
        ),
        "an unknown instance is NotFound"
    );
    // A new generation: pages read only it.
    let work = lease(&*store, &id, t(10), "continue as new").await;
    let mut commit_ = turn(&work, t(10));
    commit_.replace_history = true;
    commit(&*store, commit_, "continue as new").await;
    let fresh = history(&*store, &id, "the new generation").await;
    let got = page(0, 100).await;
    assert_eq!(got.len, fresh.len() as u64);
    assert_eq!(got.events, fresh);
}
