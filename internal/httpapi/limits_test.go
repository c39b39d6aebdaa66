package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"github.com/guestmsg/messaging/api"
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
