package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/httpapi"
	"github.com/guestmsg/messaging/internal/messaging"
)

func TestRateLimitPerPartner(t *testing.T) {
	e := newRateLimitedEnv(t, 5) // a token every 12 s
	th := e.thread()
	body := `{"accommodation": "` + th.accommodation + `", "reservation": "` + th.reservation + `", "content": "hi"}`
	// Every partner endpoint draws on the same budget.
	paths := []string{"/messages/latest", "/3.1/messages/send", "/3.2/messages/conversations", "/messages/latest", "/3.2/messages/latest"}
	for _, p := range paths {
		if a := e.as(th.guest, p, body); a.status != http.StatusOK {
			t.Fatalf("POST %s within the budget = %d %s", p, a.status, a.body)
		}
	}
	a := e.as(th.guest, "/messages/send", body)
	if a.status != http.StatusTooManyRequests || a.errorID(t) != "rate_limited" {
		t.Fatalf("POST /messages/send over the budget = %d %s, want 429 rate_limited", a.status, a.body)
	}
	if got := a.header.Get("Retry-After"); got != "12" {
		t.Errorf("Retry-After = %q, want 12 (seconds until the next token)", got)
	}
	var apiErr *api.Error // the client passes it on
	if _, err := th.guest.Latest(context.Background()); !errors.As(err, &apiErr) || apiErr.Status != http.StatusTooManyRequests || apiErr.RetryAfter != 12*time.Second {
		t.Errorf("the client's Latest over the budget = %#v, want *api.Error 429 with RetryAfter 12 s", err)
	}
	if n := e.count("SELECT count(*) FROM messages"); n != 1 {
		t.Errorf("%d messages stored, want 1: a limited send must not be carried out", n)
	}

	// Another partner has its own budget; authentication comes first.
	if a := e.as(th.property, "/messages/latest", ""); a.status != http.StatusOK {
		t.Errorf("another partner's request = %d %s, want 200", a.status, a.body)
	}
	bad := authHeaders(th.guest)
	bad["Authorization"] = "Bearer gmk_wrong"
	if a := e.raw(http.MethodPost, "/messages/latest", bad, ""); a.status != http.StatusUnauthorized {
		t.Errorf("a wrong key for a limited partner = %d, want 401 before any rate limit", a.status)
	}

	e.clock.Set(start.Add(12 * time.Second))
	if a := e.as(th.guest, "/messages/latest", ""); a.status != http.StatusOK {
		t.Errorf("POST /messages/latest after Retry-After = %d %s, want 200", a.status, a.body)
	}
	if a := e.as(th.guest, "/messages/latest", ""); a.status != http.StatusTooManyRequests {
		t.Errorf("POST /messages/latest right after = %d, want 429", a.status)
	} else if got, _ := strconv.Atoi(a.header.Get("Retry-After")); got < 1 || got > 12 {
		t.Errorf("Retry-After = %q, want 1 to 12 seconds", a.header.Get("Retry-After"))
	}
}

// TestKeysAreStoredOnlyAsHashes looks for an API key's secret, as text or as bytes (bytea shows
// as hex), in every row of every table: only its SHA-256 is there.
func TestKeysAreStoredOnlyAsHashes(t *testing.T) {
	e := newEnv(t)
	c := e.partner("guest")
	var stored [][]byte
	if err := e.db.Select(&stored, `SELECT secret_hash FROM api_keys WHERE affiliate_id = $1`, c.AffiliateID); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte(c.APIKey))
	if len(stored) != 1 || !bytes.Equal(stored[0], want[:]) {
		t.Errorf("api_keys.secret_hash = %x, want the SHA-256 of the secret %x", stored, want)
	}
	secret := strings.TrimPrefix(c.APIKey, "gmk_")
	for _, table := range tables(t, e.db) {
		var n int
		q := `SELECT count(*) FROM ` + pq.QuoteIdentifier(table) + ` t WHERE strpos(t::text, $1) > 0 OR strpos(t::text, encode(convert_to($1, 'UTF8'), 'hex')) > 0`
		if err := e.db.Get(&n, q, secret); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("table %s holds the key's secret in %d rows", table, n)
		}
	}
}

// TestHeaderLimitCountsTheBytesSent holds the service's own bound on request headers to the
// bytes on the wire, request line and blank line included, as net/http's MaxHeaderBytes counts
// them: a request of exactly the limit passes, one byte more is 431 in the envelope, with its
// request id and a log line (spec §2: every answer has its request_id).
func TestHeaderLimitCountsTheBytesSent(t *testing.T) {
	const limit = 2048
	logs := &syncBuffer{}
	srv := httptest.NewServer(httpapi.NewStarting(slog.New(slog.NewJSONHandler(logs, nil)), limit))
	t.Cleanup(srv.Close)
	for _, extra := range []int{0, 1} {
		id := "edge-" + strconv.Itoa(extra)
		head := "POST /messages/latest?x=1 HTTP/1.1\r\nHost: " + srv.Listener.Addr().String() +
			"\r\nX-Request-Id: " + id + "\r\nX-Two: a\r\nX-Two: b\r\nX-Pad: "
		pad := limit + extra - len(head) - len("\r\nContent-Length: 0\r\n\r\n")
		raw := head + strings.Repeat("p", pad) + "\r\nContent-Length: 0\r\n\r\n"
		if len(raw) != limit+extra {
			t.Fatalf("built %d bytes, want %d", len(raw), limit+extra)
		}
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.Close()
		want, wantID := http.StatusServiceUnavailable, api.ErrUnavailable // within the bound: the starting service's answer
		if extra > 0 {
			want, wantID = http.StatusRequestHeaderFieldsTooLarge, api.ErrHeadersTooLarge
		}
		var env api.ErrorResponse
		if resp.StatusCode != want || json.Unmarshal(body, &env) != nil || env.RequestID != id ||
			resp.Header.Get("X-Request-Id") != id || len(env.Errors) != 1 || env.Errors[0].ID != wantID {
			t.Errorf("%d bytes of headers with a limit of %d = %d %q %s, want %d %s in the envelope with its request id",
				len(raw), limit, resp.StatusCode, resp.Header.Get("X-Request-Id"), body, want, wantID)
		}
		if !logs.logged(id, want) {
			t.Errorf("no request log line with status %d for %s; logs:\n%s", want, id, logs)
		}
	}
}

// A request's first database deadline ends AnswerMargin before AnswerWithin (WRITE_TIMEOUT) at
// the latest, as the deadline restarted after a slow body does, whatever DBTimeout is: its 503
// can still be written. (Found by review: only the restarted deadline was capped.)
func TestDatabaseDeadlineLeavesTimeToAnswer(t *testing.T) {
	e := newEnvOpts(t, envOptions{windows: messaging.DefaultWindows, dbTimeout: 10 * time.Second, answerBy: 1500 * time.Millisecond})
	th := e.thread()
	lock, err := e.db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback()
	if _, err := lock.Exec(`LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	a := e.as(th.property, "/messages/latest", "")
	if took := time.Since(start); a.status != http.StatusServiceUnavailable || a.errorID(t) != api.ErrUnavailable || took > 1200*time.Millisecond {
		t.Errorf("latest waiting on a lock (REQUEST_TIMEOUT 10s, WRITE_TIMEOUT 1.5s) = %d %s after %v; want 503 unavailable after about 0.5 s",
			a.status, a.body, took.Round(time.Millisecond))
	}
}
