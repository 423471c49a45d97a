-- Operators' commands (ops.commands) as the services executed them: one row per (service, command id),
-- claimed before the command is executed, so a command id is executed and answered once per service.
-- service '*' holds the records that are not a command (rejected once, by whichever service read it first).
CREATE TABLE ops_commands (
    service      text        NOT NULL,
    command_id   text        NOT NULL,
    command_type text        NOT NULL DEFAULT '',
    status       text        NOT NULL,
    instance     text        NOT NULL,
    reason       text        NOT NULL DEFAULT '',
    received_at  timestamptz NOT NULL DEFAULT now(),
    answered_at  timestamptz,
    PRIMARY KEY (service, command_id)
);

-- Where each service reads ops.commands from when an instance starts: past every record one of its
-- instances has seen (commands for other services included), so nothing is read twice.
CREATE TABLE ops_positions (
    service     text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (service, partition)
);
