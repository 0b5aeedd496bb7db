//! Every statement the store runs, written once per store with its schema's name: fixed
//! texts, so each connection prepares each statement once (`list` has one text per shape
//! of query).

use durable_runtime::store::{InstanceQuery, StoreError};
use tokio_postgres::types::ToSql;

use crate::codec::{nanos, status_name};

/// The most instances one page of `list` returns, whatever the query asks.
const MAX_PAGE: usize = 1_000;

/// Instances that take messages and leases.
const LIVE: &str = "status IN ('Pending', 'Running', 'Suspended')";
/// Instances that have finished for good.
const FINISHED: &str = "status IN ('Completed', 'Failed', 'Terminated')";

/// The columns `status` and `list` read, in the order `row_to_status` expects.
pub(crate) const STATUS_COLUMNS: &str =
    "id, name, version, status, created_at, updated_at, input, output, custom_status, failure, parent";

/// The statements of one schema.
#[derive(Debug)]
pub(crate) struct Sql {
    /// The quoted schema name, for the queries built per call (`list`).
    pub(crate) schema: String,
    /// Transaction control, prepared so that it is pipelined with the statements it
    /// surrounds.
    pub(crate) begin: String,
    pub(crate) commit: String,
    /// $1 id: drops a finished instance (its inbox goes with it).
    pub(crate) delete_finished: String,
    /// $1.. the instance's columns, then its start message: creates both, or nothing if
    /// the id is taken, dropping history and activity rows left by an earlier instance of
    /// the id that has no row (any more). Returns a row when created.
    pub(crate) insert_instance: String,
    /// $1 id, $2 visible_at, $3 event: into the inbox of a live instance.
    pub(crate) send: String,
    /// $1 id: the status, to say why a write found no live instance.
    pub(crate) status_of: String,
    /// $1 now, $2 lease expiry, $3 owner, $4 at most how many: leases the instances whose
    /// leases expired first, then those with the oldest deliverable messages: a row per
    /// deliverable message, by instance, or one with NULL (id, lease token, history length,
    /// message id, event, whether an expired lease was taken over, whether the messages
    /// must be read again).
    pub(crate) fetch_orchestration: String,
    /// The same, for expired leases only.
    pub(crate) fetch_expired_orchestrations: String,
    /// $1 now, $2 lease expiry, $3 owner, $4 id: leases that instance if it is free.
    pub(crate) lease_orchestration: String,
    /// $1 now, $2 ids, $3 lease tokens: instances a claim leased, still held, with their
    /// messages deliverable at $1, read again after the claim (the claim's columns).
    pub(crate) claimed_inbox: String,
    /// $1 id: the current generation's events, in order; one row with NULL if none, no row
    /// if no such instance.
    pub(crate) load_history: String,
    /// $1 id, $2 first position, $3 end position: the history's length, then the current
    /// generation's events in that range, in order (one row with NULL if none); no row if
    /// no such instance.
    pub(crate) load_history_page: String,
    /// A turn's fence, its new status and its common effects, in one statement; see the
    /// text for its parameters.
    pub(crate) commit_turn: String,
    /// $1 id: continue-as-new drops the older generations, timers and attempts.
    pub(crate) drop_old_generations: String,
    pub(crate) drop_timers: String,
    pub(crate) drop_activities: String,
    /// $1 id, $2 timer ids.
    pub(crate) cancel_timers: String,
    /// $1 id, $2 fire times, $3 timer ids, $4 events.
    pub(crate) add_timers: String,
    /// $1 id, $2 sequence numbers, $3 tasks.
    pub(crate) add_activities: String,
    /// $1 receivers, $2 events: to those still live.
    pub(crate) send_many: String,
    /// $1 id, $2 token.
    pub(crate) abandon_orchestration: String,
    /// $1 now, $2 lease expiry, $3 owner, $4 at most how many: leases the attempts whose
    /// leases expired first, then ready ones; the last column says whether an expired lease
    /// was taken over.
    pub(crate) fetch_activity: String,
    /// The same, for expired leases only.
    pub(crate) fetch_expired_activities: String,
    /// $1 id, $2 seq, $3 token, $4 result: completes and delivers in one statement.
    pub(crate) complete_activity: String,
    /// $1 id, $2 seq, $3 token, $4 new expiry: extends a lease nobody has taken since.
    pub(crate) renew_activity: String,
    /// $1 id, $2 seq, $3 token.
    pub(crate) abandon_activity: String,
    /// $1 ids, $2 tokens: releases claims never handed out.
    pub(crate) release_orchestrations: String,
    /// $1 ids, $2 sequence numbers, $3 tokens: the same for attempts.
    pub(crate) release_activities: String,
    /// $1 id.
    pub(crate) status: String,
    /// $1 id: a finished instance, then its history and attempts.
    pub(crate) purge: String,
    /// $1 the latest `now` seen.
    pub(crate) next_wakeup: String,
    /// $1 now.
    pub(crate) next_timer: String,
    /// $1 now.
    pub(crate) has_work: String,
    /// $1 now: the queues' depths for the metrics (instances with deliverable messages and
    /// no live lease, attempts ready or expired, messages not yet due), each counted among
    /// at most `DEPTH_CAP` rows.
    pub(crate) queue_depths: String,
    /// $1 id: why a turn's fence failed.
    pub(crate) lease_state: String,
    /// $1 ids: the status revisions of watched instances.
    pub(crate) status_revisions: String,
}

