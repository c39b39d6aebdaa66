package postgres

import (
	"context"
	"database/sql/driver"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/guestmsg/messaging/internal/messaging"
)

// insertMessageSQL is whole sends in one statement, one element of each array per send. t finds
// each send's conversation: of accommodation $1, matching the conversation id $2 and the
// reservation $3 wherever they are given (uuid.Nil and the empty string are "not given"), on
// which partner $6 acts for side $5, whose key $4 is unrevoked, and that is open for that side
// (messaging.SendOpen.Allows, with $7, $8, $9, where 'infinity' is "never"; the guest's
// messages are looked at only once the stay-based window has passed). It is found by primary
// key: the conversation id when given, else the one the reservation's unique index names (the
// subquery runs only then). Written as "c.id = $2 OR c.reservation_id = $3", the lookup was a
// bitmap OR of both indexes, and the statement's first part cost PostgreSQL a sixth more
// (pgbench), a send 13% more (bench). It locks the conversation row FOR SHARE: a change of the
// guest partner or of the accommodation's owner moves the queue entries its transaction sees,
// so a send must not queue for the partners it read once such a change has committed. With the
// lock, the change waits for the send (and then moves its entries too), or the send waits for
// the change and reads the new partners (PostgreSQL re-reads a locked row's newest version);
// without it, about 1% of sends racing guest changes were queued for the old guest only
// (TestSendRacingAPartnerChange). Sends only share the lock, and it cost nothing measurable
// (alternating, three rounds of 10 s). Then it stores the messages, marks their attachments
// ($11, each element an array literal) referenced (so the orphan purge leaves them alone; each
// message's attachment ids are unnested and probed by primary key: joined by
// "a.id = ANY(m.attachments)", the update was planned as a hash join over every unreferenced
// upload) and enqueues each message for both partners of its conversation. It writes nothing
// to the conversation row but the lock, which the foreign key would take anyway.
// With an Idempotency-Key ($14, $15; empty without one) it first claims the key: a
// transaction-level advisory lock on the partner and the key, taken as r yields the send, so
// before t looks for (and may wait on) its conversation, and held until the statement commits.
// A request with the same key that comes meanwhile waits for it, in its own statement or in
// IdempotencyRecord (awaitKeySQL), instead of deciding as if the first did not exist (found by
// review: a retry 409 window_closed while the first, waiting on a conversation an operator's
// change held, went on to store its message). The lock's two-int4 form never meets the purge's
// one-int8 lock. The volatile lock keeps r a CTE of its own, and the CASE leaves sends without a
// key unlocked. Then it stores the key record, and when the partner has the key already it
// stores nothing for that send. Two sends of one statement with the same key (the lock is
// re-entrant) store one record, and only the send whose message id the record names is stored.
// It returns the ids of the messages it stored.
const insertMessageSQL = `
WITH r AS (
    SELECT *
    FROM unnest($1::int8[], $2::uuid[], $3::text[], $4::bytea[], $5::text[], $6::int8[],
                $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::uuid[], $11::text[],
                $12::text[], $13::timestamptz[], $14::text[], $15::bytea[])
         AS r(accommodation_id, conversation_id, reservation_id, key_hash, sender, partner_id,
              stay_end_after, send_stay_end_after, guest_message_after, id, attachments, content,
              created_at, idem_key, idem_hash)
    WHERE CASE WHEN r.idem_key = '' THEN true
               ELSE pg_advisory_xact_lock(hashint8(r.partner_id), hashtext(r.idem_key))::text = '' END
), t AS (
    SELECT r.*, v.conversation_id AS found_id, v.property_partner_id, v.guest_partner_id
    FROM r CROSS JOIN LATERAL (
        SELECT c.id AS conversation_id, c.property_partner_id, c.guest_partner_id
        FROM conversations c
        WHERE c.id = COALESCE(NULLIF(r.conversation_id, '00000000-0000-0000-0000-000000000000'::uuid),
                              (SELECT x.id FROM conversations x WHERE x.reservation_id = r.reservation_id))
          AND c.accommodation_id = r.accommodation_id
          AND (r.reservation_id = '' OR c.reservation_id = r.reservation_id)
          AND EXISTS (SELECT FROM api_keys WHERE secret_hash = r.key_hash AND revoked_at IS NULL)
          AND CASE WHEN r.sender = 'guest' THEN c.guest_partner_id = r.partner_id ELSE c.property_partner_id = r.partner_id END
          AND c.stay_end > r.stay_end_after
          AND (c.stay_end > r.send_stay_end_after OR EXISTS (SELECT FROM messages g
                  WHERE g.conversation_id = c.id AND g.sender = 'guest' AND g.created_at > r.guest_message_after))
        FOR SHARE OF c
    ) v
), k AS (
    INSERT INTO idempotency_keys (partner_id, key, request_hash, message_id, conversation_id, created_at)
    SELECT partner_id, idem_key, idem_hash, id, found_id, created_at FROM t
    WHERE idem_key <> ''
    ON CONFLICT (partner_id, key) DO NOTHING
    RETURNING message_id
), m AS (
    INSERT INTO messages (id, conversation_id, sender, content, attachments, created_at)
    SELECT id, found_id, sender, content, attachments::uuid[], created_at FROM t
    WHERE idem_key = '' OR id IN (SELECT message_id FROM k)
    RETURNING seq, id, conversation_id, attachments, created_at
), a AS (
    UPDATE attachments a
    SET referenced_at = m.created_at
    FROM m CROSS JOIN LATERAL unnest(m.attachments) AS ref(id)
    WHERE a.id = ref.id AND a.conversation_id = m.conversation_id AND a.referenced_at IS NULL
), q AS (
    INSERT INTO deliveries (partner_id, seq, message_id, conversation_id)
    SELECT p, m.seq, m.id, m.conversation_id
    FROM m JOIN t ON t.id = m.id, unnest(ARRAY[t.property_partner_id, t.guest_partner_id]) AS p
    WHERE p IS NOT NULL
)
SELECT uuid_send(id) FROM m`

