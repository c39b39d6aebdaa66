package purge_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/purge"
)

// waitForLockWaits waits until at least n sessions of the test's database wait for a lock.
func (f *fixture) waitForLockWaits(n int) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.count(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`) < n {
		if time.Now().After(deadline) {
			f.t.Fatalf("fewer than %d sessions wait for a lock after 10 s", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// edgeWindows have RETENTION_DAYS equal to GUEST_WINDOW_DAYS (allowed): a guest's send in the
// last millisecond of its window can meet the pass that starts as the conversation expires.
var edgeWindows = messaging.Windows{GuestDays: 10, PropertySendDays: 7, PropertyReplyDays: 14, RetentionDays: 10}

// lastMillisecond registers reservation id (checking out 2026-07-05) on a fixture of
// edgeWindows and sets the clock to the last millisecond of its guest's window; it returns the
// instant the conversation expires.
func lastMillisecond(t *testing.T, id string) (*fixture, messaging.Conversation, time.Time) {
	f := newFixture(t, edgeWindows)
	x := f.reservation(id, "2026-07-05")
	expiry := x.StayEnd.Add(time.Duration(edgeWindows.RetentionDays) * 24 * time.Hour)
	f.clock.Set(expiry.Add(-time.Millisecond))
	return f, x, expiry
}

// TestPurgeLeavesAConversationARacingSendWroteTo: with RETENTION_DAYS equal to
// GUEST_WINDOW_DAYS (allowed), a guest send decided in the last millisecond of its window can
// commit while the pass that starts at expiry runs, and holds the conversation row FOR SHARE
// until then. The pass's DeleteConversations waits for it and then sees its message, so it
// leaves the conversation for the next pass and finishes (the parking, the stale Idempotency-Key
// records and the orphan uploads of the others included). It used to decide on a snapshot taken
// before the send committed, delete the row, and fail the whole pass on the message's foreign key.
func TestPurgeLeavesAConversationARacingSendWroteTo(t *testing.T) {
	f := newFixture(t, edgeWindows)
	x := f.reservation("X-RACE", "2026-07-05")
	f.send(f.guest, x, "early", "")
	y := f.reservation("Y-LIVE", "2026-08-05")
	f.send(f.guest, y, "y question", "y-old-key") // 13 days old at expiry: stale
	expiry := x.StayEnd.Add(10 * 24 * time.Hour)
	f.clock.Set(expiry.Add(-time.Millisecond)) // the guest may still send

	// Hold the send in its statement, after it has locked the conversation row FOR SHARE: an
	// uncommitted record of the same Idempotency-Key makes its insert wait (as a concurrent
	// duplicate would).
	blocker, err := f.db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Rollback()
	if _, err := blocker.Exec(`INSERT INTO idempotency_keys (partner_id, key, request_hash, message_id, conversation_id, created_at)
		VALUES ($1, 'late', '\x00', $2, $3, now())`, f.guest.AffiliateID, uuid.New(), x.ID); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		_, err := f.svc.Send(f.ctx, f.guest, messaging.SendInput{
			Ref:     messaging.ConversationRef{AccommodationID: f.accommodation, ReservationID: x.Reservation.ID},
			Content: "last word", IdempotencyKey: "late",
		})
		sent <- err
	}()
	f.waitForLockWaits(1) // the send, on the blocker's key

	// The pass starts at expiry: it empties the conversation of what it can see, and its
	// DeleteConversations waits for the send's lock on the conversation row.
	f.clock.Set(expiry)
	type result struct {
		r   purge.Report
		err error
	}
	passed := make(chan result, 1)
	go func() {
		r, err := f.worker.RunOnce(f.ctx)
		passed <- result{r, err}
	}()
	f.waitForLockWaits(2)
	if err := blocker.Rollback(); err != nil { // the send goes on and commits
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("Send in the last millisecond of the window = %v", err)
	}
	res := <-passed
	if res.err != nil {
		t.Errorf("pass racing a send = %v; want the conversation left for the next pass, and the pass to finish", res.err)
	}
	if n := f.count(`SELECT count(*) FROM idempotency_keys WHERE key = 'y-old-key'`); n != 0 {
		t.Errorf("the pass left Y's 13-day-old Idempotency-Key record behind (%d)", n)
	}

	// Either way, the next pass must remove everything of the conversation.
	if _, err := f.worker.RunOnce(f.ctx); err != nil {
		t.Fatalf("next pass = %v", err)
	}
	for _, q := range []string{
		`SELECT count(*) FROM conversations WHERE id = $1`,
		`SELECT count(*) FROM messages WHERE conversation_id = $1`,
		`SELECT count(*) FROM idempotency_keys WHERE conversation_id = $1`,
		`SELECT count(*) FROM deliveries WHERE conversation_id = $1`,
	} {
		if n := f.count(q, x.ID); n != 0 {
			t.Errorf("%s = %d after the next pass, want 0", q, n)
		}
	}
}

// hookStore runs before ahead of each PurgeMessages of the store, with the call's number from 1;
// an error it returns is the call's, as a pass cut off there (a timeout, a restart) would get.
type hookStore struct {
	purge.Store
	before func(call int) error
	calls  int
}

func (s *hookStore) PurgeMessages(ctx context.Context, ids []uuid.UUID, cutoff time.Time, limit int) (int, int, int, error) {
	s.calls++
	if err := s.before(s.calls); err != nil {
		return 0, 0, 0, err
	}
	return s.Store.PurgeMessages(ctx, ids, cutoff, limit)
}

// hookedWorker is a worker of edgeWindows on the fixture's store, hooked.
func (f *fixture) hookedWorker(before func(call int) error) *purge.Worker {
	return purge.New(&hookStore{Store: f.store, before: before}, edgeWindows, f.clock.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// TestPassCutOffLeavesNoRecordOfADeletedMessage: an expired conversation's messages go in the
// same transaction as their Idempotency-Key records, so a pass cut off between two batches
// leaves no record whose replay would answer the id of a message already deleted, and none of
// the messages left without its record.
func TestPassCutOffLeavesNoRecordOfADeletedMessage(t *testing.T) {
	f, x, expiry := lastMillisecond(t, "X-CUT")
	f.send(f.guest, x, "last word", "late-key") // records under 24 hours old at expiry
	f.send(f.guest, x, "really the last", "later-key")
	f.clock.Set(expiry)
	worker := f.hookedWorker(func(call int) error {
		if call > 1 {
			return errors.New("cut off")
		}
		return nil
	})
	worker.RowBatch = 1
	if _, err := worker.RunOnce(f.ctx); err == nil {
		t.Fatal("RunOnce with the second PurgeMessages failing = nil, want the error")
	}
	if n := f.count(`SELECT count(*) FROM messages WHERE conversation_id = $1`, x.ID); n != 1 {
		t.Fatalf("%d messages left by a pass cut off after its first batch of one, want 1", n)
	}
	if n := f.count(`SELECT count(*) FROM idempotency_keys k WHERE conversation_id = $1
		AND NOT EXISTS (SELECT FROM messages m WHERE m.id = k.message_id)`, x.ID); n != 0 {
		t.Errorf("%d Idempotency-Key records of deleted messages left by a pass cut off between batches, want 0", n)
	}
	if n := f.count(`SELECT count(*) FROM messages m WHERE conversation_id = $1
		AND NOT EXISTS (SELECT FROM idempotency_keys k WHERE k.message_id = m.id)`, x.ID); n != 0 {
		t.Errorf("%d messages left without their Idempotency-Key record, want 0", n)
	}
}

// TestRevivedConversationKeepsItsIdempotencyRecords: with RETENTION_DAYS equal to
// GUEST_WINDOW_DAYS, an expiring conversation can hold an Idempotency-Key record under 24 hours
// old. A change of the reservation that moves its stay later while a pass runs takes the
// conversation out of the purge's reach; whatever of it the pass has not deleted by then must
// still answer as before, so a replay of the send answers the first message and stores nothing.
// (Found on a reread of the pass's order: the records went in a batch of their own before the
// messages, so a change committing between the two left the messages without their records,
// and the replay stored a second message.)
func TestRevivedConversationKeepsItsIdempotencyRecords(t *testing.T) {
	f, x, expiry := lastMillisecond(t, "X-REVIVED")
	first := f.send(f.guest, x, "last word", "late-key")
	f.clock.Set(expiry)
	worker := f.hookedWorker(func(call int) error {
		if call == 1 { // the stay moves later while the pass runs
			f.reservation("X-REVIVED", "2026-08-30")
		}
		return nil
	})
	if _, err := worker.RunOnce(f.ctx); err != nil {
		t.Fatalf("RunOnce = %v", err)
	}
	if again := f.send(f.guest, x, "last word", "late-key"); again != first {
		t.Errorf("replay after the stay moved during a pass = %v, want the first message %v", again, first)
	}
	if n := f.count(`SELECT count(*) FROM messages WHERE conversation_id = $1`, x.ID); n != 1 {
		t.Errorf("%d messages in the revived conversation, want the first one alone", n)
	}
}

// TestConfirmOfParkedMessagesOutlivesADeadlock: a guest partner's confirm that takes messages
// out of its parked queues (confirmParkedSQL, one row per conversation, in the order of its
// plan) can deadlock with a transaction holding those rows in the other order (a second confirm,
// or a pass giving parked queues back). The confirm's statement, rolled back, is run again, as
// a deadlocked confirm's delete is, and the confirm answers every id. (Found by review: it
// answered 503 after its first statement had removed the queued id.)
//
// The other transaction is played by the test: it holds conversation B's parked row, waits
// until the confirm holds A's and waits for B's, then asks for A's. The plan's order of the two
// conversations is not known beforehand, so the set-up is tried on fresh conversations until
// the confirm takes A first.
func TestConfirmOfParkedMessagesOutlivesADeadlock(t *testing.T) {
	f := newFixture(t, messaging.DefaultWindows)
	type trial struct {
		queued, a, b uuid.UUID // queued: readable and queued; a, b: parked, of conversations A and B
		convA, convB uuid.UUID
	}
	later := f.reservation("LATER", "2026-12-01")
	var trials []trial
	var old messaging.Conversation
	for i := range 8 {
		ca := f.reservation(fmt.Sprintf("OLD-A-%d", i), "2026-07-05")
		old = ca
		cb := f.reservation(fmt.Sprintf("OLD-B-%d", i), "2026-07-05")
		trials = append(trials, trial{
			queued: f.send(f.property, later, fmt.Sprintf("n%d", i), ""),
			a:      f.send(f.property, ca, fmt.Sprintf("a%d", i), ""),
			b:      f.send(f.property, cb, fmt.Sprintf("b%d", i), ""),
			convA:  ca.ID, convB: cb.ID,
		})
	}
	f.clock.Set(old.StayEnd.Add(70 * 24 * time.Hour)) // the guest's window of every OLD-* closed 4 days ago
	if r, err := f.worker.RunOnce(f.ctx); err != nil || r.Parked != 2*len(trials) {
		t.Fatalf("RunOnce = parked %d, %v; want %d", r.Parked, err, 2*len(trials))
	}
	wider := messaging.DefaultWindows
	wider.GuestDays = 100 // the OLD-* conversations are readable by the guest again
	svc := messaging.NewService(f.store, wider, f.clock.Now)

	const lockRow = `SELECT 1 FROM departed_queues WHERE conversation_id = $1 AND partner_id = $2 FOR UPDATE`
	for _, tr := range trials {
		tx, err := f.db.BeginTxx(f.ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(lockRow, tr.convB, f.guest.AffiliateID); err != nil {
			t.Fatal(err)
		}
		type result struct {
			ids []uuid.UUID
			err error
		}
		done := make(chan result, 1)
		go func() {
			ids, err := svc.Confirm(context.Background(), f.guest, []uuid.UUID{tr.queued, tr.a, tr.b})
			done <- result{ids, err}
		}()
		f.waitForLockWaits(1)
		if _, err := tx.Exec(`SAVEPOINT probe`); err != nil {
			t.Fatal(err)
		}
		_, err = tx.Exec(lockRow+` NOWAIT`, tr.convA, f.guest.AffiliateID)
		var pqErr *pq.Error
		if err == nil || !errors.As(err, &pqErr) || pqErr.Code != "55P03" { // the confirm waits for B holding nothing
			_ = tx.Rollback()
			if r := <-done; r.err != nil {
				t.Fatalf("confirm without a deadlock = %v", r.err)
			}
			continue
		}
		if _, err := tx.Exec(`ROLLBACK TO SAVEPOINT probe`); err != nil {
			t.Fatal(err)
		}
		// The confirm holds A and waits for B; this transaction asks for A: a deadlock, which
		// the confirm, waiting longer, detects first and is rolled back for.
		_, lockErr := tx.Exec(lockRow, tr.convA, f.guest.AffiliateID)
		time.Sleep(50 * time.Millisecond) // then the other transaction ends, as it would
		_ = tx.Rollback()
		r := <-done
		if lockErr != nil {
			t.Logf("the test's transaction was the deadlock's victim (%v); trying again", lockErr)
			continue
		}
		queuedLeft := f.count(`SELECT count(*) FROM deliveries WHERE partner_id = $1 AND message_id = $2`, f.guest.AffiliateID, tr.queued)
		if r.err != nil {
			t.Fatalf("confirm that deadlocked in its second statement = %v (queued message still queued: %v); "+
				"want it run again by the service, as README promises for a deadlocked confirm, "+
				"and in no case a 503 after the queued id was already removed", r.err, queuedLeft == 1)
		}
		want := []uuid.UUID{tr.queued, tr.a, tr.b}
		if !slices.Equal(r.ids, want) {
			t.Errorf("confirm = %v, want %v", r.ids, want)
		}
		return
	}
	t.Fatal("the confirm never took conversation A's parked row first: no deadlock arranged")
}

// TestConfirmRacingAnUnparkNeverComesBack: a confirm of a parked message, readable again, racing
// a pass that gives the parked queue back: the confirm's update of the parked row waits for the
// pass and then finds the row gone, the message back in the queue; the confirm takes it out of
// the queue there, answers it confirmed, and it never comes back (spec §5.2, §5.3). (Found by
// review: the confirm answered it confirmed on a snapshot from before the pass, and left it
// queued.)
//
// The pass is held after its delete of the parked row by an uncommitted queue entry of the
// conversation's other parked message (its INSERT ... ON CONFLICT waits for it), so that the
// confirm runs inside the race window deterministically.
func TestConfirmRacingAnUnparkNeverComesBack(t *testing.T) {
	f := newFixture(t, messaging.DefaultWindows)
	old := f.reservation("OLD", "2026-07-05") // stay end 2026-07-06
	p1 := f.send(f.property, old, "p1", "")
	p2 := f.send(f.property, old, "p2", "")
	f.clock.Set(old.StayEnd.Add(70 * 24 * time.Hour)) // the guest's 66-day window closed 4 days ago
	if r, err := f.worker.RunOnce(f.ctx); err != nil || r.Parked != 2 {
		t.Fatalf("RunOnce = parked %d, %v; want p1 and p2 parked", r.Parked, err)
	}
	wider := messaging.DefaultWindows
	wider.GuestDays = 100 // readable by the guest again; the next pass gives the queue back
	svc := messaging.NewService(f.store, wider, f.clock.Now)

	tx, err := f.db.BeginTxx(f.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec(`INSERT INTO deliveries (partner_id, seq, message_id, conversation_id)
		SELECT $1, seq, id, conversation_id FROM messages WHERE id = $2`, f.guest.AffiliateID, p2); err != nil {
		t.Fatal(err)
	}
	unparked := make(chan error, 1)
	go func() {
		_, err := f.store.UnparkReadable(context.Background(), wider.ReadableStayEndAfter(messaging.Guest, f.clock.Now()), 10)
		unparked <- err
	}()
	f.waitForLockWaits(1) // the unpark deleted the parked row, queued p1, and waits to queue p2
	type result struct {
		ids []uuid.UUID
		err error
	}
	confirmed := make(chan result, 1)
	go func() {
		ids, err := svc.Confirm(context.Background(), f.guest, []uuid.UUID{p1})
		confirmed <- result{ids, err}
	}()
	f.waitForLockWaits(2) // the confirm's UPDATE of the parked row waits for the unpark
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-unparked; err != nil {
		t.Fatal(err)
	}
	r := <-confirmed
	if r.err != nil {
		t.Fatal(r.err)
	}
	page, err := svc.Latest(f.ctx, f.guest)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.ids, []uuid.UUID{p1}) {
		t.Errorf("confirm of p1, readable and given back to the queue meanwhile = %v, want it confirmed", r.ids)
	}
	if slices.ContainsFunc(page, func(d messaging.Delivery) bool { return d.ID == p1 }) {
		t.Errorf("the guest's next latest page shows p1 again: a confirmed message came back")
	}
}
