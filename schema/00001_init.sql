-- The event store's tables. Every name is written as /* TEMPLATE: schema */name: the migration
-- runner replaces the comment with the quoted schema, sqlc reads it as a plain comment.

-- +goose Up

-- One row per stream. id is internal and never reused, so a stream re-created after a hard
-- delete is a new row and nothing of the old one can resurface.
CREATE TABLE /* TEMPLATE: schema */streams (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_name    text        NOT NULL UNIQUE,
    stream_version bigint      NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz
);

-- Events carry their original stream and version, so an append writes one row per event and a
-- stream read needs no separate stream-events table.
CREATE TABLE /* TEMPLATE: schema */events (
    event_id       uuid        PRIMARY KEY,
    stream_pk      bigint      NOT NULL,
    stream_version bigint      NOT NULL,
    event_type     text        NOT NULL,
    causation_id   uuid,
    correlation_id uuid,
    data           bytea       NOT NULL,
    metadata       bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_pk, stream_version)
);

-- Events linked into other streams: a reference, not a copy.
CREATE TABLE /* TEMPLATE: schema */links (
    stream_pk    bigint NOT NULL,
    link_version bigint NOT NULL,
    event_id     uuid   NOT NULL REFERENCES /* TEMPLATE: schema */events (event_id) ON DELETE CASCADE,
    PRIMARY KEY (stream_pk, link_version),
    UNIQUE (stream_pk, event_id)
);
CREATE INDEX links_event_id_idx ON /* TEMPLATE: schema */links (event_id);

-- $all: gap-free positions, given by the sequencer to committed events only.
CREATE TABLE /* TEMPLATE: schema */all_events (
    position       bigint PRIMARY KEY,
    stream_pk      bigint NOT NULL,
    stream_version bigint NOT NULL
);

-- The $all counter; its row lock serializes sequencer passes (never appends).
CREATE TABLE /* TEMPLATE: schema */all_counter (
    id            integer     PRIMARY KEY CHECK (id = 1),
    last_position bigint      NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO /* TEMPLATE: schema */all_counter (id, last_position) VALUES (1, 0);

-- Appends waiting for $all positions: one row per append, deleted when sequenced.
CREATE TABLE /* TEMPLATE: schema */pending (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_pk     bigint NOT NULL,
    first_version bigint NOT NULL,
    last_version  bigint NOT NULL
);

CREATE TABLE /* TEMPLATE: schema */snapshots (
    source_id      text        PRIMARY KEY,
    source_version bigint      NOT NULL,
    source_type    text        NOT NULL,
    data           bytea       NOT NULL,
    metadata       bytea,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Persistent subscriptions and their checkpoints.
CREATE TABLE /* TEMPLATE: schema */subscriptions (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_name       text        NOT NULL,
    subscription_name text        NOT NULL,
    last_seen         bigint      NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_name, subscription_name)
);

-- Stored events are immutable: updates are refused, and deletes are refused unless the deleting
-- transaction enabled hard deletes with set_config('eventstore.enable_hard_deletes', 'on', true).
-- +goose StatementBegin
CREATE FUNCTION /* TEMPLATE: schema */refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('eventstore.enable_hard_deletes', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'event store: % on %.% is not allowed', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;
-- +goose StatementEnd
CREATE TRIGGER refuse_change BEFORE UPDATE OR DELETE ON /* TEMPLATE: schema */events
    FOR EACH STATEMENT EXECUTE FUNCTION /* TEMPLATE: schema */refuse_change();
CREATE TRIGGER refuse_change BEFORE UPDATE OR DELETE ON /* TEMPLATE: schema */links
    FOR EACH STATEMENT EXECUTE FUNCTION /* TEMPLATE: schema */refuse_change();
CREATE TRIGGER refuse_change BEFORE UPDATE OR DELETE ON /* TEMPLATE: schema */all_events
    FOR EACH STATEMENT EXECUTE FUNCTION /* TEMPLATE: schema */refuse_change();
CREATE TRIGGER refuse_change BEFORE DELETE ON /* TEMPLATE: schema */streams
    FOR EACH STATEMENT EXECUTE FUNCTION /* TEMPLATE: schema */refuse_change();

-- One sequencer pass (docs/design.md, "The $all stream"). It takes the counter lock in its own statement, so the
-- next statement's snapshot sees every append committed before the lock was granted; it numbers
-- the visible pending appends' events consecutively, in pending order then stream version, and
-- sends one NOTIFY for the batch. Returns nothing when there was nothing to sequence.
-- +goose StatementBegin
CREATE FUNCTION /* TEMPLATE: schema */sequence_all(max_pending integer, channel text)
RETURNS TABLE (first_position bigint, last_position bigint) LANGUAGE plpgsql AS $$
DECLARE
    last_pos bigint;
    n        bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM /* TEMPLATE: schema */pending) THEN
        RETURN;
    END IF;
    SELECT c.last_position INTO last_pos FROM /* TEMPLATE: schema */all_counter c WHERE c.id = 1 FOR UPDATE;
    WITH p AS (
        DELETE FROM /* TEMPLATE: schema */pending
        WHERE id IN (
            -- SKIP LOCKED: a hard delete in an open transaction holds its stream's pending rows;
            -- they are its own stream's, and no later append to that stream can commit first.
            SELECT q.id FROM /* TEMPLATE: schema */pending q ORDER BY q.id LIMIT max_pending FOR UPDATE SKIP LOCKED
        )
        RETURNING id, stream_pk, first_version, last_version
    ), ins AS (
        INSERT INTO /* TEMPLATE: schema */all_events (position, stream_pk, stream_version)
        SELECT last_pos + row_number() OVER (ORDER BY p.id, e.stream_version), e.stream_pk, e.stream_version
        FROM p
        -- LATERAL: one index range scan per pending append, whatever the table's statistics say.
        CROSS JOIN LATERAL (
            SELECT ev.stream_pk, ev.stream_version FROM /* TEMPLATE: schema */events ev
            WHERE ev.stream_pk = p.stream_pk AND ev.stream_version BETWEEN p.first_version AND p.last_version
        ) e
        RETURNING 1
    )
    SELECT count(*) INTO n FROM ins;
    IF n = 0 THEN
        RETURN;
    END IF;
    UPDATE /* TEMPLATE: schema */all_counter c SET last_position = last_pos + n WHERE c.id = 1;
    PERFORM pg_notify(channel, (last_pos + 1)::text || ',' || (last_pos + n)::text);
    first_position := last_pos + 1;
    last_position := last_pos + n;
    RETURN NEXT;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION /* TEMPLATE: schema */sequence_all(integer, text);
DROP TABLE /* TEMPLATE: schema */subscriptions;
DROP TABLE /* TEMPLATE: schema */snapshots;
DROP TABLE /* TEMPLATE: schema */pending;
DROP TABLE /* TEMPLATE: schema */all_counter;
DROP TABLE /* TEMPLATE: schema */all_events;
DROP TABLE /* TEMPLATE: schema */links;
DROP TABLE /* TEMPLATE: schema */events;
DROP TABLE /* TEMPLATE: schema */streams;
DROP FUNCTION /* TEMPLATE: schema */refuse_change();
