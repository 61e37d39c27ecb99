-- Parked events of projections (es.Store.Project): an event whose handler kept failing is parked
-- with its error and attempt count so the events after it flow; with the per-key waiting policy,
-- the later events of its partition key are parked behind it as 'waiting', in order.

-- +goose Up

-- position: the event's number in what the subscription reads ($all position, or stream
-- version). partition_key: PartitionBy's key (the stream by default). status: 'parked' (failed),
-- 'waiting' (behind a parked event of its key), 'retry' (an operator asked for a retry; the
-- projection holding the lease runs it).
CREATE TABLE /* TEMPLATE: schema */parked_events (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id bigint      NOT NULL REFERENCES /* TEMPLATE: schema */subscriptions (id) ON DELETE CASCADE,
    position        bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    stream_name     text        NOT NULL,
    partition_key   text        NOT NULL,
    error           text        NOT NULL,
    attempts        integer     NOT NULL,
    parked_at       timestamptz NOT NULL DEFAULT now(),
    status          text        NOT NULL CHECK (status IN ('parked', 'waiting', 'retry')),
    UNIQUE (subscription_id, position)
);
CREATE INDEX parked_events_key_idx ON /* TEMPLATE: schema */parked_events (subscription_id, partition_key, position);

-- +goose Down
DROP TABLE /* TEMPLATE: schema */parked_events;
