-- Every calendar version SLA clocks were counted in (`name@hash`, see policies.DeskRules.calendar_version)
-- with the definition its hash is computed from (JSON: [desk time zone, calendar config]). After a desk
-- configuration change, time used before the change is counted in the old calendar, rebuilt from here.
-- `definition` is text, not jsonb: the hash is over these exact bytes. Rows are only ever added.
CREATE TABLE IF NOT EXISTS sla_calendar_versions (
    version    text        PRIMARY KEY,
    definition text        NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now()
);
