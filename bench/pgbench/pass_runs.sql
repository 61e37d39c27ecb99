-- The prototype's pass (sequence_runs.sql).
SELECT p.sequence_runs(1000);
