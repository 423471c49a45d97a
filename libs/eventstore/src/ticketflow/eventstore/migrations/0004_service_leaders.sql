-- Leader election with fencing (ticketflow.eventstore.leadership): one row per service whose writes
-- must be serial (routing). The advisory lock says who leads; the epoch fences a leader that lost it.
CREATE TABLE service_leaders (
    name   text        PRIMARY KEY,
    epoch  bigint      NOT NULL,
    holder text        NOT NULL,
    since  timestamptz NOT NULL DEFAULT now()
);
