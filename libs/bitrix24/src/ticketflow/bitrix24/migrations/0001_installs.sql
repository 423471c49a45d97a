-- Bitrix24 portals that installed one of the desks' applications, each verified with the application's
-- client secret at the OAuth server before anything was stored (ticketflow.bitrix24.verify). Written by
-- intake (install, update, uninstall), read by intake, notifications and preflight; the token columns are
-- changed only under this row's lock (one refresh at a time per portal: refresh tokens are single-use).
CREATE TABLE bitrix24_installs (
    member_id         text        PRIMARY KEY,
    client_id         text        NOT NULL,
    domain            text        NOT NULL,   -- host[:port] the OAuth server confirmed: the only address called
    application_token text        NOT NULL,   -- every later event of the portal must carry it
    access_token      text        NOT NULL,
    refresh_token     text        NOT NULL,
    access_expires_at timestamptz NOT NULL,
    token_generation  bigint      NOT NULL DEFAULT 1,
    refresh_failure   text,                   -- set when the OAuth server refused a refresh: reinstall needed
    bot_id            bigint,                 -- the chat bot registered at install (imbot.register)
    installed_at      timestamptz NOT NULL DEFAULT now(),
    refreshed_at      timestamptz NOT NULL DEFAULT now()
);
