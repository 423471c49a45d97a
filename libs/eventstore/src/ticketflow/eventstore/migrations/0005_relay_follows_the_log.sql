-- The relay publishes the global log itself (ticketflow.messaging.relay), from a checkpoint it commits
-- in the same Kafka transaction as the records: no outbox row is written or deleted per event any more.
-- relay_origin is where a relay with no checkpoint in Kafka yet starts: just before the oldest event
-- still waiting in the outbox (the log's head when it was empty, the beginning of the log when there
-- were no events), so nothing queued before this migration is lost. Events after that point that an
-- older relay had already published are published once more after the upgrade; consumers dedupe them.
CREATE TABLE relay_origin (
    transaction_id xid8   NOT NULL,
    position       bigint NOT NULL
);
INSERT INTO relay_origin (transaction_id, position)
SELECT coalesce(
           (SELECT e.transaction_id FROM outbox o JOIN events e USING (position)
            ORDER BY e.transaction_id, e.position LIMIT 1),
           (SELECT max(transaction_id) FROM events),
           '0'::xid8),
       coalesce(
           (SELECT e.position - 1 FROM outbox o JOIN events e USING (position)
            ORDER BY e.transaction_id, e.position LIMIT 1),
           (SELECT max(position) FROM events),
           0);
DROP TABLE outbox;
