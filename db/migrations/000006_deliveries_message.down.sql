DROP INDEX deliveries_message_key;
ALTER TABLE deliveries DROP COLUMN message_id, DROP COLUMN conversation_id;
