package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixture is a service on a store at a fixed instant, with one property partner authenticated
// by its key, its accommodation 7 and reservation R1 (checkout 2026-07-05, so every window is
// open at now).
type fixture struct {
	svc    *messaging.Service
	now    time.Time
	caller messaging.Caller
	conv   messaging.Conversation
}

func newFixture(t testing.TB, store *Store) fixture {
	t.Helper()
	ctx := context.Background()
	f := fixture{now: time.Date(2026, 7, 3, 12, 0, 0, 0, time.UTC)}
	f.svc = messaging.NewService(store, messaging.DefaultWindows, func() time.Time { return f.now })
	f.caller = newCaller(t, f.svc, messaging.Property, "PMS")
	if _, err := f.svc.PutAccommodation(ctx, messaging.Accommodation{ID: 7, PartnerID: f.caller.AffiliateID}); err != nil {
		t.Fatal(err)
	}
	var err error
	f.conv, err = f.svc.PutReservation(ctx, messaging.Reservation{ID: "R1", AccommodationID: 7,
		Checkin: time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), Checkout: time.Date(2026, 7, 5, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// newCaller creates a partner of kind with a key, and returns it authenticated by that key.
func newCaller(t testing.TB, svc *messaging.Service, kind messaging.Side, name string) messaging.Caller {
	t.Helper()
	ctx := context.Background()
	p, err := svc.CreatePartner(ctx, messaging.Partner{Kind: kind, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := svc.CreateKey(ctx, p.AffiliateID, "test")
	if err != nil {
		t.Fatal(err)
	}
	caller, err := svc.Authenticate(ctx, secret, p.AffiliateID)
	if err != nil {
		t.Fatal(err)
	}
	return caller
}
