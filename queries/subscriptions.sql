-- name: CreateSubscription :one
-- Creates the subscription (segment 0 of 1) with its checkpoint at @start (counted in stream
-- incarnation @stream_pk) unless it exists; returns its row either way (the no-op update makes
-- RETURNING return an existing row, also one a concurrent call just created). segments tells a
-- segmented subscription's first segment.
INSERT INTO /* TEMPLATE: schema */subscriptions (stream_name, subscription_name, last_seen, stream_pk)
VALUES (@stream_name::text, @subscription_name::text, @start::bigint, sqlc.narg(stream_pk)::bigint)
ON CONFLICT (stream_name, subscription_name, segment) DO UPDATE SET stream_name = EXCLUDED.stream_name
RETURNING id, last_seen, segments;

-- name: InsertSegments :exec
-- Inserts the @segments rows of a segmented subscription, all at @start, except those that
-- exist. The caller reads them back (SegmentRows) in the same transaction and rolls back unless
-- they are exactly its @segments rows: concurrent creators of one name (with other numbers of
-- segments, or a plain subscription) wait on each other's rows through the unique index, so one
-- of them wins whole and the others find a mismatch. @stream_pk 0: none.
INSERT INTO /* TEMPLATE: schema */subscriptions (stream_name, subscription_name, segment, segments, last_seen, stream_pk)
SELECT @stream_name::text, @subscription_name::text, g.n - 1, @segments::integer, @start::bigint, nullif(@stream_pk::bigint, 0)
FROM generate_series(1, @segments::integer) AS g (n)
ON CONFLICT (stream_name, subscription_name, segment) DO NOTHING;

-- name: SegmentRows :many
-- A subscription's rows, by segment.
SELECT id, segment, segments, last_seen, stream_pk FROM /* TEMPLATE: schema */subscriptions
WHERE stream_name = @stream_name::text AND subscription_name = @subscription_name::text
ORDER BY segment;

-- name: GetSubscription :one
-- A subscription's checkpoint: the least of its segments' (each segment has handled everything
-- of its own up to its checkpoint). rows 0: no such subscription.
SELECT COALESCE(min(last_seen), 0)::bigint AS last_seen, count(*)::bigint AS rows
FROM /* TEMPLATE: schema */subscriptions
WHERE stream_name = @stream_name::text AND subscription_name = @subscription_name::text;

-- name: LockSubscription :many
-- Locks a subscription's rows (every segment), in id order, for an operator's change; held:
-- a process holds that segment's lease.
SELECT id, (holder IS NOT NULL AND lease_expires_at > now())::bool AS held
FROM /* TEMPLATE: schema */subscriptions
WHERE stream_name = @stream_name::text AND subscription_name = @subscription_name::text
ORDER BY id
FOR UPDATE;

-- name: SubscriptionEpoch :one
-- Tells a refused (fenced) checkpoint write from one of a deleted subscription.
SELECT epoch FROM /* TEMPLATE: schema */subscriptions WHERE id = @id::bigint;

-- name: TakeLeases :many
-- Takes, for @holder, each listed subscription whose lease is free or has run out, with a new
-- epoch (taken true); a lease held by someone else and still running is left alone. Rows are
-- locked in id order, as every multi-row statement on subscriptions does, so concurrent ones
-- cannot deadlock. The listed subscriptions that exist but were not taken come back with taken
-- false; an id that does not come back was deleted.
WITH locked AS (
    SELECT l.id FROM /* TEMPLATE: schema */subscriptions l
    WHERE l.id = ANY(@ids::bigint[])
      AND (l.holder IS NULL OR l.lease_expires_at <= now() OR l.holder = @holder::text)
    ORDER BY l.id
    FOR UPDATE
), taken AS (
    UPDATE /* TEMPLATE: schema */subscriptions s
    SET holder = @holder::text,
        epoch = s.epoch + 1,
        lease_expires_at = now() + make_interval(secs => @lease_seconds::float8)
    FROM locked
    WHERE s.id = locked.id
      AND (s.holder IS NULL OR s.lease_expires_at <= now() OR s.holder = @holder::text)
    RETURNING s.id, s.epoch, s.last_seen, s.stream_pk
)
SELECT t.id, t.epoch, t.last_seen, t.stream_pk, true AS taken FROM taken t
UNION ALL
SELECT o.id, o.epoch, o.last_seen, o.stream_pk, false FROM /* TEMPLATE: schema */subscriptions o
WHERE o.id = ANY(@ids::bigint[]) AND o.id NOT IN (SELECT id FROM taken);

