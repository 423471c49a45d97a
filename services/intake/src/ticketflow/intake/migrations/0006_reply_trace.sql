-- The W3C trace context of the message that caused a reply: the reply relay puts it in the chat.replies
-- record's headers, so delivering the reply continues the message's trace (NULL: the message had none).
ALTER TABLE intake_replies ADD COLUMN traceparent text;
