//! A turn's commit: one transaction, fenced by the lease token and the history length, its
//! statements pipelined.

use deadpool_postgres::GenericClient;
use durable_runtime::history::{Event, HistoryEvent};
use durable_runtime::store::{StoreError, TurnCommit};
use tokio_postgres::Statement;

use crate::codec::{encode, encode_text, nanos, status_name, to_i64};
use crate::create::{CreateStatements, NewRow};
use crate::pipeline::{prepare, step, Step};
use crate::sql::Sql;

/// The statements of a turn, prepared together.
pub(crate) struct TurnStatements {
    fence: Statement,
    drop_old_generations: Statement,
    drop_timers: Statement,
    drop_activities: Statement,
    cancel_timers: Statement,
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
    pub(crate) token: i64,
    pub(crate) expected: i64,
    status: &'static str,
    output: Option<Vec<u8>>,
    custom_status: Option<String>,
    failure: Option<Vec<u8>>,
    input: Option<Vec<u8>>,
    turn_started: Option<i64>,
    pub(crate) replace_history: bool,
    pub(crate) finished: bool,
    history: Vec<Vec<u8>>,
    pub(crate) done_seqs: Vec<i64>,
    done_tokens: Vec<i64>,
    consumed: Vec<i64>,
    cancelled: Vec<i64>,
    timer_at: Vec<i64>,
    pub(crate) timer_ids: Vec<i64>,
    timer_events: Vec<Vec<u8>>,
    task_seqs: Vec<i64>,
    pub(crate) tasks: Vec<Vec<u8>>,
    /// Whether the new attempts are written by the fence's statement: not when older
    /// attempts are dropped after it (continue-as-new), nor when one reuses the sequence
    /// number of an attempt the turn completes (one statement changes a row once).
    tasks_with_fence: bool,
    /// The latest `now` this process saw: messages visible by then count as waiting.
    pub(crate) seen_now: i64,
    pub(crate) receivers: Vec<String>,
    letters: Vec<Vec<u8>>,
    pub(crate) children: Vec<NewRow>,
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

    /// The bytes of payload it writes, the largest part of its statements.
    pub(crate) fn bytes(&self) -> usize {
        let all = |values: &[Vec<u8>]| values.iter().map(Vec::len).sum::<usize>();
        let some = |value: &Option<Vec<u8>>| value.as_ref().map_or(0, Vec::len);
        all(&self.history)
            + all(&self.tasks)
            + all(&self.timer_events)
            + all(&self.letters)
            + some(&self.output)
            + some(&self.failure)
            + some(&self.input)
            + self.custom_status.as_ref().map_or(0, String::len)
            + self.children.iter().map(NewRow::bytes).sum::<usize>()
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
                &self.finished,
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
