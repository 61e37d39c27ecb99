-- name: PrimaryLSN :one
-- The primary's WAL insert position, in bytes: at or past the end of every commit record written
-- so far, so a standby that has replayed it sees every transaction committed before this query.
-- A position just past a page header (nothing written on that page yet) is moved back to the
-- page's start, which is where the standby's replay position stops when the last record ends
-- there: waiting for the header's end would wait for the next record.
SELECT (CASE WHEN w.l % w.block = 24 OR w.l % w.segment = 40 THEN w.l - w.l % w.block ELSE w.l END)::bigint AS lsn
FROM (SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint AS l,
             current_setting('wal_block_size')::bigint AS block,
             pg_size_bytes(current_setting('wal_segment_size'))::bigint AS segment) w;

-- name: ReplicaLSN :one
-- How far a read-only server has got: on a standby, the end of the last WAL record it replayed
-- (-1 when it has replayed nothing yet); on a server out of recovery (a promoted standby, or a
-- primary), its insert position, since it sees everything committed on it.
SELECT pg_is_in_recovery() AS in_recovery,
       coalesce((CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                      ELSE pg_current_wal_insert_lsn() END - '0/0'::pg_lsn)::bigint, -1)::bigint AS lsn;
