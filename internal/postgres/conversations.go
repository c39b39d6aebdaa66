package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/guestmsg/messaging/internal/messaging"
)

// conversationColumns are the columns of conversationRow, for conversations c. When the guest
// last wrote is read from the guest's messages: one backward descent of messages_guest_idx
// (migration 000005).
const conversationColumns = `
c.id, c.reservation_id, c.accommodation_id, COALESCE(c.guest_partner_id, 0) AS guest_partner_id,
COALESCE(c.guest_name, '') AS guest_name, c.checkin, c.checkout, c.status, c.cancelled_at,
c.stay_end, c.guest_participant_id, c.property_participant_id,
(SELECT max(g.created_at) FROM messages g WHERE g.conversation_id = c.id AND g.sender = 'guest') AS last_guest_message_at,
COALESCE(c.property_name, '') AS accommodation_name, c.property_partner_id`

type conversationRow struct {
	ID                    uuid.UUID    `db:"id"`
	ReservationID         string       `db:"reservation_id"`
	AccommodationID       int64        `db:"accommodation_id"`
	GuestPartnerID        int64        `db:"guest_partner_id"`
	GuestName             string       `db:"guest_name"`
	Checkin               time.Time    `db:"checkin"`
	Checkout              time.Time    `db:"checkout"`
	Status                string       `db:"status"`
	CancelledAt           sql.NullTime `db:"cancelled_at"`
	StayEnd               time.Time    `db:"stay_end"`
	GuestParticipantID    uuid.UUID    `db:"guest_participant_id"`
	PropertyParticipantID uuid.UUID    `db:"property_participant_id"`
	LastGuestMessageAt    sql.NullTime `db:"last_guest_message_at"`
	AccommodationName     string       `db:"accommodation_name"`
	PropertyPartnerID     int64        `db:"property_partner_id"`
}

func (r conversationRow) domain() messaging.Conversation {
	c := messaging.Conversation{
		ID: r.ID,
		Reservation: messaging.Reservation{
			ID: r.ReservationID, AccommodationID: r.AccommodationID, GuestPartnerID: r.GuestPartnerID,
			GuestName: r.GuestName, Checkin: r.Checkin.UTC(), Checkout: r.Checkout.UTC(), Status: r.Status,
		},
		AccommodationName:     r.AccommodationName,
		PropertyPartnerID:     r.PropertyPartnerID,
		GuestParticipantID:    r.GuestParticipantID,
		PropertyParticipantID: r.PropertyParticipantID,
		StayEnd:               r.StayEnd.UTC(),
	}
	if r.CancelledAt.Valid {
		c.Reservation.CancelledAt = r.CancelledAt.Time.UTC()
	}
	if r.LastGuestMessageAt.Valid {
		c.LastGuestMessageAt = r.LastGuestMessageAt.Time.UTC()
	}
	return c
}

// The hot statements check the caller's key as part of their work (see messaging.Caller):
// they find nothing when the key has been revoked.
const conversationsSQL = `
SELECT ` + conversationColumns + `
FROM conversations c
WHERE c.accommodation_id = $1 AND (c.id = $2 OR c.reservation_id = $3)
  AND EXISTS (SELECT FROM api_keys WHERE secret_hash = $4 AND revoked_at IS NULL)`

// Conversations returns the accommodation's conversations named by id or reservation, none
// when keyHash is not an unrevoked key's. Errors: messaging.ErrUnavailable.
func (s *Store) Conversations(ctx context.Context, keyHash []byte, ref messaging.ConversationRef) ([]messaging.Conversation, error) {
	rows, err := s.q(ctx, conversationsSQL).QueryxContext(ctx, ref.AccommodationID, ref.ConversationID, ref.ReservationID, keyHash)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []messaging.Conversation
	for rows.Next() {
		var r conversationRow
		if err := rows.StructScan(&r); err != nil {
			return nil, translate(err)
		}
		out = append(out, r.domain())
	}
	return out, translate(rows.Err())
}

// shareAccommodationSQL takes the accommodation's owner and name for the conversation's
// property_partner_id and property_name. Its lock holds off PutAccommodation, which locks the
// row FOR UPDATE before it changes either, until the transaction ends, so neither value can go
// stale before the conversation is written.
const shareAccommodationSQL = `
SELECT partner_id, name FROM accommodations WHERE id = $1 FOR KEY SHARE`

const lockReservationSQL = `
SELECT COALESCE(guest_partner_id, 0) FROM conversations WHERE reservation_id = $1 FOR UPDATE`

