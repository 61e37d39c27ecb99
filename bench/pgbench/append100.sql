-- A 100-event append as the store's AppendEvents statement writes it (the stream row, 100
-- events, one pending row), with generate_series in place of the parameter arrays.
WITH updated AS (UPDATE p.streams SET stream_version = stream_version + 100 WHERE stream_name = 's-' || :client_id AND deleted_at IS NULL RETURNING id, stream_version),
s AS (SELECT id, stream_version, stream_version - 100 AS base FROM updated),
ev AS (INSERT INTO p.events (event_id, stream_pk, stream_version, event_type, causation_id, correlation_id, data, metadata, created_at)
  SELECT gen_random_uuid(), s.id, s.base + g, 'SomethingHappened', NULL, NULL, p.data_in(convert_to('{"a":"123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"}','UTF8')), p.data_in(convert_to('{"m":"123456789012345678901234567890"}','UTF8')), now() FROM s, generate_series(1, 100) g RETURNING 1),
pend AS (INSERT INTO p.pending (stream_pk, first_version, last_version) SELECT s.id, s.base + 1, s.stream_version FROM s RETURNING 1)
SELECT id, stream_version FROM s;
