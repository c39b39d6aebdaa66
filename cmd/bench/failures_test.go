package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/guestmsg/messaging/internal/httpapi"
	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/postgres"
)

// inProcessService serves the real HTTP API (httpapi, the domain and the store) on dsn, with the
// default windows and attachment policy, as cmd/messaging wires them.
func inProcessService(t *testing.T, dsn string) http.Handler {
	t.Helper()
	pool, err := postgres.Open(dsn, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	store := postgres.New(context.Background(), pool)
	svc := messaging.NewService(store, messaging.DefaultWindows, time.Now)
	probe, err := postgres.OpenProbe(dsn, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { probe.Close() })
	return httpapi.New(svc, probe, slog.New(slog.NewTextHandler(io.Discard, nil)),
		httpapi.Config{MaxBodyBytes: 2 << 20, DBTimeout: 10 * time.Second}, prometheus.NewRegistry())
}

// BENCHMARKS.md, attachments: "checked: every download has the bytes uploaded"; and the comment
// of wrongAnswer: a scenario "in which every request failed" fails, "since then no answer was
// checked". Against the real service whose downloads all answer 503 (as a download whose
// statement always times out would), not one download is checked, so the scenario must fail:
// the rule holds for each kind of request, not only for the scenario as a whole (found by
// review: every check passed).
func TestAttachmentsFailWithoutACheckedDownload(t *testing.T) {
	ctx := context.Background()
	b, sd := ceilingBench(t, 200)
	real := inProcessService(t, b.dsn)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/attachments/download") {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"request_id":"r","errors":[{"id":"unavailable","message":"The service is unavailable; retry later."}]}`))
			return
		}
		real.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	b.baseURL = srv.URL
	b.opt.duration = 500 * time.Millisecond
	b.opt.attachmentSize = 1024
	l := newLoad(b, sd)
	rows, err := l.scenario(ctx, "attachments")
	if err != nil {
		t.Fatal(err)
	}
	downloads := -1
	for _, r := range rows {
		if r.Name == "attachments/download" {
			downloads = r.Requests
		}
	}
	failed := false
	for _, c := range rows[0].Checks {
		failed = failed || !c.OK
	}
	if downloads != 0 || rows[0].Requests == 0 {
		t.Fatalf("setup: %d downloads answered, %d requests answered; want 0 and some", downloads, rows[0].Requests)
	}
	if !failed {
		t.Errorf("attachments with every download 503 (%d answered, %d errors, the first: %s): checks all passed, want one failed: no download's bytes were checked\n%+v",
			rows[0].Requests, rows[0].Errors, rows[0].FirstError, rows[0].Checks)
	}
}

// BENCHMARKS.md: "PostgreSQL's CPU per request (the postmaster and its backends ...)", the
// difference of clusterCPU over the scenario, which says it is "the CPU time so far of the
// postmaster ... and of its children". A child that exits (an autovacuum worker, a backend
// whose connection closed, a parallel worker) takes its CPU time out of the sum, so the
// reading falls, and a scenario's PostgreSQL CPU is short by it (or negative), unless the sum
// adds the postmaster's cutime and cstime, where its reaped children's time goes (found by
// review). Here a shell stands for the postmaster, and a child of it burns CPU, sleeps, and exits.
func TestClusterCPUNeverDecreases(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	cmd := exec.Command("sh", "-c", `sh -c 'i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; exec sleep 1'; exec sleep 30`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	comm := func() string {
		data, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		return strings.TrimSpace(string(data))
	}
	var peak time.Duration
	deadline := time.Now().Add(20 * time.Second)
	for comm() != "sleep" { // the parent execs sleep once its child has exited and been reaped
		if time.Now().After(deadline) {
			t.Fatal("the child did not finish within 20 s")
		}
		peak = max(peak, clusterCPU(pid))
		time.Sleep(20 * time.Millisecond)
	}
	after := clusterCPU(pid)
	if peak < 50*time.Millisecond {
		t.Fatalf("setup: the child burnt %v of CPU, want at least 50ms", peak)
	}
	if after < peak {
		t.Errorf("clusterCPU = %v while the child ran, %v after it exited; want it never to decrease (the CPU time so far)", peak, after)
	}
}

// A service that crashes in the middle of a scenario turns the rest of that scenario into
// connection errors, which count only as "errors of the load" (BENCHMARKS.md), and every
// check passes as long as one request was answered before the crash; the run must fail all
// the same (found by review: it exited 0). Here the real binary, started by startServer on a
// seeded database, is killed partway through the send scenario.
func TestServiceCrashFailsTheRun(t *testing.T) {
	ctx := context.Background()
	b, sd := ceilingBench(t, 200)
	t.Cleanup(b.cleanup)
	bin := filepath.Join(b.tmp, "messaging")
	build := exec.Command("go", "build", "-o", bin, "../messaging")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b.opt.serverBin, b.opt.dbMaxConns, b.opt.reference, b.out = bin, 4, false, io.Discard
	b.opt.duration = 2 * time.Second
	if err := b.startServer(ctx); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(700 * time.Millisecond)
		_ = b.server.Process.Kill() // the service crashes
	}()
	l := newLoad(b, sd)
	res, err := b.scenario(ctx, l, nil, "", "send")
	if err == nil {
		t.Fatalf("a run whose service died during send (%d sends answered, %d failed, the first: %s): the scenario passed, want the run failed\nchecks: %+v",
			res[0].Requests, res[0].Errors, res[0].FirstError, res[0].Checks)
	}
	if !strings.Contains(err.Error(), "the service exited") {
		t.Errorf("scenario error = %.300s; want it to say the service exited", err)
	}
}
