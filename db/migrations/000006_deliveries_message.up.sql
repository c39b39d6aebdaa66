-- A queue entry carries its message's public id and its conversation, so that a confirm finds
-- each entry in one descent of (partner_id, message_id) and reads the conversation's window by
-- its primary key, without looking every message up through messages_id_key first. Both facts
-- are fixed for the life of a message, so no change of reservation or accommodation rewrites
-- them. Filling the columns rewrites every queue entry once; an entry whose message is gone
-- could never be delivered (every read joins messages), so it is dropped.
ALTER TABLE deliveries ADD COLUMN message_id uuid, ADD COLUMN conversation_id uuid;
UPDATE deliveries d SET message_id = m.id, conversation_id = m.conversation_id
FROM messages m WHERE m.seq = d.seq;
DELETE FROM deliveries WHERE message_id IS NULL;
ALTER TABLE deliveries
    ALTER COLUMN message_id SET NOT NULL,
    ALTER COLUMN conversation_id SET NOT NULL;
CREATE UNIQUE INDEX deliveries_message_key ON deliveries (partner_id, message_id);
