-- Issue 19: the read models, each a projection with its own checkpoint (services/projector, docs/queries.md).
-- They replace ticket_summaries. A new projection starts at the beginning of the log: the projector fills
-- these tables from the whole event store when it starts.
DROP TABLE ticket_summaries;
DELETE FROM projection_checkpoints WHERE projection = 'ticket_summaries';

-- tickets: what list queries filter and sort on, and each ticket's document (served as it is).
CREATE TABLE ticket_list (
    ticket_id       uuid        PRIMARY KEY,
    desk_id         text        NOT NULL,
    track_id        text        NOT NULL,
    organisation_id text        NOT NULL,
    requester_id    text        NOT NULL,
    status          text        NOT NULL,
    priority        text        NOT NULL,
    priority_rank   smallint    NOT NULL,  -- 0 urgent .. 3 low
    category        text,
    queue_id        text,
    assignee        text,
    subject         text        NOT NULL,
    opened_at       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    sla_state       text        NOT NULL,
    sla_due_at      timestamptz,
    feature_outcome text,
    excluded        boolean     NOT NULL,
    position        bigint      NOT NULL,
    search          tsvector,  -- the conversation's words ('simple': no stemming, any language)
    due_sort        timestamptz GENERATED ALWAYS AS (coalesce(sla_due_at, '9999-12-31 00:00:00+00')) STORED
);
-- Every list query is scoped to desks; keyset pagination needs (sort key, ticket_id) in the index order.
CREATE INDEX ticket_list_opened ON ticket_list (desk_id, opened_at DESC, ticket_id DESC);
CREATE INDEX ticket_list_status ON ticket_list (desk_id, status, opened_at DESC, ticket_id DESC);
CREATE INDEX ticket_list_queue ON ticket_list (desk_id, queue_id, opened_at DESC, ticket_id DESC);
CREATE INDEX ticket_list_assignee ON ticket_list (desk_id, assignee, opened_at DESC, ticket_id DESC);
CREATE INDEX ticket_list_sla ON ticket_list (desk_id, sla_state, opened_at DESC, ticket_id DESC)
    WHERE sla_state <> 'none';
CREATE INDEX ticket_list_updated ON ticket_list (desk_id, updated_at DESC, ticket_id DESC);
CREATE INDEX ticket_list_priority ON ticket_list (desk_id, priority_rank, ticket_id);
CREATE INDEX ticket_list_due ON ticket_list (desk_id, due_sort, ticket_id);
CREATE INDEX ticket_list_search ON ticket_list USING gin (search);

CREATE TABLE ticket_details (
    ticket_id uuid  PRIMARY KEY,
    desk_id   text  NOT NULL,
    doc       jsonb NOT NULL  -- ticketflow.contracts.views.TicketDetail
);

-- queue_backlog: tickets that can still come back to a queue; the backlog is the ones in BACKLOG_STATUSES.
CREATE TABLE queue_backlog (
    ticket_id uuid        PRIMARY KEY,
    desk_id   text        NOT NULL,
    status    text        NOT NULL,
    priority  text        NOT NULL,
    queue_id  text,
    assignee  text,
    opened_at timestamptz NOT NULL
);
CREATE INDEX queue_backlog_waiting ON queue_backlog (desk_id, queue_id, priority, opened_at)
    WHERE status IN ('ready', 'routed', 'assigned', 'in_progress', 'waiting_on_customer');

