package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/guestmsg/messaging/internal/pgtest"
)

// TestGracefulShutdownUnderLoad sends SIGTERM while requests are in flight: they complete, new
// connections are refused, the process exits 0, and every send answered 200 is stored.
func TestGracefulShutdownUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the binary")
	}
	bin := buildBinary(t)
	dsn := pgtest.DSN(t)
	svc := startService(t, bin, "", "DATABASE_URL="+dsn, "RATE_LIMIT_PER_MINUTE=0")
	svc.waitReady(30 * time.Second)
	const workers = 8
	st := newSetup(t, svc, workers+1)
	sendBody := func(r int, content string) string {
		return fmt.Sprintf(`{"accommodation": %q, "reservation": %q, "content": %q}`, st.accommodation, st.reservations[r], content)
	}

	// A request whose body is still arriving when SIGTERM comes.
	slow, err := net.Dial("tcp", svc.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	body := sendBody(workers, "sent across the shutdown")
	fmt.Fprintf(slow, "POST /messages/send HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nX-Affiliate-Id: %d\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", svc.addr, st.guest.APIKey, st.guest.AffiliateID, len(body), body[:10])

	var (
		mu  sync.Mutex
		obs []observation
	)
	hc := &http.Client{Timeout: 30 * time.Second}
	stop := load(workers, func(w, i int) {
		o := post(hc, st.guest, svc.url, "/messages/send", sendBody(w, fmt.Sprintf("w%d-%d", w, i)), "")
		mu.Lock()
		obs = append(obs, o)
		mu.Unlock()
		if o.status == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	})
	time.Sleep(300 * time.Millisecond)
	svc.signal(syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for !refused(svc.addr) {
		if time.Now().After(deadline) {
			t.Fatal("new connections are still accepted 10 s after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-svc.done:
		t.Fatal("the service exited with a request in flight")
	default:
	}

	// The request in flight completes.
	if _, err := slow.Write([]byte(body[10:])); err != nil {
		t.Fatalf("finish the request in flight: %v", err)
	}
	slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
	if err != nil {
		t.Fatalf("answer to the request in flight: %v", err)
	}
	var sent struct {
		Data struct{ Message string } `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&sent); err != nil || resp.StatusCode != http.StatusOK || sent.Data.Message == "" {
		t.Fatalf("request in flight at SIGTERM = %d %v, want 200 with a message id", resp.StatusCode, err)
	}
	resp.Body.Close()
	slow.Close()
	if err := svc.wait(30 * time.Second); err != nil {
		t.Errorf("exit after SIGTERM = %v, want status 0", err)
	}
	stop()
	if !strings.Contains(svc.logs.String(), `"msg":"stopped"`) {
		t.Error(`the service did not log "stopped"`)
	}

	db, err := sqlx.Connect("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids := []string{sent.Data.Message}
	answered, refusedOrCut := 1, 0
	for _, o := range obs {
		switch {
		case o.status == http.StatusOK:
			answered++
			ids = append(ids, o.messageID)
		case o.status == 0:
			refusedOrCut++
		default:
			t.Errorf("send during shutdown = %d %s, want 200 or no connection", o.status, o.errorID)
		}
	}
	for _, id := range ids {
		var n int
		if err := db.Get(&n, `SELECT count(*) FROM messages WHERE id = $1`, id); err != nil || n != 1 {
			t.Errorf("acknowledged message %s stored %d times (%v), want once", id, n, err)
		}
	}
	if answered < 10 {
		t.Errorf("only %d sends answered before the shutdown: the load did not run", answered)
	}
	t.Logf("shutdown: %d sends answered 200 and stored, %d refused or cut at the connection; the request in flight completed", answered, refusedOrCut)
}

// TestShutdownTimeoutCutsOffRequests: a request still running when SHUTDOWN_TIMEOUT ends (its
// database work waits for a lock) is cut off: it answers 503 unavailable, and the process exits
// (non-zero) at once, rather than when the request's database work would have ended; closing
// the store used to wait for it. A send too, whose statement runs in a batch of sends, apart
// from its request's context.
func TestShutdownTimeoutCutsOffRequests(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the binary")
	}
	bin := buildBinary(t)
	for _, c := range []struct{ name, lock, path string }{
		{"latest", `LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE`, "/messages/latest"},
		{"send", `LOCK TABLE messages IN SHARE MODE`, "/messages/send"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dsn := pgtest.DSN(t)
			svc := startService(t, bin, "", "DATABASE_URL="+dsn, "SHUTDOWN_TIMEOUT=1s", "REQUEST_TIMEOUT=9s", "WRITE_TIMEOUT=10s")
			svc.waitReady(30 * time.Second)
			st := newSetup(t, svc, 1)

			release := holdLock(t, dsn, c.lock)
			answered := make(chan observation, 1)
			go func() {
				body := fmt.Sprintf(`{"accommodation": %q, "reservation": %q, "content": "cut off"}`, st.accommodation, st.reservations[0])
				answered <- post(&http.Client{Timeout: 20 * time.Second}, st.guest, svc.url, c.path, body, "")
			}()
			time.Sleep(700 * time.Millisecond) // the request is now waiting for the lock
			start := time.Now()
			svc.signal(syscall.SIGTERM)
			select {
			case <-svc.done:
				t.Logf("exited %v after SIGTERM: %v", time.Since(start).Round(time.Millisecond), svc.err)
				if svc.err == nil {
					t.Error("exit status 0 after cutting off a request, want non-zero")
				}
			case <-time.After(4 * time.Second):
				t.Errorf("still running 4 s after SIGTERM with SHUTDOWN_TIMEOUT=1s")
			}
			if o := <-answered; o.status != http.StatusServiceUnavailable || o.errorID != "unavailable" {
				t.Errorf("the request cut off answered %d %q, want 503 unavailable", o.status, o.errorID)
			}
			release()
			svc.wait(15 * time.Second)
		})
	}
}
