//! A turn's commit: one transaction, fenced by the lease token and the history length, its
//! statements pipelined.

use deadpool_postgres::GenericClient;
use durable_runtime::history::{Event, HistoryEvent};
use durable_runtime::store::{StoreError, TurnCommit};
use durable_runtime::InstanceId;
use tokio_postgres::Statement;

use crate::codec::{col, encode, encode_text, nanos, status_name, to_i64};
use crate::create::{CreateStatements, NewRow};
use crate::db::unavailable;
use crate::group_commit::Write;
use crate::pipeline::{prepare, step, Step};
use crate::sql::Sql;
use crate::store::PostgresStore;
use crate::wake::{ACTIVITIES, ORCHESTRATIONS, STATUSES};

/// The statements of a turn, prepared together.
pub(crate) struct TurnStatements {
    fence: Statement,
    drop_old_generations: Statement,
    drop_timers: Statement,
    drop_activities: Statement,
    cancel_timers: Statement,
    drop_inbox: Statement,
    add_timers: Statement,
    add_activities: Statement,
    send_many: Statement,
}

impl TurnStatements {
    pub(crate) async fn prepare(
        client: &impl GenericClient,
        sql: &Sql,
    ) -> Result<Self, StoreError> {
        let texts = [
            &sql.commit_turn,
            &sql.drop_old_generations,
            &sql.drop_timers,
            &sql.drop_activities,
            &sql.cancel_timers,
            &sql.drop_inbox,
            &sql.add_timers,
            &sql.add_activities,
            &sql.send_many,
        ];
        let mut prepared =
            futures::future::try_join_all(texts.iter().map(|text| prepare(client, text)))
                .await?
                .into_iter();
        let mut next = || prepared.next().expect("one statement per text");
        Ok(TurnStatements {
            fence: next(),
            drop_old_generations: next(),
            drop_timers: next(),
            drop_activities: next(),
            cancel_timers: next(),
            drop_inbox: next(),
            add_timers: next(),
            add_activities: next(),
            send_many: next(),
        })
    }
}

/// Empty arrays, for a fence that adds no attempts.
static NO_SEQS: Vec<i64> = Vec::new();
static NO_TASKS: Vec<Vec<u8>> = Vec::new();

/// A turn as statement parameters, encoded before a connection is taken: encoding is most
/// of a turn's CPU.
pub(crate) struct EncodedTurn {
    pub(crate) id: String,
    token: i64,
    expected: i64,
    status: &'static str,
    output: Option<Vec<u8>>,
    custom_status: Option<String>,
    failure: Option<Vec<u8>>,
    input: Option<Vec<u8>>,
    turn_started: Option<i64>,
    replace_history: bool,
    finished: bool,
    history: Vec<Vec<u8>>,
    done_seqs: Vec<i64>,
    done_tokens: Vec<i64>,
    consumed: Vec<i64>,
    cancelled: Vec<i64>,
    timer_at: Vec<i64>,
    timer_ids: Vec<i64>,
    timer_events: Vec<Vec<u8>>,
    task_seqs: Vec<i64>,
    tasks: Vec<Vec<u8>>,
    /// Whether the new attempts are written by the fence's statement: not when older
    /// attempts are dropped after it (continue-as-new), nor when one reuses the sequence
    /// number of an attempt the turn completes (one statement changes a row once).
    tasks_with_fence: bool,
    /// The latest `now` this process saw: messages visible by then count as waiting.
    pub(crate) seen_now: i64,
    receivers: Vec<String>,
    letters: Vec<Vec<u8>>,
    children: Vec<NewRow>,
}