// send is one send's part of insertMessageSQL.
type send struct {
	caller messaging.Caller
	ref    messaging.ConversationRef
	open   messaging.SendOpen
	m      messaging.Message
	idem   *messaging.IdempotencyRecord // nil without an Idempotency-Key
}

// InsertMessage stores m in the conversation of caller's side that matches every part ref
// gives, provided caller's key is unrevoked and open allows the conversation, and enqueues it
// for both partners of the conversation, in one statement, which it may share with concurrent
// sends (see sendBatcher). m.ConversationID is not used. With idem it stores the key record
// too, or nothing when the key exists already. It reports false when it stored nothing.
// Errors: messaging.ErrUnavailable.
func (s *Store) InsertMessage(ctx context.Context, caller messaging.Caller, ref messaging.ConversationRef, open messaging.SendOpen, m messaging.Message, idem *messaging.IdempotencyRecord) (bool, error) {
	return s.sends.do(ctx, send{caller: caller, ref: ref, open: open, m: m, idem: idem})
}

// insertMessages runs insertMessageSQL for sends on lane (see sendLane; -1: on the pool) and
// reports which of them it stored. Its errors are the driver's, untranslated.
func (s *Store) insertMessages(ctx context.Context, lane int, sends []send) ([]bool, error) {
	n := len(sends)
	var (
		accommodations, partners                = make(pq.Int64Array, n), make(pq.Int64Array, n)
		conversations, reservations, senders    = make(pq.StringArray, n), make(pq.StringArray, n), make(pq.StringArray, n)
		stayEndAfter, sendStayEndAfter, replied = make(pq.StringArray, n), make(pq.StringArray, n), make(pq.StringArray, n)
		ids, attachments, contents, createdAt   = make(pq.StringArray, n), make(pq.StringArray, n), make(pq.StringArray, n), make(pq.StringArray, n)
		keys                                    = make(pq.StringArray, n)
		keyHashes, requestHashes                = make(pq.ByteaArray, n), make(pq.ByteaArray, n)
	)
	for i, x := range sends {
		accommodations[i], conversations[i], reservations[i] = x.ref.AccommodationID, x.ref.ConversationID.String(), x.ref.ReservationID
		keyHashes[i], senders[i], partners[i] = x.caller.KeyHash, string(x.m.Sender), x.caller.AffiliateID
		stayEndAfter[i], sendStayEndAfter[i] = string(pq.FormatTimestamp(x.open.StayEndAfter)), string(pq.FormatTimestamp(x.open.SendStayEndAfter))
		replied[i] = "infinity" // a guest message never extends the window
		if x.open.GuestMessageAfter != nil {
			replied[i] = string(pq.FormatTimestamp(*x.open.GuestMessageAfter))
		}
		// Each send's attachments are one element: its uuid[] as text, which the statement casts.
		attachmentIDs, _ := uuidArray(x.m.Attachments).Value() // a string; never an error
		ids[i], attachments[i], contents[i] = x.m.ID.String(), attachmentIDs.(string), x.m.Content
		createdAt[i] = string(pq.FormatTimestamp(x.m.CreatedAt))
		requestHashes[i] = []byte{}
		if x.idem != nil {
			keys[i], requestHashes[i] = x.idem.Key, x.idem.RequestHash
		}
	}
	if lane >= 0 && s.keepLanes {
		l := &s.lanes[lane]
		l.mu.Lock()
		defer l.mu.Unlock()
	}
	q, err := s.sendStatement(ctx, lane)
	if err != nil {
		return nil, err
	}
	out := make([]bool, n)
	err = func() error {
		rows, err := q.QueryxContext(ctx, accommodations, conversations, reservations, keyHashes, senders, partners,
			stayEndAfter, sendStayEndAfter, replied, ids, attachments, contents, createdAt, keys, requestHashes)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id uuid.UUID
			if err := rows.Scan(&id); err != nil {
				return err
			}
			if i := slices.IndexFunc(sends, func(x send) bool { return x.m.ID == id }); i >= 0 {
				out[i] = true
			}
		}
		return rows.Err()
	}()
	if err != nil && lane >= 0 && s.keepLanes && Unreachable(err) && !lockTimedOut(err) {
		// The kept connection may be broken (the database restarted, say): the lane takes a new
		// one next time, and the statement is made once more on the pool, as database/sql does
		// for a pooled statement on a bad connection. Had the first attempt committed, its
		// message ids would now be taken and its keys known: insertMessage and the service's
		// replay answer for those. (A lock timeout leaves the connection as it was, and its
		// sends are to wait for the lock without holding the lane: see laneLockTimeout.)
		_ = s.lanes[lane].close()
		return s.insertMessages(ctx, -1, sends)
	}
	return out, err
}

