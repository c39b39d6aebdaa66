package postgres

import (
	"context"
	"database/sql/driver"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
)

// purgeLockKey names the session advisory lock that lets one replica purge at a time.
const purgeLockKey int64 = 0x6d73_6770_7572_6765 // "msgpurge"

const tryPurgeLockSQL = `SELECT pg_try_advisory_lock($1)`

const purgeUnlockSQL = `SELECT pg_advisory_unlock($1)`

// TryPurgeLock takes the purge lock on a connection of its own and reports whether it got it:
// false means another replica is purging. release returns the lock and the connection; should
// unlocking fail, the connection is discarded, which ends its session and with it the lock.
// A connection that turns out dead is replaced, up to twice: database/sql does that for
// statements on the pool, never on a held connection, and the pool keeps the purge's
// connections idle between passes, through a restart of the server (found by review: the two
// passes after one failed). Errors: messaging.ErrUnavailable.
func (s *Store) TryPurgeLock(ctx context.Context) (release func(), ok bool, err error) {
	var conn *sqlx.Conn
	for attempt := 1; ; attempt++ {
		if conn, err = s.db.Connx(ctx); err != nil {
			return nil, false, translate(err)
		}
		err = conn.GetContext(ctx, &ok, tryPurgeLockSQL, purgeLockKey)
		if err == nil {
			break
		}
		_ = discard(conn) // the lock may have been taken before the error: end the session
		if !errors.Is(err, driver.ErrBadConn) || attempt == 3 {
			return nil, false, translate(err)
		}
	}
	if !ok {
		_ = conn.Close()
		return nil, false, nil
	}
	return func() {
		// Not the pass's context: it may be cancelled already, and the lock must go regardless.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(ctx, purgeUnlockSQL, purgeLockKey); err != nil {
			_ = discard(conn) // ends the session, and the lock with it
			return
		}
		_ = conn.Close()
	}, true, nil
}

// expiredConversationsSQL walks conversations_stay_end_idx from the oldest stay end.
const expiredConversationsSQL = `
SELECT id
FROM conversations
WHERE stay_end <= $1
ORDER BY stay_end
LIMIT $2`

// ExpiredConversations returns up to limit ids of conversations whose stay end is at or before
// cutoff, oldest stay end first. Errors: messaging.ErrUnavailable.
func (s *Store) ExpiredConversations(ctx context.Context, cutoff time.Time, limit int) ([]uuid.UUID, error) {
	return s.uuids(ctx, expiredConversationsSQL, cutoff, limit)
}

// lockExpiredSQL locks, of the conversations $1, those still at or before the cutoff $2, FOR
// SHARE: a concurrent PUT of the reservation, or a change of the accommodation's owner (which the
// foreign key carries to the conversation row), is then waited for, or waits for the purge's
// transaction.
const lockExpiredSQL = `
SELECT id FROM conversations WHERE id = ANY($1::uuid[]) AND stay_end <= $2 ORDER BY id FOR SHARE`

// purgeMessagesSQL deletes at most $3 messages of the conversations $1 that are still at or
// before the cutoff $2, with their queue entries and the Idempotency-Key records that answer
// them: a record goes in the same transaction as its message, so that a replay never answers
// the id of a deleted message, and a change of the reservation that takes the conversation out
// of the purge's reach between two batches never leaves a message without its record (a
// replay would store it again). The queue is indexed by partner first, so the
// entries are found by their primary key: the conversation's current property and guest
// partners are the only partners that can hold them, because a change of either moves the queue
// in the same transaction. It must run on a snapshot taken after lockExpiredSQL: a change of
// partner that it waited for committed the new partner's entries after the lock was asked for,
// and a statement whose snapshot predates them would read the new partner from the locked row
// but not see its entries, and leave them behind for good.
const purgeMessagesSQL = `
WITH doomed AS (
    SELECT m.seq, m.id, c.property_partner_id, c.guest_partner_id
    FROM conversations c
    CROSS JOIN LATERAL (
        SELECT seq, id FROM messages WHERE conversation_id = c.id ORDER BY seq LIMIT $3
    ) m
    WHERE c.id = ANY($1::uuid[]) AND c.stay_end <= $2
    LIMIT $3
), keys AS (
    DELETE FROM idempotency_keys k
    WHERE k.conversation_id = ANY($1::uuid[]) AND k.message_id IN (SELECT id FROM doomed)
    RETURNING 1
), queued AS (
    DELETE FROM deliveries d
    USING doomed x, LATERAL (VALUES (x.property_partner_id), (x.guest_partner_id)) AS p (partner_id)
    WHERE d.partner_id = p.partner_id AND d.seq = x.seq
    RETURNING 1
), gone AS (
    DELETE FROM messages m
    USING doomed x
    WHERE m.seq = x.seq
    RETURNING 1
)
SELECT (SELECT count(*) FROM gone) AS messages, (SELECT count(*) FROM queued) AS deliveries,
    (SELECT count(*) FROM keys) AS keys`