const insertReservationSQL = `
WITH up AS (
    INSERT INTO conversations (
        id, reservation_id, accommodation_id, guest_partner_id, guest_name, checkin, checkout,
        status, cancelled_at, stay_end, guest_participant_id, property_participant_id,
        created_at, updated_at, property_partner_id, property_name)
    VALUES ($1, $2, $3, NULLIF($4::bigint, 0), NULLIF($5, ''), $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15)
    ON CONFLICT (reservation_id) DO NOTHING
    RETURNING *
)
SELECT ` + conversationColumns + `
FROM up c`

// updateReservationSQL never moves a reservation to another accommodation: it then updates
// and returns nothing.
const updateReservationSQL = `
WITH up AS (
    UPDATE conversations
    SET guest_partner_id = NULLIF($3::bigint, 0), guest_name = NULLIF($4, ''), checkin = $5, checkout = $6,
        status = $7, cancelled_at = $8, stay_end = $9, updated_at = $10, property_name = $11
    WHERE reservation_id = $1 AND accommodation_id = $2
    RETURNING *
)
SELECT ` + conversationColumns + `
FROM up c`

// A change of a reservation's guest partner, or of an accommodation's owner, moves the queue
// entries of the conversations concerned (those of c matching a condition on $1) from the
// partner losing them to the one gaining them ($2 in both), in the transaction that makes the
// change, after it has updated or locked the conversation rows: a concurrent send holds the
// row FOR SHARE, so every message of those conversations is committed by then, or will be
// queued for the new partners.
//
// The partner losing a conversation keeps, in departed_queues, the conversation's newest message
// then and the messages its queue still held unconfirmed; the one gaining it receives, if it had
// it before, those and every message sent since, and otherwise the whole history. So a message
// a partner confirmed never comes back, not even after a guest partner detached and attached
// again, or an accommodation sold and bought back.
func dequeueSQL(match string) string {
	return `
WITH gone AS (
    DELETE FROM deliveries d
    USING messages m, conversations c
    WHERE d.partner_id = $2 AND d.seq = m.seq AND m.conversation_id = c.id AND ` + match + `
    RETURNING d.seq, d.conversation_id
)
INSERT INTO departed_queues (conversation_id, partner_id, through_seq, pending)
SELECT c.id, $2, COALESCE(newest.seq, 0), COALESCE(g.pending, '{}')
FROM conversations c
CROSS JOIN LATERAL (SELECT max(seq) AS seq FROM messages WHERE conversation_id = c.id) newest
LEFT JOIN (SELECT conversation_id, array_agg(seq) AS pending FROM gone GROUP BY conversation_id) g
    ON g.conversation_id = c.id
WHERE ` + match + `
ON CONFLICT (conversation_id, partner_id) DO UPDATE
SET through_seq = EXCLUDED.through_seq, pending = departed_queues.pending || EXCLUDED.pending`
}

func enqueueSQL(match string) string {
	return `
WITH back AS (
    DELETE FROM departed_queues d
    USING conversations c
    WHERE d.partner_id = $2 AND d.conversation_id = c.id AND ` + match + `
    RETURNING d.conversation_id, d.through_seq, d.pending
)
INSERT INTO deliveries (partner_id, seq, message_id, conversation_id)
SELECT $2, m.seq, m.id, m.conversation_id
FROM conversations c
JOIN messages m ON m.conversation_id = c.id
LEFT JOIN back ON back.conversation_id = c.id
WHERE ` + match + `
  AND (back.conversation_id IS NULL OR m.seq > back.through_seq OR m.seq = ANY(back.pending))
ON CONFLICT DO NOTHING`
}

// parkedThrough is the through_seq of a parked queue: the entries of a conversation that its
// guest partner can no longer read, which the purge moves out of the partner's queue (see
// parkUnreadableSQL) and gives back when the conversation is readable again. Giving back such a
// row returns exactly its pending messages; those sent since are queued as usual. A parked
// queue is always its conversation's current guest partner's: a change of guest partner turns
// it into a departure (dequeueSQL adds the new pending messages and sets through_seq).
const parkedThrough = "9223372036854775807"

