package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guestmsg/messaging/internal/httpapi"
	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/pgtest"
	"github.com/guestmsg/messaging/internal/postgres"
)

// TestTooManyConnectionsIs503: PostgreSQL at its connection limit refuses new connections with
// SQLSTATE 53300. The database cannot be reached now, and a retry cures it: the contract's 503
// unavailable with Retry-After (§2 error ids), never a 500 internal_error. (Found by review.)
func TestTooManyConnectionsIs503(t *testing.T) {
	pool, err := postgres.Open(pgtest.RefusingDSN(t), 16)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	store := postgres.New(context.Background(), pool)
	svc := messaging.NewService(store, messaging.DefaultWindows, time.Now)
	h := httpapi.New(svc, store, slog.New(slog.NewTextHandler(io.Discard, nil)),
		httpapi.Config{AdminToken: adminToken, MaxBodyBytes: 2 << 20, DBTimeout: 10 * time.Second}, prometheus.NewRegistry())
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	for _, path := range []string{"/messages/latest", "/messages/send"} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(`{"accommodation":"1","reservation":"R1","content":"hi"}`))
		req.Header.Set("Authorization", "Bearer gmk_some_key")
		req.Header.Set("X-Affiliate-Id", "1001")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("POST %s with the database refusing connections (53300) = %d %s (Retry-After %q); want 503 unavailable with Retry-After",
				path, resp.StatusCode, strings.TrimSpace(string(body)), resp.Header.Get("Retry-After"))
		}
	}
}
