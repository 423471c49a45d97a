-- notifications 0002: outcomes nobody knows, and which workers are alive (issue 16, item 4).
--
-- 'unknown': a request left and no answer says whether the platform acted on it (no answer before the
-- attempt's deadline, a connection lost after sending, a worker that stopped mid-send) on a channel
-- that cannot drop a duplicate (eXpress, Bitrix24). It is never sent again automatically: an agent sees
-- NotificationOutcomeUnknown on the ticket, checks the chat, and an operator redrives it if it did not
-- arrive (`python -m ticketflow.notifications.redrive --key K`).
ALTER TABLE notification_deliveries DROP CONSTRAINT IF EXISTS notification_deliveries_status_check;
ALTER TABLE notification_deliveries ADD CONSTRAINT notification_deliveries_status_check
    CHECK (status IN ('sending', 'delivered', 'dead', 'unknown'));
CREATE INDEX IF NOT EXISTS notification_deliveries_unknown
    ON notification_deliveries (updated_at) WHERE status = 'unknown';

-- Workers that announce their liveness: such a worker is alive while a session holds its lock,
-- pg_advisory_lock(7242005, hashtext(claimant)). A claim of a registered worker whose lock nobody holds
-- (the process was killed) is taken over at once instead of after its lease. Claims of workers not
-- registered here (tools, older versions) wait for their lease as before.
CREATE TABLE IF NOT EXISTS notification_workers (
    claimant   text        PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now()
);

-- Whether a worker's claims may be taken over at once: it registered, and no session holds its lock.
CREATE OR REPLACE FUNCTION notification_worker_gone(worker text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT FROM notification_workers w WHERE w.claimant = worker)
       AND NOT EXISTS (SELECT FROM pg_locks l
                        WHERE l.locktype = 'advisory' AND l.classid = 7242005
                          AND l.objid = hashtext(worker)::oid AND l.objsubid = 2 AND l.granted)
$$;
