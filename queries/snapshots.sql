-- name: ReadSnapshot :one
SELECT source_id, source_version, source_type, /* TEMPLATE: schema */data_out(data) AS data, /* TEMPLATE: schema */data_out(metadata) AS metadata, created_at
FROM /* TEMPLATE: schema */snapshots
WHERE source_id = @source_id::text;

-- name: RecordSnapshot :exec
INSERT INTO /* TEMPLATE: schema */snapshots AS s (source_id, source_version, source_type, data, metadata, created_at)
VALUES (@source_id::text, @source_version::bigint, @source_type::text, /* TEMPLATE: schema */data_in(@data::bytea),
        /* TEMPLATE: schema */data_in(@metadata::bytea), @created_at::timestamptz)
ON CONFLICT (source_id) DO UPDATE
SET source_version = EXCLUDED.source_version,
    source_type = EXCLUDED.source_type,
    data = EXCLUDED.data,
    metadata = EXCLUDED.metadata,
    created_at = EXCLUDED.created_at;

-- name: DeleteSnapshot :exec
DELETE FROM /* TEMPLATE: schema */snapshots WHERE source_id = @source_id::text;
