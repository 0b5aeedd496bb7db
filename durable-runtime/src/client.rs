//! The client: start instances, raise events, read statuses and histories, wait for ends.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::callable::Orchestrator;
use crate::history::{stable_hash, Event, HistoryEvent};
use crate::runtime::Shared;
use crate::store::{InstancePage, InstanceQuery, InstanceStatus, NewInstance, RuntimeStatus};
use crate::{ClientError, InstanceId};

/// Starts and observes orchestration instances. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

fn parse_id(id: &str) -> Result<InstanceId, ClientError> {
    Ok(InstanceId::new(id)?)
}

impl Client {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Client { shared }
    }

    /// Starts an instance of `orchestrator` with `input`; await the returned builder, after
    /// optionally choosing the id with [`Start::instance_id`]. Resolves once the start is
    /// durable.
    pub fn start<O: Orchestrator>(&self, orchestrator: O, input: O::Input) -> Start<'_, O> {
        let _ = orchestrator;
        Start {
            client: self,
            input,
            instance_id: None,
            _orchestrator: PhantomData,
        }
    }

    /// Raises the event `name` with `data` on a running instance. Resolves once the event is
    /// durable. Fails with `NotFound` for an unknown instance and `Finished` for one that has
    /// ended.
    pub async fn raise_event(
        &self,
        instance_id: &str,
        name: &str,
        data: impl Serialize,
    ) -> Result<(), ClientError> {
        let id = parse_id(instance_id)?;
        let data = serde_json::to_value(data).map_err(|e| ClientError::BadPayload {
            what: format!("the data of event `{name}`"),
            error: e.to_string(),
        })?;
        let event = HistoryEvent::new(Event::EventRaised {
            name: name.to_string(),
            data,
        });
        let _busy = self.shared.busy();
        self.shared.store.send(&id, event, None).await?;
        Ok(())
    }

    /// The status of an instance.
    pub async fn status(&self, instance_id: &str) -> Result<InstanceStatus, ClientError> {
        let id = parse_id(instance_id)?;
        self.shared
            .store
            .status(&id)
            .await?
            .ok_or(ClientError::NotFound(id))
    }

    /// The recorded history of an instance, oldest first.
    pub async fn history(&self, instance_id: &str) -> Result<Vec<HistoryEvent>, ClientError> {
        let id = parse_id(instance_id)?;
        Ok(self.shared.store.load_history(&id).await?)
    }

    /// A page of instances matching `query`.
    pub async fn list(&self, query: &InstanceQuery) -> Result<InstancePage, ClientError> {
        Ok(self.shared.store.list(query).await?)
    }

    /// Deletes a finished instance and its history.
    pub async fn purge(&self, instance_id: &str) -> Result<(), ClientError> {
        let id = parse_id(instance_id)?;
        Ok(self.shared.store.purge(&id).await?)
    }

    /// Waits until the instance has finished (completed, failed or terminated), for at most
    /// `timeout` of real time. Pushed by the store, never polled.
    pub async fn wait_for_completion(
        &self,
        instance_id: &str,
        timeout: Duration,
    ) -> Result<InstanceStatus, ClientError> {
        self.wait_until(instance_id, timeout, |status| {
            status.runtime_status.is_finished()
        })
        .await
    }

    /// Waits until the instance's status satisfies `done` (checked now and after every
    /// change), for at most `timeout` of real time.
    pub async fn wait_until(
        &self,
        instance_id: &str,
        timeout: Duration,
        mut done: impl FnMut(&InstanceStatus) -> bool,
    ) -> Result<InstanceStatus, ClientError> {
        let id = parse_id(instance_id)?;
        let mut changes = self.shared.store.watch_status(&id);
        let wait = async {
            loop {
                changes.borrow_and_update();
                let status = self
                    .shared
                    .store
                    .status(&id)
                    .await?
                    .ok_or_else(|| ClientError::NotFound(id.clone()))?;
                if done(&status) {
                    return Ok(status);
                }
                if changes.changed().await.is_err() {
                    return Err(ClientError::NotFound(id.clone()));
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| {
                Err(ClientError::Timeout {
                    id: id.clone(),
                    after: timeout,
                })
            })
    }

    async fn create(&self, new: NewInstance) -> Result<(), ClientError> {
        let _busy = self.shared.busy();
        Ok(self.shared.store.create_instance(new).await?)
    }
}

/// An instance start being configured; await it to start.
#[must_use = "nothing starts until the start is awaited"]
pub struct Start<'a, O: Orchestrator> {
    client: &'a Client,
    input: O::Input,
    instance_id: Option<String>,
    _orchestrator: PhantomData<fn() -> O>,
}

impl<O: Orchestrator> Start<'_, O> {
    /// Uses `id` as the instance id (a random UUID otherwise).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }
}

impl<'a, O: Orchestrator> IntoFuture for Start<'a, O> {
    type Output = Result<InstanceId, ClientError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let id = match self.instance_id {
                Some(id) => parse_id(&id)?,
                None => parse_id(&uuid::Uuid::new_v4().to_string())?,
            };
            let input = serde_json::to_value(&self.input).map_err(|e| ClientError::BadPayload {
                what: format!("the input of orchestrator `{}`", O::NAME),
                error: e.to_string(),
            })?;
            let shared = &self.client.shared;
            if shared.registry.orchestrator(O::NAME, O::VERSION).is_none() {
                return Err(ClientError::NotRegistered {
                    name: O::NAME.to_string(),
                    version: O::VERSION,
                });
            }
            let now = shared.clock.now();
            let seed = stable_hash(&serde_json::json!([id.as_str(), now]));
            let start = HistoryEvent::new(Event::ExecutionStarted {
                name: O::NAME.to_string(),
                version: O::VERSION,
                input: input.clone(),
                seed,
                parent: None,
                generation: 0,
                eager_restarts: 0,
            });
            let status = InstanceStatus {
                instance_id: id.clone(),
                name: O::NAME.to_string(),
                version: O::VERSION,
                runtime_status: RuntimeStatus::Pending,
                created_at: now,
                last_updated_at: now,
                input,
                output: None,
                custom_status: None,
                failure: None,
                parent: None,
            };
            let new = NewInstance {
                status,
                start,
                start_at: None,
                replace_finished: false,
            };
            self.client.create(new).await?;
            Ok(id)
        })
    }
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
}
