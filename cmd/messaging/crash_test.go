package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/pgtest"
)

// sendResult is the fate of one send: the message id when it was acknowledged with a 200.
type sendResult struct {
	key, reservation, content string
	id                        string
}

// TestCrashLosesNothingAcknowledged sends from 16 workers, kills the service with SIGKILL in
// the middle, and restarts it: every send answered 200 is stored exactly once and delivered
// through /messages/latest, and a retry with the same Idempotency-Key returns the first id.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the binary")
	}
	bin := buildBinary(t)
	dsn := pgtest.DSN(t)
	env := []string{"DATABASE_URL=" + dsn, "RATE_LIMIT_PER_MINUTE=0"}
	svc := startService(t, bin, "", env...)
	svc.waitReady(30 * time.Second)
	const workers = 16
	st := newSetup(t, svc, workers)

	var (
		mu      sync.Mutex
		results []sendResult
		acked   atomic.Int64
	)
	stop := load(workers, func(w, i int) {
		r := sendResult{key: fmt.Sprintf("w%d-%d", w, i), reservation: st.reservations[w]}
		r.content = "crash test " + r.key
		d, err := st.guest.Send(context.Background(), api.SendRequest{Accommodation: st.accommodation, Reservation: r.reservation, Content: r.content}, r.key)
		if err == nil {
			r.id = d.Message
			acked.Add(1)
		}
		mu.Lock()
		results = append(results, r)
		mu.Unlock()
		if err != nil {
			time.Sleep(10 * time.Millisecond) // the service is down: do not spin
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for acked.Load() < 300 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	svc.kill()
	time.Sleep(50 * time.Millisecond)
	stop()

	svc = startService(t, bin, svc.addr, env...)
	svc.waitReady(30 * time.Second)

	db, err := sqlx.Connect("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	countByContent := func(content string) int {
		var n int
		if err := db.Get(&n, `SELECT count(*) FROM messages WHERE content = $1`, content); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var ackedResults, unacked []sendResult
	for _, r := range results {
		if r.id != "" {
			ackedResults = append(ackedResults, r)
		} else {
			unacked = append(unacked, r)
		}
	}
	if len(ackedResults) < 300 || len(unacked) == 0 {
		t.Fatalf("%d sends acknowledged and %d not: the kill did not come in the middle of the load", len(ackedResults), len(unacked))
	}
	for _, r := range ackedResults {
		var n int
		if err := db.Get(&n, `SELECT count(*) FROM messages WHERE id = $1 AND content = $2`, r.id, r.content); err != nil {
			t.Fatal(err)
		}
		if n != 1 || countByContent(r.content) != 1 {
			t.Errorf("acknowledged send %s (%s) is stored %d times under its id, %d times in all; want once", r.key, r.id, n, countByContent(r.content))
		}
	}
	storedUnacked := 0
	for _, r := range unacked {
		switch n := countByContent(r.content); n {
		case 0:
		case 1:
			storedUnacked++
		default:
			t.Errorf("unacknowledged send %s is stored %d times", r.key, n)
		}
	}

	// Everything acknowledged comes through the property's queue.
	delivered := map[string]bool{}
	for {
		page, err := st.property.Latest(context.Background())
		if err != nil {
			t.Fatalf("Latest after the restart: %v", err)
		}
		if len(page) == 0 {
			break
		}
		ids := make([]string, len(page))
		for i, m := range page {
			if delivered[m.MessageID] {
				t.Errorf("message %s delivered again after its confirmation", m.MessageID)
			}
			delivered[m.MessageID] = true
			ids[i] = m.MessageID
		}
		if _, err := st.property.Confirm(context.Background(), ids); err != nil {
			t.Fatalf("Confirm: %v", err)
		}
	}
	found := 0
	for _, r := range ackedResults {
		if delivered[r.id] {
			found++
		} else {
			t.Errorf("acknowledged message %s (%s) was not delivered through /messages/latest", r.id, r.key)
		}
	}

	// Retries after the crash: the acknowledged ones answer with the first id and store nothing;
	// the ones cut off by the crash are stored once at most, whether they had been or not.
	for _, r := range append(ackedResults, unacked...) {
		d, err := st.guest.Send(context.Background(), api.SendRequest{Accommodation: st.accommodation, Reservation: r.reservation, Content: r.content}, r.key)
		if err != nil {
			t.Fatalf("retry of %s after the crash: %v", r.key, err)
		}
		if r.id != "" && d.Message != r.id {
			t.Errorf("retry of %s = message %s, want the first answer's %s", r.key, d.Message, r.id)
		}
		if n := countByContent(r.content); n != 1 {
			t.Errorf("after the retry of %s it is stored %d times, want once", r.key, n)
		}
	}
	t.Logf("crash test: %d sends, %d acknowledged before the SIGKILL, %d of those found stored once and delivered; %d cut off (%d of them stored), all retried with their Idempotency-Key",
		len(results), len(ackedResults), found, len(unacked), storedUnacked)
}
