package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/messaging"
)

// TestRevokedKeyWithASlowOversizedBodyIs401: README ("Limits, faults and security"
// and "How it behaves"): "A request refused before any statement runs (for its body: 400, 413,
// 415; or over the partner's budget: 429) has its key checked before it is answered, so a
// revoked key gets 401 there too, as an unknown key does." A body over MAX_BODY_BYTES that
// takes longer than REQUEST_TIMEOUT to arrive (a slow uplink, the case
// TestSlowUploadBodyDoesNotSpendTheDatabaseDeadline covers for bodies within the limit) leaves
// that check with a spent database deadline unless the deadline restarts once the body has
// arrived, refused or not (found by review: the check failed as unavailable, and the revoked
// key got 413).
func TestRevokedKeyWithASlowOversizedBodyIs401(t *testing.T) {
	const dbTimeout = 300 * time.Millisecond
	e := newEnvOpts(t, envOptions{windows: messaging.DefaultWindows, dbTimeout: dbTimeout})
	th := e.thread()
	guest := knownRevokedKey(t, e, th.guest.AffiliateID)

	// 2 MiB + 1 KiB of body (MAX_BODY_BYTES is 2 MiB here), in two parts 3 × REQUEST_TIMEOUT apart.
	half := strings.Repeat(" ", 1<<20)
	send := func(slow bool) (int, string) {
		pr, pw := io.Pipe()
		go func() {
			_, _ = pw.Write([]byte(half))
			if slow {
				time.Sleep(3 * dbTimeout)
			}
			_, _ = pw.Write([]byte(half + strings.Repeat(" ", 1<<10)))
			_ = pw.Close()
		}()
		req, err := http.NewRequest(http.MethodPost, e.url+"/messages/send", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1 // chunked: the size shows only as the body arrives
		for k, v := range authHeaders(guest) {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := send(false); status != http.StatusUnauthorized {
		t.Fatalf("revoked key, oversized body sent at once = %d %s, want 401", status, body)
	}
	// The request above made the process forget the key: another, known and then revoked.
	guest = knownRevokedKey(t, e, th.guest.AffiliateID)
	if status, body := send(true); status != http.StatusUnauthorized {
		t.Errorf("revoked key, oversized body taking %v (REQUEST_TIMEOUT %v) = %d %s, want 401 unauthorized as at once",
			3*dbTimeout, dbTimeout, status, body)
	}
}

// knownRevokedKey returns a client of the partner with a key of its own that the process has
// seen work (and remembers), revoked since.
func knownRevokedKey(t *testing.T, e *env, affiliateID int64) *api.Client {
	t.Helper()
	ctx := context.Background()
	k, err := e.admin.CreateKey(ctx, affiliateID, "to revoke")
	if err != nil {
		t.Fatal(err)
	}
	c := &api.Client{BaseURL: e.url, AffiliateID: affiliateID, APIKey: k.APIKey}
	if _, err := c.Latest(ctx); err != nil { // the process now knows the key
		t.Fatal(err)
	}
	if _, err := e.admin.RevokeKey(ctx, k.KeyID); err != nil {
		t.Fatal(err)
	}
	return c
}
