//! What the client reports of an instance and every store keeps: its status
//! ([`InstanceStatus`]) and where it is in its life ([`RuntimeStatus`]). At the crate root,
//! since nearly every program names them.

use std::fmt;
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::history::Failure;
use crate::instance_id::InstanceId;
use crate::limits::unreadable;

/// Where an instance is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RuntimeStatus {
    /// Created; its first turn has not run yet.
    Pending,
    /// Started and not finished.
    Running,
    /// Paused by a client; holds new events until resumed.
    Suspended,
    /// Returned `Ok`.
    Completed,
    /// Returned `Err`, panicked or broke determinism.
    Failed,
    /// Stopped by a client.
    Terminated,
}

impl RuntimeStatus {
    /// Whether the instance has finished for good.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RuntimeStatus::Completed | RuntimeStatus::Failed | RuntimeStatus::Terminated
        )
    }
}

/// What a store knows of one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// The instance.
    pub instance_id: InstanceId,
    /// The orchestrator's durable name.
    pub name: String,
    /// The orchestrator's version.
    pub version: u32,
    /// Where it is in its life.
    pub runtime_status: RuntimeStatus,
    /// When it was created.
    #[serde(with = "crate::history::timestamp")]
    pub created_at: SystemTime,
    /// When its status last changed.
    #[serde(with = "crate::history::timestamp")]
    pub last_updated_at: SystemTime,
    /// Its input.
    pub input: Value,
    /// Its output, once completed.
    pub output: Option<Value>,
    /// What the code last set with `ctx.set_custom_status`.
    pub custom_status: Option<Value>,
    /// Why it failed, once failed.
    pub failure: Option<Failure>,
    /// The orchestration that started this one as a sub-orchestration, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<InstanceId>,
}

impl InstanceStatus {
    /// The output deserialised as `T`, once completed.
    pub fn output_as<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.output.clone().map(serde_json::from_value).transpose()
    }

    /// The custom status deserialised as `T`, if set.
    pub fn custom_status_as<T: DeserializeOwned>(&self) -> Result<Option<T>, serde_json::Error> {
        self.custom_status
            .clone()
            .map(serde_json::from_value)
            .transpose()
    }

    /// This status, some of whose stored payloads (`what`) could not be read (`error`), as
    /// every store reports it: failed with the reason if it had finished, otherwise still
    /// running with the reason as its failure until its next turn writes a readable status.
    /// The unreadable payloads are left out (`null`, `None`).
    pub fn unreadable(mut self, what: &str, error: impl fmt::Display) -> Self {
        if self.runtime_status.is_finished() {
            self.runtime_status = RuntimeStatus::Failed;
        }
        self.failure = Some(unreadable(what, error));
        self
    }
}
