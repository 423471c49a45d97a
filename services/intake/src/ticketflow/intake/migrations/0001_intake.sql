-- Intake's own tables. They are written in the same transaction as the ticket events they explain,
-- so "this platform message was handled" and "its events are stored" commit together or not at all.

-- The ticket a conversation currently talks to (platform:tenant:conversation -> ticket).
CREATE TABLE intake_conversations (
    conversation_key text        PRIMARY KEY,
    platform         text        NOT NULL,
    tenant_id        text        NOT NULL,
    conversation_id  text        NOT NULL,
    ticket_id        uuid,
    tickets_opened   integer     NOT NULL DEFAULT 0,
    messages_seen    bigint      NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- One row per platform message ever handled: the idempotency key (platform:tenant:message id)
-- is the primary key, so a retried, reordered or concurrent delivery can never have a second effect.
CREATE TABLE intake_messages (
    idempotency_key  text        PRIMARY KEY,
    conversation_key text        NOT NULL,
    ticket_id        uuid,
    outcome          text        NOT NULL,
    delivery_id      text,
    received_at      timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX intake_messages_ticket ON intake_messages (ticket_id);

-- Replies the bot owes a chat (self-help hints, /status answers), queued with the decision that
-- caused them; a sender (notifications) delivers them and sets sent_at.
CREATE TABLE intake_replies (
    reply_id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key  text        NOT NULL REFERENCES intake_messages (idempotency_key),
    platform         text        NOT NULL,
    tenant_id        text        NOT NULL,
    conversation_id  text        NOT NULL,
    reason           text        NOT NULL,
    body             text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX intake_replies_unsent ON intake_replies (reply_id) WHERE sent_at IS NULL;

-- Bitrix24 portals that installed the app: the application_token every later event must carry.
CREATE TABLE intake_bitrix24_portals (
    member_id         text        PRIMARY KEY,
    application_token text        NOT NULL,
    domain            text        NOT NULL DEFAULT '',
    client_endpoint   text        NOT NULL DEFAULT '',
    installed_at      timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    bot_deleted_at    timestamptz
);
