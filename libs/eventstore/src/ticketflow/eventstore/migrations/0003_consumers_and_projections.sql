-- Idempotent consumers: (consumer, event id) is recorded in the same transaction as the effect.
CREATE TABLE processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Projection checkpoints into the global log: (transaction_id, position) of the last applied event.
CREATE TABLE projection_checkpoints (
    projection     text        PRIMARY KEY,
    transaction_id xid8        NOT NULL,
    position       bigint      NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
