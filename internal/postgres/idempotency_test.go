package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/pgtest"
)

// TestRetryWhileTheFirstWaitsForItsConversationGetsTheFirstAnswer: §5.1 says a request that
// arrives while another with the same Idempotency-Key is still in flight "either waits and
// returns that request's response, or gets 409 idempotency_key_in_progress". Here the first
// request A (a property send, key K, no attachments) is decided in the last millisecond of the
// property's send window, and waits in its statement for the conversation's row, which an
// operator's change holds (README: a rename or a new owner of the accommodation holds its
// conversations until it commits, seconds when they are many) — before the statement has
// written A's key record. A's client gives up and retries: B, the same key and the same
// parameters, one millisecond later, when the window has closed. TestDuplicateInFlightAcross-
// TheWindowEdgeGetsTheFirstAnswer covers the same retry while A holds its uncommitted record;
// here A has not written it yet, but has claimed its key. (Found by review: B's replay found
// nothing in flight and answered 409 window_closed, and then A stored its message.)
func TestRetryWhileTheFirstWaitsForItsConversationGetsTheFirstAnswer(t *testing.T) {
	ctx := context.Background()
	db := pgtest.DB(t)
	store := New(ctx, db)
	f := newFixture(t, store)

	closes := f.conv.StayEnd.Add(7 * 24 * time.Hour) // the property's send window (no guest message)
	atA, atB := closes.Add(-time.Millisecond), closes
	svcA := messaging.NewService(store, messaging.DefaultWindows, func() time.Time { return atA })
	svcB := messaging.NewService(store, messaging.DefaultWindows, func() time.Time { return atB })
	in := messaging.SendInput{Ref: messaging.ConversationRef{AccommodationID: 7, ReservationID: "R1"},
		Content: "last call", IdempotencyKey: "K"}

	// The operator's change holds the conversation's row.
	change, err := db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	defer change.Rollback()
	if _, err := change.Exec(`SELECT id FROM conversations WHERE id = $1 FOR UPDATE`, f.conv.ID); err != nil {
		t.Fatal(err)
	}
	type sent struct {
		id  uuid.UUID
		err error
	}
	a, b := make(chan sent, 1), make(chan sent, 1)
	go func() { id, err := svcA.Send(ctx, f.caller, in); a <- sent{id, err} }()
	waitForLockWaiters(t, db, 1)           // A, in its statement, on the conversation's row
	time.Sleep(3 * 100 * time.Millisecond) // past laneLockTimeout: A waits on the pool, alone
	waitForLockWaiters(t, db, 1)

	go func() { id, err := svcB.Send(ctx, f.caller, in); b <- sent{id, err} }()
	var early *sent
	select {
	case r := <-b: // B answered while A was still in flight
		early = &r
	case <-time.After(time.Second): // B waits, as it may
	}
	if err := change.Rollback(); err != nil {
		t.Fatal(err)
	}
	ra := <-a
	if ra.err != nil {
		t.Fatalf("first request A = %v, want its message stored", ra.err)
	}
	rb := early
	if rb == nil {
		r := <-b
		rb = &r
	}
	var messages int
	if err := db.Get(&messages, `SELECT count(*) FROM messages WHERE conversation_id = $1`, f.conv.ID); err != nil {
		t.Fatal(err)
	}
	t.Logf("A = %v, %v; B = %v, %v (answered while A was in flight: %t); %d message(s) stored",
		ra.id, ra.err, rb.id, rb.err, early != nil, messages)
	if rb.err != nil || rb.id != ra.id {
		t.Errorf("retry B with the same Idempotency-Key while A was in flight = %v, %v; want A's answer, message %v "+
			"(or 409 idempotency_key_in_progress), since A stored the message", rb.id, rb.err, ra.id)
	}
}
