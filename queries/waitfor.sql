-- name: AppendedRange :one
-- The stream incarnation and versions of an append's events, found by their ids through
-- events_by_id (see AppendEvents).
SELECT e.stream_pk, min(e.stream_version)::bigint AS first_version, max(e.stream_version)::bigint AS last_version
FROM /* TEMPLATE: schema */events_by_id(@event_ids::uuid[]) e
GROUP BY e.stream_pk;

-- name: AppendSequenced :one
-- Whether an append's events have $all positions (its pending row is gone) and the $all head as
-- of the same snapshot: every position of the append is at or below it.
SELECT NOT EXISTS (
           SELECT 1 FROM /* TEMPLATE: schema */pending p
           WHERE p.stream_pk = @stream_pk::bigint AND p.first_version <= @last_version::bigint
             AND p.last_version >= @first_version::bigint
       )::bool AS sequenced,
       (SELECT c.last_position FROM /* TEMPLATE: schema */all_counter c WHERE c.id = 1)::bigint AS head;

-- name: SubscriptionProgress :many
-- A subscription's stored checkpoints (one per segment), for read-your-writes.
SELECT last_seen, stream_pk FROM /* TEMPLATE: schema */subscriptions
WHERE stream_name = @stream_name::text AND subscription_name = @subscription_name::text;

-- name: AppendCommitted :one
-- Whether an append's last event is visible: committed (a caller's transaction may still be
-- open, or have rolled back).
SELECT EXISTS (
    SELECT 1 FROM /* TEMPLATE: schema */events
    WHERE stream_pk = @stream_pk::bigint AND stream_version = @last_version::bigint
)::bool AS committed;
