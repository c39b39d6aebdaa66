-- ANALYZE keeps samples of a column's values in pg_statistic (its most common values and its
-- histogram's bounds), and they stay there until the next ANALYZE of the table, long after the
-- purge has deleted the rows they came from. For the columns that hold what guests and
-- properties wrote (messages, guest names, file names and contents, the partners' own
-- Idempotency-Keys, reservation ids) no statistics are kept at all: no query filters on them
-- other than by a unique index, which needs none. Changing a column to its own type is what
-- drops the statistics already gathered; it rewrites neither the table nor its indexes.
ALTER TABLE messages
    ALTER COLUMN content SET STATISTICS 0, ALTER COLUMN content TYPE text;
ALTER TABLE conversations
    ALTER COLUMN reservation_id SET STATISTICS 0, ALTER COLUMN reservation_id TYPE text,
    ALTER COLUMN guest_name SET STATISTICS 0, ALTER COLUMN guest_name TYPE text;
ALTER TABLE attachments
    ALTER COLUMN file_name SET STATISTICS 0, ALTER COLUMN file_name TYPE text,
    ALTER COLUMN content SET STATISTICS 0, ALTER COLUMN content TYPE bytea;
ALTER TABLE idempotency_keys
    ALTER COLUMN key SET STATISTICS 0, ALTER COLUMN key TYPE text;
