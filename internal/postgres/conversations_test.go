package postgres

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/pgtest"
)

// TestInsertMessageRetriedAfterCommit is what happens when database/sql retries a send whose
// first attempt committed but whose answer was lost: the same fresh message id arrives again.
// The message must be stored once and the send must succeed, not answer 409.
func TestInsertMessageRetriedAfterCommit(t *testing.T) {
	ctx := context.Background()
	db := pgtest.DB(t)
	store := New(ctx, db)
	f := newFixture(t, store)
	caller, conv, now := f.caller, f.conv, f.now
	m := messaging.Message{ID: uuid.Must(uuid.NewV7()), Sender: messaging.Property, Content: "hello", CreatedAt: now}
	ref := messaging.ConversationRef{AccommodationID: 7, ConversationID: conv.ID}
	open := messaging.DefaultWindows.SendOpenAt(messaging.Property, now)
	for attempt := 1; attempt <= 2; attempt++ {
		if inserted, err := store.InsertMessage(ctx, caller, ref, open, m, nil); !inserted || err != nil {
			t.Fatalf("InsertMessage attempt %d = %t, %v; want true, nil", attempt, inserted, err)
		}
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM messages WHERE id = $1`, m.ID); err != nil || n != 1 {
		t.Errorf("messages with the id = %d, %v; want 1", n, err)
	}
}

// TestReadsReturnWhatWasStored holds the many-row reads, which receive ids as 16 raw bytes, to
// the values stored, both as prepared statements and as plain queries (the store's fallback
// when it could not prepare them).
func TestReadsReturnWhatWasStored(t *testing.T) {
	ctx := context.Background()
	db := pgtest.DB(t)
	prepared := New(ctx, db)
	f := newFixture(t, prepared)
	ref := messaging.ConversationRef{AccommodationID: 7, ConversationID: f.conv.ID}
	open := messaging.DefaultWindows.SendOpenAt(messaging.Property, f.now)
	var stored []messaging.Message
	for i, at := range []time.Time{
		time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC), // before the epoch
		f.now.Add(123456 * time.Microsecond),
		time.Date(2099, 12, 31, 23, 59, 59, 999999000, time.UTC),
	} {
		m := messaging.Message{ID: uuid.Must(uuid.NewV7()), ConversationID: f.conv.ID,
			Sender: messaging.Property, Content: fmt.Sprint("message ", i), CreatedAt: at,
			Attachments: []uuid.UUID{}}
		if inserted, err := prepared.InsertMessage(ctx, f.caller, ref, open, m, nil); !inserted || err != nil {
			t.Fatalf("InsertMessage = %t, %v", inserted, err)
		}
		stored = append(stored, m)
	}
	readable := f.now.Add(-time.Hour)
	for name, store := range map[string]*Store{"prepared": prepared, "unprepared": {db: db, stmts: map[string]*hotStmt{}}} {
		t.Run(name, func(t *testing.T) {
			got, err := store.Messages(ctx, f.conv.ID)
			if err != nil || !reflect.DeepEqual(got, stored) {
				t.Errorf("Messages = %+v, %v; want %+v", got, err, stored)
			}
			pending, err := store.Pending(ctx, f.caller, readable, 100)
			if err != nil || len(pending) != len(stored) {
				t.Fatalf("Pending = %d deliveries, %v; want %d", len(pending), err, len(stored))
			}
			for i, d := range pending {
				want := stored[i]
				if d.ID != want.ID || d.ConversationID != want.ConversationID || !d.CreatedAt.Equal(want.CreatedAt) ||
					d.CreatedAt.Location() != time.UTC || d.Content != want.Content || d.Conversation.ID != f.conv.ID ||
					d.Conversation.PropertyParticipantID != f.conv.PropertyParticipantID {
					t.Errorf("Pending[%d] = %+v; want the message %+v in %v", i, d, want, f.conv.ID)
				}
			}
		})
	}
	ids := []uuid.UUID{stored[0].ID, stored[1].ID}
	confirmed, err := prepared.Confirm(ctx, f.caller, readable, ids)
	if err != nil || !sameIDs(confirmed, ids) {
		t.Errorf("Confirm = %v, %v; want %v", confirmed, err, ids)
	}
	// Confirmed before: the second statement of Confirm answers for them.
	again, err := prepared.Confirm(ctx, f.caller, readable, ids)
	if err != nil || !sameIDs(again, ids) {
		t.Errorf("Confirm again = %v, %v; want %v", again, err, ids)
	}
}

func sameIDs(a, b []uuid.UUID) bool {
	set := make(map[uuid.UUID]int)
	for _, id := range a {
		set[id]++
	}
	for _, id := range b {
		set[id]--
	}
	for _, n := range set {
		if n != 0 {
			return false
		}
	}
	return len(a) == len(b)
}

// TestRenameRacingNewReservations renames an accommodation while its reservations are being
// registered: whichever order the transactions commit in, every conversation ends with the
// accommodation's final name (the conversation row's copy, which the latest page reads).
func TestRenameRacingNewReservations(t *testing.T) {
	ctx := context.Background()
	db := pgtest.DB(t)
	store := New(ctx, db)
	f := newFixture(t, store)
	const rounds = 100
	var wg sync.WaitGroup
	errs := make(chan error, 2*rounds)
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := range rounds {
			_, err := f.svc.PutReservation(ctx, messaging.Reservation{ID: fmt.Sprintf("race-%d", i), AccommodationID: 7,
				Checkin: time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), Checkout: time.Date(2026, 7, 5, 0, 0, 0, 0, time.UTC)})
			errs <- err
		}
	}()
	go func() {
		defer wg.Done()
		for i := range rounds {
			_, err := f.svc.PutAccommodation(ctx, messaging.Accommodation{ID: 7, PartnerID: f.caller.AffiliateID, Name: fmt.Sprintf("Name %d", i)})
			errs <- err
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var stale []string
	if err := db.Select(&stale, `
		SELECT c.reservation_id FROM conversations c JOIN accommodations a ON a.id = c.accommodation_id
		WHERE c.property_name IS DISTINCT FROM a.name`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM conversations WHERE property_name = $1`, fmt.Sprintf("Name %d", rounds-1)); err != nil {
		t.Fatal(err)
	}
	if len(stale) != 0 || n != rounds+1 {
		t.Errorf("conversations with a stale name: %v; with the final name: %d of %d", stale, n, rounds+1)
	}
}
