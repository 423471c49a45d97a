-- Transactional outbox: written in the same transaction as the events; the relay publishes
-- rows to Kafka and deletes them (= marks them sent). A crash in between republishes: at-least-once.
CREATE TABLE outbox (
    position   bigint      PRIMARY KEY,  -- the event's position (no FK: a lookup per event; written together)
    topic      text        NOT NULL,
    key        bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
