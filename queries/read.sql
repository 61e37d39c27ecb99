-- name: ReadStreamForward :many
-- One round trip: the stream row comes back even when no event is in range (has_event false),
-- and no row at all means the stream does not exist. A stream holds its own events and links.
SELECT s.id AS stream_pk, s.deleted_at AS stream_deleted_at, (x.event_id IS NOT NULL)::bool AS has_event,
       coalesce(x.event_number, 0)::bigint AS event_number, x.event_id,
       coalesce(x.origin_name, s.stream_name)::text AS origin_name, coalesce(x.origin_version, 0)::bigint AS origin_version,
       coalesce(x.event_type, '')::text AS event_type, x.causation_id, x.correlation_id, x.data, x.metadata,
       coalesce(x.created_at, 'epoch')::timestamptz AS created_at
FROM /* TEMPLATE: schema */streams s
LEFT JOIN LATERAL (
    -- The stream's own events are read in one index scan; only links need the joins.
    (SELECT oe.stream_version AS event_number, oe.event_id, NULL::text AS origin_name,
            oe.stream_version AS origin_version, oe.event_type, oe.causation_id, oe.correlation_id,
            oe.data, oe.metadata, oe.created_at
     FROM /* TEMPLATE: schema */events oe
     WHERE oe.stream_pk = s.id AND oe.stream_version >= @start::bigint
     ORDER BY oe.stream_version LIMIT @max_count::bigint)
    UNION ALL
    (SELECT l.link_version, e.event_id, os.stream_name, e.stream_version, e.event_type,
            e.causation_id, e.correlation_id, e.data, e.metadata, e.created_at
     FROM /* TEMPLATE: schema */links l
     JOIN /* TEMPLATE: schema */events e ON e.event_id = l.event_id
     JOIN /* TEMPLATE: schema */streams os ON os.id = e.stream_pk
     WHERE l.stream_pk = s.id AND l.link_version >= @start::bigint
     ORDER BY l.link_version LIMIT @max_count::bigint)
    ORDER BY 1 LIMIT @max_count::bigint
) x ON true
WHERE s.stream_name = @stream_name::text
ORDER BY x.event_number;

-- name: ReadStreamBackward :many
SELECT s.id AS stream_pk, s.deleted_at AS stream_deleted_at, (x.event_id IS NOT NULL)::bool AS has_event,
       coalesce(x.event_number, 0)::bigint AS event_number, x.event_id,
       coalesce(x.origin_name, s.stream_name)::text AS origin_name, coalesce(x.origin_version, 0)::bigint AS origin_version,
       coalesce(x.event_type, '')::text AS event_type, x.causation_id, x.correlation_id, x.data, x.metadata,
       coalesce(x.created_at, 'epoch')::timestamptz AS created_at
FROM /* TEMPLATE: schema */streams s
LEFT JOIN LATERAL (
    -- The stream's own events are read in one index scan; only links need the joins.
    (SELECT oe.stream_version AS event_number, oe.event_id, NULL::text AS origin_name,
            oe.stream_version AS origin_version, oe.event_type, oe.causation_id, oe.correlation_id,
            oe.data, oe.metadata, oe.created_at
     FROM /* TEMPLATE: schema */events oe
     WHERE oe.stream_pk = s.id AND oe.stream_version <= @start::bigint
     ORDER BY oe.stream_version DESC LIMIT @max_count::bigint)
    UNION ALL
    (SELECT l.link_version, e.event_id, os.stream_name, e.stream_version, e.event_type,
            e.causation_id, e.correlation_id, e.data, e.metadata, e.created_at
     FROM /* TEMPLATE: schema */links l
     JOIN /* TEMPLATE: schema */events e ON e.event_id = l.event_id
     JOIN /* TEMPLATE: schema */streams os ON os.id = e.stream_pk
     WHERE l.stream_pk = s.id AND l.link_version <= @start::bigint
     ORDER BY l.link_version DESC LIMIT @max_count::bigint)
    ORDER BY 1 DESC LIMIT @max_count::bigint
) x ON true
WHERE s.stream_name = @stream_name::text
ORDER BY x.event_number DESC;

-- name: ReadAllForward :many
-- Positions of hard-deleted events are holes: the join drops them and reads step over.
SELECT a.position AS event_number, e.event_id, os.stream_name AS origin_name, e.stream_version AS origin_version,
       e.event_type, e.causation_id, e.correlation_id, e.data, e.metadata, e.created_at
FROM /* TEMPLATE: schema */all_events a
JOIN /* TEMPLATE: schema */events e ON e.stream_pk = a.stream_pk AND e.stream_version = a.stream_version
JOIN /* TEMPLATE: schema */streams os ON os.id = e.stream_pk
WHERE a.position >= @start::bigint
  AND (cardinality(@event_types::text[]) = 0 OR e.event_type = ANY(@event_types::text[]))
ORDER BY a.position
LIMIT @max_count::bigint;

-- name: ReadAllBackward :many
SELECT a.position AS event_number, e.event_id, os.stream_name AS origin_name, e.stream_version AS origin_version,
       e.event_type, e.causation_id, e.correlation_id, e.data, e.metadata, e.created_at
FROM /* TEMPLATE: schema */all_events a
JOIN /* TEMPLATE: schema */events e ON e.stream_pk = a.stream_pk AND e.stream_version = a.stream_version
JOIN /* TEMPLATE: schema */streams os ON os.id = e.stream_pk
WHERE a.position <= @start::bigint
  AND (cardinality(@event_types::text[]) = 0 OR e.event_type = ANY(@event_types::text[]))
ORDER BY a.position DESC
LIMIT @max_count::bigint;