impl Sql {
    /// The statements of the schema quoted as `s`.
    pub(crate) fn new(s: &str) -> Sql {
        // The claim's tail: the leased instances, each with the messages deliverable at $1
        // (a row per message, oldest first, or one row with NULL), whether the claim took
        // an expired lease over (`candidate` says), and whether the inbox read may be stale
        // (`moved`). The messages are read in this statement's snapshot, taken when it
        // started; a commit that released one of these leases after that, before the claim
        // locked the row, may have consumed some of them. Such a commit always writes the
        // instance's row, so the row version locked (`locked`, its `ctid` after the lock's
        // re-check) differs from the snapshot's then, and the store reads those inboxes
        // again (`claimed_inbox`).
        let leased = format!(
            "leased AS (
                 UPDATE {s}.instances i
                 SET fence = nextval('{s}.lease_tokens'), lease_until = $2, lease_owner = $3
                 FROM candidate c WHERE i.id = c.id
                 RETURNING i.id, i.fence, i.history_len, c.took_over, c.locked)
             SELECT l.id, l.fence, l.history_len, m.id, m.event, l.took_over,
                    l.locked IS DISTINCT FROM
                        (SELECT x.ctid FROM {s}.instances x WHERE x.id = l.id) AS moved
             FROM leased l
             LEFT JOIN LATERAL (
                 SELECT id, event FROM {s}.messages
                 WHERE instance_id = l.id AND visible_at <= $1 OFFSET 0) m ON TRUE
             ORDER BY l.id, m.id"
        );
        // Instances whose leases expired, with deliverable messages, oldest expiry first.
        let expired_instances = format!(
            "SELECT i.id, TRUE AS took_over, i.ctid AS locked FROM {s}.instances i
             WHERE i.lease_until <= $1 AND i.{LIVE}
               AND EXISTS (SELECT 1 FROM {s}.messages m
                           WHERE m.instance_id = i.id AND m.visible_at <= $1)
             ORDER BY i.lease_until
             LIMIT $4
             FOR NO KEY UPDATE OF i SKIP LOCKED"
        );
        // Attempts whose leases expired (`due_at` between the ready mark and now), oldest
        // expiry first.
        let expired_attempts = format!(
            "SELECT instance_id, seq, TRUE AS took_over FROM {s}.activities
             WHERE due_at > {min} AND due_at <= $1
             ORDER BY due_at LIMIT $4
             FOR UPDATE SKIP LOCKED",
            min = i64::MIN
        );
        let lease_attempts = format!(
            "UPDATE {s}.activities a
             SET token = nextval('{s}.lease_tokens'), due_at = $2, lease_owner = $3
             FROM candidate c WHERE a.instance_id = c.instance_id AND a.seq = c.seq
             RETURNING a.instance_id, a.seq, a.token, a.task, c.took_over"
        );
        Sql {
            schema: s.to_string(),
            begin: "BEGIN".to_string(),
            commit: "COMMIT".to_string(),
            delete_finished: format!("DELETE FROM {s}.instances WHERE id = $1 AND {FINISHED}"),
            insert_instance: format!(
                "WITH gone AS (SELECT NOT EXISTS (SELECT 1 FROM {s}.instances WHERE id = $1) AS gone),
                 orphan_history AS (
                     DELETE FROM {s}.history WHERE instance_id = $1 AND (SELECT gone FROM gone)),
                 orphan_activities AS (
                     DELETE FROM {s}.activities WHERE instance_id = $1 AND (SELECT gone FROM gone)),
                 created AS (
                     INSERT INTO {s}.instances
                         (id, name, version, status, created_at, updated_at, input, output,
                          custom_status, failure, parent)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (id) DO NOTHING
                     RETURNING id)
                 INSERT INTO {s}.messages (instance_id, visible_at, event)
                 SELECT id, $12::bigint, $13::bytea FROM created
                 RETURNING instance_id"
            ),
            send: format!(
                "INSERT INTO {s}.messages (instance_id, visible_at, event)
                 SELECT id, $2::bigint, $3::bytea FROM {s}.instances WHERE id = $1 AND {LIVE}"
            ),
            status_of: format!("SELECT status FROM {s}.instances WHERE id = $1"),
            // Expired leases first, oldest expiry first: a dead worker's instances are taken
            // over as soon as their leases run out, however many messages wait. Then the
            // oldest deliverable messages. Each part is read only as far as the claim needs
            // (the union's LIMIT stops it), so the messages are not walked when expired
            // leases fill the claim. An instance found by both is leased once.
            fetch_orchestration: format!(
                "WITH expired AS ({expired_instances}),
                 waiting AS (
                     SELECT i.id, i.lease_until IS NOT NULL AS took_over, i.ctid AS locked
                     FROM {s}.messages m JOIN {s}.instances i ON i.id = m.instance_id
                     WHERE m.visible_at <= $1
                       AND (i.lease_until IS NULL OR i.lease_until <= $1) AND i.{LIVE}
                     ORDER BY m.visible_at, m.id
                     LIMIT $4
                     FOR NO KEY UPDATE OF i SKIP LOCKED),
                 candidate AS (
                     SELECT id, took_over, locked FROM expired
                     UNION ALL SELECT id, took_over, locked FROM waiting
                     LIMIT $4),
                 {leased}"
            ),
            fetch_expired_orchestrations: format!(
                "WITH candidate AS ({expired_instances}),
                 {leased}"
            ),
            lease_orchestration: format!(
                "WITH candidate AS (
                     SELECT id, lease_until IS NOT NULL AS took_over, ctid AS locked
                     FROM {s}.instances
                     WHERE id = $4 AND (lease_until IS NULL OR lease_until <= $1) AND {LIVE}
                     FOR NO KEY UPDATE SKIP LOCKED),
                 {leased}"
            ),
            // Each instance and its inbox looked up by key: the lateral subqueries (kept
            // apart by LIMIT and OFFSET 0) are never flattened into a join that the planner
            // could turn into a scan of a table whose statistics are stale, as they are
            // while the table grows.
            claimed_inbox: format!(
                "SELECT i.id, i.fence, i.history_len, m.id, m.event, FALSE, FALSE
                 FROM unnest($2::text[], $3::bigint[]) AS c(id, fence)
                 CROSS JOIN LATERAL (
                     SELECT id, fence, history_len FROM {s}.instances
                     WHERE id = c.id COLLATE \"C\" AND fence = c.fence LIMIT 1) i
                 LEFT JOIN LATERAL (
                     SELECT id, event FROM {s}.messages
                     WHERE instance_id = i.id AND visible_at <= $1 OFFSET 0) m ON TRUE
                 ORDER BY i.id, m.id"
            ),
            load_history: format!(
                "SELECT h.event FROM {s}.instances i
                 LEFT JOIN {s}.history h ON h.instance_id = i.id AND h.generation = i.generation
                 WHERE i.id = $1
                 ORDER BY h.seq"
            ),
            load_history_page: format!(
                "SELECT i.history_len, h.event FROM {s}.instances i
                 LEFT JOIN {s}.history h ON h.instance_id = i.id AND h.generation = i.generation
                     AND h.seq >= $2 AND h.seq < $3
                 WHERE i.id = $1
                 ORDER BY h.seq"
            ),
            // One statement per turn, however many of these effects it has (the arrays may
            // be empty). $1 id, $2 token, $3 expected length, $4 status, $5 output, $6 custom
            // status, $7 failure, $8 new input (or NULL), $9 turn start (or NULL), $10
            // replace history; $11 and $12 the sequence numbers and tokens of the activity
            // attempts the turn completes: all must still be held (they are deleted here);
            // $13 the events appended; $14 the inbox messages consumed; $15 and $16 the
            // sequence numbers and tasks of new attempts; $18 whether the turn finishes the
            // instance, whose other messages and attempts are then dropped (rows apart from
            // those `consumed` and `done` delete: a statement must not delete a row twice,
            // and `done` counts its own). The events and attempts are
            // written only through `fenced`, with the length and generation the fence set.
            // Fails with division_by_zero when the fence does not hold, so that the batch it
            // is part of rolls back. The second column says whether other messages
            // deliverable at $17 (the latest `now` seen) wait in the inbox: they arrived
            // while the instance was leased, and the next turn is due at once.
            commit_turn: format!(
                "WITH done AS (
                     DELETE FROM {s}.activities a
                     USING unnest($11::bigint[], $12::bigint[]) AS d(seq, token)
                     WHERE a.instance_id = $1 AND a.seq = d.seq AND a.token = d.token
                     RETURNING a.seq),
                 fenced AS (
                 UPDATE {s}.instances SET
                     status_rev = status_rev + CASE WHEN
                         status IS DISTINCT FROM $4 OR output IS DISTINCT FROM $5
                         OR custom_status IS DISTINCT FROM $6 OR failure IS DISTINCT FROM $7
                         OR $8::bytea IS NOT NULL OR updated_at IS DISTINCT FROM coalesce($9, updated_at)
                         THEN 1 ELSE 0 END,
                     status = $4, output = $5, custom_status = $6, failure = $7,
                     input = coalesce($8, input),
                     updated_at = coalesce($9, updated_at),
                     generation = generation + CASE WHEN $10 THEN 1 ELSE 0 END,
                     history_len = CASE WHEN $10 THEN 0 ELSE history_len END
                         + cardinality($13::bytea[]),
                     lease_until = NULL
                 WHERE id = $1 AND fence = $2 AND lease_until IS NOT NULL AND history_len = $3
                   AND (SELECT count(*) FROM done) = cardinality($11::bigint[])
                 RETURNING id, generation, history_len),
                 appended AS (
                     INSERT INTO {s}.history (instance_id, generation, seq, event)
                     SELECT f.id, f.generation,
                            f.history_len - cardinality($13::bytea[]) + e.ord - 1, e.event
                     FROM fenced f, unnest($13::bytea[]) WITH ORDINALITY AS e(event, ord)),
                 consumed AS (
                     DELETE FROM {s}.messages WHERE instance_id = $1 AND id = ANY($14::bigint[])),
                 finished_inbox AS (
                     DELETE FROM {s}.messages
                     WHERE $18 AND instance_id = $1 AND NOT id = ANY($14::bigint[])),
                 finished_attempts AS (
                     DELETE FROM {s}.activities
                     WHERE $18 AND instance_id = $1 AND NOT seq = ANY($11::bigint[])),
                 scheduled AS (
                     INSERT INTO {s}.activities (instance_id, seq, task, due_at)
                     SELECT f.id, a.seq, a.task, {min}
                     FROM fenced f, unnest($15::bigint[], $16::bytea[]) AS a(seq, task)
                     ON CONFLICT (instance_id, seq)
                     DO UPDATE SET task = excluded.task, token = 0, due_at = excluded.due_at)
                 SELECT 1 / (SELECT count(*)::int FROM fenced),
                        EXISTS (SELECT 1 FROM {s}.messages
                                WHERE instance_id = $1 AND visible_at <= $17
                                  AND NOT id = ANY($14::bigint[]))",
                min = i64::MIN
            ),
            drop_old_generations: format!(
                "DELETE FROM {s}.history WHERE instance_id = $1
                 AND generation < (SELECT generation FROM {s}.instances WHERE id = $1)"
            ),
            drop_timers: format!(
                "DELETE FROM {s}.messages WHERE instance_id = $1 AND timer_id IS NOT NULL"
            ),
            drop_activities: format!("DELETE FROM {s}.activities WHERE instance_id = $1"),
            cancel_timers: format!(
                "DELETE FROM {s}.messages WHERE instance_id = $1 AND timer_id = ANY($2)"
            ),
            add_timers: format!(
                "INSERT INTO {s}.messages (instance_id, visible_at, timer_id, event)
                 SELECT $1, t.fire_at, t.timer_id, t.event
                 FROM unnest($2::bigint[], $3::bigint[], $4::bytea[])
                     WITH ORDINALITY AS t(fire_at, timer_id, event, ord)
                 ORDER BY t.ord"
            ),
            add_activities: format!(
                "INSERT INTO {s}.activities (instance_id, seq, task, due_at)
                 SELECT $1, a.seq, a.task, {min}
                 FROM unnest($2::bigint[], $3::bytea[]) AS a(seq, task)
                 ON CONFLICT (instance_id, seq)
                 DO UPDATE SET task = excluded.task, token = 0, due_at = excluded.due_at",
                min = i64::MIN
            ),
            send_many: format!(
                "INSERT INTO {s}.messages (instance_id, visible_at, event)
                 SELECT i.id, {min}, m.event
                 FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS m(receiver, event, ord)
                 CROSS JOIN LATERAL (
                     SELECT id FROM {s}.instances
                     WHERE id = m.receiver COLLATE \"C\" AND {LIVE} LIMIT 1) i
                 ORDER BY m.ord",
                min = i64::MIN
            ),
            abandon_orchestration: format!(
                "UPDATE {s}.instances SET lease_until = NULL
                 WHERE id = $1 AND fence = $2 AND lease_until IS NOT NULL"
            ),
            // Expired leases first (`due_at` between the ready mark and now), oldest expiry
            // first, then ready attempts: a dead worker's attempts are taken over as soon as
            // their leases run out, however many attempts are ready. Read only as far as the
            // claim needs, as in `fetch_orchestration`. (`ready` is a range in `due_at`
            // order, not an equality, so that it always walks the index, wherever the ready
            // attempts lie; the expired leases it may meet again are leased once.)
            fetch_activity: format!(
                "WITH expired AS ({expired_attempts}),
                 ready AS (
                     SELECT instance_id, seq, due_at > {min} AS took_over FROM {s}.activities
                     WHERE due_at <= $1
                     ORDER BY due_at LIMIT $4
                     FOR UPDATE SKIP LOCKED),
                 candidate AS (
                     SELECT * FROM expired UNION ALL SELECT * FROM ready LIMIT $4)
                 {lease_attempts}",
                min = i64::MIN
            ),
            fetch_expired_activities: format!(
                "WITH candidate AS ({expired_attempts}) {lease_attempts}"
            ),
            complete_activity: format!(
                "WITH done AS (
                     DELETE FROM {s}.activities
                     WHERE instance_id = $1 AND seq = $2 AND token = $3
                     RETURNING instance_id),
                 delivered AS (
                     INSERT INTO {s}.messages (instance_id, visible_at, event)
                     SELECT i.id, {min}, $4::bytea FROM done d JOIN {s}.instances i ON i.id = d.instance_id
                     WHERE i.{LIVE}
                     RETURNING id)
                 SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM delivered)",
                min = i64::MIN
            ),
            // The token alone decides, expired or not: another worker's fetch replaces it.
            renew_activity: format!(
                "UPDATE {s}.activities SET due_at = $4
                 WHERE instance_id = $1 AND seq = $2 AND token = $3"
            ),
            abandon_activity: format!(
                "UPDATE {s}.activities SET token = 0, due_at = {min}
                 WHERE instance_id = $1 AND seq = $2 AND token = $3",
                min = i64::MIN
            ),
            // Rows found by key, then updated where they are (`ctid`): see `claimed_inbox`.
            release_orchestrations: format!(
                "UPDATE {s}.instances i SET lease_until = NULL
                 FROM unnest($1::text[], $2::bigint[]) AS r(id, token)
                 CROSS JOIN LATERAL (
                     SELECT ctid AS at FROM {s}.instances
                     WHERE id = r.id COLLATE \"C\" LIMIT 1) x
                 WHERE i.ctid = x.at AND i.fence = r.token AND i.lease_until IS NOT NULL"
            ),
            release_activities: format!(
                "UPDATE {s}.activities a SET token = 0, due_at = {min}
                 FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS r(id, seq, token)
                 CROSS JOIN LATERAL (
                     SELECT ctid AS at FROM {s}.activities
                     WHERE instance_id = r.id COLLATE \"C\" AND seq = r.seq LIMIT 1) x
                 WHERE a.ctid = x.at AND a.token = r.token",
                min = i64::MIN
            ),
            status: format!("SELECT {STATUS_COLUMNS} FROM {s}.instances WHERE id = $1"),
            purge: format!(
                "WITH gone AS (DELETE FROM {s}.instances WHERE id = $1 AND {FINISHED} RETURNING id),
                 dropped_history AS (
                     DELETE FROM {s}.history h USING gone WHERE h.instance_id = gone.id),
                 dropped_activities AS (
                     DELETE FROM {s}.activities a USING gone WHERE a.instance_id = gone.id)
                 SELECT count(*) FROM gone"
            ),
            next_wakeup: format!(
                "SELECT LEAST(
                     (SELECT min(visible_at) FROM {s}.messages WHERE visible_at > $1),
                     (SELECT min(lease_until) FROM {s}.instances WHERE lease_until > $1),
                     (SELECT min(due_at) FROM {s}.activities WHERE due_at > $1))"
            ),
            next_timer: format!(
                "SELECT min(visible_at) FROM {s}.messages WHERE visible_at > $1"
            ),
            has_work: format!(
                "SELECT EXISTS (
                     SELECT 1 FROM {s}.messages m JOIN {s}.instances i ON i.id = m.instance_id
                     WHERE m.visible_at <= $1
                       AND (i.lease_until IS NULL OR i.lease_until <= $1) AND i.{LIVE})
                 OR EXISTS (SELECT 1 FROM {s}.activities WHERE due_at <= $1)"
            ),
            queue_depths: format!(
                "SELECT
                     (SELECT count(DISTINCT r.instance_id) FROM (
                          SELECT m.instance_id
                          FROM {s}.messages m JOIN {s}.instances i ON i.id = m.instance_id
                          WHERE m.visible_at <= $1
                            AND (i.lease_until IS NULL OR i.lease_until <= $1) AND i.{LIVE}
                          ORDER BY m.visible_at, m.id LIMIT {cap}) r),
                     (SELECT count(*) FROM (
                          SELECT 1 FROM {s}.activities WHERE due_at <= $1 LIMIT {cap}) a),
                     (SELECT count(*) FROM (
                          SELECT 1 FROM {s}.messages WHERE visible_at > $1 LIMIT {cap}) t)",
                cap = crate::metric::DEPTH_CAP
            ),
            lease_state: format!(
                "SELECT fence, lease_until, history_len FROM {s}.instances WHERE id = $1"
            ),
            status_revisions: format!(
                "SELECT id, status_rev FROM {s}.instances WHERE id = ANY($1::text[])"
            ),
        }
    }
}

