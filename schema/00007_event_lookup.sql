-- Events by id, always through the primary key. The store's statements are prepared once per
-- connection, and PostgreSQL keeps their plans until the table is analyzed again; autovacuum
-- first analyzes the events table at about 50 events (one page), and a plan made then looks an
-- event up with a sequential scan, and kept doing so while the table grew: a 100-event append
-- with chosen ids scanned the whole table once per id. events_by_id is not inlined (it has a SET
-- clause), so its query is planned at each call with sequential scans ruled out: one index probe
-- per id, whatever the statistics say.

-- +goose Up
CREATE FUNCTION /* TEMPLATE: schema */events_by_id(ids uuid[])
RETURNS SETOF /* TEMPLATE: schema */events
LANGUAGE sql STABLE PARALLEL SAFE ROWS 100 SET enable_seqscan = off
AS 'SELECT * FROM /* TEMPLATE: schema */events e WHERE e.event_id = ANY(ids)';

-- +goose Down
DROP FUNCTION /* TEMPLATE: schema */events_by_id(uuid[]);
