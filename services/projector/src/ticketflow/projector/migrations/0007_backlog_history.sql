-- Issue 20: the backlog's history, a projection with its own checkpoint (services/projector,
-- domain/backlog_history.py). A new projection starts at the beginning of the log: the projector fills these
-- tables from the whole event store when it starts.

-- Each unfinished ticket's lifecycle facts, to see it enter and leave a queue's backlog.
CREATE TABLE backlog_history_tickets (
    ticket_id uuid PRIMARY KEY,
    desk_id   text NOT NULL,
    status    text NOT NULL,
    priority  text NOT NULL,
    queue_id  text,
    assignee  text
);

-- Per desk, queue ('' : waiting for routing) and UTC hour (of the events' own times): tickets that entered
-- and exited the backlog. The backlog at the end of an hour is the sum of entered - exited up to it.
CREATE TABLE backlog_hours (
    desk_id  text        NOT NULL,
    queue_id text        NOT NULL,
    hour     timestamptz NOT NULL,
    entered  bigint      NOT NULL,
    exited   bigint      NOT NULL,
    PRIMARY KEY (desk_id, queue_id, hour)
);
CREATE INDEX backlog_hours_desk_hour ON backlog_hours (desk_id, hour);
