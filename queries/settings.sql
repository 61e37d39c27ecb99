-- name: GetSetting :one
-- A choice made when the schema was initialised, such as data_type (bytea or jsonb).
SELECT value FROM /* TEMPLATE: schema */settings WHERE name = @name::text;
