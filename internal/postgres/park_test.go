package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/pgtest"
)

// BenchmarkGuestLatestPastUnreadableEntries measures a guest partner's latest page when its
// queue starts with 100,000 entries of a conversation past the guest's read window (and one
// readable message behind them), side by side: as they are, once parked (ParkUnreadable), and
// once autovacuum would have removed the parked entries' dead index tuples.
func BenchmarkGuestLatestPastUnreadableEntries(b *testing.B) {
	ctx := context.Background()
	db := pgtest.DB(b)
	store := New(ctx, db)
	b.Cleanup(func() { store.Close() })
	f := newFixture(b, store)
	guest := withGuest(b, f)
	const unreadable = 100_000
	if _, err := db.ExecContext(ctx, `
WITH m AS (
    INSERT INTO messages (id, conversation_id, sender, content, created_at)
    SELECT gen_random_uuid(), $1, 'property', 'message ' || g, $3::timestamptz + g * interval '1 ms'
    FROM generate_series(1, $4) AS g
    RETURNING seq, id, conversation_id
)
INSERT INTO deliveries (partner_id, seq, message_id, conversation_id) SELECT $2, seq, id, conversation_id FROM m`,
		f.conv.ID, guest.AffiliateID, f.now, unreadable); err != nil {
		b.Fatal(err)
	}
	// Past the first conversation's guest window, a second one is open.
	f.now = f.conv.StayEnd.Add(70 * 24 * time.Hour)
	open, err := f.svc.PutReservation(ctx, messaging.Reservation{ID: "R2", AccommodationID: 7, GuestPartnerID: guest.AffiliateID,
		Checkin: f.now, Checkout: f.now.AddDate(0, 0, 3)})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.svc.Send(ctx, f.caller, messaging.SendInput{Ref: messaging.ConversationRef{AccommodationID: 7, ConversationID: open.ID}, Content: "hi"}); err != nil {
		b.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
	readableAfter := messaging.DefaultWindows.ReadableStayEndAfter(messaging.Guest, f.now)
	page := func(b *testing.B) {
		for b.Loop() {
			if got, err := store.Pending(ctx, guest, readableAfter, messaging.LatestPageSize); err != nil || len(got) != 1 {
				b.Fatalf("Pending = %d messages, %v; want 1", len(got), err)
			}
		}
	}
	b.Run("unparked", page)
	for {
		parked, _, err := store.ParkUnreadable(ctx, guest.AffiliateID, readableAfter, 2000)
		if err != nil {
			b.Fatal(err)
		}
		if parked == 0 {
			break
		}
	}
	b.Run("parked", page)
	if _, err := db.ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
	b.Run("parked and vacuumed", page)
}
