-- Issue 16: messages whose delivery outcome is unknown (NotificationOutcomeUnknown): a request left for
-- the chat and no answer said whether it arrived; it is not sent again automatically, the agent checks
-- the chat. Rebuild fills it for old events.
ALTER TABLE ticket_summaries ADD COLUMN notifications_unknown integer NOT NULL DEFAULT 0;
