-- Files uploaded to a conversation (see internal/messaging/attachments.go). The bytes live in
-- this table of their own, so that no message query ever reads them; messages refer to
-- attachments by id in messages.attachments. An attachment goes with its conversation.
-- referenced_at is set, in the same statement, by the first message that references the
-- attachment; uploads that never get one are deleted by the orphan purge.
CREATE TABLE attachments (
    id              uuid        PRIMARY KEY,
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    uploader_id     bigint      NOT NULL REFERENCES partners (affiliate_id),
    file_name       text        NOT NULL,
    file_type       text        NOT NULL,
    file_size       bigint      NOT NULL CHECK (file_size > 0),
    sha256          bytea       NOT NULL CHECK (length(sha256) = 32),
    content         bytea       NOT NULL,
    created_at      timestamptz NOT NULL,
    referenced_at   timestamptz,
    CHECK (length(content) = file_size)
);
CREATE INDEX attachments_conversation_idx ON attachments (conversation_id);
CREATE INDEX attachments_orphans_idx ON attachments (created_at) WHERE referenced_at IS NULL;

-- Images and PDFs are compressed already: store them out of line without trying to compress.
ALTER TABLE attachments ALTER COLUMN content SET STORAGE EXTERNAL;
