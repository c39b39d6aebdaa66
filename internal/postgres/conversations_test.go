package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/pgtest"
	"github.com/guestmsg/messaging/internal/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestInsertMessageRetriedAfterCommit is what happens when database/sql retries a send whose
// first attempt committed but whose answer was lost: the same fresh message id arrives again.
// The message must be stored once and the send must succeed, not answer 409.
func TestInsertMessageRetriedAfterCommit(t *testing.T) {
	ctx := context.Background()
	db := pgtest.DB(t)
	store := postgres.New(ctx, db)
	now := time.Date(2026, 7, 3, 12, 0, 0, 0, time.UTC)
	svc := messaging.NewService(store, messaging.DefaultWindows, func() time.Time { return now })
	owner, err := svc.CreatePartner(ctx, messaging.Partner{Kind: messaging.Property, Name: "PMS"})
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := svc.CreateKey(ctx, owner.AffiliateID, "test")
	if err != nil {
		t.Fatal(err)
	}
	caller, err := svc.Authenticate(ctx, secret, owner.AffiliateID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PutAccommodation(ctx, messaging.Accommodation{ID: 7, PartnerID: owner.AffiliateID}); err != nil {
		t.Fatal(err)
	}
	conv, err := svc.PutReservation(ctx, messaging.Reservation{ID: "R1", AccommodationID: 7,
		Checkin: time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), Checkout: time.Date(2026, 7, 5, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
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
