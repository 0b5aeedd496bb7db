//! An instance's status as the engine holds it, and the one rule for a turn changing it.

use std::borrow::Cow;
use std::time::SystemTime;

use super::{raw, Raw};
use crate::instance_id::InstanceId;
use crate::status::{InstanceStatus, RuntimeStatus};
use crate::store::{StatusUpdate, StoreError};

/// An instance's status.
#[derive(Debug, Clone)]
pub(crate) enum Status {
    /// As the live calls leave it.
    Decoded(InstanceStatus),
    /// As a log record or a checkpoint holds it. Recovery parses no status (it replays
    /// several records per instance, and most instances of a large store are finished): the
    /// first call that needs more than these fields does.
    Logged(LoggedStatus),
}

/// A status as its JSON, with the fields the engine filters on.
#[derive(Debug, Clone)]
pub(crate) struct LoggedStatus {
    pub(crate) instance_id: InstanceId,
    pub(crate) name: String,
    pub(crate) created_at: SystemTime,
    pub(crate) runtime_status: RuntimeStatus,
    pub(crate) json: Raw,
}

impl Status {
    pub(crate) fn instance_id(&self) -> &InstanceId {
        match self {
            Status::Decoded(s) => &s.instance_id,
            Status::Logged(s) => &s.instance_id,
        }
    }

    pub(crate) fn runtime_status(&self) -> RuntimeStatus {
        match self {
            Status::Decoded(s) => s.runtime_status,
            Status::Logged(s) => s.runtime_status,
        }
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            Status::Decoded(s) => &s.name,
            Status::Logged(s) => &s.name,
        }
    }

    pub(crate) fn created_at(&self) -> SystemTime {
        match self {
            Status::Decoded(s) => s.created_at,
            Status::Logged(s) => s.created_at,
        }
    }

    /// The status, parsed if it is still JSON.
    pub(crate) fn get(&self) -> Result<Cow<'_, InstanceStatus>, StoreError> {
        match self {
            Status::Decoded(s) => Ok(Cow::Borrowed(s)),
            Status::Logged(s) => Ok(Cow::Owned(s.read())),
        }
    }

    /// Its custom status as JSON text, if it has one (what `list` filters on).
    pub(crate) fn custom_status_json(&self) -> Result<Option<String>, StoreError> {
        Ok(self.get()?.custom_status.as_ref().map(raw))
    }

    /// Its JSON, serialized if it is decoded.
    pub(crate) fn json(&self) -> Cow<'_, str> {
        match self {
            Status::Decoded(s) => Cow::Owned(crate::store::json::status_to_string(s)),
            Status::Logged(s) => Cow::Borrowed(&s.json),
        }
    }

    /// The status to change, parsed (once) if it is still JSON.
    fn get_mut(&mut self) -> Result<&mut InstanceStatus, StoreError> {
        if let Status::Logged(logged) = self {
            *self = Status::Decoded(logged.read());
        }
        match self {
            Status::Decoded(s) => Ok(s),
            Status::Logged(_) => unreachable!("decoded just above"),
        }
    }
}

impl LoggedStatus {
    /// The status; one that cannot be read (written before the payload limits, or damaged)
    /// reads as what is known of it, failed with the reason if it has finished, so that it
    /// never blocks a status, a listing page or the instance's next turn.
    fn read(&self) -> InstanceStatus {
        let error = match serde_json::from_str(&self.json) {
            Ok(status) => return status,
            Err(error) => error,
        };
        // The fields without payloads read whatever the payloads hold (serde_json skips a
        // value without recursion); a damaged record reads as the engine's own fields.
        #[derive(serde::Deserialize)]
        struct Known {
            version: u32,
            #[serde(with = "humantime_serde")]
            last_updated_at: SystemTime,
            #[serde(default)]
            parent: Option<InstanceId>,
        }
        let known = serde_json::from_str::<Known>(&self.json).ok();
        InstanceStatus {
            instance_id: self.instance_id.clone(),
            name: self.name.clone(),
            version: known.as_ref().map_or(0, |k| k.version),
            runtime_status: self.runtime_status,
            created_at: self.created_at,
            last_updated_at: known
                .as_ref()
                .map_or(self.created_at, |k| k.last_updated_at),
            input: serde_json::Value::Null,
            output: None,
            custom_status: None,
            failure: None,
            parent: known.and_then(|k| k.parent),
        }
        .unreadable("its stored status", error)
    }
}

/// The status a turn leaves.
#[derive(Debug)]
pub(crate) enum NewStatus {
    /// The runtime's update, applied to the status in place.
    Update {
        update: StatusUpdate,
        /// The turn's `OrchestratorStarted` time, its `last_updated_at`.
        turn_started: Option<SystemTime>,
    },
    /// The whole status after the turn, and whether it differs from the one before.
    Replace {
        status: InstanceStatus,
        changed: bool,
    },
    /// The whole status after the turn as a log record holds it (on recovery, where no one
    /// watches and everything is durable, so whether it changed does not matter).
    Logged {
        runtime_status: RuntimeStatus,
        json: Raw,
    },
}

impl NewStatus {
    /// The same change as the whole status after the turn, from `old`, the one before.
    pub(crate) fn resolve(self, old: &Status) -> Result<NewStatus, StoreError> {
        Ok(match self {
            NewStatus::Update {
                update,
                turn_started,
            } => {
                let mut status = old.get()?.into_owned();
                let changed = update_status(&mut status, &update, turn_started);
                NewStatus::Replace { status, changed }
            }
            whole => whole,
        })
    }

    /// Sets `status` to the status after the turn; returns whether it changed.
    pub(super) fn apply(self, status: &mut Status) -> Result<bool, StoreError> {
        Ok(match self {
            NewStatus::Update {
                update,
                turn_started,
            } => update_status(status.get_mut()?, &update, turn_started),
            NewStatus::Replace {
                status: new,
                changed,
            } => {
                *status = Status::Decoded(new);
                changed
            }
            NewStatus::Logged {
                runtime_status,
                json,
            } => {
                // A turn changes neither the id, the name nor the creation time.
                let logged = LoggedStatus {
                    instance_id: status.instance_id().clone(),
                    name: match status {
                        Status::Decoded(s) => std::mem::take(&mut s.name),
                        Status::Logged(s) => std::mem::take(&mut s.name),
                    },
                    created_at: status.created_at(),
                    runtime_status,
                    json,
                };
                *status = Status::Logged(logged);
                true
            }
        })
    }
}

/// Applies a turn's update to `status`; returns whether the status changed. This is the one
/// rule for telling a status's watchers: a turn changes a status when it leaves it different
/// (`InstanceStatus` equality), compared field by field over what a turn can change, so an
/// unchanged input is not compared at all.
pub(crate) fn update_status(
    status: &mut InstanceStatus,
    update: &StatusUpdate,
    turn_started: Option<SystemTime>,
) -> bool {
    fn set<T: PartialEq + Clone>(field: &mut T, value: &T) -> bool {
        if field == value {
            return false;
        }
        field.clone_from(value);
        true
    }
    let mut changed = false;
    if status.runtime_status != update.runtime_status {
        status.runtime_status = update.runtime_status;
        changed = true;
    }
    changed |= set(&mut status.output, &update.output);
    changed |= set(&mut status.custom_status, &update.custom_status);
    changed |= set(&mut status.failure, &update.failure);
    if let Some(input) = &update.input {
        changed |= set(&mut status.input, input);
    }
    if let Some(started) = turn_started {
        changed |= set(&mut status.last_updated_at, &started);
    }
    changed
}
