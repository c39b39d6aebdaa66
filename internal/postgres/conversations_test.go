package postgres

import (
	"context"
	"testing"

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
