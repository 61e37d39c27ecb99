-- name: ReadStreamForward :many
-- One round trip, no sort: the first row is the stream's own (event number 0, event_id NULL,
-- deleted set), then its events and links in event-number order, merged from their indexes. No
-- row at all means the stream does not exist. origin_name is NULL for the stream's own events.
-- Linked events are looked up one by one (OFFSET 0 fences, see ReadAllForward). The stream's own
-- row carries its id as origin_version: subscribers tell a re-created stream by it.
-- max_rows is max_count + 1, for the stream's row.
WITH s AS MATERIALIZED (
    SELECT id, deleted_at FROM /* TEMPLATE: schema */streams WHERE stream_name = @stream_name::text
)
SELECT 0::bigint AS event_number, NULL::uuid AS event_id, NULL::text AS origin_name,
        s.id AS origin_version, ''::text AS event_type, NULL::uuid AS causation_id,
        NULL::uuid AS correlation_id, NULL::bytea AS data, NULL::bytea AS metadata,
        NULL::timestamptz AS created_at, (s.deleted_at IS NOT NULL)::bool AS deleted
 FROM s
UNION ALL
(SELECT oe.stream_version, oe.event_id, NULL, oe.stream_version, oe.event_type, oe.causation_id,
        oe.correlation_id, /* TEMPLATE: schema */data_out(oe.data), /* TEMPLATE: schema */data_out(oe.metadata), oe.created_at, false
 FROM /* TEMPLATE: schema */events oe
 WHERE oe.stream_pk = (SELECT id FROM s) AND oe.stream_version >= @start::bigint
 ORDER BY oe.stream_version LIMIT @max_count::bigint)
UNION ALL
(SELECT l.link_version, e.event_id, os.stream_name, e.stream_version, e.event_type, e.causation_id,
        e.correlation_id, e.data, e.metadata, e.created_at, false
 FROM /* TEMPLATE: schema */links l
 CROSS JOIN LATERAL (
     SELECT ev.event_id, ev.stream_pk, ev.stream_version, ev.event_type, ev.causation_id, ev.correlation_id,
            /* TEMPLATE: schema */data_out(ev.data) AS data, /* TEMPLATE: schema */data_out(ev.metadata) AS metadata, ev.created_at
     FROM /* TEMPLATE: schema */events ev WHERE ev.event_id = l.event_id OFFSET 0
 ) e
 CROSS JOIN LATERAL (
     SELECT st.stream_name FROM /* TEMPLATE: schema */streams st WHERE st.id = e.stream_pk OFFSET 0
 ) os
 WHERE l.stream_pk = (SELECT id FROM s) AND l.link_version >= @start::bigint
 ORDER BY l.link_version LIMIT @max_count::bigint)
ORDER BY 1 LIMIT @max_rows::bigint;

-- name: ReadStreamBackward :many
-- ReadStreamForward backward: the stream's own row comes first with the largest event number.
WITH s AS MATERIALIZED (
    SELECT id, deleted_at FROM /* TEMPLATE: schema */streams WHERE stream_name = @stream_name::text
)
SELECT 9223372036854775807::bigint AS event_number, NULL::uuid AS event_id, NULL::text AS origin_name,
        s.id AS origin_version, ''::text AS event_type, NULL::uuid AS causation_id,
        NULL::uuid AS correlation_id, NULL::bytea AS data, NULL::bytea AS metadata,
        NULL::timestamptz AS created_at, (s.deleted_at IS NOT NULL)::bool AS deleted
 FROM s
UNION ALL
(SELECT oe.stream_version, oe.event_id, NULL, oe.stream_version, oe.event_type, oe.causation_id,
        oe.correlation_id, /* TEMPLATE: schema */data_out(oe.data), /* TEMPLATE: schema */data_out(oe.metadata), oe.created_at, false
 FROM /* TEMPLATE: schema */events oe
 WHERE oe.stream_pk = (SELECT id FROM s) AND oe.stream_version <= @start::bigint
 ORDER BY oe.stream_version DESC LIMIT @max_count::bigint)
UNION ALL
(SELECT l.link_version, e.event_id, os.stream_name, e.stream_version, e.event_type, e.causation_id,
        e.correlation_id, e.data, e.metadata, e.created_at, false
 FROM /* TEMPLATE: schema */links l
 CROSS JOIN LATERAL (
     SELECT ev.event_id, ev.stream_pk, ev.stream_version, ev.event_type, ev.causation_id, ev.correlation_id,
            /* TEMPLATE: schema */data_out(ev.data) AS data, /* TEMPLATE: schema */data_out(ev.metadata) AS metadata, ev.created_at
     FROM /* TEMPLATE: schema */events ev WHERE ev.event_id = l.event_id OFFSET 0
 ) e
 CROSS JOIN LATERAL (
     SELECT st.stream_name FROM /* TEMPLATE: schema */streams st WHERE st.id = e.stream_pk OFFSET 0
 ) os
 WHERE l.stream_pk = (SELECT id FROM s) AND l.link_version <= @start::bigint
 ORDER BY l.link_version DESC LIMIT @max_count::bigint)
ORDER BY 1 DESC LIMIT @max_rows::bigint;

