-- Open bug reports and feature requests per organisation, for duplicate checks before filing
-- (eXpress seed: "is this already filed?"). Rows are removed when a ticket closes.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE preflight_open_tickets (
    ticket_id       uuid        PRIMARY KEY,
    organisation_id text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('bug', 'feature')),
    title           text        NOT NULL,
    body            text        NOT NULL,
    -- What similarity() compares: lower-cased once, at write time.
    search_text     text        GENERATED ALWAYS AS (lower(title || ' ' || body)) STORED,
    opened_at       timestamptz NOT NULL DEFAULT now()
);

-- The trigram index serves the % operator; the filter on (organisation_id, kind) is an equality
-- predicate checked on the rows the index returns.
CREATE INDEX preflight_open_tickets_trgm ON preflight_open_tickets USING gin (search_text gin_trgm_ops);
CREATE INDEX preflight_open_tickets_org_kind ON preflight_open_tickets (organisation_id, kind);
