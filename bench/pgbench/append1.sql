-- The store's AppendEvent statement (queries/append.sql) for one event, with its parameters as
-- literals: expected version "stream exists", no chosen id, ~160 bytes of data. Each pgbench
-- client appends to its own stream s-<client_id>.
WITH dup AS (
    SELECT EXISTS (SELECT 1 FROM p.events d WHERE d.event_id = NULL::uuid) AS found
), created AS (
    INSERT INTO p.streams AS st (stream_name, stream_version)
    SELECT 's-' || :client_id, 1
    WHERE -3 IN (-1, -2, 0) AND NOT (SELECT found FROM dup)
    ON CONFLICT (stream_name) DO UPDATE SET stream_version = st.stream_version + 1
        WHERE -3 = -1 AND st.deleted_at IS NULL
    RETURNING st.id, st.stream_version
), updated AS (
    UPDATE p.streams AS st SET stream_version = st.stream_version + 1
    WHERE (-3 = -3 OR -3 > 0)
      AND st.stream_name = 's-' || :client_id
      AND st.deleted_at IS NULL
      AND (-3 = -3 OR st.stream_version = -3)
      AND NOT (SELECT found FROM dup)
    RETURNING st.id, st.stream_version
), s AS (
    SELECT id, stream_version FROM created
    UNION ALL
    SELECT id, stream_version FROM updated
), ev AS (
    INSERT INTO p.events
        (event_id, stream_pk, stream_version, event_type, causation_id, correlation_id, data, metadata, created_at)
    SELECT gen_random_uuid(), s.id, s.stream_version, 'SomethingHappened', NULL,
           NULL, p.data_in(convert_to('{"a":"123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"}','UTF8')), p.data_in(convert_to('{"m":"123456789012345678901234567890"}','UTF8')), now()
    FROM s
    RETURNING 1
), pend AS (
    INSERT INTO p.pending (stream_pk, first_version, last_version)
    SELECT s.id, s.stream_version, s.stream_version FROM s
    RETURNING 1
)
SELECT s.id, s.stream_version FROM s;
