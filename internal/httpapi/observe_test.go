package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guestmsg/messaging/internal/httpapi"
	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/pgtest"
	"github.com/guestmsg/messaging/internal/postgres"
)

// TestEveryAnswerIsLogged: one JSON line per request (§8), also for the answers given before a
// route's handler runs: the hidden admin API's 404 (ADMIN_TOKEN unset) and the 503 of a service
// still starting.
func TestEveryAnswerIsLogged(t *testing.T) {
	t.Run("admin API hidden", func(t *testing.T) {
		pool, err := postgres.Open(pgtest.DSN(t), 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pool.Close() })
		store := postgres.New(context.Background(), pool)
		svc := messaging.NewService(store, messaging.DefaultWindows, time.Now)
		logs := &syncBuffer{}
		srv := httptest.NewServer(httpapi.New(svc, store, slog.New(slog.NewJSONHandler(logs, nil)),
			httpapi.Config{MaxBodyBytes: 1 << 20, DBTimeout: time.Second}, prometheus.NewRegistry()))
		t.Cleanup(srv.Close)
		e := &env{t: t, url: srv.URL}
		for _, r := range []struct{ method, path string }{{http.MethodPost, "/admin/partners"}, {http.MethodGet, "/admin/partners"}, {http.MethodGet, "/admin"}} {
			id := "hidden " + r.method + " " + r.path
			if a := e.raw(r.method, r.path, map[string]string{"X-Request-Id": id}, `{}`); a.status != http.StatusNotFound {
				t.Errorf("%s %s without ADMIN_TOKEN = %d %s, want 404", r.method, r.path, a.status, a.body)
			}
			if !logs.logged(id, http.StatusNotFound) {
				t.Errorf("no request log line with status 404 for %s %s without ADMIN_TOKEN; logs:\n%s", r.method, r.path, logs)
			}
		}
	})
	t.Run("starting", func(t *testing.T) {
		logs := &syncBuffer{}
		srv := httptest.NewServer(httpapi.NewStarting(slog.New(slog.NewJSONHandler(logs, nil)), 0))
		t.Cleanup(srv.Close)
		e := &env{t: t, url: srv.URL}
		if a := e.raw(http.MethodPost, "/messages/latest", map[string]string{"X-Request-Id": "starting-1"}, ""); a.status != http.StatusServiceUnavailable {
			t.Fatalf("POST /messages/latest while starting = %d, want 503", a.status)
		}
		if !logs.logged("starting-1", http.StatusServiceUnavailable) {
			t.Errorf("no request log line with status 503 for a request answered while starting; logs:\n%s", logs)
		}
		// The readiness probe, which polls while the service starts, is logged as its route.
		e.raw(http.MethodGet, "/readyz", map[string]string{"X-Request-Id": "starting-2"}, "")
		if !logs.logged("starting-2", http.StatusServiceUnavailable) || !strings.Contains(logs.String(), `"route":"/readyz"`) {
			t.Errorf("GET /readyz while starting is not logged as route /readyz with status 503; logs:\n%s", logs)
		}
	})
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logged waits up to two seconds for the request log line of requestID, which the server may
// write just after the answer, and reports whether it came with status.
func (b *syncBuffer) logged(requestID string, status int) bool {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, line := range strings.Split(b.String(), "\n") {
			var rec struct {
				Msg       string `json:"msg"`
				RequestID string `json:"request_id"`
				Status    int    `json:"status"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "request" && rec.RequestID == requestID {
				return rec.Status == status
			}
		}
	}
	return false
}

// TestHiddenAdminAPIDoesNotShowInMetrics: with ADMIN_TOKEN unset the admin API "does not show
// at all" (adminGate): its 404s must be counted as any unknown path's, route "unmatched", not
// under the admin routes' templates, which /metrics (no authentication) would then list.
func TestHiddenAdminAPIDoesNotShowInMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(httpapi.New(nil, nil, slog.New(slog.NewJSONHandler(&syncBuffer{}, nil)),
		httpapi.Config{MaxBodyBytes: 1 << 20, DBTimeout: time.Second}, reg))
	t.Cleanup(srv.Close)
	e := &env{t: t, url: srv.URL}
	for _, p := range []string{"/admin/partners", "/admin/partners/1/keys", "/admin/keys/x"} {
		if a := e.raw(http.MethodPost, p, nil, `{}`); a.status != http.StatusNotFound {
			t.Fatalf("POST %s without ADMIN_TOKEN = %d, want 404", p, a.status)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && strings.HasPrefix(l.GetValue(), "/admin") {
					t.Errorf("%s has route=%q while the admin API is hidden; want \"unmatched\"", f.GetName(), l.GetValue())
				}
			}
		}
	}
}
