package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/pgtest"
)

// observation is one request of a load run.
type observation struct {
	start      time.Time
	took       time.Duration
	status     int // 0: no answer
	errorID    string
	retryAfter string
	messageID  string
}

// post sends a partner request and observes its answer.
func post(hc *http.Client, c *api.Client, url, path, body, idempotencyKey string) observation {
	o := observation{start: time.Now()}
	req, _ := http.NewRequest(http.MethodPost, url+path, bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+c.APIKey)
	req.Header.Set("X-Affiliate-Id", strconv.FormatInt(c.AffiliateID, 10))
	req.Header.Set("Content-Type", "application/json")
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	resp, err := hc.Do(req)
	o.took = time.Since(o.start)
	if err != nil {
		return o
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	o.status, o.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
	var env struct {
		Errors []api.ErrorItem `json:"errors"`
		Data   struct {
			Message string `json:"message"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &env) == nil {
		if len(env.Errors) > 0 {
			o.errorID = env.Errors[0].ID
		}
		o.messageID = env.Data.Message
	}
	return o
}

// clusterDir makes a directory for a PostgreSQL cluster that the cluster's owner can reach
// (as root, clusters run as the postgres user), removed when the test ends.
func clusterDir(t *testing.T) string {
	t.Helper()
	parent, err := os.MkdirTemp("", "pgoutage-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "pg")
	t.Cleanup(func() {
		if err := pgtest.StopCluster(dir); err != nil {
			t.Errorf("stop the outage cluster: %v", err)
		}
		os.RemoveAll(parent)
	})
	return dir
}

// clusterPIDs returns the postmaster of the cluster in dir and its children.
func clusterPIDs(t *testing.T, dir string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	postmaster, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{postmaster}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(postmaster) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestDatabaseOutage stops PostgreSQL (a cluster of its own) under load and starts it again:
// meanwhile every request gets 503 unavailable with Retry-After within a bounded time, /readyz
// fails, and afterwards the service recovers by itself, prepared statements included. Then a
// service started while the database is down comes up and serves once it is back.
func TestDatabaseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the binary and a PostgreSQL cluster of its own")
	}
	bin := buildBinary(t)
	dir := clusterDir(t)
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dsn, err := pgtest.StartCluster(dir, port)
	if err != nil {
		t.Fatal(err)
	}
	const requestTimeout = 2 * time.Second
	env := []string{"DATABASE_URL=" + dsn, "REQUEST_TIMEOUT=" + requestTimeout.String(), "RATE_LIMIT_PER_MINUTE=0", "DB_MAX_CONNS=8"}
	svc := startService(t, bin, "", env...)
	svc.waitReady(30 * time.Second)
	const workers = 8
	st := newSetup(t, svc, workers)
	sendBody := func(w int) string {
		return fmt.Sprintf(`{"accommodation": %q, "reservation": %q, "content": "outage test"}`, st.accommodation, st.reservations[w])
	}

	var (
		mu  sync.Mutex
		obs []observation
	)
	hc := &http.Client{Timeout: 30 * time.Second}
	stop := load(workers, func(w, i int) {
		o := post(hc, st.guest, svc.url, "/messages/send", sendBody(w), fmt.Sprintf("w%d-%d", w, i))
		o2 := post(hc, st.guest, svc.url, "/3.2/messages/latest", "", "")
		mu.Lock()
		obs = append(obs, o, o2)
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	})

	time.Sleep(500 * time.Millisecond)
	stopping := time.Now()
	if err := pgtest.StopCluster(dir); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	time.Sleep(500 * time.Millisecond)
	if got := svc.status(http.MethodGet, "/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with the database down = %d, want 503", got)
	}
	if got := svc.status(http.MethodGet, "/healthz"); got != http.StatusOK {
		t.Errorf("GET /healthz with the database down = %d, want 200", got)
	}
	time.Sleep(1500 * time.Millisecond)
	starting := time.Now()
	if _, err := pgtest.StartCluster(dir, port); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	var recovered time.Time
	for recovered.IsZero() {
		if o := post(hc, st.guest, svc.url, "/messages/send", sendBody(0), ""); o.status == http.StatusOK {
			recovered = time.Now()
		} else if time.Since(up) > 30*time.Second {
			t.Fatalf("no send succeeded within 30 s of the database's return; last: %+v", o)
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	readyAgain := svc.status(http.MethodGet, "/readyz")
	time.Sleep(time.Second)
	stop()

	var during, after, maxTook time.Duration
	count := map[string]int{}
	for _, o := range obs {
		maxTook = max(maxTook, o.took)
		switch {
		case o.status == http.StatusOK:
			count["200"]++
		case o.status == http.StatusServiceUnavailable && o.errorID == "unavailable" && o.retryAfter != "":
			count["503"]++
		default:
			t.Errorf("request at %v: %d %q (Retry-After %q) after %v; want 200, or 503 unavailable with Retry-After",
				o.start.Sub(stopping), o.status, o.errorID, o.retryAfter, o.took)
		}
		if o.took > requestTimeout+time.Second {
			t.Errorf("request at %v took %v, more than REQUEST_TIMEOUT (%v) and a second", o.start.Sub(stopping), o.took, requestTimeout)
		}
		if o.start.After(down) && o.start.Add(o.took).Before(starting) {
			during++
			if o.status != http.StatusServiceUnavailable {
				t.Errorf("request during the outage = %d, want 503", o.status)
			}
		}
		if o.start.After(recovered.Add(200*time.Millisecond)) && o.status != http.StatusOK {
			after++
		}
	}
	if during == 0 {
		t.Error("no request fell inside the outage")
	}
	if after > 0 {
		t.Errorf("%d requests failed more than 200 ms after the first success", after)
	}
	if readyAgain != http.StatusOK {
		t.Errorf("GET /readyz after recovery = %d, want 200", readyAgain)
	}

	// Nothing acknowledged was lost: the cluster keeps committed work across the restart.
	db, err := sqlx.Connect("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, o := range obs {
		if o.messageID == "" {
			continue
		}
		var n int
		if err := db.Get(&n, `SELECT count(*) FROM messages WHERE id = $1`, o.messageID); err != nil || n != 1 {
			t.Errorf("acknowledged message %s stored %d times (%v), want once", o.messageID, n, err)
		}
	}
	t.Logf("outage: %d requests (%d answered 200, %d answered 503 unavailable, %d inside the outage); slowest %v; "+
		"first successful send %v after the database accepted connections again",
		len(obs), count["200"], count["503"], during, maxTook.Round(time.Millisecond), recovered.Sub(up).Round(time.Millisecond))

	// A database that stops answering without closing connections (frozen, or cut off by the
	// network) must not hold requests past the bound either.
	pids := clusterPIDs(t, dir)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGSTOP)
	}
	var frozen []observation
	var fwg sync.WaitGroup
	var fmu sync.Mutex
	for w := range 4 {
		fwg.Go(func() {
			o := post(hc, st.guest, svc.url, "/messages/send", sendBody(w), "")
			fmu.Lock()
			frozen = append(frozen, o)
			fmu.Unlock()
		})
	}
	fwg.Wait()
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGCONT)
	}
	for _, o := range frozen {
		if o.status != http.StatusServiceUnavailable || o.errorID != "unavailable" || o.took > 2*requestTimeout+time.Second {
			t.Errorf("send with the database frozen = %d %q after %v; want 503 unavailable within twice REQUEST_TIMEOUT (%v) and a second", o.status, o.errorID, o.took, requestTimeout)
		}
	}
	unfrozen := time.Now()
	svc.waitReady(30 * time.Second)
	if o := post(hc, st.guest, svc.url, "/messages/send", sendBody(0), ""); o.status != http.StatusOK {
		t.Errorf("send after the database woke up = %+v, want 200", o)
	}
	t.Logf("frozen database: sends answered 503 after %v; ready %v after it woke up", frozen[0].took.Round(time.Millisecond), time.Since(unfrozen).Round(time.Millisecond))

	// A service started while the database is down listens, says it is not ready, and serves
	// once the database is back.
	svc.signal(syscall.SIGTERM)
	if err := svc.wait(30 * time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if err := pgtest.StopCluster(dir); err != nil {
		t.Fatal(err)
	}
	svc = startService(t, bin, "", env...)
	time.Sleep(300 * time.Millisecond)
	if got := svc.status(http.MethodGet, "/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz of a service started with the database down = %d, want 503", got)
	}
	o := post(hc, st.guest, svc.url, "/messages/send", sendBody(0), "")
	if o.status != http.StatusServiceUnavailable || o.errorID != "unavailable" || o.retryAfter == "" {
		t.Errorf("send to a service started with the database down = %+v, want 503 unavailable with Retry-After", o)
	}
	time.Sleep(time.Second)
	if _, err := pgtest.StartCluster(dir, port); err != nil {
		t.Fatal(err)
	}
	up = time.Now()
	svc.waitReady(30 * time.Second)
	ready := time.Since(up)
	if o := post(hc, st.guest, svc.url, "/messages/send", sendBody(0), ""); o.status != http.StatusOK {
		t.Errorf("send once the database is back = %+v, want 200", o)
	}
	t.Logf("a service started with the database down was ready %v after the database accepted connections", ready.Round(time.Millisecond))
}