// sendLane is a connection of the pool kept for batches of sends, with insertMessageSQL prepared
// on it; it is taken on first use and again after an error that may have broken it. Only the
// batch that holds the lane (sendBatcher) uses it. The connection plans the statement once, for
// any batch (plan_cache_mode force_generic_plan): for batches of a few sends, as at low load,
// PostgreSQL's estimate put custom plans below the generic one, so it planned the statement
// anew on every call (PostgreSQL CPU per send at 8 clients 383 to 501 µs, against 180 to 190
// with the generic plan; measured with the statement's conversation lock, which made the
// custom plans dearer; 270 to 375 before the lock). A batch on a kept connection does not queue
// for one: when every connection of the pool is busy, a batch that had to would make each of
// its sends wait twice, for the batch before and for its own (measured: sends took twice as
// long in the mixed load as without batches). Lanes keep connections only when the pool has
// at least twice as many (Store.keepLanes): kept, they would otherwise starve the rest.
type sendLane struct {
	// mu is held by the batch that uses the lane, and by Store.Close, which closes only the lanes
	// no batch holds: a batch still running at shutdown keeps its connection until it ends.
	mu     sync.Mutex
	conn   *sqlx.Conn
	stmt   *sqlx.Stmt
	closed bool // by Store.Close: the lane takes no connection again
}

// sendStatement returns insertMessageSQL prepared on lane, or the store's own for lane -1, when
// the lanes keep no connections, and once the store is closed (when it fails as closed). The
// caller holds the lane's mu.
func (s *Store) sendStatement(ctx context.Context, lane int) (queryer, error) {
	if lane < 0 || !s.keepLanes || s.lanes[lane].closed {
		return s.q(ctx, insertMessageSQL), nil
	}
	l := &s.lanes[lane]
	if l.stmt == nil {
		conn, err := s.db.Connx(ctx)
		if err != nil {
			return nil, err
		}
		var stmt *sqlx.Stmt
		_, err = conn.ExecContext(ctx, "SET plan_cache_mode = force_generic_plan; SET lock_timeout = '"+laneLockTimeout+"'")
		if err == nil {
			stmt, err = conn.PreparexContext(ctx, insertMessageSQL)
		}
		if err != nil {
			_ = discard(conn)
			return nil, err
		}
		l.conn, l.stmt = conn, stmt
	}
	return preparedQueryer{l.stmt}, nil
}

