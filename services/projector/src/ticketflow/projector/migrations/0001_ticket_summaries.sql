-- The dashboard read model: one row per ticket, rebuilt from the event store at any time.
CREATE TABLE ticket_summaries (
    ticket_id         uuid PRIMARY KEY,
    desk_id           text        NOT NULL,
    track_id          text        NOT NULL,
    platform          text        NOT NULL,
    requester_id      text        NOT NULL,
    status            text        NOT NULL,
    priority          text        NOT NULL,
    category          text,
    queue_id          text,
    assignee          text,
    customer_messages integer     NOT NULL DEFAULT 0,
    agent_replies     integer     NOT NULL DEFAULT 0,
    reopen_count      integer     NOT NULL DEFAULT 0,
    sla_excluded      boolean     NOT NULL DEFAULT false,
    sla_warnings      integer     NOT NULL DEFAULT 0,
    sla_breaches      integer     NOT NULL DEFAULT 0,
    notifications_failed integer  NOT NULL DEFAULT 0,
    opened_at         timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    last_position     bigint      NOT NULL
);
CREATE INDEX ticket_summaries_desk_status ON ticket_summaries (desk_id, status);
CREATE INDEX ticket_summaries_assignee ON ticket_summaries (assignee) WHERE assignee IS NOT NULL;
