-- Per Kafka partition of ticket.events: the SLA state of its tickets as of `next_offset`
-- (every record before it is applied and its SLA events are in the store). A new owner of the
-- partition loads the snapshot, seeks to next_offset, and replays the records after it.
CREATE TABLE IF NOT EXISTS sla_partition_checkpoints (
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    tickets     integer     NOT NULL,
    snapshot    bytea       NOT NULL,
    written_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
