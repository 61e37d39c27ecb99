-- The baseline for 100-event appends: 100 rows into the plain table in one statement.
INSERT INTO p.raw_events (event_id, stream_name, stream_version, event_type, data, metadata, created_at)
SELECT gen_random_uuid(), 's-' || :client_id, nextval('p.raw_versions'), 'SomethingHappened', convert_to('{"a":"123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"}','UTF8'), convert_to('{"m":"123456789012345678901234567890"}','UTF8'), now()
FROM generate_series(1, 100);