// laneLockTimeout is how long a statement on a lane waits for a lock (lock_timeout). A batch must
// not wait for a row an operator's change holds on behalf of its other sends, nor keep the sends
// behind it waiting: renaming an accommodation or giving it a new owner rewrites every one of
// its conversations in one transaction, which holds their rows for seconds when they are many
// (2.7 s for 100,000 messages, measured). A batch that times out is stored send by send on the
// pool (sendBatcher), where only the sends that need a held row wait for it, and at most
// Store.poolSends of them at once, so that they cannot take every connection of the pool.
const laneLockTimeout = "100ms"

// errLaneLockTimeout is a send alone on a lane that waited laneLockTimeout for a held row: it is
// to wait for it on the pool, once it has given the lane back.
var errLaneLockTimeout = errors.New("a row the send needs is held")

// close closes the lane's connection: it does not go back to the pool, where its settings
// would apply to every other statement. The caller holds l.mu.
func (l *sendLane) close() error {
	if l.stmt == nil {
		return nil
	}
	err := errors.Join(l.stmt.Close(), discard(l.conn))
	l.conn, l.stmt = nil, nil
	return err
}

// discard closes conn instead of giving it back to the pool.
func discard(conn *sqlx.Conn) error {
	err := conn.Raw(func(any) error { return driver.ErrBadConn }) // the pool closes a bad connection
	if errors.Is(err, driver.ErrBadConn) {
		return nil
	}
	return err
}

// insertMessage is insertMessages for one send, with the errors that mean "stored nothing" or
// "stored" told apart. On the pool (lane -1) it is one of at most cap(s.poolSends) sends at a
// time: these are the sends of a failed batch, and those that wait for a row an operator's
// change holds (see laneLockTimeout), which keep their connection while they wait.
func (s *Store) insertMessage(ctx context.Context, lane int, x send) (bool, error) {
	if lane < 0 {
		select {
		case s.poolSends <- struct{}{}:
			defer func() { <-s.poolSends }()
		case <-ctx.Done():
			return false, translate(ctx.Err())
		}
	}
	stored, err := s.insertMessages(ctx, lane, []send{x})
	var pqErr *pq.Error
	switch {
	case err == nil:
		return stored[0], nil
	case lane >= 0 && lockTimedOut(err):
		return false, errLaneLockTimeout
	case errors.As(err, &pqErr) && pqErr.Code == "23503": // foreign_key_violation
		// The purge deleted the conversation while the statement ran.
		return false, nil
	case errors.As(err, &pqErr) && pqErr.Code == "23505" && pqErr.Constraint == "messages_id_key":
		// m.ID is fresh, so only this very insert can hold it: database/sql retried the
		// statement on a new connection after the first attempt committed but its answer was
		// lost. The message is stored exactly once; that is success.
		return true, nil
	}
	return false, translate(err)
}

// Sends are stored in batches: a send that arrives while sendLanes batches are being stored
// waits, and the next batch takes it and up to sendBatchMax-1 others that waited with it, in one
// statement and one commit. Under light load no send waits, and each is a batch of one; under
// heavy load the statement's fixed costs (executor start-up over seven tables, the round trip,
// and above all the durable commit) are shared by the batch.
const (
	sendLanes    = 2
	sendBatchMax = 32
)

// sendBatcher gathers concurrent sends into batches for insert, without a goroutine of its own:
// the send that starts a batch takes a free lane and stores the batch on it, then hands the lane
// and the next batch to the oldest waiting send. A send waits at most until its context ends.
// When a batch's statement fails, each of its sends is stored alone on the pool under its own
// context, so that one send's error costs the others only time.
type sendBatcher struct {
	insert      func(ctx context.Context, lane int, sends []send) ([]bool, error)
	insertAlone func(ctx context.Context, lane int, x send) (bool, error) // lane -1: on the pool

	mu      sync.Mutex
	free    []int // lanes no batch holds
	max     int   // sends per batch
	waiting []*waitingSend
}

func newSendBatcher(lanes, max int, insert func(context.Context, int, []send) ([]bool, error),
	insertAlone func(context.Context, int, send) (bool, error)) *sendBatcher {
	b := &sendBatcher{insert: insert, insertAlone: insertAlone, max: max}
	for lane := range lanes {
		b.free = append(b.free, lane)
	}
	return b
}

type waitingSend struct {
	send
	ctx      context.Context  // the send's
	deadline time.Time        // of the send's context; zero without one
	done     chan sendOutcome // buffered: whoever stores the send never waits for it
}

