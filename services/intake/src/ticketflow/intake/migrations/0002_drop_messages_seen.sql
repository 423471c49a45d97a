-- The per-conversation message counter cost an upsert of every conversation in every batch;
-- intake_messages already holds one row per message. Conversation rows now change only when a ticket opens.
ALTER TABLE intake_conversations DROP COLUMN messages_seen;
