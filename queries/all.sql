-- name: SequenceAll :one
-- One sequencer pass (see the function in schema/): the last position given (0 when none) and
-- how many pending appends it took.
SELECT coalesce(max(r.last_position), 0)::bigint AS last_position,
       coalesce(max(r.appends), 0)::integer AS appends
FROM /* TEMPLATE: schema */sequence_all(@max_pending::integer, @channel::text) r;

-- name: GetAllCounter :one
SELECT last_position, created_at FROM /* TEMPLATE: schema */all_counter WHERE id = 1;
