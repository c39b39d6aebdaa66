ALTER TABLE conversations ADD COLUMN last_guest_message_at timestamptz;
UPDATE conversations c SET last_guest_message_at = g.at
FROM (SELECT conversation_id, max(created_at) AS at FROM messages WHERE sender = 'guest' GROUP BY conversation_id) g
WHERE g.conversation_id = c.id;
DROP INDEX messages_guest_idx;
