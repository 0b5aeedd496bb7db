//! The client: start instances, raise events, read statuses and histories, wait for ends.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::callable::Orchestrator;
use crate::error::ClientError;
use crate::history::{start_seed, Event, ExportedHistory, HistoryEvent};
use crate::instance_id::InstanceId;
use crate::shared::Shared;
use crate::status::{InstanceStatus, RuntimeStatus};
use crate::store::{HistoryPage, InstancePage, InstanceQuery, NewInstance, StatusCounts};

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

/// A fresh id: a random UUID, written without a `String` of its own.
fn new_id() -> InstanceId {
    let mut buf = uuid::Uuid::encode_buffer();
    let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    InstanceId::from_str_checked(text).expect("a UUID is a valid instance id")
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
            options: StartOptions::default(),
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
        self.within_limits(&data, || format!("the data of event `{name}`"))?;
        let event = Event::EventRaised {
            name: name.to_string(),
            data,
        };
        self.send(&id, event).await
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

    /// Events `from..from + limit` of an instance's history (fewer at its end) and the
    /// history's length: only those events are read, however long the history.
    pub async fn history_page(
        &self,
        instance_id: &str,
        from: u64,
        limit: usize,
    ) -> Result<HistoryPage, ClientError> {
        let id = parse_id(instance_id)?;
        Ok(self
            .shared
            .store
            .load_history_page(&id, from, limit)
            .await?)
    }

    /// How many instances match `query`'s filters, per status (its paging is ignored).
    pub async fn count(&self, query: &InstanceQuery) -> Result<StatusCounts, ClientError> {
        Ok(self.shared.store.count(query).await?)
    }

    /// Deletes a finished instance, its history, and (recursively) its finished
    /// sub-orchestrations. Fails with `NotFinished` while it runs, `NotFound` if absent.
    pub async fn purge(&self, instance_id: &str) -> Result<(), ClientError> {
        let id = parse_id(instance_id)?;
        let status = self.status(&id).await?;
        if !status.runtime_status.is_finished() {
            return Err(ClientError::NotFinished(id));
        }
        let mut pending = vec![id];
        let mut order = Vec::new();
        while let Some(id) = pending.pop() {
            let history = match self.shared.store.load_history(&id).await {
                Ok(history) => history,
                Err(crate::store::StoreError::NotFound(_)) => continue,
                // Written before the payload limits, or damaged: purged all the same, so that
                // it can go; only its sub-orchestrations cannot be found through it.
                Err(crate::store::StoreError::Corrupt(error)) => {
                    tracing::warn!(target: "durable::client", instance_id = %id, %error, "purging an instance whose history cannot be read; its sub-orchestrations, if any, stay");
                    order.push(id);
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            pending.extend(history.into_iter().filter_map(|e| match e.event {
                Event::SubOrchestrationCreated { instance_id, .. } => Some(instance_id),
                _ => None,
            }));
            order.push(id);
        }
        // Children first, so a failure part-way leaves no orphan behind a purged parent.
        for id in order.iter().rev() {
            match self.shared.store.purge(id).await {
                Ok(()) | Err(crate::store::StoreError::NotFound(_)) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// Terminates a running instance with `output`, and its running sub-orchestrations.
    /// Resolves once the request is durable; the instance ends with its next turn.
    pub async fn terminate(
        &self,
        instance_id: &str,
        output: impl Serialize,
    ) -> Result<(), ClientError> {
        self.terminate_with(instance_id, output, true).await
    }

    /// Terminates a running instance, and its running sub-orchestrations if `recursive`.
    pub async fn terminate_with(
        &self,
        instance_id: &str,
        output: impl Serialize,
        recursive: bool,
    ) -> Result<(), ClientError> {
        let output = serde_json::to_value(output).map_err(|e| ClientError::BadPayload {
            what: "the output of a terminate".into(),
            error: e.to_string(),
        })?;
        self.within_limits(&output, || "the output of a terminate".into())?;
        self.send(
            instance_id,
            Event::ExecutionTerminated { output, recursive },
        )
        .await
    }

    /// Suspends a running instance: events raised meanwhile are held until it resumes.
    pub async fn suspend(
        &self,
        instance_id: &str,
        reason: Option<&str>,
    ) -> Result<(), ClientError> {
        let reason = reason.map(str::to_string);
        self.send(instance_id, Event::ExecutionSuspended { reason })
            .await
    }

    /// Resumes a suspended instance; the events it held are delivered in order.
    pub async fn resume(&self, instance_id: &str, reason: Option<&str>) -> Result<(), ClientError> {
        let reason = reason.map(str::to_string);
        self.send(instance_id, Event::ExecutionResumed { reason })
            .await
    }

    /// The history of an instance as JSON, with its id (an [`ExportedHistory`]): the input of
    /// [`ReplayChecker::check_json`](crate::testing::ReplayChecker::check_json), which replays
    /// it under that id.
    pub async fn export_history(&self, instance_id: &str) -> Result<String, ClientError> {
        let id = parse_id(instance_id)?;
        let history = self.history(&id).await?;
        let export = ExportedHistory {
            instance_id: Some(id),
            history,
        };
        serde_json::to_string_pretty(&export).map_err(|e| ClientError::BadPayload {
            what: "the history".into(),
            error: e.to_string(),
        })
    }

    /// The earliest time, after the clock's now, at which something a workflow can observe
    /// falls due: a durable timer (`ctx.sleep`, an event wait's timeout, a retry's back-off)
    /// or a scheduled start. Leases and other internal deadlines are not counted.
    ///
    /// For tests on a virtual clock: `clock.advance_to(client.next_timer().await?.unwrap())`
    /// fires the next timer and nothing later.
    pub async fn next_timer(&self) -> Result<Option<SystemTime>, ClientError> {
        let now = self.shared.clock.now();
        Ok(self.shared.store.next_timer(now).await?)
    }

    /// Starts the newest registered version of the orchestrator `name` with a JSON input
    /// (for callers without the Rust types, such as an HTTP API).
    pub async fn start_by_name(
        &self,
        name: &str,
        input: serde_json::Value,
        instance_id: Option<&str>,
    ) -> Result<InstanceId, ClientError> {
        let version = self.shared.registry.latest_version(name).ok_or_else(|| {
            ClientError::NotRegistered {
                name: name.to_string(),
                version: 0,
            }
        })?;
        let id = match instance_id {
            Some(id) => parse_id(id)?,
            None => new_id(),
        };
        let options = StartOptions::default();
        self.create_started(id, name, version, input, &options)
            .await
    }

    /// Refuses a payload over the runtime's limits, naming it `what`.
    fn within_limits(
        &self,
        payload: &serde_json::Value,
        what: impl FnOnce() -> String,
    ) -> Result<(), ClientError> {
        self.shared
            .options
            .limits
            .check(payload)
            .map_err(|error| ClientError::PayloadLimit {
                what: what(),
                error,
            })
    }

    async fn send(&self, instance_id: &str, event: Event) -> Result<(), ClientError> {
        let id = parse_id(instance_id)?;
        let _busy = self.shared.busy();
        self.shared
            .store
            .send(&id, HistoryEvent::new(event), None)
            .await?;
        Ok(())
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
    ///
    /// On a virtual clock with [`Advance::Auto`](crate::testing::Advance::Auto), time moves
    /// while it waits, as in [`wait_for_completion`](Self::wait_for_completion): "run until it
    /// waits for `shipped`" is one call, however many back-offs come first.
    pub async fn wait_until(
        &self,
        instance_id: &str,
        timeout: Duration,
        mut done: impl FnMut(&InstanceStatus) -> bool,
    ) -> Result<InstanceStatus, ClientError> {
        let id = parse_id(instance_id)?;
        let shared = &self.shared;
        let mut changes = shared.store.watch_status(&id);
        let gone = || ClientError::NotFound(id.clone());
        let wait = async {
            loop {
                changes.borrow_and_update();
                let status = shared.store.status(&id).await?.ok_or_else(gone)?;
                if done(&status) {
                    return Ok(status);
                }
                // Until the status changes. On a clock that moves for waiting clients, move
                // it whenever nothing can run and no change is unseen: a change is committed
                // under a busy guard and announced before the guard drops.
                loop {
                    let settled = shared.settled();
                    let mut settled = std::pin::pin!(settled);
                    settled.as_mut().enable();
                    if changes.has_changed().map_err(|_| gone())? {
                        break;
                    }
                    let Some(clock) = &shared.auto_clock else {
                        changes.changed().await.map_err(|_| gone())?;
                        break;
                    };
                    // Let tasks that were just woken take their work first.
                    for _ in 0..4 {
                        tokio::task::yield_now().await;
                    }
                    let now = clock.now();
                    if shared.is_idle(now).await && !changes.has_changed().unwrap_or(true) {
                        // The store's next wake-up, not the clock's earliest sleeper: a worker
                        // may still be sleeping until the expiry of a lease released since.
                        if let Ok(Some(next)) = shared.store.next_wakeup().await {
                            if next > now && shared.in_flight() == 0 {
                                clock.advance_to(next);
                                continue;
                            }
                        }
                    }
                    tokio::select! {
                        biased;
                        changed = changes.changed() => {
                            changed.map_err(|_| gone())?;
                            break;
                        }
                        () = shared.settle(settled) => {}
                    }
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

    /// Creates an instance of `name`/`version`, applying the id reuse policy.
    async fn create_started(
        &self,
        id: InstanceId,
        name: &str,
        version: u32,
        input: serde_json::Value,
        options: &StartOptions,
    ) -> Result<InstanceId, ClientError> {
        self.within_limits(&input, || format!("the input of orchestrator `{name}`"))?;
        let shared = &self.shared;
        if let Some(at) = options.start_at {
            crate::clock::in_range(at, || format!("start_at of instance `{id}`"))?;
        }
        let now = shared.clock.now();
        let seed = start_seed(id.as_str(), now);
        let mut start = HistoryEvent::new(Event::ExecutionStarted {
            name: name.to_string(),
            version,
            input: input.clone(),
            seed,
            parent: None,
            generation: 0,
            eager_restarts: 0,
        });
        start.span = shared.tracing.start_record(now);
        let status = InstanceStatus {
            instance_id: id.clone(),
            name: name.to_string(),
            version,
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
            start_at: options.start_at,
            replace_finished: options.id_reuse == IdReuse::ReplaceFinished,
        };
        let _busy = shared.busy();
        // The rare paths' futures are boxed: inline, they would make every start's future
        // several times larger.
        if options.id_reuse == IdReuse::Refuse {
            return Box::pin(self.create_refusing_existing(new)).await;
        }
        // Kept only where a refusal makes it again.
        let again =
            (options.if_running == IfRunning::TerminateAndRestart).then(|| Box::new(new.clone()));
        match shared.store.create_instance(new).await {
            Ok(()) => Ok(id),
            Err(crate::store::StoreError::AlreadyExists(_)) => match options.if_running {
                IfRunning::Fail => Err(ClientError::AlreadyExists(id)),
                IfRunning::Ignore => Ok(id),
                IfRunning::TerminateAndRestart => {
                    let new = again.expect("kept for a restart");
                    Box::pin(self.restart(id, *new, options)).await
                }
            },
            Err(error) => Err(error.into()),
        }
    }

    /// Terminates the running instance `new` replaces, waits for it to end, and creates
    /// `new` in its place.
    async fn restart(
        &self,
        id: InstanceId,
        new: NewInstance,
        options: &StartOptions,
    ) -> Result<InstanceId, ClientError> {
        match self.terminate(&id, "replaced by a new start").await {
            Ok(()) | Err(ClientError::Finished { .. }) => {}
            Err(error) => return Err(error),
        }
        self.wait_for_completion(&id, options.terminate_timeout)
            .await?;
        self.shared.store.create_instance(new).await?;
        Ok(id)
    }

    /// Creates `new` unless its id is taken by an instance in any state; a refusal says what
    /// state that instance is in.
    async fn create_refusing_existing(&self, new: NewInstance) -> Result<InstanceId, ClientError> {
        let id = new.status.instance_id.clone();
        let store = &self.shared.store;
        // The taker may be purged between the refusal and the read: then the id is free again.
        for _ in 0..3 {
            match store.create_instance(new.clone()).await {
                Ok(()) => return Ok(id),
                Err(crate::store::StoreError::AlreadyExists(_)) => {}
                Err(error) => return Err(error.into()),
            }
            if let Some(existing) = store.status(&id).await? {
                return Err(ClientError::IdTaken {
                    id,
                    status: existing.runtime_status,
                });
            }
        }
        Err(ClientError::AlreadyExists(id))
    }
}

/// What a start does when an instance with its id exists already, in any state.
///
/// The default follows durabletask: a finished instance is replaced (its history and status
/// are dropped, and the orchestration runs again), and a running one is left to
/// [`IfRunning`]. Choose [`IdReuse::Refuse`] when an id stands for something that must
/// happen once (an order that must not be charged twice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdReuse {
    /// Replace a finished instance; a running one is handled by [`Start::if_running`] (the
    /// default).
    #[default]
    ReplaceFinished,
    /// Refuse the start if an instance with the id exists in any state, running or finished:
    /// it fails with [`ClientError::IdTaken`], which says that instance's status, and the
    /// instance is left as it was. [`Start::if_running`] is not consulted.
    Refuse,
}

/// What a start does when an instance with the same id is still running. (A finished one is
/// replaced, unless the start refuses any existing id: [`IdReuse::Refuse`].)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IfRunning {
    /// Fail with [`ClientError::AlreadyExists`] (the default).
    #[default]
    Fail,
    /// Leave the running instance alone and return its id.
    Ignore,
    /// Terminate the running instance, wait for it to end, and start anew.
    TerminateAndRestart,
}

#[derive(Debug, Clone)]
struct StartOptions {
    start_at: Option<SystemTime>,
    id_reuse: IdReuse,
    if_running: IfRunning,
    terminate_timeout: Duration,
}

impl Default for StartOptions {
    fn default() -> Self {
        StartOptions {
            start_at: None,
            id_reuse: IdReuse::ReplaceFinished,
            if_running: IfRunning::Fail,
            terminate_timeout: Duration::from_secs(30),
        }
    }
}

/// An instance start being configured; await it to start.
#[must_use = "nothing starts until the start is awaited"]
pub struct Start<'a, O: Orchestrator> {
    client: &'a Client,
    input: O::Input,
    instance_id: Option<String>,
    options: StartOptions,
    _orchestrator: PhantomData<fn() -> O>,
}

impl<O: Orchestrator> Start<'_, O> {
    /// Uses `id` as the instance id (a random UUID otherwise).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// Starts the orchestration at `at` instead of now; until then it is `Pending`. A time
    /// outside what every store can hold (before 1970, after 2262) is refused with
    /// [`ClientError::TimeOutOfRange`].
    pub fn start_at(mut self, at: SystemTime) -> Self {
        self.options.start_at = Some(at);
        self
    }

    /// What to do if an instance with this id exists already: replace a finished one (the
    /// default), or refuse any ([`IdReuse::Refuse`]).
    ///
    /// ```
    /// # use durable_runtime::{orchestrator, ClientError, IdReuse, OrchestrationContext, Runtime, RuntimeStatus, TaskError};
    /// # #[orchestrator]
    /// # async fn charge_order(_ctx: OrchestrationContext, cents: u64) -> Result<u64, TaskError> { Ok(cents) }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let runtime = Runtime::builder().orchestrator(charge_order).start()?;
    /// # let client = runtime.client();
    /// let id = client.start(charge_order, 500).instance_id("order-1").await?;
    /// client.wait_for_completion(&id, std::time::Duration::from_secs(5)).await?;
    ///
    /// // The order ran: starting it again must not charge again.
    /// let again = client
    ///     .start(charge_order, 500)
    ///     .instance_id("order-1")
    ///     .id_reuse(IdReuse::Refuse)
    ///     .await;
    /// assert!(matches!(
    ///     again,
    ///     Err(ClientError::IdTaken { status: RuntimeStatus::Completed, .. })
    /// ));
    /// # Ok(())
    /// # }
    /// ```
    pub fn id_reuse(mut self, policy: IdReuse) -> Self {
        self.options.id_reuse = policy;
        self
    }

    /// What to do if an instance with this id is still running (fail, by default).
    pub fn if_running(mut self, policy: IfRunning) -> Self {
        self.options.if_running = policy;
        self
    }

    /// With [`IfRunning::TerminateAndRestart`]: how long to wait for the old instance to
    /// end (30 s by default).
    pub fn terminate_timeout(mut self, timeout: Duration) -> Self {
        self.options.terminate_timeout = timeout;
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
                None => new_id(),
            };
            let input = serde_json::to_value(&self.input).map_err(|e| ClientError::BadPayload {
                what: format!("the input of orchestrator `{}`", O::NAME),
                error: e.to_string(),
            })?;
            let registry = &self.client.shared.registry;
            if registry.orchestrator(O::NAME, O::VERSION).is_none() {
                return Err(ClientError::NotRegistered {
                    name: O::NAME.to_string(),
                    version: O::VERSION,
                });
            }
            self.client
                .create_started(id, O::NAME, O::VERSION, input, &self.options)
                .await
        })
    }
}