impl EncodedTurn {
    pub(crate) fn new(commit: &TurnCommit) -> Result<Self, StoreError> {
        let ids = |values: &[u64], what: &str| -> Result<Vec<i64>, StoreError> {
            values.iter().map(|&v| to_i64(v, what)).collect()
        };
        let update = &commit.status;
        let finished = update.runtime_status.is_finished();
        let history: Vec<Vec<u8>> = commit.history.iter().map(encode).collect();
        let mut turn = EncodedTurn {
            id: commit.instance_id.to_string(),
            token: to_i64(commit.lease, "the lease token")?,
            expected: to_i64(commit.expected_history_len, "the history length")?,
            status: status_name(update.runtime_status),
            output: update.output.as_ref().map(encode),
            custom_status: update.custom_status.as_ref().map(encode_text),
            failure: update.failure.as_ref().map(encode),
            input: update.input.as_ref().map(encode),
            turn_started: commit.history.iter().find_map(|e| match e.event {
                Event::OrchestratorStarted { timestamp } => Some(nanos(timestamp)),
                _ => None,
            }),
            replace_history: commit.replace_history,
            finished,
            history,
            done_seqs: Vec::new(),
            done_tokens: Vec::new(),
            consumed: ids(&commit.consumed, "a message id")?,
            cancelled: ids(&commit.cancelled_timers, "a timer id")?,
            timer_at: Vec::new(),
            timer_ids: Vec::new(),
            timer_events: Vec::new(),
            task_seqs: Vec::new(),
            tasks: Vec::new(),
            tasks_with_fence: false,
            seen_now: i64::MIN,
            receivers: commit
                .messages
                .iter()
                .map(|m| m.instance_id.to_string())
                .collect(),
            letters: commit.messages.iter().map(|m| encode(&m.event)).collect(),
            children: commit.sub_instances.iter().map(NewRow::new).collect(),
        };
        for lease in &commit.completed_activities {
            turn.done_seqs
                .push(to_i64(lease.id, "an activity's sequence number")?);
            turn.done_tokens
                .push(to_i64(lease.token, "an activity's lease token")?);
        }
        if !finished {
            for timer in &commit.timers {
                turn.timer_at.push(nanos(timer.fire_at));
                turn.timer_ids.push(to_i64(timer.id, "a timer id")?);
                turn.timer_events
                    .push(encode(&HistoryEvent::new(Event::TimerFired {
                        id: timer.id,
                        fire_at: timer.fire_at,
                    })));
            }
            for task in &commit.activities {
                turn.task_seqs
                    .push(to_i64(task.id, "an activity's sequence number")?);
                turn.tasks.push(encode(task));
            }
        }
        turn.tasks_with_fence = !turn.replace_history
            && !turn
                .task_seqs
                .iter()
                .any(|seq| turn.done_seqs.contains(seq));
        Ok(turn)
    }

    /// The fence, with the effects every turn may have: moves the instance's status and
    /// history length and releases its lease if the lease, the history length and the
    /// attempts the turn completes are still this turn's; then deletes those attempts,
    /// appends the events, consumes the messages and (see `tasks_with_fence`) adds the new
    /// attempts. A row back means it held.
    pub(crate) fn fence_step<'a>(
        &'a self,
        client: &'a tokio_postgres::Client,
        st: &'a TurnStatements,
    ) -> Step<'a> {
        let (task_seqs, tasks) = if self.tasks_with_fence {
            (&self.task_seqs, &self.tasks)
        } else {
            (&NO_SEQS, &NO_TASKS)
        };
        step(
            client,
            &st.fence,
            &[
                &self.id,
                &self.token,
                &self.expected,
                &self.status,
                &self.output,
                &self.custom_status,
                &self.failure,
                &self.input,
                &self.turn_started,
                &self.replace_history,
                &self.done_seqs,
                &self.done_tokens,
                &self.history,
                &self.consumed,
                task_seqs,
                tasks,
                &self.seen_now,
            ],
        )
    }

    /// Every other effect of a turn whose fence held, in the same transaction.
    pub(crate) fn effect_steps<'a>(
        &'a self,
        client: &'a tokio_postgres::Client,
        st: &'a TurnStatements,
        create: Option<&'a CreateStatements>,
    ) -> Vec<Step<'a>> {
        let tx = client;
        let id = &self.id;
        let mut steps: Vec<Step<'a>> = Vec::new();
        if self.replace_history {
            steps.push(step(tx, &st.drop_old_generations, &[id]));
            steps.push(step(tx, &st.drop_timers, &[id]));
            steps.push(step(tx, &st.drop_activities, &[id]));
        }
        if !self.cancelled.is_empty() {
            steps.push(step(tx, &st.cancel_timers, &[id, &self.cancelled]));
        }
        if self.finished {
            steps.push(step(tx, &st.drop_inbox, &[id]));
            steps.push(step(tx, &st.drop_activities, &[id]));
        }
        if !self.timer_ids.is_empty() {
            steps.push(step(
                tx,
                &st.add_timers,
                &[id, &self.timer_at, &self.timer_ids, &self.timer_events],
            ));
        }
        if !self.tasks_with_fence && !self.task_seqs.is_empty() {
            steps.push(step(
                tx,
                &st.add_activities,
                &[id, &self.task_seqs, &self.tasks],
            ));
        }
        if let Some(create) = create {
            for child in &self.children {
                steps.extend(child.steps(tx, create));
            }
        }
        if !self.receivers.is_empty() {
            steps.push(step(tx, &st.send_many, &[&self.receivers, &self.letters]));
        }
        steps
    }

    /// Whether its effects create instances (and so need the creation statements).
    pub(crate) fn creates_children(&self) -> bool {
        !self.children.is_empty()
    }
}