/// A `list` query: its text, its parameters, and the page size it was built for (it asks
/// for one more row, to know whether a next page exists).
pub(crate) struct ListQuery {
    pub(crate) text: String,
    pub(crate) params: Vec<Box<dyn ToSql + Sync + Send>>,
    pub(crate) page_size: usize,
}

/// A statement built for one call, with its parameters.
pub(crate) struct Built {
    pub(crate) text: String,
    pub(crate) params: Vec<Box<dyn ToSql + Sync + Send>>,
}

/// A built statement's parameters, as a query takes them.
pub(crate) fn param_refs(params: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// Collects the parameters of a statement being built; `add` returns the placeholder.
#[derive(Default)]
struct Params(Vec<Box<dyn ToSql + Sync + Send>>);

impl Params {
    fn add(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }
}

/// The smallest text above every text that starts with `prefix`, in the "C" collation (byte
/// order, which UTF-8 keeps in code-point order): the prefix with its last character
/// incremented, dropping trailing U+10FFFF. `None` when no text is above them all.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(c as u32 + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The conditions of `query`'s filters but its statuses and paging, each an indexable
/// comparison except the custom status's (a filter on the rows an index scan reads).
fn filters(query: &InstanceQuery, params: &mut Params) -> Vec<String> {
    let mut filters = Vec::new();
    if let Some(name) = &query.name {
        filters.push(format!("name = {}", params.add(name.clone())));
    }
    if let Some(from) = query.created_from {
        filters.push(format!("created_at >= {}", params.add(nanos(from))));
    }
    if let Some(to) = query.created_to {
        filters.push(format!("created_at < {}", params.add(nanos(to))));
    }
    if let Some(prefix) = query.id_prefix.as_deref().filter(|p| !p.is_empty()) {
        // A range of the primary key, not `LIKE`: a prepared statement's generic plan
        // cannot use an index for a pattern it does not know.
        filters.push(format!("id >= {}", params.add(prefix.to_string())));
        if let Some(end) = prefix_end(prefix) {
            filters.push(format!("id < {}", params.add(end)));
        }
    }
    if let Some(text) = &query.custom_status {
        filters.push(format!(
            "strpos(custom_status, {}) > 0",
            params.add(text.clone())
        ));
    }
    filters
}

impl Sql {
    /// The query of one page of `query`, ordered by creation time then id.
    pub(crate) fn list(&self, query: &InstanceQuery) -> Result<ListQuery, StoreError> {
        let after = query
            .continuation
            .as_deref()
            .map(parse_continuation)
            .transpose()?;
        let page_size = match query.page_size {
            0 => 100,
            n => n.min(MAX_PAGE),
        };
        let mut params = Params::default();
        let mut filters = filters(query, &mut params);
        if let Some((at, id)) = after {
            let at = params.add(at);
            let id = params.add(id);
            filters.push(format!("(created_at, id) > ({at}, {id} COLLATE \"C\")"));
        }
        let limit = params.add(page_size as i64 + 1);
        let mut statuses: Vec<&'static str> =
            query.statuses.iter().map(|&s| status_name(s)).collect();
        statuses.sort_unstable();
        statuses.dedup();
        let table = format!("{}.instances", self.schema);
        let select = |status: Option<String>| {
            let mut all = filters.clone();
            all.extend(status.map(|p| format!("status = {p}")));
            let filter = if all.is_empty() {
                "TRUE".to_string()
            } else {
                all.join(" AND ")
            };
            format!(
                "SELECT {STATUS_COLUMNS} FROM {table} WHERE {filter} \
                 ORDER BY created_at, id LIMIT {limit}"
            )
        };
        // One ordered index scan per status, merged: never a sort of every match.
        let text = match statuses.as_slice() {
            [] => select(None),
            [one] => select(Some(params.add(one.to_string()))),
            many => {
                let parts: Vec<String> = many
                    .iter()
                    .map(|s| format!("({})", select(Some(params.add(s.to_string())))))
                    .collect();
                format!(
                    "SELECT * FROM ({}) AS page ORDER BY created_at, id LIMIT {limit}",
                    parts.join(" UNION ALL ")
                )
            }
        };
        Ok(ListQuery {
            text,
            params: params.0,
            page_size,
        })
    }

    /// The query counting the instances `query` selects, per status: rows of status and
    /// count.
    pub(crate) fn count(&self, query: &InstanceQuery) -> Built {
        let mut params = Params::default();
        let mut filters = filters(query, &mut params);
        if !query.statuses.is_empty() {
            let names: Vec<String> = query
                .statuses
                .iter()
                .map(|&s| status_name(s).to_string())
                .collect();
            filters.push(format!("status = ANY({})", params.add(names)));
        }
        let filter = if filters.is_empty() {
            "TRUE".to_string()
        } else {
            filters.join(" AND ")
        };
        Built {
            text: format!(
                "SELECT status, count(*) FROM {}.instances WHERE {filter} GROUP BY status",
                self.schema
            ),
            params: params.0,
        }
    }
}

/// The position a continuation token names: `<created_at nanos>:<id>`.
fn parse_continuation(token: &str) -> Result<(i64, String), StoreError> {
    let bad = || {
        // A token can be of any length: the message quotes at most its first 64 characters.
        let shown: String = token.chars().take(64).collect();
        let cut = if shown.len() < token.len() { "…" } else { "" };
        StoreError::InvalidQuery(format!(
            "{shown:?}{cut} is not a continuation token of this store: pass back the one the \
             previous page returned"
        ))
    };
    let (at, id) = token.split_once(':').ok_or_else(bad)?;
    let at: i64 = at.parse().map_err(|_| bad())?;
    // Every token names a real id: one that cannot be an id (a NUL, which PostgreSQL's text
    // refuses, included) is not a token of this store.
    durable_runtime::InstanceId::new(id).map_err(|_| bad())?;
    Ok((at, id.to_string()))
}
