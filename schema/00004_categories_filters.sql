-- Categories and filtered reads of $all, and the choice of how event data is stored.
--
-- Categories: a stream's category is its name up to the first '-'.
-- Every $all row also carries its event's category and type, each indexed with the position, so
-- a read of one category or of some event types costs what it returns, not the store's size.
-- The sequencer fills both columns; rows already in $all get them here. A third index finds the
-- last events of a type in a stream.
--
-- Data type: event and snapshot data and metadata are bytea by default, or jsonb when the schema
-- is initialised with that choice (the runner replaces the data_type marker below), so that SQL
-- can query and index event fields. The store reads and writes data through data_in and
-- data_out, which convert to and from the column type (the identity for bytea); it learns the
-- choice from the settings table.

-- +goose Up
ALTER TABLE /* TEMPLATE: schema */all_events ADD COLUMN category text, ADD COLUMN event_type text;
-- $all rows are immutable; this one-time fill of the new columns is the exception.
ALTER TABLE /* TEMPLATE: schema */all_events DISABLE TRIGGER refuse_change;
UPDATE /* TEMPLATE: schema */all_events a
SET category = split_part(s.stream_name, '-', 1), event_type = e.event_type
FROM /* TEMPLATE: schema */events e, /* TEMPLATE: schema */streams s
WHERE e.stream_pk = a.stream_pk AND e.stream_version = a.stream_version AND s.id = e.stream_pk;
ALTER TABLE /* TEMPLATE: schema */all_events ENABLE TRIGGER refuse_change;
CREATE INDEX all_events_category_idx ON /* TEMPLATE: schema */all_events (category, position);
CREATE INDEX all_events_event_type_idx ON /* TEMPLATE: schema */all_events (event_type, position);
CREATE INDEX events_stream_type_idx ON /* TEMPLATE: schema */events (stream_pk, event_type, stream_version);

DROP FUNCTION /* TEMPLATE: schema */sequence_all(integer, text);
-- +goose StatementBegin
CREATE FUNCTION /* TEMPLATE: schema */sequence_all(max_pending integer, channel text)
RETURNS TABLE (first_position bigint, last_position bigint, appends integer) LANGUAGE plpgsql AS $$
DECLARE
    last_pos bigint;
    n        bigint;
    taken    integer;
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
        INSERT INTO /* TEMPLATE: schema */all_events (position, stream_pk, stream_version, category, event_type)
        SELECT last_pos + row_number() OVER (ORDER BY p.id, e.stream_version), e.stream_pk, e.stream_version,
               split_part(st.stream_name, '-', 1), e.event_type
        FROM p
        -- One index lookup per pending append for its stream's name, and one index range scan
        -- for its events. OFFSET 0 keeps the planner from flattening the subqueries into joins
        -- on stream_pk alone, which filter every event of a long stream once per pending append.
        CROSS JOIN LATERAL (
            SELECT s.stream_name FROM /* TEMPLATE: schema */streams s WHERE s.id = p.stream_pk OFFSET 0
        ) st
        CROSS JOIN LATERAL (
            SELECT ev.stream_pk, ev.stream_version, ev.event_type FROM /* TEMPLATE: schema */events ev
            WHERE ev.stream_pk = p.stream_pk AND ev.stream_version BETWEEN p.first_version AND p.last_version
            OFFSET 0
        ) e
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM p) INTO n, taken;
    IF taken = 0 THEN
        RETURN;
    END IF;
    appends := taken;
    IF n > 0 THEN
        UPDATE /* TEMPLATE: schema */all_counter c SET last_position = last_pos + n WHERE c.id = 1;
        PERFORM pg_notify(channel, (last_pos + 1)::text || ',' || (last_pos + n)::text);
        first_position := last_pos + 1;
        last_position := last_pos + n;
    ELSE
        -- Pending appends whose events were all hard deleted: nothing to number.
        first_position := 0;
        last_position := 0;
    END IF;
    RETURN NEXT;
END
$$;
-- +goose StatementEnd

CREATE TABLE /* TEMPLATE: schema */settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO /* TEMPLATE: schema */settings (name, value) VALUES ('data_type', /* TEMPLATE: data_type */'bytea');

CREATE FUNCTION /* TEMPLATE: schema */data_in(d bytea) RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT d';
CREATE FUNCTION /* TEMPLATE: schema */data_out(d bytea) RETURNS bytea LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT d';