impl PostgresStore {
    /// Applies `commit` with the other writes of this process committing now (group
    /// commit): one transaction for the batch, the fence first.
    pub(crate) async fn apply_turn(&self, commit: TurnCommit) -> Result<(), StoreError> {
        let mut turn = EncodedTurn::new(&commit)?;
        turn.seen_now = self.last_now();
        let (token, expected) = (turn.token, turn.expected);
        let completes = !turn.done_seqs.is_empty();
        let children: Vec<InstanceId> = turn.children.iter().map(|c| c.id.clone()).collect();
        let mut what = STATUSES;
        if !turn.tasks.is_empty() {
            what |= ACTIVITIES;
        }
        // Turns are due elsewhere (or sooner) only if this one sent messages, created
        // children, set timers or started a new generation; its own inbox is asked below.
        if !turn.receivers.is_empty()
            || !children.is_empty()
            || !turn.timer_ids.is_empty()
            || turn.replace_history
        {
            what |= ORCHESTRATIONS;
        }
        let finished = turn.finished;
        let written = self.group.write(Write::Turn(Box::new(turn))).await?;
        if !written.held {
            let client = self.client().await?;
            return Err(self
                .turn_conflict(&client, &commit.instance_id, token, expected, completes)
                .await);
        }
        if written.inbox_left && !finished {
            what |= ORCHESTRATIONS;
        }
        self.wake.status_changed(&commit.instance_id);
        for child in &children {
            self.wake.status_changed(child);
        }
        self.wake.announce(what);
        Ok(())
    }

    /// Why a turn's fence did not hold, read after its transaction was rolled back.
    async fn turn_conflict(
        &self,
        client: &impl GenericClient,
        id: &InstanceId,
        token: i64,
        expected: i64,
        completes: bool,
    ) -> StoreError {
        let read = async {
            let statement = prepare(client, &self.sql.lease_state).await?;
            client
                .query_opt(&statement, &[&id.as_str()])
                .await
                .map_err(|e| unavailable("cannot read the instance's lease", e))
        };
        let row = match read.await {
            Ok(row) => row,
            Err(error) => return error,
        };
        let Some(row) = row else {
            return StoreError::NotFound(id.clone());
        };
        let (fence, lease_until, length) = match (
            col::<i64>(&row, 0, id),
            col::<Option<i64>>(&row, 1, id),
            col::<i64>(&row, 2, id),
        ) {
            (Ok(fence), Ok(until), Ok(length)) => (fence, until, length),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
        };
        let reason = if fence != token || lease_until.is_none() {
            "the instance lease was lost to another worker".to_string()
        } else if length != expected {
            format!("the history has {length} events, the turn expected {expected}")
        } else if completes {
            "the lease on an activity attempt the turn completes was lost".to_string()
        } else {
            "the instance changed while the turn committed".to_string()
        };
        StoreError::Conflict {
            id: id.clone(),
            reason,
        }
    }
}