-- name: RenewLeases :many
-- Renews the listed leases of @holder that still carry the epoch they were taken with, in one
-- statement for all of a process's subscriptions (rows locked in id order). Returns the ids
-- renewed.
WITH locked AS (
    SELECT l.id FROM /* TEMPLATE: schema */subscriptions l
    WHERE l.holder = @holder::text
      AND (l.id, l.epoch) IN (SELECT unnest(@ids::bigint[]), unnest(@epochs::bigint[]))
    ORDER BY l.id
    FOR UPDATE
)
UPDATE /* TEMPLATE: schema */subscriptions s
SET lease_expires_at = now() + make_interval(secs => @lease_seconds::float8)
FROM locked
WHERE s.id = locked.id AND s.holder = @holder::text
  AND (s.id, s.epoch) IN (SELECT unnest(@ids::bigint[]), unnest(@epochs::bigint[]))
RETURNING s.id;

-- name: WriteCheckpoint :execrows
-- The holder's checkpoint write, fenced by its epoch: no row changes once another process took
-- the lease over, or the subscription was deleted or reset. Unless @durable, its commit does not
-- wait for the WAL flush: a checkpoint lost in a crash only means events are delivered again (at
-- least once), and a checkpoint that survives was flushed after the $all positions it refers to.
-- With @forward (projections, whose handlers commit the checkpoint with their effects) the
-- checkpoint never moves back within one incarnation of the stream: a late write of an older
-- position cannot make effects apply twice.
WITH sync AS (
    SELECT set_config('synchronous_commit', CASE WHEN @durable::bool THEN 'on' ELSE 'off' END, true) AS setting
)
UPDATE /* TEMPLATE: schema */subscriptions
SET last_seen = CASE WHEN @forward::bool AND stream_pk IS NOT DISTINCT FROM sqlc.narg(stream_pk)::bigint
                     THEN greatest(last_seen, @last_seen::bigint) ELSE @last_seen::bigint END,
    stream_pk = sqlc.narg(stream_pk)::bigint
WHERE id = @id::bigint AND epoch = @epoch::bigint AND EXISTS (SELECT 1 FROM sync);

-- name: ReleaseLease :execrows
-- A clean stop: the last checkpoint and the lease's release in one durable write, fenced;
-- forward-only with @forward, as WriteCheckpoint. It bumps the epoch: a batched checkpoint write
-- of the stopping holder still on its way (queued before the stop, flushed after) is then
-- fenced too, and cannot move the checkpoint back behind the release's.
UPDATE /* TEMPLATE: schema */subscriptions
SET last_seen = CASE WHEN @forward::bool AND stream_pk IS NOT DISTINCT FROM sqlc.narg(stream_pk)::bigint
                     THEN greatest(last_seen, @last_seen::bigint) ELSE @last_seen::bigint END,
    stream_pk = sqlc.narg(stream_pk)::bigint,
    holder = NULL, lease_expires_at = NULL, epoch = epoch + 1
WHERE id = @id::bigint AND epoch = @epoch::bigint;

-- name: SetCheckpoint :execrows
-- An operator's checkpoint change, after LockSubscription found no lease running (a row whose lease
-- runs is still left alone); bumps the epoch so that a holder whose lease ran out (paused, cut off)
-- cannot write over it when it comes back.
UPDATE /* TEMPLATE: schema */subscriptions
SET last_seen = @last_seen::bigint, stream_pk = sqlc.narg(stream_pk)::bigint, epoch = epoch + 1,
    holder = NULL, lease_expires_at = NULL
WHERE stream_name = @stream_name::text AND subscription_name = @subscription_name::text
  AND (holder IS NULL OR lease_expires_at <= now());

-- name: DeleteSubscription :execrows
-- Every segment's row, and the members of a segmented subscription.
WITH members AS (
    DELETE FROM /* TEMPLATE: schema */subscription_members
    WHERE stream_name = @stream_name::text AND subscription_name = @subscription_name::text
)
DELETE FROM /* TEMPLATE: schema */subscriptions
WHERE stream_name = @stream_name::text AND subscription_name = @subscription_name::text;

-- name: SegmentHeartbeat :exec
-- A member of a segmented subscription says it still takes part, until @lease_seconds from now;
-- members whose rows ran out are removed.
WITH gone AS (
    DELETE FROM /* TEMPLATE: schema */subscription_members
    WHERE stream_name = @stream_name::text AND subscription_name = @subscription_name::text
      AND expires_at <= now() AND holder <> @holder::text
)
INSERT INTO /* TEMPLATE: schema */subscription_members (stream_name, subscription_name, holder, expires_at)
VALUES (@stream_name::text, @subscription_name::text, @holder::text, now() + make_interval(secs => @lease_seconds::float8))
ON CONFLICT (stream_name, subscription_name, holder) DO UPDATE SET expires_at = EXCLUDED.expires_at;

-- name: SegmentState :many
-- A segmented subscription's segments, by segment, with the holder of each running lease ('' when
-- free or run out), and the live members (sorted, the same on every row).
SELECT s.segment, s.segments, s.id,
       COALESCE(CASE WHEN s.lease_expires_at > now() THEN s.holder END, '')::text AS holder,
       ARRAY(SELECT m.holder FROM /* TEMPLATE: schema */subscription_members m
             WHERE m.stream_name = @stream_name::text AND m.subscription_name = @subscription_name::text
               AND m.expires_at > now()
             ORDER BY m.holder)::text[] AS members
