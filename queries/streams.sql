-- name: GetStream :one
SELECT id, stream_name, stream_version, created_at, deleted_at
FROM /* TEMPLATE: schema */streams
WHERE stream_name = @stream_name::text;

-- name: SoftDeleteStream :one
-- expected: -1 any version, -3 stream exists, n > 0 exactly n.
UPDATE /* TEMPLATE: schema */streams
SET deleted_at = now()
WHERE stream_name = @stream_name::text
  AND deleted_at IS NULL
  AND (@expected::bigint < 0 OR stream_version = @expected::bigint)
RETURNING id;

-- name: LockStreamForHardDelete :one
-- Hard delete also removes soft-deleted streams, so their data can be purged too.
SELECT id FROM /* TEMPLATE: schema */streams
WHERE stream_name = @stream_name::text
  AND (@expected::bigint < 0 OR stream_version = @expected::bigint)
FOR UPDATE;

-- name: EnableHardDeletes :exec
-- Transaction-local: it ends with the transaction that deletes.
SELECT set_config('eventstore.enable_hard_deletes', @value::text, true);

-- name: HardDeleteStream :exec
-- Deleting the events cascades to every link to them; $all rows of deleted events are no longer
-- readable because $all reads join the events.
WITH del_events AS (
    DELETE FROM /* TEMPLATE: schema */events WHERE stream_pk = @stream_pk::bigint RETURNING 1
), del_links AS (
    DELETE FROM /* TEMPLATE: schema */links WHERE stream_pk = @stream_pk::bigint RETURNING 1
), del_pending AS (
    DELETE FROM /* TEMPLATE: schema */pending WHERE stream_pk = @stream_pk::bigint RETURNING 1
)
DELETE FROM /* TEMPLATE: schema */streams WHERE id = @stream_pk::bigint;

-- name: CountStreams :one
SELECT count(*) FROM /* TEMPLATE: schema */streams
WHERE @search::text = '' OR stream_name ILIKE '%' || @search::text || '%';

-- name: PaginateStreams :many
SELECT id, stream_name, stream_version, created_at, deleted_at
FROM /* TEMPLATE: schema */streams
WHERE @search::text = '' OR stream_name ILIKE '%' || @search::text || '%'
ORDER BY
    CASE WHEN NOT @sort_desc::bool THEN CASE @sort_by::text
        WHEN 'stream_name' THEN stream_name
        WHEN 'status' THEN CASE WHEN deleted_at IS NULL THEN 'created' ELSE 'deleted' END
    END END ASC,
    CASE WHEN @sort_desc::bool THEN CASE @sort_by::text
        WHEN 'stream_name' THEN stream_name
        WHEN 'status' THEN CASE WHEN deleted_at IS NULL THEN 'created' ELSE 'deleted' END
    END END DESC,
    CASE WHEN NOT @sort_desc::bool THEN CASE @sort_by::text
        WHEN 'stream_version' THEN stream_version
    END END ASC,
    CASE WHEN @sort_desc::bool THEN CASE @sort_by::text
        WHEN 'stream_version' THEN stream_version
    END END DESC,
    CASE WHEN NOT @sort_desc::bool THEN CASE @sort_by::text
        WHEN 'created_at' THEN created_at
        WHEN 'deleted_at' THEN deleted_at
    END END ASC,
    CASE WHEN @sort_desc::bool THEN CASE @sort_by::text
        WHEN 'created_at' THEN created_at
        WHEN 'deleted_at' THEN deleted_at
    END END DESC,
    CASE WHEN @sort_desc::bool THEN id END DESC,
    id ASC
LIMIT @page_size::bigint OFFSET @page_offset::bigint;
