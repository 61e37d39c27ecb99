-- name: LockStreamForCheck :one
-- A stream only checked by a multi-stream append: its version and state, with its row locked as
-- an append would lock it, so the check holds until the transaction ends.
SELECT stream_version, (deleted_at IS NOT NULL)::bool AS deleted
FROM /* TEMPLATE: schema */streams
WHERE stream_name = @stream_name::text
FOR NO KEY UPDATE;

-- name: SavepointAppend :exec
-- Multi-stream appends in a caller's transaction run inside this savepoint, so a refusal undoes
-- the streams already written and leaves the transaction as it was.
SAVEPOINT eventstore_append;

-- name: RollbackToSavepointAppend :exec
ROLLBACK TO SAVEPOINT eventstore_append;

-- name: ReleaseSavepointAppend :exec
RELEASE SAVEPOINT eventstore_append;
