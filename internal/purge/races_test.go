package purge_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

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

// TestPurgeLeavesAConversationARacingSendWroteTo: with RETENTION_DAYS equal to
// GUEST_WINDOW_DAYS (allowed), a guest send decided in the last millisecond of its window can
// commit while the pass that starts at expiry runs, and holds the conversation row FOR SHARE
// until then. The pass's DeleteConversations waits for it and then sees its message, so it
// leaves the conversation for the next pass and finishes (the parking, the stale Idempotency-Key
// records and the orphan uploads of the others included). It used to decide on a snapshot taken
// before the send committed, delete the row, and fail the whole pass on the message's foreign key.
func TestPurgeLeavesAConversationARacingSendWroteTo(t *testing.T) {
	w := messaging.Windows{GuestDays: 10, PropertySendDays: 7, PropertyReplyDays: 14, RetentionDays: 10}
	f := newFixture(t, w)
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

// cutOffStore fails every PurgeMessages, as a pass cut off there (a timeout, a restart) would.
type cutOffStore struct{ purge.Store }

func (cutOffStore) PurgeMessages(context.Context, []uuid.UUID, time.Time, int) (int, int, error) {
	return 0, 0, errors.New("cut off")
}

// TestPassCutOffLeavesNoRecordOfADeletedMessage: a round deletes an expired conversation's
// Idempotency-Key records before its messages, so a pass cut off between the two leaves no
// record whose replay would answer the id of a message already deleted.
func TestPassCutOffLeavesNoRecordOfADeletedMessage(t *testing.T) {
	w := messaging.Windows{GuestDays: 10, PropertySendDays: 7, PropertyReplyDays: 14, RetentionDays: 10}
	f := newFixture(t, w)
	x := f.reservation("X-CUT", "2026-07-05")
	expiry := x.StayEnd.Add(10 * 24 * time.Hour)
	f.clock.Set(expiry.Add(-time.Millisecond))
	f.send(f.guest, x, "last word", "late-key") // a record under 24 hours old at expiry
	f.clock.Set(expiry)
	worker := purge.New(cutOffStore{f.store}, w, f.clock.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := worker.RunOnce(f.ctx); err == nil {
		t.Fatal("RunOnce with PurgeMessages failing = nil, want the error")
	}
	if n := f.count(`SELECT count(*) FROM idempotency_keys WHERE conversation_id = $1`, x.ID); n != 0 {
		t.Errorf("%d Idempotency-Key records of the expired conversation left by a pass cut off before its messages, want 0", n)
	}
}
