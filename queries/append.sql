-- name: AppendEvents :one
-- Appends events to a stream in one statement: it locks only the stream's own row (insert or
-- update, by expected version), inserts the events, and records one pending row for the
-- sequencer. expected: -1 any version, -2 no stream, -3 stream exists, 0 new stream, n > 0 exactly
-- n. No row comes back when the expected version does not hold, or when one of given_ids (the
-- event ids the caller chose; generated ones cannot collide) is already stored: nothing is
-- written then, and no error aborts the caller's transaction. The causation and correlation
-- arrays may be empty: set-returning functions in one select list run in step, and a shorter one
-- is padded with NULLs. Chosen ids are looked up through events_by_id (migration 00007), never
-- with event_id = ANY(array) here: a cached plan made while the table was small scans it, and kept
-- scanning as it grew (20 ms a 100-event append at 94,000 events, until autovacuum analyzed the
-- table). With the ids generated there is nothing to look up.
WITH dup AS (
    SELECT cardinality(@given_ids::uuid[]) > 0 AND EXISTS (
        SELECT 1 FROM /* TEMPLATE: schema */events_by_id(@given_ids::uuid[])
    ) AS found
), created AS (
    INSERT INTO /* TEMPLATE: schema */streams AS st (stream_name, stream_version)
    SELECT @stream_name::text, @count::bigint
    WHERE @expected::bigint IN (-1, -2, 0) AND NOT (SELECT found FROM dup)
    ON CONFLICT (stream_name) DO UPDATE SET stream_version = st.stream_version + EXCLUDED.stream_version
        WHERE @expected::bigint = -1 AND st.deleted_at IS NULL
    RETURNING st.id, st.stream_version
), updated AS (
    UPDATE /* TEMPLATE: schema */streams AS st SET stream_version = st.stream_version + @count::bigint
    WHERE (@expected::bigint = -3 OR @expected::bigint > 0)
      AND st.stream_name = @stream_name::text
      AND st.deleted_at IS NULL
      AND (@expected::bigint = -3 OR st.stream_version = @expected::bigint)
      AND NOT (SELECT found FROM dup)
    RETURNING st.id, st.stream_version
), s AS (
    SELECT id, stream_version, stream_version - @count::bigint AS base FROM created
    UNION ALL
    SELECT id, stream_version, stream_version - @count::bigint AS base FROM updated
), x AS (
    SELECT unnest(@event_ids::uuid[]) AS event_id,
           unnest(@event_types::text[]) AS event_type,
           unnest(@causation_ids::uuid[]) AS causation_id,
           unnest(@correlation_ids::uuid[]) AS correlation_id,
           unnest(@data::bytea[]) AS data,
           unnest(@metadata::bytea[]) AS metadata,
           generate_series(1, @count::bigint) AS ord
), ev AS (
    INSERT INTO /* TEMPLATE: schema */events
        (event_id, stream_pk, stream_version, event_type, causation_id, correlation_id, data, metadata, created_at)
    SELECT x.event_id, s.id, s.base + x.ord, x.event_type,
           nullif(x.causation_id, '00000000-0000-0000-0000-000000000000'::uuid),
           nullif(x.correlation_id, '00000000-0000-0000-0000-000000000000'::uuid),
           /* TEMPLATE: schema */data_in(x.data), /* TEMPLATE: schema */data_in(x.metadata), @created_at::timestamptz
    FROM s, x
    RETURNING 1
), pend AS (
    INSERT INTO /* TEMPLATE: schema */pending (stream_pk, first_version, last_version)
    SELECT s.id, s.base + 1, s.stream_version FROM s
    RETURNING 1
)
SELECT s.id, s.stream_version FROM s;