-- sla_board: unfinished tickets (with their clocks, to follow the SLA events) and one row per pending clock.
CREATE TABLE sla_board_tickets (
    ticket_id      uuid  PRIMARY KEY,
    desk_id        text  NOT NULL,
    track_id       text  NOT NULL,
    calendar_track text  NOT NULL,
    status         text  NOT NULL,
    priority       text  NOT NULL,
    queue_id       text,
    assignee       text,
    clocks         jsonb NOT NULL
);
CREATE TABLE sla_board_clocks (
    ticket_id      uuid        NOT NULL,
    target         text        NOT NULL,
    desk_id        text        NOT NULL,
    calendar_track text        NOT NULL,
    priority       text        NOT NULL,
    queue_id       text,
    assignee       text,
    state          text        NOT NULL,  -- running or paused
    deadline       timestamptz,           -- null while paused
    breached       boolean     NOT NULL,
    warning_level  float8      NOT NULL,
    started_at     timestamptz NOT NULL,
    paused_at      timestamptz,
    policy_id      text        NOT NULL,
    target_seconds bigint      NOT NULL,
    PRIMARY KEY (ticket_id, target)
);
CREATE INDEX sla_board_at_risk ON sla_board_clocks (desk_id, deadline, ticket_id, target)
    WHERE state = 'running' AND NOT breached;
CREATE INDEX sla_board_breached ON sla_board_clocks (desk_id, deadline, ticket_id, target) WHERE breached;
CREATE INDEX sla_board_paused ON sla_board_clocks (desk_id, paused_at, ticket_id, target) WHERE state = 'paused';

-- agent_load: the roster, and the unfinished tickets whose assignee they count against.
CREATE TABLE agent_load (
    agent_id   text        PRIMARY KEY,
    status     text        NOT NULL,
    capacity   bigint      NOT NULL,
    queues     jsonb       NOT NULL,
    skills     jsonb       NOT NULL,
    languages  jsonb       NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE agent_load_tickets (
    ticket_id uuid PRIMARY KEY,
    desk_id   text NOT NULL,
    status    text NOT NULL,
    priority  text NOT NULL,
    queue_id  text,
    assignee  text
);
CREATE INDEX agent_load_held ON agent_load_tickets (desk_id, assignee)
    WHERE status IN ('assigned', 'in_progress', 'waiting_on_customer');

-- desk_metrics: per ticket, what the daily figures are made of (aggregated when asked).
CREATE TABLE desk_metric_tickets (
    ticket_id        uuid        PRIMARY KEY,
    desk_id          text        NOT NULL,
    calendar_track   text        NOT NULL,
    day              date        NOT NULL,  -- opened, in the desk's time zone
    opened_at        timestamptz NOT NULL,
    excluded         text,                  -- referred, duplicate, refused: not counted
    first_response_s bigint,                -- business seconds
    resolution_s     bigint,
    resolved         boolean     NOT NULL,
    reopened         boolean     NOT NULL,
    breaches         bigint      NOT NULL,
    targets_met      jsonb       NOT NULL,
    targets_breached jsonb       NOT NULL,
    targets_attained bigint      NOT NULL,
    targets_missed   bigint      NOT NULL
);
CREATE INDEX desk_metric_tickets_day ON desk_metric_tickets (desk_id, day);

-- organisation_register: every ticket of each customer organisation, with feature-request outcomes.
CREATE TABLE register_entries (
    ticket_id       uuid        PRIMARY KEY,
    desk_id         text        NOT NULL,
    organisation_id text        NOT NULL,
    requester_id    text        NOT NULL,
    requester_name  text        NOT NULL,
    subject         text        NOT NULL,
    category        text,
    status          text        NOT NULL,
    priority        text        NOT NULL,
    queue_id        text,
    assignee        text,
    opened_at       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    feature_outcome text,
    feature_reason  text        NOT NULL,
    outcome_by      text,
    outcome_at      timestamptz
);
CREATE INDEX register_entries_organisation ON register_entries (desk_id, organisation_id, opened_at DESC, ticket_id DESC);
CREATE TABLE register_organisations (
    desk_id          text   NOT NULL,
    organisation_id  text   NOT NULL,
    tickets          bigint NOT NULL,
    open             bigint NOT NULL,
    resolved         bigint NOT NULL,
    feature_requests bigint NOT NULL,
    in_sprint        bigint NOT NULL,
    planned          bigint NOT NULL,
    declined         bigint NOT NULL,
    PRIMARY KEY (desk_id, organisation_id)
);
