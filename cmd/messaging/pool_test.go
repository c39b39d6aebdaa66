package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/pgtest"
)

// TestOneConnectionServesAndPurges: DB_MAX_CONNS=1 is a valid setting. The purge holds its lock
// on one connection for a whole pass and runs its batches on another; on the requests' pool of
// one it would wait for itself forever, holding the only connection, and every request would
// end in 503. Passes must end, and requests be answered between and during them.
func TestOneConnectionServesAndPurges(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the binary")
	}
	bin := buildBinary(t)
	svc := startService(t, bin, "", "DATABASE_URL="+pgtest.DSN(t), "DB_MAX_CONNS=1", "PURGE_INTERVAL=200ms", "REQUEST_TIMEOUT=3s")
	svc.waitReady(30 * time.Second)
	for deadline := time.Now().Add(10 * time.Second); strings.Count(svc.logs.String(), `"msg":"purge done"`) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than two purge passes ended within 10 s")
		}
	}
	st := newSetup(t, svc, 1)
	ctx := context.Background()
	for i := range 20 { // across several passes
		if _, err := st.guest.Send(ctx, api.SendRequest{Accommodation: st.accommodation, Reservation: st.reservations[0], Content: "hello"}, ""); err != nil {
			t.Fatalf("send %d with DB_MAX_CONNS=1 while the purge runs = %v", i, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