-- name: ReadAllForward :many
-- Walks $all in position order and looks each event up by its unique index. Positions of
-- hard-deleted events are holes: the lookup finds nothing and reads step over. The OFFSET 0
-- fences keep the lookups per row: a cached plan made while the tables were small otherwise
-- hash joins every event, and costs grow with the store (seen at 17 ms per read of 2,500 events).
SELECT a.position AS event_number, e.event_id, os.stream_name AS origin_name, e.stream_version AS origin_version,
       e.event_type, e.causation_id, e.correlation_id, e.data, e.metadata, e.created_at
FROM /* TEMPLATE: schema */all_events a
CROSS JOIN LATERAL (
    SELECT ev.event_id, ev.stream_version, ev.event_type, ev.causation_id, ev.correlation_id, /* TEMPLATE: schema */data_out(ev.data) AS data,
           /* TEMPLATE: schema */data_out(ev.metadata) AS metadata, ev.created_at
    FROM /* TEMPLATE: schema */events ev
    WHERE ev.stream_pk = a.stream_pk AND ev.stream_version = a.stream_version
      AND (cardinality(@event_types::text[]) = 0 OR ev.event_type = ANY(@event_types::text[]))
    OFFSET 0
) e
CROSS JOIN LATERAL (
    SELECT s.stream_name FROM /* TEMPLATE: schema */streams s WHERE s.id = a.stream_pk OFFSET 0
) os
WHERE a.position >= @start::bigint
ORDER BY a.position
LIMIT @max_count::bigint;

-- name: ReadAllRuns :many
-- The subscriptions' read of $all: at most @max_count positions after @start - 1, walked in runs: consecutive positions holding consecutive versions of
-- one stream (one append's events, numbered together by the sequencer) share stream_pk and
-- position - stream_version, and each run is fetched with one range scan of the events' unique
-- index, and its stream's name looked up once. Catch-up reads of large appends then cost about
-- what a keyset scan of the events does (measured: 1.5-2x the rows/s of a lookup per position).
-- Positions of hard-deleted events are holes: their range finds nothing, and they count against
-- max_count. A last row that is no event (scanned true) gives the last position examined, so a
-- reader steps over a page of holes. The OFFSET 0 fences keep
-- the lookups per run: a cached plan made while the tables were small otherwise hash joins every
-- event, and costs grow with the store. No ORDER BY at the end: the runs are joined in position
-- order and each run's scan returns its versions in order, so the rows come out in position
-- order, the scanned row last; a sort of the page's rows (data included) cost about a sixth of
-- the query. SQL does not promise that order, so the reader checks it and sorts if it must.
WITH a AS MATERIALIZED (
    SELECT al.position, al.stream_pk, al.stream_version FROM /* TEMPLATE: schema */all_events al
    WHERE al.position >= @start::bigint ORDER BY al.position LIMIT @max_count::bigint
), runs AS (
    SELECT a.stream_pk, min(a.stream_version) AS lo, max(a.stream_version) AS hi, min(a.position) AS p0
    FROM a GROUP BY a.stream_pk, a.position - a.stream_version
    ORDER BY p0
)
SELECT (r.p0 + (e.stream_version - r.lo))::bigint AS event_number, e.event_id, os.stream_name AS origin_name,
       e.stream_version AS origin_version, e.event_type, e.causation_id, e.correlation_id, e.data, e.metadata, e.created_at,
       false AS scanned
FROM runs r
CROSS JOIN LATERAL (
    SELECT ev.event_id, ev.stream_version, ev.event_type, ev.causation_id, ev.correlation_id, /* TEMPLATE: schema */data_out(ev.data) AS data,
           /* TEMPLATE: schema */data_out(ev.metadata) AS metadata, ev.created_at
    FROM /* TEMPLATE: schema */events ev
    WHERE ev.stream_pk = r.stream_pk AND ev.stream_version BETWEEN r.lo AND r.hi
      AND (cardinality(@event_types::text[]) = 0 OR ev.event_type = ANY(@event_types::text[]))
    OFFSET 0
) e
CROSS JOIN LATERAL (
    SELECT s.stream_name FROM /* TEMPLATE: schema */streams s WHERE s.id = r.stream_pk OFFSET 0
) os
UNION ALL
SELECT max(a.position)::bigint, '00000000-0000-0000-0000-000000000000'::uuid, '', 0, '', NULL, NULL, ''::bytea, NULL,
       now(), true
FROM a HAVING count(*) > 0;

-- name: ReadAllBackward :many
SELECT a.position AS event_number, e.event_id, os.stream_name AS origin_name, e.stream_version AS origin_version,
       e.event_type, e.causation_id, e.correlation_id, e.data, e.metadata, e.created_at
FROM /* TEMPLATE: schema */all_events a
CROSS JOIN LATERAL (
    SELECT ev.event_id, ev.stream_version, ev.event_type, ev.causation_id, ev.correlation_id, /* TEMPLATE: schema */data_out(ev.data) AS data,
           /* TEMPLATE: schema */data_out(ev.metadata) AS metadata, ev.created_at
    FROM /* TEMPLATE: schema */events ev
    WHERE ev.stream_pk = a.stream_pk AND ev.stream_version = a.stream_version
      AND (cardinality(@event_types::text[]) = 0 OR ev.event_type = ANY(@event_types::text[]))
    OFFSET 0
) e
CROSS JOIN LATERAL (
    SELECT s.stream_name FROM /* TEMPLATE: schema */streams s WHERE s.id = a.stream_pk OFFSET 0
) os
WHERE a.position <= @start::bigint
ORDER BY a.position DESC
LIMIT @max_count::bigint;