FROM /* TEMPLATE: schema */subscriptions s
WHERE s.stream_name = @stream_name::text AND s.subscription_name = @subscription_name::text
ORDER BY s.segment;

-- name: LeaveSegments :exec
-- A member's clean stop: the others take its segments over at their next heartbeat.
DELETE FROM /* TEMPLATE: schema */subscription_members
WHERE stream_name = @stream_name::text AND subscription_name = @subscription_name::text AND holder = @holder::text;

-- name: PollHeads :one
-- What one poll of a process's subscriptions needs: the $all head and the deletions generation.
SELECT c.last_position, d.generation
FROM /* TEMPLATE: schema */all_counter c, /* TEMPLATE: schema */deletions d
WHERE c.id = 1 AND d.id = 1;

-- name: PollStreams :many
-- The incarnation and version of the streams a process subscribes to, in one query.
SELECT stream_name, id, stream_version, (deleted_at IS NOT NULL)::bool AS deleted
FROM /* TEMPLATE: schema */streams
WHERE stream_name = ANY(@names::text[]);

-- name: BumpDeletions :exec
-- In a delete's transaction: subscriptions revalidate what they read ahead.
UPDATE /* TEMPLATE: schema */deletions SET generation = generation + 1 WHERE id = 1;

-- name: Notify :exec
SELECT pg_notify(@channel::text, @payload::text);

-- name: WriteCheckpoints :many
-- The running subscriptions' checkpoint writes of one process, batched into one statement, each
-- fenced by its epoch (rows locked in id order); returns the ids written (a missing id: fenced,
-- or deleted). The commit does not wait for the WAL flush: a checkpoint lost in a crash only
-- means events are delivered again (at least once), and a checkpoint that survives was flushed
-- after the $all positions it refers to. A forward write (projections) never moves the
-- checkpoint back within one incarnation of the stream (see WriteCheckpoint).
WITH sync AS (SELECT set_config('synchronous_commit', 'off', true) AS setting),
c AS (
    SELECT unnest(@ids::bigint[]) AS id, unnest(@epochs::bigint[]) AS epoch,
           unnest(@positions::bigint[]) AS pos, unnest(@stream_pks::bigint[]) AS pk,
           unnest(@forwards::bool[]) AS fwd
), locked AS (
    SELECT l.id FROM /* TEMPLATE: schema */subscriptions l JOIN c ON c.id = l.id AND c.epoch = l.epoch
    WHERE EXISTS (SELECT 1 FROM sync)
    ORDER BY l.id
    FOR UPDATE OF l
)
UPDATE /* TEMPLATE: schema */subscriptions s
SET last_seen = CASE WHEN c.fwd AND s.stream_pk IS NOT DISTINCT FROM nullif(c.pk, 0)
                     THEN greatest(s.last_seen, c.pos) ELSE c.pos END,
    stream_pk = nullif(c.pk, 0)
FROM c, locked
WHERE s.id = c.id AND s.id = locked.id AND s.epoch = c.epoch
RETURNING s.id;
-- name: ProjectionCheckpoint :one
-- A projection's checkpoint read in its handler's transaction before the handler runs: no row
-- when the lease's epoch moved on (or the subscription is gone). Events at or below last_seen
-- were already applied (a commit whose outcome was unknown and that did go through).
SELECT last_seen, stream_pk FROM /* TEMPLATE: schema */subscriptions
WHERE id = @id::bigint AND epoch = @epoch::bigint;

-- name: AdvanceProjection :one
-- A projection's checkpoint write at the end of its handler's transaction, fenced by the epoch
-- and forward-only (as WriteCheckpoint), returning the checkpoint it found (locked): the
-- handler ran without reading it first, and the projection rolls back when it shows that some
-- of the batch was applied before (a commit whose outcome was lost). No row: fenced.
WITH sync AS (
    SELECT set_config('synchronous_commit', 'on', true) AS setting
), o AS (
    SELECT l.id, l.last_seen, l.stream_pk FROM /* TEMPLATE: schema */subscriptions l
    WHERE l.id = @id::bigint AND l.epoch = @epoch::bigint AND EXISTS (SELECT 1 FROM sync)
    FOR UPDATE
)
UPDATE /* TEMPLATE: schema */subscriptions s
SET last_seen = CASE WHEN o.stream_pk IS NOT DISTINCT FROM sqlc.narg(stream_pk)::bigint
                     THEN greatest(o.last_seen, @last_seen::bigint) ELSE @last_seen::bigint END,
    stream_pk = sqlc.narg(stream_pk)::bigint
FROM o
WHERE s.id = o.id
RETURNING o.last_seen AS prev, o.stream_pk AS prev_pk;
