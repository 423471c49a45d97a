-- The reply relay publishes unsent intake_replies to chat.replies. sent_at now means "done with": published,
-- or skipped with the reason in `skipped` (a reply older than the relay's max age is noise, not an answer).
ALTER TABLE intake_replies ADD COLUMN skipped text;
-- Replies queued before the relay existed were never meant to reach the chat days later.
UPDATE intake_replies SET sent_at = now(), skipped = 'queued before the reply relay existed' WHERE sent_at IS NULL;
