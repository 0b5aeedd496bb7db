//! `ActivityContext`: what an activity knows of the attempt it is running.

use crate::instance_id::InstanceId;

/// What an activity knows of the attempt it is running.
///
/// Activities run at least once: a crash after an activity finished but before its result
/// was stored runs it again. Use [`idempotency_key`](Self::idempotency_key) when calling
/// systems that can deduplicate.
#[derive(Debug, Clone)]
pub struct ActivityContext {
    instance_id: InstanceId,
    name: String,
    id: u64,
    attempt: u32,
}

impl ActivityContext {
    pub(crate) fn new(instance_id: InstanceId, name: String, id: u64, attempt: u32) -> Self {
        ActivityContext {
            instance_id,
            name,
            id,
            attempt,
        }
    }

    /// A context for calling an activity's `run` directly in a unit test.
    pub fn for_test(instance_id: &str, attempt: u32) -> Self {
        let instance_id = InstanceId::new(instance_id).expect("a valid instance id");
        ActivityContext::new(instance_id, "test".into(), 0, attempt)
    }

    /// The orchestration instance that called this activity.
    pub fn instance_id(&self) -> &InstanceId {
        &self.instance_id
    }

    /// The activity's durable name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which attempt this is, from 1. Read from the history: attempt 2 is still 2 after a crash.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The same for every attempt of this call, different for every other call:
    /// `"{instance id}:{sequence number}"`.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.instance_id, self.id)
    }
}