// PurgeMessages deletes at most limit messages, with their queue entries and Idempotency-Key
// records, of the conversations ids whose stay end is still at or before cutoff, in one
// transaction of two statements: the lock, then the deletes. It returns how many of each it
// deleted. Errors: messaging.ErrUnavailable.
func (s *Store) PurgeMessages(ctx context.Context, ids []uuid.UUID, cutoff time.Time, limit int) (messages, deliveries, keys int, err error) {
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		var locked []uuid.UUID
		if err := tx.SelectContext(ctx, &locked, lockExpiredSQL, uuidArray(ids), cutoff); err != nil || len(locked) == 0 {
			return err
		}
		return tx.QueryRowxContext(ctx, purgeMessagesSQL, uuidArray(locked), cutoff, limit).Scan(&messages, &deliveries, &keys)
	})
	return messages, deliveries, keys, err
}

const purgeConversationKeysSQL = `
WITH doomed AS (
    SELECT k.partner_id, k.key
    FROM idempotency_keys k
    JOIN conversations c ON c.id = k.conversation_id
    WHERE c.id = ANY($1::uuid[]) AND c.stay_end <= $2
    LIMIT $3
)
DELETE FROM idempotency_keys k
USING doomed x
WHERE k.partner_id = x.partner_id AND k.key = x.key`

// PurgeIdempotencyKeys deletes at most limit Idempotency-Key records of the conversations ids
// whose stay end is still at or before cutoff. Errors: messaging.ErrUnavailable.
func (s *Store) PurgeIdempotencyKeys(ctx context.Context, ids []uuid.UUID, cutoff time.Time, limit int) (int, error) {
	return s.exec(ctx, purgeConversationKeysSQL, uuidArray(ids), cutoff, limit)
}

const purgeConversationAttachmentsSQL = `
DELETE FROM attachments
WHERE id IN (
    SELECT a.id
    FROM attachments a
    JOIN conversations c ON c.id = a.conversation_id
    WHERE c.id = ANY($1::uuid[]) AND c.stay_end <= $2
    LIMIT $3)`

// PurgeAttachments deletes at most limit attachments of the conversations ids whose stay end is
// still at or before cutoff. Errors: messaging.ErrUnavailable.
func (s *Store) PurgeAttachments(ctx context.Context, ids []uuid.UUID, cutoff time.Time, limit int) (int, error) {
	return s.exec(ctx, purgeConversationAttachmentsSQL, uuidArray(ids), cutoff, limit)
}

// deleteConversationsSQL deletes only conversations the batches above emptied: a conversation
// that a racing send wrote to is left for the next pass. Rows that reference a conversation
// with ON DELETE CASCADE go with it. It must run on a snapshot taken after the rows were locked
// (lockDoomedSQL): a send holds its conversation row FOR SHARE until it commits, and a delete
// that waited for it on an older snapshot would not see its message, delete the row, and fail
// on the message's foreign key.
const deleteConversationsSQL = `
DELETE FROM conversations c
WHERE c.id = ANY($1::uuid[]) AND c.stay_end <= $2
  AND NOT EXISTS (SELECT FROM messages m WHERE m.conversation_id = c.id)
  AND NOT EXISTS (SELECT FROM idempotency_keys k WHERE k.conversation_id = c.id)
  AND NOT EXISTS (SELECT FROM attachments a WHERE a.conversation_id = c.id)`

// DeleteConversations deletes, of the conversations ids, those whose stay end is still at or
// before cutoff and that have no messages or Idempotency-Key records left: the reservation row
// with its participants. Errors: messaging.ErrUnavailable.
func (s *Store) DeleteConversations(ctx context.Context, ids []uuid.UUID, cutoff time.Time) (int, error) {
	var deleted int64
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var locked []uuid.UUID
		if err := tx.SelectContext(ctx, &locked, lockDoomedSQL, uuidArray(ids), cutoff); err != nil || len(locked) == 0 {
			return err
		}
		res, err := tx.ExecContext(ctx, deleteConversationsSQL, uuidArray(locked), cutoff)
		if err != nil {
			return err
		}
		deleted, err = res.RowsAffected()
		return err
	})
	return int(deleted), err
}

