-- name: ListSubscriptions :many
-- The operator's view of a schema's persistent subscriptions (es.ListSubscriptions): checkpoint,
-- lease, and lag. head is where the subscribed stream stands now ($all: the counter; a stream: its
-- version, 0 when missing). A stream checkpoint counted in an older incarnation (stream_pk differs
-- from the stream's id) counts from 0. lag_seconds is the age of the first event
-- after the checkpoint (0 when none), on the database clock; a linked event counts with its
-- original event's time. parked counts the subscription's rows in parked_events, whatever their
-- status (parked, waiting, retry).
-- Filters: @stream_name ('' for any), @name_prefix ('' for any).
SELECT s.stream_name, s.subscription_name, s.segment, s.segments, s.last_seen, s.holder, s.lease_expires_at, s.epoch,
       s.created_at,
       (s.holder IS NOT NULL AND s.lease_expires_at > now())::bool AS held,
       h.head::bigint AS head,
       CASE WHEN s.stream_name <> '$all' AND s.stream_pk IS NOT NULL AND s.stream_pk <> h.pk
            THEN 0::bigint ELSE s.last_seen END::bigint AS counted_from,
       COALESCE(EXTRACT(EPOCH FROM now() - o.created_at), 0)::float8 AS lag_seconds,
       (SELECT count(*) FROM /* TEMPLATE: schema */parked_events p WHERE p.subscription_id = s.id)::bigint AS parked
FROM /* TEMPLATE: schema */subscriptions s
CROSS JOIN LATERAL (
    SELECT CASE WHEN s.stream_name = '$all'
                THEN (SELECT c.last_position FROM /* TEMPLATE: schema */all_counter c WHERE c.id = 1)
                ELSE COALESCE((SELECT st.stream_version FROM /* TEMPLATE: schema */streams st
                               WHERE st.stream_name = s.stream_name AND st.deleted_at IS NULL), 0)
           END AS head,
           (SELECT st.id FROM /* TEMPLATE: schema */streams st WHERE st.stream_name = s.stream_name) AS pk
) h
LEFT JOIN LATERAL (
    SELECT CASE WHEN s.stream_name = '$all' THEN (
               SELECT ev.created_at FROM /* TEMPLATE: schema */all_events a
               JOIN /* TEMPLATE: schema */events ev ON ev.stream_pk = a.stream_pk AND ev.stream_version = a.stream_version
               WHERE a.position > s.last_seen ORDER BY a.position LIMIT 1)
           ELSE LEAST(
               (SELECT ev.created_at FROM /* TEMPLATE: schema */events ev
                WHERE ev.stream_pk = h.pk AND ev.stream_version > s.last_seen
                ORDER BY ev.stream_version LIMIT 1),
               (SELECT ev.created_at FROM /* TEMPLATE: schema */links l
                JOIN /* TEMPLATE: schema */events ev ON ev.event_id = l.event_id
                WHERE l.stream_pk = h.pk AND l.link_version > s.last_seen
                ORDER BY l.link_version LIMIT 1))
           END AS created_at
) o ON true
WHERE (@stream_name::text = '' OR s.stream_name = @stream_name::text)
  AND (@name_prefix::text = '' OR starts_with(s.subscription_name, @name_prefix::text))
ORDER BY s.stream_name, s.subscription_name, s.segment
LIMIT @max_count::bigint;

-- name: PendingAppends :one
-- Appends committed but not yet given $all positions (the sequencer's backlog), and the $all head.
SELECT (SELECT count(*) FROM /* TEMPLATE: schema */pending)::bigint AS pending,
       c.last_position
FROM /* TEMPLATE: schema */all_counter c WHERE c.id = 1;
