//! Replay-aware tracing: events written in orchestrator code are dropped while it replays.
//!
//! The engine polls each orchestrator under one process-wide wrapper dispatcher that forwards
//! everything to the dispatcher that was current, except events emitted while the turn being
//! polled is a replay. The check is made per event, so users write plain `tracing::info!`.

use std::cell::{Cell, RefCell};
use std::sync::OnceLock;

use tracing::dispatcher::{self, Dispatch};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_core::LevelFilter;

thread_local! {
    static REPLAYING: Cell<bool> = const { Cell::new(false) };
    static INNER: RefCell<Option<Dispatch>> = const { RefCell::new(None) };
}

/// Runs `poll` (one poll of an orchestrator) with events suppressed if `replaying`. A poll is
/// wholly a replay or wholly live (the engine feeds replayed turns one at a time), so a live
/// poll runs under the current dispatcher as it is, at no cost.
pub(crate) fn with_replay_filter<R>(replaying: bool, poll: impl FnOnce() -> R) -> R {
    if !replaying {
        return poll();
    }
    static WRAPPER: OnceLock<Dispatch> = OnceLock::new();
    let wrapper = WRAPPER.get_or_init(|| Dispatch::new(ReplayFilter));
    let inner = dispatcher::get_default(Dispatch::clone);
    INNER.with(|slot| *slot.borrow_mut() = Some(inner));
    REPLAYING.with(|flag| flag.set(replaying));
    let result = dispatcher::with_default(wrapper, poll);
    REPLAYING.with(|flag| flag.set(false));
    INNER.with(|slot| slot.borrow_mut().take());
    result
}

fn inner() -> Dispatch {
    INNER
        .with(|slot| slot.borrow().clone())
        .unwrap_or_else(|| dispatcher::get_default(Dispatch::clone))
}

fn replaying() -> bool {
    REPLAYING.with(Cell::get)
}

struct ReplayFilter;

impl Subscriber for ReplayFilter {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // Whether an event is emitted depends on the turn polled, so ask every time.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        !(metadata.is_event() && replaying()) && inner().enabled(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // The wrapper only ever narrows what the dispatchers it forwards to let through.
        Some(LevelFilter::current())
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        inner().new_span(span)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        inner().record(span, values)
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        inner().record_follows_from(span, follows)
    }

    fn event_enabled(&self, event: &Event<'_>) -> bool {
        let _ = event;
        !replaying()
    }

    fn event(&self, event: &Event<'_>) {
        if !replaying() {
            inner().event(event)
        }
    }

    fn enter(&self, span: &Id) {
        inner().enter(span)
    }

    fn exit(&self, span: &Id) {
        inner().exit(span)
    }

    fn clone_span(&self, id: &Id) -> Id {
        inner().clone_span(id)
    }

    fn try_close(&self, id: Id) -> bool {
        inner().try_close(id)
    }

    fn current_span(&self) -> tracing_core::span::Current {
        inner().current_span()
    }
}