// lockDoomedSQL locks, of the conversations $1, those still at or before the cutoff $2, for the
// delete, in one order: it waits for the sends that hold them.
const lockDoomedSQL = `
SELECT id FROM conversations WHERE id = ANY($1::uuid[]) AND stay_end <= $2 ORDER BY id FOR UPDATE`

// parkUnreadableSQL walks the first $3 entries of guest partner $1's queue, as a latest page
// does, and moves those of conversations it can no longer read (stay end at or before $2) into
// the conversation's parked queue (parkedThrough). A latest page passes over such entries one by
// one, up to a year of them (the guest's read window is 66 days, retention 365), to find the
// readable ones behind them; a guest partner's queue gains them even when it confirms everything
// it is given, from the property's sends after the guest's window closed. The walk locks the
// conversation rows FOR SHARE, so that a change of guest partner or of the stay end comes
// wholly before or after it. The entries are deleted by primary key (joined to the walk, the
// planner hashed the whole queue table). It answers how many entries it parked and how many
// readable ones it passed.
const parkUnreadableSQL = `
WITH walk AS (
    SELECT d.seq, d.conversation_id, c.stay_end > $2 AS readable
    FROM deliveries d
    JOIN conversations c ON c.id = d.conversation_id
    WHERE d.partner_id = $1 AND c.guest_partner_id = $1
    ORDER BY d.seq
    LIMIT $3
    FOR SHARE OF c
), parked AS (
    DELETE FROM deliveries d
    WHERE d.partner_id = $1 AND d.seq = ANY (ARRAY(SELECT seq FROM walk WHERE NOT readable))
    RETURNING d.seq, d.conversation_id
), kept AS (
    INSERT INTO departed_queues (conversation_id, partner_id, through_seq, pending)
    SELECT conversation_id, $1, ` + parkedThrough + `, array_agg(seq ORDER BY seq)
    FROM parked
    GROUP BY conversation_id
    ON CONFLICT (conversation_id, partner_id) DO UPDATE
    SET pending = departed_queues.pending || EXCLUDED.pending
)
SELECT (SELECT count(*) FROM parked), (SELECT count(*) FROM walk WHERE readable)`

const guestPartnersSQL = `SELECT affiliate_id FROM partners WHERE kind = 'guest' ORDER BY affiliate_id`

// GuestPartners returns the affiliate ids of every guest partner. Errors:
// messaging.ErrUnavailable.
func (s *Store) GuestPartners(ctx context.Context) ([]int64, error) {
	var ids []int64
	err := s.db.SelectContext(ctx, &ids, guestPartnersSQL)
	return ids, translate(err)
}

// ParkUnreadable walks the first walk entries of guest partner partnerID's queue and parks those
// of conversations whose stay end is at or before readableAfter. It returns how many it parked
// and how many readable entries it passed. Errors: messaging.ErrUnavailable.
func (s *Store) ParkUnreadable(ctx context.Context, partnerID int64, readableAfter time.Time, walk int) (parked, readable int, err error) {
	err = s.db.QueryRowxContext(ctx, parkUnreadableSQL, partnerID, readableAfter, walk).Scan(&parked, &readable)
	return parked, readable, translate(err)
}

// UnparkReadable gives up to limit parked queues of conversations whose stay end is after
// readableAfter back to their guest partners, and returns how many. Errors:
// messaging.ErrUnavailable.
func (s *Store) UnparkReadable(ctx context.Context, readableAfter time.Time, limit int) (int, error) {
	var n int
	err := s.db.GetContext(ctx, &n, unparkReadableSQL, readableAfter, limit)
	return n, translate(err)
}

// deleteStaleKeysSQL skips records a send holds locked; a later pass takes them.
const deleteStaleKeysSQL = `
WITH doomed AS (
    SELECT partner_id, key
    FROM idempotency_keys
    WHERE created_at < $1
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
DELETE FROM idempotency_keys k
USING doomed x
WHERE k.partner_id = x.partner_id AND k.key = x.key`

// DeleteIdempotencyKeysBefore deletes at most limit Idempotency-Key records created before
// cutoff. Errors: messaging.ErrUnavailable.
func (s *Store) DeleteIdempotencyKeysBefore(ctx context.Context, cutoff time.Time, limit int) (int, error) {
	return s.exec(ctx, deleteStaleKeysSQL, cutoff, limit)
}

// exec runs one statement on the pool and returns the number of rows it affected.
func (s *Store) exec(ctx context.Context, query string, args ...any) (int, error) {
	res, err := s.db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, translate(err)
	}
	n, err := res.RowsAffected()
	return int(n), translate(err)
}