-- name: AppendEvent :one
-- AppendEvents for a single event, with scalar parameters: cheaper to bind and to execute than
-- the arrays, for the most common append. given_id is the event id when the caller chose it
-- (NULL when generated): no row comes back when it is already stored.
WITH dup AS (
    SELECT sqlc.narg(given_id)::uuid IS NOT NULL AND EXISTS (
        SELECT 1 FROM /* TEMPLATE: schema */events_by_id(ARRAY[sqlc.narg(given_id)::uuid])
    ) AS found
), created AS (
    INSERT INTO /* TEMPLATE: schema */streams AS st (stream_name, stream_version)
    SELECT @stream_name::text, 1
    WHERE @expected::bigint IN (-1, -2, 0) AND NOT (SELECT found FROM dup)
    ON CONFLICT (stream_name) DO UPDATE SET stream_version = st.stream_version + 1
        WHERE @expected::bigint = -1 AND st.deleted_at IS NULL
    RETURNING st.id, st.stream_version
), updated AS (
    UPDATE /* TEMPLATE: schema */streams AS st SET stream_version = st.stream_version + 1
    WHERE (@expected::bigint = -3 OR @expected::bigint > 0)
      AND st.stream_name = @stream_name::text
      AND st.deleted_at IS NULL
      AND (@expected::bigint = -3 OR st.stream_version = @expected::bigint)
      AND NOT (SELECT found FROM dup)
    RETURNING st.id, st.stream_version
), s AS (
    SELECT id, stream_version FROM created
    UNION ALL
    SELECT id, stream_version FROM updated
), ev AS (
    INSERT INTO /* TEMPLATE: schema */events
        (event_id, stream_pk, stream_version, event_type, causation_id, correlation_id, data, metadata, created_at)
    SELECT @event_id::uuid, s.id, s.stream_version, @event_type::text, sqlc.narg(causation_id)::uuid,
           sqlc.narg(correlation_id)::uuid, /* TEMPLATE: schema */data_in(@data::bytea),
           /* TEMPLATE: schema */data_in(sqlc.narg(metadata)::bytea), @created_at::timestamptz
    FROM s
    RETURNING 1
), pend AS (
    INSERT INTO /* TEMPLATE: schema */pending (stream_pk, first_version, last_version)
    SELECT s.id, s.stream_version, s.stream_version FROM s
    RETURNING 1
)
SELECT s.id, s.stream_version FROM s;

-- name: LinkEvents :one
-- Links existing events into a stream, with the same expected-version rules as AppendEvents.
WITH created AS (
    INSERT INTO /* TEMPLATE: schema */streams AS st (stream_name, stream_version)
    SELECT @stream_name::text, @count::bigint
    WHERE @expected::bigint IN (-1, -2, 0)
    ON CONFLICT (stream_name) DO UPDATE SET stream_version = st.stream_version + EXCLUDED.stream_version
        WHERE @expected::bigint = -1 AND st.deleted_at IS NULL
    RETURNING st.id, st.stream_version
), updated AS (
    UPDATE /* TEMPLATE: schema */streams AS st SET stream_version = st.stream_version + @count::bigint
    WHERE (@expected::bigint = -3 OR @expected::bigint > 0)
      AND st.stream_name = @stream_name::text
      AND st.deleted_at IS NULL
      AND (@expected::bigint = -3 OR st.stream_version = @expected::bigint)
    RETURNING st.id, st.stream_version
), s AS (
    SELECT id, stream_version, stream_version - @count::bigint AS base FROM created
    UNION ALL
    SELECT id, stream_version, stream_version - @count::bigint AS base FROM updated
), x AS (
    SELECT unnest(@event_ids::uuid[]) AS event_id, generate_series(1, @count::bigint) AS ord
), ln AS (
    INSERT INTO /* TEMPLATE: schema */links (stream_pk, link_version, event_id)
    SELECT s.id, s.base + x.ord, x.event_id
    FROM s, x
    RETURNING 1
)
SELECT s.id, s.stream_version FROM s;

-- name: CheckLinkEvents :many
-- For each event id: whether it exists and whether the stream already holds it (as its own event
-- or as a link). Read-only, so a refused link leaves the caller's transaction usable. duplicate is
-- never NULL: an unknown event (e.* NULL) into an existing stream is not found, not a duplicate.
SELECT x.event_id,
       (e.event_id IS NOT NULL)::bool AS found,
       coalesce(st.id IS NOT NULL AND (e.stream_pk = st.id OR EXISTS (
            SELECT 1 FROM /* TEMPLATE: schema */links l WHERE l.stream_pk = st.id AND l.event_id = x.event_id
       )), false)::bool AS duplicate
FROM unnest(@event_ids::uuid[]) AS x(event_id)
LEFT JOIN /* TEMPLATE: schema */events_by_id(@event_ids::uuid[]) e ON e.event_id = x.event_id
LEFT JOIN /* TEMPLATE: schema */streams st ON st.stream_name = @stream_name::text;

-- name: StoredEvents :many
-- Where events are stored: their stream, version there, and whether it is soft deleted. Decides
-- whether a refused append is a re-sent one (idempotent) or a duplicate.
-- Events by id through events_by_id (see AppendEvents).
SELECT e.event_id, e.stream_version, s.stream_name, (s.deleted_at IS NOT NULL)::bool AS deleted
FROM /* TEMPLATE: schema */events_by_id(@event_ids::uuid[]) e
CROSS JOIN LATERAL (
    SELECT st.stream_name, st.deleted_at FROM /* TEMPLATE: schema */streams st WHERE st.id = e.stream_pk OFFSET 0
) s;
