-- notifications 0001: the delivery ledger.
-- One row per idempotency key (event id, recipient, channel). It is claimed before anything is
-- sent, so a redelivered event finds the row and sends nothing new; dead letters stay here, with
-- everything needed to render and send them again (redrive).
CREATE TABLE IF NOT EXISTS notification_deliveries (
    idempotency_key     text        PRIMARY KEY,
    event_id            text        NOT NULL,
    recipient           text        NOT NULL,
    channel             text        NOT NULL,
    destination         text        NOT NULL,
    address             text,
    template            text        NOT NULL,
    locale              text        NOT NULL,
    variables           jsonb       NOT NULL,
    status              text        NOT NULL CHECK (status IN ('sending', 'delivered', 'dead')),
    attempts            integer     NOT NULL DEFAULT 0,
    -- the worker holding the claim, and until when; an expired lease may be taken over
    claimed_by          text,
    lease_until         timestamptz,
    -- set just before a network call and cleared when its result is recorded: a row found with
    -- it set and an expired lease means a worker stopped mid-send, so the outcome is unknown
    sending_since       timestamptz,
    provider_message_id text,
    last_error          text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    delivered_at        timestamptz
);

CREATE INDEX IF NOT EXISTS notification_deliveries_dead
    ON notification_deliveries (updated_at) WHERE status = 'dead';
CREATE INDEX IF NOT EXISTS notification_deliveries_stale
    ON notification_deliveries (lease_until) WHERE status = 'sending';
CREATE INDEX IF NOT EXISTS notification_deliveries_event
    ON notification_deliveries (event_id);
