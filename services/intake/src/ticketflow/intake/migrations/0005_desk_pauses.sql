-- Desks whose intake an operator paused (ops.commands PauseIntake): a restarted intake stays paused.
CREATE TABLE intake_paused_desks (
    desk_id    text        PRIMARY KEY,
    paused_by  text        NOT NULL,
    command_id text        NOT NULL,
    paused_at  timestamptz NOT NULL DEFAULT now()
);

-- Chat messages of a paused desk, held until ResumeIntake records them, in the order they came.
CREATE TABLE intake_held_messages (
    held_id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    desk_id         text        NOT NULL,
    idempotency_key text        NOT NULL UNIQUE,
    message         bytea       NOT NULL,
    held_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX intake_held_messages_desk ON intake_held_messages (desk_id, held_id);
