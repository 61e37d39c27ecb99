-- Lookups that must stay index probes whatever the statistics say. The store's statements are
-- prepared once per connection, and PostgreSQL keeps their plans until the table is analyzed
-- again; autovacuum first analyzes the events table at about 50 events (one page), and a plan
-- made then looks an event up with a sequential scan, and kept doing so while the table grew:
-- a 100-event append with chosen ids scanned the whole table once per id, and the sequencer's
-- pass scanned it once per append it numbered. events_by_id is not inlined (it has a SET clause),
-- so its query is planned at each call with sequential scans ruled out: one index probe per id.
-- The sequencer's function runs with the same setting: its plans (cached per connection) probe
-- the events of each append through the (stream, version) index.

-- +goose Up
CREATE FUNCTION /* TEMPLATE: schema */events_by_id(ids uuid[])
RETURNS SETOF /* TEMPLATE: schema */events
LANGUAGE sql STABLE PARALLEL SAFE ROWS 100 SET enable_seqscan = off
AS 'SELECT * FROM /* TEMPLATE: schema */events e WHERE e.event_id = ANY(ids)';

ALTER FUNCTION /* TEMPLATE: schema */sequence_all(integer, text) SET enable_seqscan = off;

-- +goose Down
ALTER FUNCTION /* TEMPLATE: schema */sequence_all(integer, text) RESET enable_seqscan;
DROP FUNCTION /* TEMPLATE: schema */events_by_id(uuid[]);
