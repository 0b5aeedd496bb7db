-- The first schema of the PostgreSQL store. `{schema}` is the quoted schema name.
-- Times are nanoseconds since the Unix epoch (bigint), as the runtime passes them; JSON
-- payloads are the bytes the runtime serialised.

-- Lease tokens, instance and activity alike: one sequence, so a token is never handed out
-- twice, not even across a purge and a new instance with the same id.
CREATE SEQUENCE {schema}.lease_tokens AS bigint;

CREATE TABLE {schema}.instances (
    id              text COLLATE "C" PRIMARY KEY,
    name            text NOT NULL,
    version         bigint NOT NULL,
    status          text NOT NULL CHECK (status IN
                        ('Pending', 'Running', 'Suspended', 'Completed', 'Failed', 'Terminated')),
    created_at      bigint NOT NULL,
    updated_at      bigint NOT NULL,
    input           bytea NOT NULL,
    output          bytea,
    custom_status   text,
    failure         bytea,
    parent          text COLLATE "C",
    -- The history's current generation (continue-as-new starts a new one) and its length.
    generation      bigint NOT NULL DEFAULT 0,
    history_len     bigint NOT NULL DEFAULT 0,
    -- The token of the last lease taken: it only grows. The holder may commit while
    -- lease_until is set and the token is still this one.
    fence           bigint NOT NULL DEFAULT 0,
    lease_until     bigint,
    -- Who took the last lease (host:pid of the process), for operators.
    lease_owner     text,
    -- Moves on every status change: what status watchers in other processes poll.
    status_rev      bigint NOT NULL DEFAULT 0
) WITH (fillfactor = 90);

-- list: by creation time, optionally by status or name; counts per status.
CREATE INDEX instances_by_created ON {schema}.instances (created_at, id);
CREATE INDEX instances_by_status ON {schema}.instances (status, created_at, id);
CREATE INDEX instances_by_name ON {schema}.instances (name, created_at, id);
-- next_wakeup: the earliest lease expiry.
CREATE INDEX instances_by_lease ON {schema}.instances (lease_until)
    WHERE lease_until IS NOT NULL;

CREATE TABLE {schema}.history (
    instance_id     text COLLATE "C" NOT NULL,
    generation      bigint NOT NULL,
    seq             bigint NOT NULL,
    event           bytea NOT NULL,
    PRIMARY KEY (instance_id, generation, seq)
);

-- Inboxes: events, timers (timer_id set) and results of activities and children.
CREATE TABLE {schema}.messages (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The reference makes a send and a purge of the same instance wait for each other.
    instance_id     text COLLATE "C" NOT NULL
                        REFERENCES {schema}.instances (id) ON DELETE CASCADE,
    -- Deliverable from then on; the smallest bigint for "now".
    visible_at      bigint NOT NULL,
    timer_id        bigint,
    event           bytea NOT NULL
);

CREATE INDEX messages_by_instance ON {schema}.messages (instance_id, id);
-- Claims and next_wakeup: deliverable messages in order.
CREATE INDEX messages_by_visibility ON {schema}.messages (visible_at, id);

CREATE TABLE {schema}.activities (
    instance_id     text COLLATE "C" NOT NULL,
    seq             bigint NOT NULL,
    task            bytea NOT NULL,
    -- The token of the current or last lease (0: never leased), and who took it.
    token           bigint NOT NULL DEFAULT 0,
    lease_owner     text,
    -- When it may be handed out: the smallest bigint when ready, the lease's expiry when
    -- leased.
    due_at          bigint NOT NULL,
    PRIMARY KEY (instance_id, seq)
);

CREATE INDEX activities_by_due ON {schema}.activities (due_at);