-- +goose StatementBegin
DO $$
BEGIN
    IF (SELECT value FROM /* TEMPLATE: schema */settings WHERE name = 'data_type') = 'jsonb' THEN
        ALTER TABLE /* TEMPLATE: schema */events
            ALTER COLUMN data TYPE jsonb USING convert_from(data, 'UTF8')::jsonb,
            ALTER COLUMN metadata TYPE jsonb USING convert_from(nullif(metadata, ''::bytea), 'UTF8')::jsonb;
        ALTER TABLE /* TEMPLATE: schema */snapshots
            ALTER COLUMN data TYPE jsonb USING convert_from(data, 'UTF8')::jsonb,
            ALTER COLUMN metadata TYPE jsonb USING convert_from(nullif(metadata, ''::bytea), 'UTF8')::jsonb;
        DROP FUNCTION /* TEMPLATE: schema */data_in(bytea);
        DROP FUNCTION /* TEMPLATE: schema */data_out(bytea);
        -- Empty bytes are how some drivers' array encodings send "no metadata".
        CREATE FUNCTION /* TEMPLATE: schema */data_in(d bytea) RETURNS jsonb LANGUAGE sql STABLE PARALLEL SAFE
            AS $f$ SELECT convert_from(nullif(d, ''::bytea), 'UTF8')::jsonb $f$;
        CREATE FUNCTION /* TEMPLATE: schema */data_out(d jsonb) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE
            AS $f$ SELECT convert_to(d::text, 'UTF8') $f$;
    ELSIF (SELECT value FROM /* TEMPLATE: schema */settings WHERE name = 'data_type') <> 'bytea' THEN
        RAISE EXCEPTION 'event store: unknown data type %', (SELECT value FROM /* TEMPLATE: schema */settings WHERE name = 'data_type');
    END IF;
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    IF (SELECT value FROM /* TEMPLATE: schema */settings WHERE name = 'data_type') = 'jsonb' THEN
        DROP FUNCTION /* TEMPLATE: schema */data_in(bytea);
        DROP FUNCTION /* TEMPLATE: schema */data_out(jsonb);
        ALTER TABLE /* TEMPLATE: schema */events
            ALTER COLUMN data TYPE bytea USING convert_to(data::text, 'UTF8'),
            ALTER COLUMN metadata TYPE bytea USING convert_to(metadata::text, 'UTF8');
        ALTER TABLE /* TEMPLATE: schema */snapshots
            ALTER COLUMN data TYPE bytea USING convert_to(data::text, 'UTF8'),
            ALTER COLUMN metadata TYPE bytea USING convert_to(metadata::text, 'UTF8');
    ELSE
        DROP FUNCTION /* TEMPLATE: schema */data_in(bytea);
        DROP FUNCTION /* TEMPLATE: schema */data_out(bytea);
    END IF;
END
$$;
-- +goose StatementEnd
DROP TABLE /* TEMPLATE: schema */settings;
DROP FUNCTION /* TEMPLATE: schema */sequence_all(integer, text);
-- +goose StatementBegin
CREATE FUNCTION /* TEMPLATE: schema */sequence_all(max_pending integer, channel text)
RETURNS TABLE (first_position bigint, last_position bigint, appends integer) LANGUAGE plpgsql AS $$
DECLARE
    last_pos bigint;
    n        bigint;
    taken    integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM /* TEMPLATE: schema */pending) THEN
        RETURN;
    END IF;
    SELECT c.last_position INTO last_pos FROM /* TEMPLATE: schema */all_counter c WHERE c.id = 1 FOR UPDATE;
    WITH p AS (
        DELETE FROM /* TEMPLATE: schema */pending
        WHERE id IN (
            SELECT q.id FROM /* TEMPLATE: schema */pending q ORDER BY q.id LIMIT max_pending FOR UPDATE SKIP LOCKED
        )
        RETURNING id, stream_pk, first_version, last_version
    ), ins AS (
        INSERT INTO /* TEMPLATE: schema */all_events (position, stream_pk, stream_version)
        SELECT last_pos + row_number() OVER (ORDER BY p.id, e.stream_version), e.stream_pk, e.stream_version
        FROM p
        CROSS JOIN LATERAL (
            SELECT ev.stream_pk, ev.stream_version FROM /* TEMPLATE: schema */events ev
            WHERE ev.stream_pk = p.stream_pk AND ev.stream_version BETWEEN p.first_version AND p.last_version
            OFFSET 0
        ) e
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM p) INTO n, taken;
    IF taken = 0 THEN
        RETURN;
    END IF;
    appends := taken;
    IF n > 0 THEN
        UPDATE /* TEMPLATE: schema */all_counter c SET last_position = last_pos + n WHERE c.id = 1;
        PERFORM pg_notify(channel, (last_pos + 1)::text || ',' || (last_pos + n)::text);
        first_position := last_pos + 1;
        last_position := last_pos + n;
    ELSE
        first_position := 0;
        last_position := 0;
    END IF;
    RETURN NEXT;
END
$$;
-- +goose StatementEnd
DROP INDEX /* TEMPLATE: schema */events_stream_type_idx;
DROP INDEX /* TEMPLATE: schema */all_events_event_type_idx;
DROP INDEX /* TEMPLATE: schema */all_events_category_idx;
ALTER TABLE /* TEMPLATE: schema */all_events DROP COLUMN event_type, DROP COLUMN category;