// unparkSQL gives the parked queues of the conversations in $1 (a query returning the
// (conversation_id, partner_id) keys of the rows) back to their guest partners, and counts the
// rows. Each conversation row is locked FOR SHARE, so that a change of guest partner, which
// moves the queue and locks the row FOR UPDATE, comes wholly before or after it.
func unparkSQL(keys string) string {
	return `
WITH back AS (
    DELETE FROM departed_queues d
    USING (` + keys + `) x
    WHERE d.conversation_id = x.conversation_id AND d.partner_id = x.partner_id
    RETURNING d.conversation_id, d.partner_id, d.pending
), queued AS (
    INSERT INTO deliveries (partner_id, seq, message_id, conversation_id)
    SELECT back.partner_id, m.seq, m.id, m.conversation_id
    FROM back CROSS JOIN LATERAL unnest(back.pending) AS p (seq)
    JOIN messages m ON m.seq = p.seq
    ON CONFLICT DO NOTHING
)
SELECT count(*) FROM back`
}

const parkedKeys = `
    SELECT q.conversation_id, q.partner_id
    FROM departed_queues q
    JOIN conversations c ON c.id = q.conversation_id
    WHERE q.partner_id = c.guest_partner_id AND q.through_seq = ` + parkedThrough

var (
	// unparkConversationSQL gives back the parked queue of conversation $1, whatever its
	// windows: a reservation's change moves them at once, and the purge parks the queue again
	// if it is still unreadable.
	unparkConversationSQL = unparkSQL(parkedKeys + ` AND c.id = $1 FOR SHARE OF c`)
	// unparkReadableSQL gives back up to $2 parked queues of conversations whose stay end is
	// after $1: readable by their guest partners again, after GUEST_WINDOW_DAYS was raised.
	unparkReadableSQL = unparkSQL(parkedKeys + ` AND c.stay_end > $1 LIMIT $2 FOR SHARE OF c`)
)

var (
	dequeueConversationSQL  = dequeueSQL("c.id = $1")
	enqueueConversationSQL  = enqueueSQL("c.id = $1")
	dequeueAccommodationSQL = dequeueSQL("c.accommodation_id = $1")
	enqueueAccommodationSQL = enqueueSQL("c.accommodation_id = $1")
)

// PutReservation creates or updates a reservation with its conversation, whose ids are taken
// from c only on creation. A change of guest partner moves the conversation's queue entries
// between the two guest partners' queues in the same transaction (dequeueSQL); any other change
// gives the guest partner back its parked queue (unparkConversationSQL).
// The conversation's property partner and name are the accommodation's, read under lock.
// Errors: messaging.ErrConflict (registered at another accommodation), messaging.ErrNotFound (no
// such accommodation), messaging.ErrUnavailable.
func (s *Store) PutReservation(ctx context.Context, c messaging.Conversation, now time.Time) (messaging.Conversation, error) {
	r := c.Reservation
	var cancelledAt sql.NullTime
	if !r.CancelledAt.IsZero() {
		cancelledAt = sql.NullTime{Time: r.CancelledAt, Valid: true}
	}
	var row conversationRow
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var acc struct {
			Owner int64          `db:"partner_id"`
			Name  sql.NullString `db:"name"`
		}
		if err := tx.GetContext(ctx, &acc, shareAccommodationSQL, r.AccommodationID); err != nil {
			return err
		}
		var oldGuest int64
		created, err := lockOrInsert(
			func() error { return tx.GetContext(ctx, &oldGuest, lockReservationSQL, r.ID) },
			func() error {
				return tx.GetContext(ctx, &row, insertReservationSQL,
					c.ID, r.ID, r.AccommodationID, r.GuestPartnerID, r.GuestName, r.Checkin, r.Checkout, r.Status,
					cancelledAt, c.StayEnd, c.GuestParticipantID, c.PropertyParticipantID, now, acc.Owner, acc.Name)
			})
		if err != nil || created {
			return err
		}
		err = tx.GetContext(ctx, &row, updateReservationSQL, r.ID, r.AccommodationID, r.GuestPartnerID, r.GuestName,
			r.Checkin, r.Checkout, r.Status, cancelledAt, c.StayEnd, now, acc.Name)
		if errors.Is(err, sql.ErrNoRows) {
			return messaging.ErrConflict
		}
		if err != nil {
			return err
		}
		if oldGuest == r.GuestPartnerID {
			if oldGuest != 0 {
				_, err = tx.ExecContext(ctx, unparkConversationSQL, row.ID)
			}
			return err
		}
		if oldGuest != 0 {
			if _, err := tx.ExecContext(ctx, dequeueConversationSQL, row.ID, oldGuest); err != nil {
				return err
			}
		}
		if r.GuestPartnerID != 0 {
			_, err = tx.ExecContext(ctx, enqueueConversationSQL, row.ID, r.GuestPartnerID)
		}
		return err
	})
	if err != nil {
		return messaging.Conversation{}, err
	}
	return row.domain(), nil
}

