-- name: ReadStreamTypedForward :many
-- ReadStreamForward restricted to event types. The stream's own events come from the index on
-- (stream, event type, version), one range scan per type, so "the last event of type T in stream
-- S" (ReadStreamBackward from -1, count 1) is one index probe whatever the stream's length.
-- Linked events are filtered as they are read.
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
        oe.correlation_id, oe.data, oe.metadata, oe.created_at, false
 FROM unnest(@event_types::text[]) AS k(name)
 CROSS JOIN LATERAL (
     SELECT ev.event_id, ev.stream_version, ev.event_type, ev.causation_id, ev.correlation_id,
            /* TEMPLATE: schema */data_out(ev.data) AS data, /* TEMPLATE: schema */data_out(ev.metadata) AS metadata, ev.created_at
     FROM /* TEMPLATE: schema */events ev
     WHERE ev.stream_pk = (SELECT id FROM s) AND ev.event_type = k.name AND ev.stream_version >= @start::bigint
     ORDER BY ev.stream_version LIMIT @max_count::bigint
 ) oe
 ORDER BY 1 LIMIT @max_count::bigint)
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
   AND e.event_type = ANY(@event_types::text[])
 ORDER BY l.link_version LIMIT @max_count::bigint)
ORDER BY 1 LIMIT @max_rows::bigint;

-- name: ReadStreamTypedBackward :many
-- ReadStreamTypedForward backward.
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
        oe.correlation_id, oe.data, oe.metadata, oe.created_at, false
 FROM unnest(@event_types::text[]) AS k(name)
 CROSS JOIN LATERAL (
     SELECT ev.event_id, ev.stream_version, ev.event_type, ev.causation_id, ev.correlation_id,
            /* TEMPLATE: schema */data_out(ev.data) AS data, /* TEMPLATE: schema */data_out(ev.metadata) AS metadata, ev.created_at
     FROM /* TEMPLATE: schema */events ev
     WHERE ev.stream_pk = (SELECT id FROM s) AND ev.event_type = k.name AND ev.stream_version <= @start::bigint
     ORDER BY ev.stream_version DESC LIMIT @max_count::bigint
 ) oe
 ORDER BY 1 DESC LIMIT @max_count::bigint)
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
   AND e.event_type = ANY(@event_types::text[])
 ORDER BY l.link_version DESC LIMIT @max_count::bigint)
ORDER BY 1 DESC LIMIT @max_rows::bigint;
