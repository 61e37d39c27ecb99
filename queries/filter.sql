-- name: ReadAllFilteredForward :many
-- Events of $all at positions start..upto that pass a filter, in position order, at most
-- max_count: of the given categories (any), event types (any) and stream-name prefixes (any),
-- each filter left empty meaning all. With categories, it walks the (category, position) index,
-- one range scan per category; else with event types the (event_type, position) index; else it
-- scans $all from start, so upto bounds the work. Each branch filters on its own key only: a
-- redundant condition on the key makes the planner expect a handful of rows and fetch every
-- match before sorting, instead of walking the index in position order up to the limit. The first row is a marker (event_number -1,
-- event_id NULL) whose origin_version is the last $all position this read's snapshot saw: a
-- reader that found fewer than max_count events has examined everything up to it (or to upto).
-- Hard-deleted events (holes) are stepped over. With @segments above 1, only the events of
-- streams whose id modulo @segments is @segment (a segmented projection's segment).
WITH c AS MATERIALIZED (
    SELECT last_position FROM /* TEMPLATE: schema */all_counter WHERE id = 1
), hits AS (
    SELECT h.* FROM unnest(@categories::text[]) AS k(name)
    CROSS JOIN LATERAL (
        SELECT a.position, a.stream_pk, e.*
        FROM /* TEMPLATE: schema */all_events a
        CROSS JOIN LATERAL (
            SELECT ev.event_id, ev.stream_version, ev.event_type, ev.causation_id, ev.correlation_id,
                   /* TEMPLATE: schema */data_out(ev.data) AS data, /* TEMPLATE: schema */data_out(ev.metadata) AS metadata, ev.created_at
            FROM /* TEMPLATE: schema */events ev
            WHERE ev.stream_pk = a.stream_pk AND ev.stream_version = a.stream_version OFFSET 0
        ) e
        WHERE a.category = k.name AND a.position >= @start::bigint AND a.position <= @upto::bigint
          AND (cardinality(@event_types::text[]) = 0 OR a.event_type = ANY(@event_types::text[]))
          AND (cardinality(@prefixes::text[]) = 0 OR EXISTS (
                SELECT 1 FROM /* TEMPLATE: schema */streams s, unnest(@prefixes::text[]) AS p(prefix)
                WHERE s.id = a.stream_pk AND starts_with(s.stream_name, p.prefix)))
          AND (@segments::integer <= 1 OR a.stream_pk % @segments::integer = @segment::integer)
        ORDER BY a.position LIMIT @max_count::bigint
    ) h
    UNION ALL
    SELECT h.* FROM unnest(CASE WHEN cardinality(@categories::text[]) = 0 THEN @event_types::text[] ELSE '{}'::text[] END) AS k(name)
    CROSS JOIN LATERAL (
        SELECT a.position, a.stream_pk, e.*
        FROM /* TEMPLATE: schema */all_events a
        CROSS JOIN LATERAL (
            SELECT ev.event_id, ev.stream_version, ev.event_type, ev.causation_id, ev.correlation_id,
                   /* TEMPLATE: schema */data_out(ev.data) AS data, /* TEMPLATE: schema */data_out(ev.metadata) AS metadata, ev.created_at
            FROM /* TEMPLATE: schema */events ev
            WHERE ev.stream_pk = a.stream_pk AND ev.stream_version = a.stream_version OFFSET 0
        ) e
        WHERE a.event_type = k.name AND a.position >= @start::bigint AND a.position <= @upto::bigint
          AND (cardinality(@prefixes::text[]) = 0 OR EXISTS (
                SELECT 1 FROM /* TEMPLATE: schema */streams s, unnest(@prefixes::text[]) AS p(prefix)
                WHERE s.id = a.stream_pk AND starts_with(s.stream_name, p.prefix)))
          AND (@segments::integer <= 1 OR a.stream_pk % @segments::integer = @segment::integer)
        ORDER BY a.position LIMIT @max_count::bigint
    ) h
    UNION ALL
    SELECT h.* FROM unnest(CASE WHEN cardinality(@categories::text[]) = 0 AND cardinality(@event_types::text[]) = 0 THEN '{scan}'::text[] ELSE '{}'::text[] END) AS k(name)
    CROSS JOIN LATERAL (
        SELECT a.position, a.stream_pk, e.*
        FROM /* TEMPLATE: schema */all_events a
        CROSS JOIN LATERAL (
            SELECT ev.event_id, ev.stream_version, ev.event_type, ev.causation_id, ev.correlation_id,
                   /* TEMPLATE: schema */data_out(ev.data) AS data, /* TEMPLATE: schema */data_out(ev.metadata) AS metadata, ev.created_at
            FROM /* TEMPLATE: schema */events ev
            WHERE ev.stream_pk = a.stream_pk AND ev.stream_version = a.stream_version OFFSET 0
        ) e
        WHERE k.name IS NOT NULL AND a.position >= @start::bigint AND a.position <= @upto::bigint
          AND (cardinality(@prefixes::text[]) = 0 OR EXISTS (
                SELECT 1 FROM /* TEMPLATE: schema */streams s, unnest(@prefixes::text[]) AS p(prefix)
                WHERE s.id = a.stream_pk AND starts_with(s.stream_name, p.prefix)))
          AND (@segments::integer <= 1 OR a.stream_pk % @segments::integer = @segment::integer)
        ORDER BY a.position LIMIT @max_count::bigint
    ) h
)
SELECT (-1)::bigint AS event_number, NULL::uuid AS event_id, NULL::text AS origin_name,
       c.last_position AS origin_version, ''::text AS event_type, NULL::uuid AS causation_id,
       NULL::uuid AS correlation_id, NULL::bytea AS data, NULL::bytea AS metadata,
       NULL::timestamptz AS created_at
FROM c
UNION ALL
(SELECT h.position, h.event_id, os.stream_name, h.stream_version, h.event_type, h.causation_id, h.correlation_id, h.data, h.metadata, h.created_at
 FROM (SELECT * FROM hits ORDER BY position LIMIT @max_count::bigint) h
 CROSS JOIN LATERAL (
     SELECT s.stream_name FROM /* TEMPLATE: schema */streams s WHERE s.id = h.stream_pk OFFSET 0
 ) os)
ORDER BY 1;

-- name: ReadAllFilteredBackward :many
-- ReadAllFilteredForward backward: positions start down to downto, newest first, no marker row.
WITH hits AS (
    SELECT h.* FROM unnest(@categories::text[]) AS k(name)
    CROSS JOIN LATERAL (
        SELECT a.position, a.stream_pk, e.*
        FROM /* TEMPLATE: schema */all_events a
        CROSS JOIN LATERAL (
            SELECT ev.event_id, ev.stream_version, ev.event_type, ev.causation_id, ev.correlation_id,
                   /* TEMPLATE: schema */data_out(ev.data) AS data, /* TEMPLATE: schema */data_out(ev.metadata) AS metadata, ev.created_at
            FROM /* TEMPLATE: schema */events ev
            WHERE ev.stream_pk = a.stream_pk AND ev.stream_version = a.stream_version OFFSET 0
        ) e
        WHERE a.category = k.name AND a.position <= @start::bigint AND a.position >= @downto::bigint
          AND (cardinality(@event_types::text[]) = 0 OR a.event_type = ANY(@event_types::text[]))
          AND (cardinality(@prefixes::text[]) = 0 OR EXISTS (
                SELECT 1 FROM /* TEMPLATE: schema */streams s, unnest(@prefixes::text[]) AS p(prefix)
                WHERE s.id = a.stream_pk AND starts_with(s.stream_name, p.prefix)))
        ORDER BY a.position DESC LIMIT @max_count::bigint
    ) h
    UNION ALL
    SELECT h.* FROM unnest(CASE WHEN cardinality(@categories::text[]) = 0 THEN @event_types::text[] ELSE '{}'::text[] END) AS k(name)
    CROSS JOIN LATERAL (
        SELECT a.position, a.stream_pk, e.*
        FROM /* TEMPLATE: schema */all_events a
        CROSS JOIN LATERAL (
            SELECT ev.event_id, ev.stream_version, ev.event_type, ev.causation_id, ev.correlation_id,
                   /* TEMPLATE: schema */data_out(ev.data) AS data, /* TEMPLATE: schema */data_out(ev.metadata) AS metadata, ev.created_at
            FROM /* TEMPLATE: schema */events ev
            WHERE ev.stream_pk = a.stream_pk AND ev.stream_version = a.stream_version OFFSET 0
        ) e
        WHERE a.event_type = k.name AND a.position <= @start::bigint AND a.position >= @downto::bigint
          AND (cardinality(@prefixes::text[]) = 0 OR EXISTS (
                SELECT 1 FROM /* TEMPLATE: schema */streams s, unnest(@prefixes::text[]) AS p(prefix)
                WHERE s.id = a.stream_pk AND starts_with(s.stream_name, p.prefix)))
        ORDER BY a.position DESC LIMIT @max_count::bigint
    ) h
    UNION ALL
    SELECT h.* FROM unnest(CASE WHEN cardinality(@categories::text[]) = 0 AND cardinality(@event_types::text[]) = 0 THEN '{scan}'::text[] ELSE '{}'::text[] END) AS k(name)
    CROSS JOIN LATERAL (
        SELECT a.position, a.stream_pk, e.*
        FROM /* TEMPLATE: schema */all_events a
        CROSS JOIN LATERAL (
            SELECT ev.event_id, ev.stream_version, ev.event_type, ev.causation_id, ev.correlation_id,
                   /* TEMPLATE: schema */data_out(ev.data) AS data, /* TEMPLATE: schema */data_out(ev.metadata) AS metadata, ev.created_at
            FROM /* TEMPLATE: schema */events ev
            WHERE ev.stream_pk = a.stream_pk AND ev.stream_version = a.stream_version OFFSET 0
        ) e
        WHERE k.name IS NOT NULL AND a.position <= @start::bigint AND a.position >= @downto::bigint
          AND (cardinality(@prefixes::text[]) = 0 OR EXISTS (
                SELECT 1 FROM /* TEMPLATE: schema */streams s, unnest(@prefixes::text[]) AS p(prefix)
                WHERE s.id = a.stream_pk AND starts_with(s.stream_name, p.prefix)))
        ORDER BY a.position DESC LIMIT @max_count::bigint
    ) h
)
SELECT h.position AS event_number, h.event_id, os.stream_name AS origin_name, h.stream_version AS origin_version,
       h.event_type, h.causation_id, h.correlation_id, h.data, h.metadata, h.created_at
FROM (SELECT * FROM hits ORDER BY position DESC LIMIT @max_count::bigint) h
CROSS JOIN LATERAL (
    SELECT s.stream_name FROM /* TEMPLATE: schema */streams s WHERE s.id = h.stream_pk OFFSET 0
) os
ORDER BY 1 DESC;
