-- Subscriptions are owned through fenced leases kept in their rows instead of session advisory
-- locks: no connection is pinned for a subscription's life, PgBouncer's transaction mode cannot
-- break ownership, and leases survive a failover with their epochs.

-- +goose Up

-- holder: the process holding the lease (NULL: free). lease_expires_at: when it runs out, on the
-- database's clock. epoch: bumped by every take (and by an operator's checkpoint change); every
-- checkpoint write names the epoch it was taken with, so an old holder cannot write after another
-- took over. stream_pk: the incarnation of the subscribed stream the checkpoint counts in (a hard
-- deleted and re-created stream is a new streams row); NULL for $all or a stream not seen yet.
ALTER TABLE /* TEMPLATE: schema */subscriptions
    ADD COLUMN stream_pk        bigint,
    ADD COLUMN holder           text,
    ADD COLUMN lease_expires_at timestamptz,
    ADD COLUMN epoch            bigint NOT NULL DEFAULT 0;

-- Bumped by every stream delete, so that subscriptions drop events they read ahead of a delete.
CREATE TABLE /* TEMPLATE: schema */deletions (
    id         integer PRIMARY KEY CHECK (id = 1),
    generation bigint  NOT NULL
);
INSERT INTO /* TEMPLATE: schema */deletions (id, generation) VALUES (1, 0);

-- +goose Down
DROP TABLE /* TEMPLATE: schema */deletions;
ALTER TABLE /* TEMPLATE: schema */subscriptions
    DROP COLUMN stream_pk,
    DROP COLUMN holder,
    DROP COLUMN lease_expires_at,
    DROP COLUMN epoch;
