-- Incremental checkpoints: one row per ticket, rewritten only when the ticket's SLA state changed
-- since the partition's previous checkpoint (a full snapshot of millions of tickets every few
-- seconds cost more CPU than the events themselves). The partition's next_offset stays in
-- sla_partition_checkpoints (its snapshot column is left empty); both are written in one transaction.
CREATE TABLE IF NOT EXISTS sla_ticket_states (
    topic     text    NOT NULL,
    partition integer NOT NULL,
    ticket_id uuid    NOT NULL,
    state     bytea   NOT NULL,
    PRIMARY KEY (topic, partition, ticket_id)
);
