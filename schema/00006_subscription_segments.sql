-- Segments: one persistent subscription (a projection) split by a hash of its partition key into
-- N segments, each with its own row (lease and checkpoint), shared by any number of processes.
-- A plain subscription is segment 0 of 1. subscription_members is who takes part: each process
-- running a segmented projection keeps its row alive while it runs, and every member computes
-- its fair share of the segments from the live rows.

-- +goose Up
ALTER TABLE /* TEMPLATE: schema */subscriptions
    ADD COLUMN segment  integer NOT NULL DEFAULT 0,
    ADD COLUMN segments integer NOT NULL DEFAULT 1,
    ADD CONSTRAINT subscriptions_segment_check CHECK (segments >= 1 AND segment >= 0 AND segment < segments),
    DROP CONSTRAINT subscriptions_stream_name_subscription_name_key,
    ADD CONSTRAINT subscriptions_segment_key UNIQUE (stream_name, subscription_name, segment);

-- holder: a process (the lease holder id it uses). expires_at: on the database clock; a member
-- whose row ran out counts as gone, and its row is removed by the next member's heartbeat.
CREATE TABLE /* TEMPLATE: schema */subscription_members (
    stream_name       text        NOT NULL,
    subscription_name text        NOT NULL,
    holder            text        NOT NULL,
    expires_at        timestamptz NOT NULL,
    PRIMARY KEY (stream_name, subscription_name, holder)
);

-- +goose Down
DROP TABLE /* TEMPLATE: schema */subscription_members;
DELETE FROM /* TEMPLATE: schema */subscriptions WHERE segment > 0;
ALTER TABLE /* TEMPLATE: schema */subscriptions
    DROP CONSTRAINT subscriptions_segment_key,
    ADD CONSTRAINT subscriptions_stream_name_subscription_name_key UNIQUE (stream_name, subscription_name),
    DROP CONSTRAINT subscriptions_segment_check,
    DROP COLUMN segment,
    DROP COLUMN segments;
