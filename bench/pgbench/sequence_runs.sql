-- A prototype, not the store's format: a sequencer pass that numbers the pending appends with
-- ONE $all row per pass (the appends as arrays of stream, first version and count) instead of
-- one row and three index entries per event. It has no category or event-type columns, so it
-- is the most such a format could save. See BENCHMARKS.md, "What limits each workload".
CREATE TABLE IF NOT EXISTS p.all_runs (
    first_position bigint PRIMARY KEY,
    last_position  bigint NOT NULL,
    stream_pks     bigint[] NOT NULL,
    first_versions bigint[] NOT NULL,
    counts         int[] NOT NULL
);
CREATE OR REPLACE FUNCTION p.sequence_runs(max_pending integer) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    last_pos bigint;
    n bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM p.pending) THEN
        RETURN 0;
    END IF;
    SELECT c.last_position INTO last_pos FROM p.all_counter c WHERE c.id = 1 FOR UPDATE;
    WITH d AS (
        DELETE FROM p.pending WHERE id IN (
            SELECT q.id FROM p.pending q ORDER BY q.id LIMIT max_pending FOR UPDATE SKIP LOCKED)
        RETURNING id, stream_pk, first_version, last_version
    ), agg AS (
        SELECT array_agg(stream_pk ORDER BY id) AS pks, array_agg(first_version ORDER BY id) AS fvs,
               array_agg((last_version - first_version + 1)::int ORDER BY id) AS cnts,
               sum(last_version - first_version + 1) AS total
        FROM d
    ), ins AS (
        INSERT INTO p.all_runs (first_position, last_position, stream_pks, first_versions, counts)
        SELECT last_pos + 1, last_pos + total, pks, fvs, cnts FROM agg WHERE total > 0
        RETURNING last_position
    )
    SELECT coalesce((SELECT last_position FROM ins), last_pos) - last_pos INTO n;
    IF n > 0 THEN
        UPDATE p.all_counter c SET last_position = last_pos + n WHERE c.id = 1;
        PERFORM pg_notify('x', (last_pos + 1)::text || ',' || (last_pos + n)::text);
    END IF;
    RETURN n;
END
$$;
