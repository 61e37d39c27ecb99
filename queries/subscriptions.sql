-- name: CreateSubscription :one
-- Returns the checkpoint of the subscription, creating it at @start if it does not exist yet.
WITH ins AS (
    INSERT INTO /* TEMPLATE: schema */subscriptions (stream_name, subscription_name, last_seen)
    VALUES (@stream_name::text, @subscription_name::text, @start::bigint)
    ON CONFLICT (stream_name, subscription_name) DO NOTHING
    RETURNING last_seen
)
SELECT i.last_seen FROM ins i
UNION ALL
SELECT s.last_seen FROM /* TEMPLATE: schema */subscriptions s
WHERE s.stream_name = @stream_name::text AND s.subscription_name = @subscription_name::text
LIMIT 1;

-- name: GetSubscription :one
SELECT last_seen FROM /* TEMPLATE: schema */subscriptions
WHERE stream_name = @stream_name::text AND subscription_name = @subscription_name::text;

-- name: UpdateCheckpoint :execrows
UPDATE /* TEMPLATE: schema */subscriptions SET last_seen = @last_seen::bigint
WHERE stream_name = @stream_name::text AND subscription_name = @subscription_name::text;

-- name: AckCheckpoint :execrows
-- The running subscription's checkpoint write, on its lock's own connection, outside any caller's
-- transaction. Its commit does not wait for the WAL flush: a checkpoint lost in a crash only means
-- events are delivered again (at least once), and a checkpoint that survives was flushed after
-- the $all positions it refers to.
WITH async AS (SELECT set_config('synchronous_commit', 'off', true) AS setting)
UPDATE /* TEMPLATE: schema */subscriptions SET last_seen = @last_seen::bigint
WHERE stream_name = @stream_name::text AND subscription_name = @subscription_name::text
  AND EXISTS (SELECT 1 FROM async);

-- name: DeleteSubscription :execrows
DELETE FROM /* TEMPLATE: schema */subscriptions
WHERE stream_name = @stream_name::text AND subscription_name = @subscription_name::text;

-- name: TryAdvisoryLock :one
-- Session-level: held until unlocked or the session ends, whatever its transactions do.
SELECT pg_try_advisory_lock(@key::bigint);

-- name: AdvisoryUnlock :one
SELECT pg_advisory_unlock(@key::bigint);

-- name: Notify :exec
SELECT pg_notify(@channel::text, @payload::text);