// sendOutcome is a send's stored and err; or lead: the send is to store the next batch, on
// lane; or alone: its batch failed, or it waited for a held row on a lane (errLaneLockTimeout),
// and it is to be stored alone on the pool.
type sendOutcome struct {
	stored      bool
	err         error
	lead, alone bool
	lane        int
}

func (b *sendBatcher) do(ctx context.Context, x send) (bool, error) {
	w := &waitingSend{send: x, ctx: ctx, done: make(chan sendOutcome, 1)}
	w.deadline, _ = ctx.Deadline()
	b.mu.Lock()
	var lane int
	if n := len(b.free); n > 0 {
		lane, b.free = b.free[n-1], b.free[:n-1]
	} else {
		b.waiting = append(b.waiting, w)
		b.mu.Unlock()
		var o sendOutcome
		select {
		case o = <-w.done:
		case <-ctx.Done():
			if b.leave(w) { // past its deadline before any batch took it: like a timed-out statement
				return false, translate(ctx.Err())
			}
			o = <-w.done // a batch took it, or it is to lead one: see that through
		}
		if !o.lead {
			return b.outcome(ctx, w, o)
		}
		lane = o.lane
		b.mu.Lock()
	}
	n := min(len(b.waiting), b.max-1)
	batch := append(make([]*waitingSend, 0, n+1), w)
	batch = append(batch, b.waiting[:n]...)
	b.waiting = slices.Delete(b.waiting, 0, n)
	b.mu.Unlock()

	b.store(ctx, lane, batch)

	b.mu.Lock()
	if len(b.waiting) > 0 {
		next := b.waiting[0]
		b.waiting = slices.Delete(b.waiting, 0, 1)
		b.mu.Unlock()
		next.done <- sendOutcome{lead: true, lane: lane}
	} else {
		b.free = append(b.free, lane)
		b.mu.Unlock()
	}
	return b.outcome(ctx, w, <-w.done)
}

// leave takes w out of the waiting sends, and reports false when it was no longer among them.
func (b *sendBatcher) leave(w *waitingSend) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := slices.Index(b.waiting, w)
	if i >= 0 {
		b.waiting = slices.Delete(b.waiting, i, i+1)
	}
	return i >= 0
}

// store stores batch on lane and tells each of its sends the outcome. A send already past its
// deadline is answered as a timed-out statement would be, and left out. The others are stored
// under a context that one send's caller going away does not cancel, but that ends when every
// one of their contexts has ended (all callers gone, or the requests cut off at shutdown), and
// at the earliest of their deadlines, so that no send's work outlasts its own.
func (b *sendBatcher) store(ctx context.Context, lane int, batch []*waitingSend) {
	now := time.Now()
	live := make([]*waitingSend, 0, len(batch))
	var earliest time.Time
	for _, w := range batch {
		switch {
		case w.deadline.IsZero():
		case !now.Before(w.deadline):
			w.done <- sendOutcome{err: translate(context.DeadlineExceeded)}
			continue
		case earliest.IsZero() || w.deadline.Before(earliest):
			earliest = w.deadline
		}
		live = append(live, w)
	}
	switch len(live) {
	case 0:
		return
	case 1: // under its own context, which ends as the batch's would: when it does
		stored, err := b.insertAlone(live[0].ctx, lane, live[0].send)
		live[0].done <- sendOutcome{stored: stored, err: err, alone: errors.Is(err, errLaneLockTimeout)}
		return
	}
	ctx, cut := context.WithCancel(context.WithoutCancel(ctx))
	defer cut()
	var left atomic.Int32
	left.Store(int32(len(live)))
	for _, w := range live {
		defer context.AfterFunc(w.ctx, func() {
			if left.Add(-1) == 0 {
				cut()
			}
		})()
	}
	if !earliest.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, earliest)
		defer cancel()
	}
	sends := make([]send, len(live))
	for i, w := range live {
		sends[i] = w.send
	}
	stored, err := b.insert(ctx, lane, sends)
	for i, w := range live {
		if err != nil {
			w.done <- sendOutcome{alone: true}
		} else {
			w.done <- sendOutcome{stored: stored[i]}
		}
	}
}

func (b *sendBatcher) outcome(ctx context.Context, w *waitingSend, o sendOutcome) (bool, error) {
	if o.alone {
		return b.insertAlone(ctx, -1, w.send)
	}
	return o.stored, o.err
}
