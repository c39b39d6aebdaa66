-- Migration 8's change of attachments.content to its own type, which dropped its statistics,
-- also set its storage back to the type's default (EXTENDED), undoing migration 2's EXTERNAL:
-- PostgreSQL then tried to compress every upload and decompressed it on every download.
-- Images and PDFs are compressed already, so the bytes are again stored out of line as they
-- come. Files stored meanwhile keep the form they were stored in until they are deleted; the
-- change rewrites nothing.
ALTER TABLE attachments ALTER COLUMN content SET STORAGE EXTERNAL;
