-- When the guest last wrote (which extends the property's send window) is read from the guest's
-- messages through this index, one descent to the newest, instead of being kept on the
-- conversation row: updating that row in every guest send cost PostgreSQL more than the send's
-- insert did, and it locked a row that every concurrent send to the conversation also locks for
-- its foreign key. Building the index reads every message once, holding off writes to messages
-- while it does.
CREATE INDEX messages_guest_idx ON messages (conversation_id, created_at) WHERE sender = 'guest';
ALTER TABLE conversations DROP COLUMN last_guest_message_at;
