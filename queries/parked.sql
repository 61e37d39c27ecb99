-- name: ParkEvent :exec
-- Parks an event (in the transaction that moves the projection's checkpoint past it).
INSERT INTO /* TEMPLATE: schema */parked_events
    (subscription_id, position, event_id, stream_name, partition_key, error, attempts, status)
VALUES (@subscription_id::bigint, @position::bigint, @event_id::uuid, @stream_name::text,
        @partition_key::text, @error::text, @attempts::integer, @status::text)
ON CONFLICT (subscription_id, position) DO UPDATE
SET error = EXCLUDED.error, attempts = parked_events.attempts + EXCLUDED.attempts,
    status = EXCLUDED.status, parked_at = now();

-- name: BlockedKeys :many
-- The partition keys with parked events: their later events wait.
SELECT DISTINCT partition_key FROM /* TEMPLATE: schema */parked_events
WHERE subscription_id = @subscription_id::bigint;

-- name: RetryQueue :many
-- The parked events of the keys with a retry asked for, in position order.
SELECT id, position, event_id, stream_name, partition_key, attempts, status
FROM /* TEMPLATE: schema */parked_events
WHERE subscription_id = @subscription_id::bigint
  AND partition_key IN (SELECT r.partition_key FROM /* TEMPLATE: schema */parked_events r
                        WHERE r.subscription_id = @subscription_id::bigint AND r.status = 'retry')
ORDER BY position;

-- name: TakeParked :execrows
-- A retried event's row, deleted in the transaction of its handler: no row when another process
-- retried or discarded it meanwhile.
DELETE FROM /* TEMPLATE: schema */parked_events WHERE id = @id::bigint;

-- name: SetParked :exec
-- A retry's outcome other than success: parked again (with its error and attempts) or waiting.
UPDATE /* TEMPLATE: schema */parked_events
SET status = @status::text, error = CASE WHEN @error::text = '' THEN error ELSE @error::text END,
    attempts = attempts + @attempts::integer
WHERE id = @id::bigint;

-- name: ListParked :many
SELECT p.id, p.position, p.event_id, p.stream_name, p.partition_key, p.error, p.attempts, p.parked_at, p.status
FROM /* TEMPLATE: schema */parked_events p
JOIN /* TEMPLATE: schema */subscriptions s ON s.id = p.subscription_id
WHERE s.stream_name = @stream_name::text AND s.subscription_name = @subscription_name::text
ORDER BY p.position;

-- name: MarkRetry :execrows
-- Asks for a retry of the listed parked events (all of them when @ids is empty).
UPDATE /* TEMPLATE: schema */parked_events p
SET status = 'retry'
FROM /* TEMPLATE: schema */subscriptions s
WHERE s.id = p.subscription_id AND s.stream_name = @stream_name::text
  AND s.subscription_name = @subscription_name::text AND p.status = 'parked'
  AND (cardinality(@ids::bigint[]) = 0 OR p.id = ANY(@ids::bigint[]));

-- name: DiscardParked :one
-- Drops the listed parked events (all of them when @ids is empty); the events waiting behind
-- them are handed to the projection (status 'retry'). Returns how many were dropped.
WITH gone AS (
    DELETE FROM /* TEMPLATE: schema */parked_events p
    USING /* TEMPLATE: schema */subscriptions s
    WHERE s.id = p.subscription_id AND s.stream_name = @stream_name::text
      AND s.subscription_name = @subscription_name::text AND p.status <> 'waiting'
      AND (cardinality(@ids::bigint[]) = 0 OR p.id = ANY(@ids::bigint[]))
    RETURNING p.subscription_id, p.partition_key
), woken AS (
    UPDATE /* TEMPLATE: schema */parked_events w SET status = 'retry'
    FROM gone
    WHERE w.subscription_id = gone.subscription_id AND w.partition_key = gone.partition_key
      AND w.status = 'waiting'
    RETURNING w.id
)
SELECT count(*)::bigint AS discarded FROM gone;

-- name: ForgetParkedAfter :execrows
-- A checkpoint moved back (SetSubscriptionCheckpoint, ResetSubscription): events after it are
-- delivered again, so their parked rows go; a key's waiting then starts over from them.
DELETE FROM /* TEMPLATE: schema */parked_events p
USING /* TEMPLATE: schema */subscriptions s
WHERE p.subscription_id = s.id AND s.stream_name = @stream_name::text
  AND s.subscription_name = @subscription_name::text AND p.position > @position::bigint;

-- name: ReleaseWaiting :execrows
-- A projection now running with ParkSkip: the events left waiting behind parked ones (under
-- ParkWaitKey) no longer wait; they are handed to it as retries.
UPDATE /* TEMPLATE: schema */parked_events SET status = 'retry'
WHERE subscription_id = @subscription_id::bigint AND status = 'waiting';