// parseUUIDArray converts a uuid[] column to ids; an empty array is an empty, non-nil slice.
func parseUUIDArray(a pq.StringArray) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, len(a))
	for i, s := range a {
		var err error
		if ids[i], err = uuid.Parse(s); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

func uuidArray(ids []uuid.UUID) pq.StringArray {
	out := make(pq.StringArray, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

const messagesSQL = `
SELECT uuid_send(id), sender, content, attachments, timestamptz_send(created_at)
FROM messages
WHERE conversation_id = $1
ORDER BY seq`

// Messages returns a conversation's messages, oldest first, scanned straight into the domain's
// fields like Pending. Errors: messaging.ErrUnavailable.
func (s *Store) Messages(ctx context.Context, conversationID uuid.UUID) ([]messaging.Message, error) {
	rows, err := s.q(ctx, messagesSQL).QueryxContext(ctx, conversationID)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	out := []messaging.Message{}
	var sender string
	var attachments pq.StringArray
	for rows.Next() {
		m := messaging.Message{ConversationID: conversationID}
		if err := rows.Scan(&m.ID, &sender, &m.Content, &attachments, sentTime{&m.CreatedAt}); err != nil {
			return nil, translate(err)
		}
		m.Sender = messaging.Side(sender)
		if m.Attachments, err = parseUUIDArray(attachments); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, translate(rows.Err())
}

const idempotencyRecordSQL = `
SELECT partner_id, key, request_hash, message_id, conversation_id, created_at
FROM idempotency_keys
WHERE partner_id = $1 AND key = $2`

type idempotencyRow struct {
	PartnerID      int64     `db:"partner_id"`
	Key            string    `db:"key"`
	RequestHash    []byte    `db:"request_hash"`
	MessageID      uuid.UUID `db:"message_id"`
	ConversationID uuid.UUID `db:"conversation_id"`
	CreatedAt      time.Time `db:"created_at"`
}

// awaitKeySQL waits for a send that claimed the partner's key $2 (insertMessageSQL's lock) to
// end, committed or not; at once when none holds it. It is a statement of its own, so that the
// record is read after the wait, with a snapshot that sees what that send stored.
const awaitKeySQL = `SELECT pg_advisory_xact_lock(hashint8($1), hashtext($2))`

// IdempotencyRecord returns the partner's record of key, once no send that claimed it is still
// running: a request that arrives while the first with its key is in flight gets the first
// one's answer (§5.1), even when it would itself be refused (the window closing between the
// two, say). Errors: messaging.ErrNotFound, messaging.ErrUnavailable.
func (s *Store) IdempotencyRecord(ctx context.Context, partnerID int64, key string) (messaging.IdempotencyRecord, error) {
	if _, err := s.db.ExecContext(ctx, awaitKeySQL, partnerID, key); err != nil {
		return messaging.IdempotencyRecord{}, translate(err)
	}
	var r idempotencyRow
	if err := s.q(ctx, idempotencyRecordSQL).QueryRowxContext(ctx, partnerID, key).StructScan(&r); err != nil {
		return messaging.IdempotencyRecord{}, translate(err)
	}
	return messaging.IdempotencyRecord(r), nil
}

// pendingSQL walks the partner's queue in order on its primary key and stops after at most
// pendingMaxRows rows, cut to $3 outside.
// The access test repeats what the queue already guarantees, as a second line of defence.
// The conversation row carries the property's name (migration 000004), so accommodations are
// not joined: that join was a fifth of PostgreSQL's CPU per page (557 against 447 µs, measured).
// The lateral subquery, kept apart by OFFSET 0, pins that plan: joined flat, the planner may
// instead collect every queued message of the partner's conversations and sort them, which
// costs in proportion to the queue and the history (12 ms instead of 0.5 ms at 100k messages).
// The walk's limit is a literal so that PostgreSQL keeps one generic plan of the prepared
// statement: with only LIMIT $3 it costs the generic plan for a tenth of the queue, finds it
// dearer than a plan for the actual 100, and plans the statement anew on every call (about
// 300 µs of its CPU per page, a third of the statement).
const pendingSQL = `
SELECT uuid_send(p.id), uuid_send(p.conversation_id), p.sender, p.content, p.attachments,
       timestamptz_send(p.created_at), p.reservation_id, p.accommodation_id,
       uuid_send(p.sender_participant_id), p.sender_name
FROM (
    SELECT d.seq, x.id, x.conversation_id, x.sender, x.content, x.attachments, x.created_at,
           x.reservation_id, x.accommodation_id, x.sender_participant_id, x.sender_name
    FROM deliveries d
    CROSS JOIN LATERAL (
        SELECT m.id, m.conversation_id, m.sender, m.content, m.attachments, m.created_at,
               c.reservation_id, c.accommodation_id,
               CASE WHEN m.sender = 'guest' THEN c.guest_participant_id ELSE c.property_participant_id END AS sender_participant_id,
               CASE WHEN m.sender = 'guest' THEN COALESCE(c.guest_name, '') ELSE COALESCE(c.property_name, '') END AS sender_name
        FROM messages m
        JOIN conversations c ON c.id = m.conversation_id
        WHERE m.seq = d.seq AND c.stay_end > $2 AND (c.property_partner_id = $1 OR c.guest_partner_id = $1)
        OFFSET 0
    ) x
    WHERE d.partner_id = $1
      AND EXISTS (SELECT FROM api_keys WHERE secret_hash = $4 AND revoked_at IS NULL)
    ORDER BY d.seq
    LIMIT 100
) p
ORDER BY p.seq
LIMIT $3`

// pendingMaxRows is the literal limit of pendingSQL's walk.
const pendingMaxRows = 100

// Pending returns the oldest limit queue entries of the caller, oldest first, of conversations
// whose stay end is after readableAfter; none when the caller's key is revoked. Of the
// participants it reads only the sender's id and name (see messaging.Delivery). limit is at most
// 100 (messaging.LatestPageSize). Rows are scanned straight into the domain's fields: this is
// the hottest read, and a struct scan costs a reflective walk per row.
// Errors: messaging.ErrUnavailable.
func (s *Store) Pending(ctx context.Context, caller messaging.Caller, readableAfter time.Time, limit int) ([]messaging.Delivery, error) {
	if limit > pendingMaxRows {
		return nil, fmt.Errorf("pending: limit %d is over %d", limit, pendingMaxRows)
	}
	rows, err := s.q(ctx, pendingSQL).QueryxContext(ctx, caller.AffiliateID, readableAfter, limit, caller.KeyHash)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	out := make([]messaging.Delivery, 0, limit)
	var sender, senderName string
	var senderParticipant uuid.UUID
	var attachments pq.StringArray
	for rows.Next() {
		var d messaging.Delivery
		c := &d.Conversation
		if err := rows.Scan(&d.ID, &d.ConversationID, &sender, &d.Content, &attachments, sentTime{&d.CreatedAt},
			&c.Reservation.ID, &c.Reservation.AccommodationID, &senderParticipant, &senderName); err != nil {
			return nil, translate(err)
		}
		d.Sender, c.ID = messaging.Side(sender), d.ConversationID
		if d.Sender == messaging.Guest {
			c.GuestParticipantID, c.Reservation.GuestName = senderParticipant, senderName
		} else {
			c.PropertyParticipantID, c.AccommodationName = senderParticipant, senderName
		}
		if d.Attachments, err = parseUUIDArray(attachments); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, translate(rows.Err())
}

// confirmSQL leaves alone the queue entries of conversations past the partner's read window
// ($3): to the partner those messages no longer exist, so they are not "confirmed" either.
// Each id is found in the partner's queue by (partner_id, message_id), one descent, and the
// entry names its conversation (migration 000006), whose window is read by primary key; before,
// each id was found through messages_id_key first: half as many buffer visits again (1,277
// against 860 per confirm of 100 in the bench).
// The window is a scalar subquery: joined, the planner hashed every readable conversation
// instead (2,000 at 100k messages; a third of the statement's time, and growing with the history).
const confirmSQL = `
DELETE FROM deliveries d
WHERE d.partner_id = $1 AND d.message_id = ANY($2::uuid[])
  AND (SELECT c.stay_end FROM conversations c WHERE c.id = d.conversation_id) > $3
  AND EXISTS (SELECT FROM api_keys WHERE secret_hash = $4 AND revoked_at IS NULL)
RETURNING uuid_send(d.message_id)`

// confirmParkedSQL takes the messages of $2 out of the caller's parked queues of conversations
// it can read again (GUEST_WINDOW_DAYS raised, until the next pass gives them back): confirmed
// now, so that the pass does not give them back. It answers the conversations it changed.
const confirmParkedSQL = `
UPDATE departed_queues q
SET pending = ARRAY(SELECT p FROM unnest(q.pending) AS p WHERE p <> ALL (x.seqs))
FROM (
    SELECT m.conversation_id, array_agg(m.seq) AS seqs
    FROM messages m
    JOIN conversations c ON c.id = m.conversation_id
    WHERE m.id = ANY($2::uuid[]) AND c.guest_partner_id = $1 AND c.stay_end > $3
    GROUP BY m.conversation_id
) x
WHERE q.conversation_id = x.conversation_id AND q.partner_id = $1 AND q.through_seq = ` + parkedThrough + `
  AND q.pending && x.seqs
  AND EXISTS (SELECT FROM api_keys WHERE secret_hash = $4 AND revoked_at IS NULL)
RETURNING uuid_send(q.conversation_id)`

// confirmedBeforeSQL finds, among $2, the messages the partner can read and no longer has
// queued: those it confirmed earlier.
const confirmedBeforeSQL = `
SELECT uuid_send(m.id)
FROM messages m
JOIN conversations c ON c.id = m.conversation_id
WHERE m.id = ANY($2::uuid[]) AND (c.property_partner_id = $1 OR c.guest_partner_id = $1) AND c.stay_end > $3
  AND NOT EXISTS (SELECT FROM deliveries d WHERE d.partner_id = $1 AND d.seq = m.seq)
  AND EXISTS (SELECT FROM api_keys WHERE secret_hash = $4 AND revoked_at IS NULL)`

// Confirm removes the messages from the caller's queue and returns those of ids confirmed for
// the caller now: just removed, or readable and removed before; none when the caller's key is
// revoked. The statements after the first run only when it did not account for every id: a
// guest partner's confirm then takes the ids out of its parked queues (confirmParkedSQL), and
// out of its queue once more, where a pass giving a parked queue back may have put them while
// the first statement ran; the last statement counts those confirmed before.
// Errors: messaging.ErrUnavailable.
//
// The delete takes its rows in the order of its plan, which need not be the same on every
// connection (a custom plan is made for the ids given, the generic one for any), so two
// confirms of overlapping ids, or a confirm and a change of partner, can deadlock; so can the
// update of parked queues with a pass giving them back. PostgreSQL then rolls one of them back,
// having changed nothing, and a confirm's statement so rolled back is run again
// (outlivingDeadlocks): it meets the rows the other has by then deleted (the last statement
// counts them) or released. Locking the rows in one order first would cost every confirm a sort
// and a pass for what is rare.
func (s *Store) Confirm(ctx context.Context, caller messaging.Caller, readableAfter time.Time, ids []uuid.UUID) ([]uuid.UUID, error) {
	run := func(query string) ([]uuid.UUID, error) {
		return outlivingDeadlocks(ctx, func() ([]uuid.UUID, error) {
			return s.uuids(ctx, query, caller.AffiliateID, uuidArray(ids), readableAfter, caller.KeyHash)
		})
	}
	confirmed, err := run(confirmSQL)
	if err != nil || len(confirmed) == len(ids) {
		return confirmed, err
	}
	if caller.Kind == messaging.Guest {
		if _, err := run(confirmParkedSQL); err != nil {
			return nil, err
		}
		more, err := run(confirmSQL)
		if confirmed = append(confirmed, more...); err != nil || len(confirmed) == len(ids) {
			return confirmed, err
		}
	}
	before, err := run(confirmedBeforeSQL)
	return append(confirmed, before...), err
}

// outlivingDeadlocks runs fn, and again when PostgreSQL rolled it back as a deadlock's victim,
// up to deadlockAttempts runs in all. It first pauses (deadlockPause, then twice that): the other
// transaction, woken by the rollback, must take the row it waited for before fn asks for it
// again, or the two deadlock anew.
func outlivingDeadlocks[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	v, err := fn()
	for attempt := 1; deadlocked(err) && attempt < deadlockAttempts; attempt++ {
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(time.Duration(attempt) * deadlockPause):
		}
		v, err = fn()
	}
	return v, err
}

const (
	deadlockAttempts = 3                     // runs of a confirm statement or a transaction that deadlocks
	deadlockPause    = 10 * time.Millisecond // before the second run; twice that before the third
)

func (s *Store) uuids(ctx context.Context, query string, args ...any) ([]uuid.UUID, error) {
	rows, err := s.q(ctx, query).QueryxContext(ctx, args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []uuid.UUID
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			return nil, translate(err)
		}
		out = append(out, id)
	}
	return out, translate(rows.Err())
}
