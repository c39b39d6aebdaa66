package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/httpapi"
	"github.com/guestmsg/messaging/internal/messaging"
)

// TestEveryAnswerIsLogged: one JSON line per request (§8), also for the answers given before a
// route's handler runs: the hidden admin API's 404 (ADMIN_TOKEN unset) and the 503 of a service
// still starting.
func TestEveryAnswerIsLogged(t *testing.T) {
	t.Run("admin API hidden", func(t *testing.T) {
		logs := &syncBuffer{}
		e := newEnvOpts(t, envOptions{windows: messaging.DefaultWindows, noAdmin: true, logs: logs})
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

// TestSendToAReadOnlyDatabaseIs503: after a failover that leaves DATABASE_URL on a node that
// only reads (a hot standby, or a primary an operator made read-only with
// default_transaction_read_only during maintenance), every write fails with SQLSTATE 25006.
// The request cannot be served now and a retry may well succeed once the database takes
// writes again: the contract's 503 unavailable with Retry-After (§2 error ids, README "When the
// database is down": "never a 500"), as for 53300 (TestTooManyConnectionsIs503), not 500
// internal_error with an ERROR log line per request.
func TestSendToAReadOnlyDatabaseIs503(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	th.send(t, th.guest, "before the database became read-only")

	ctx := context.Background()
	conn, err := e.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	if err := conn.QueryRowContext(ctx, `SELECT current_database()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	// New sessions are read-only; the pool's other sessions are ended (they reconnect, read-only),
	// and this one is made read-only too before it goes back to the pool.
	for _, q := range []string{
		fmt.Sprintf(`ALTER DATABASE %q SET default_transaction_read_only = on`, name),
		`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`,
		`SET default_transaction_read_only = on`,
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn.Close()

	body := fmt.Sprintf(`{"accommodation": %q, "reservation": %q, "content": "while read-only"}`, th.accommodation, th.reservation)
	var statuses []string
	for range 5 {
		a := e.as(th.guest, "/messages/send", body)
		statuses = append(statuses, fmt.Sprint(a.status))
		if a.status == http.StatusOK {
			t.Fatalf("send to a read-only database = 200 %s", a.body)
		}
		if a.status != http.StatusServiceUnavailable || a.errorID(t) != api.ErrUnavailable || a.header.Get("Retry-After") == "" {
			t.Errorf("send to a read-only database (SQLSTATE 25006) = %d %s (Retry-After %q); want 503 unavailable with Retry-After",
				a.status, a.body, a.header.Get("Retry-After"))
			break
		}
	}
	t.Logf("statuses: %s", strings.Join(statuses, " "))
}

// panickingStore panics where a partner request is authenticated.
type panickingStore struct{ messaging.Store }

func (panickingStore) PartnerByKeyHash(context.Context, []byte) (messaging.Partner, error) {
	var m map[string]int
	m["boom"]++ // a bug: assignment to entry in nil map
	return messaging.Partner{}, nil
}

// TestPanicIsLoggedOnce: recoverPanic "turns a panic into a 500 that is logged once", and
// SECURITY.md says of internal errors "the detail goes to the log once, with the request id".
// A panic must give one ERROR line for its request, carrying what went wrong, not a second
// "internal error" line whose error is the client's own "Internal server error.".
func TestPanicIsLoggedOnce(t *testing.T) {
	logs := &syncBuffer{}
	e := newEnvOpts(t, envOptions{windows: messaging.DefaultWindows, logs: logs,
		wrapStore: func(s messaging.Store) messaging.Store { return panickingStore{s} }})

	const id = "panic-request-1"
	a := e.raw(http.MethodPost, "/messages/latest", map[string]string{
		"Authorization": "Bearer gmk_some_key", "X-Affiliate-Id": "1001", "X-Request-Id": id}, "")
	if a.status != http.StatusInternalServerError || a.errorID(t) != api.ErrInternal {
		t.Fatalf("a request that panics = %d %s, want 500 internal_error", a.status, a.body)
	}
	if !logs.logged(id, http.StatusInternalServerError) {
		t.Fatalf("no request log line with status 500; logs:\n%s", logs)
	}
	var errorLines []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec struct {
			Level     string `json:"level"`
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Level == "ERROR" && rec.RequestID == id {
			errorLines = append(errorLines, line)
		}
	}
	if len(errorLines) != 1 {
		t.Errorf("a panic gave %d ERROR log lines for its request, want 1:\n%s", len(errorLines), strings.Join(errorLines, "\n"))
	}
	if len(errorLines) == 1 && (!strings.Contains(errorLines[0], `"error":"panic: assignment to entry in nil map"`) ||
		!strings.Contains(errorLines[0], "panickingStore.PartnerByKeyHash")) {
		t.Errorf("the panic's ERROR line = %s; want its value and its stack", errorLines[0])
	}
	if strings.Contains(logs.String(), `"error":"Internal server error."`) {
		t.Errorf("an ERROR line repeats the client's message instead of the cause:\n%s", strings.Join(errorLines, "\n"))
	}
}

// TestReadyzWithABusyPoolIsReady: /readyz says whether the database is reachable (§8), and
// its 503 is the contract's "the database cannot be reached". A database that answers, with
// every connection of the requests' pool busy (DB_MAX_CONNS of them, each on a request that
// waits for a lock or simply runs), is reachable: the probe must not wait for a pool connection
// and then report the database down, which makes a load balancer take a loaded but healthy
// replica out of rotation (and all of them together under the same load).
func TestReadyzWithABusyPoolIsReady(t *testing.T) {
	const poolSize = 1 // DB_MAX_CONNS=1 is a valid setting; with 16 it takes 16 busy requests
	e := newEnvOpts(t, envOptions{windows: messaging.DefaultWindows, poolSize: poolSize})
	pool := e.db
	if a := e.raw(http.MethodGet, "/readyz", nil, ""); a.status != http.StatusOK {
		t.Fatalf("GET /readyz with an idle pool = %d %s, want 200", a.status, a.body)
	}

	// A request holds the pool's connection (as a send waiting for a row lock does).
	ctx := context.Background()
	busy, err := pool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if _, err := busy.ExecContext(ctx, `SELECT 1`); err != nil {
		t.Fatal(err)
	}
	a := e.raw(http.MethodGet, "/readyz", nil, "")
	if a.status != http.StatusOK {
		t.Errorf("GET /readyz with the database up and its pool's %d connection(s) busy = %d %s, want 200 (the database is reachable)",
			poolSize, a.status, a.body)
	}
}

// A 503 says why in its request log line: a database that refuses connections, a deadline, a
// client that went away or a read-only database each call for a different response, and the
// answer itself says nothing of it. (Found by review: 503s carried no cause anywhere.)
func TestUnavailableIsLoggedWithItsCause(t *testing.T) {
	logs := &syncBuffer{}
	e := newEnvOpts(t, envOptions{windows: messaging.DefaultWindows, refused: true, logs: logs})
	const id = "down-1"
	a := e.raw(http.MethodPost, "/messages/latest", map[string]string{
		"Authorization": "Bearer gmk_some_key", "X-Affiliate-Id": "1001", "X-Request-Id": id}, "")
	if a.status != http.StatusServiceUnavailable || strings.Contains(string(a.body), "connect") {
		t.Fatalf("a request on a database that refuses connections = %d %s, want 503 without the cause", a.status, a.body)
	}
	if !logs.logged(id, http.StatusServiceUnavailable) {
		t.Fatalf("no request log line with status 503; logs:\n%s", logs)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"request_id":"`+id+`"`) && strings.Contains(line, `"msg":"request"`) &&
			!strings.Contains(line, `"error":"unavailable: pq: too many connections`) {
			t.Errorf("the 503's request line = %s; want its cause, the refused connection (the role's connection limit)", line)
		}
	}
}
