package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// silentDatabase listens on 127.0.0.1 and accepts connections but never answers a byte: a
// database server that is frozen (stopped, stuck on its storage) while the kernel still completes
// TCP handshakes, or a connection pooler in front of a database that is down. It returns a
// postgres:// URL for it; the listener and every accepted connection close when the test ends.
func silentDatabase(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "postgres://app@" + ln.Addr().String() + "/messaging?sslmode=disable"
}

// TestSIGTERMWhileStartUpWaitsOnASilentDatabase: §8 "Graceful shutdown on SIGTERM:
// stop accepting, finish in-flight requests, then exit"; README (Commands, serve): "SIGTERM or
// SIGINT stops accepting, finishes in-flight requests (up to SHUTDOWN_TIMEOUT, then cuts them
// off), then exits", and while the database cannot be reached at start "it keeps trying
// (backing off to every 5 s) instead of exiting". A serve whose database accepts the connection
// but never answers (frozen, or a pooler in front of a database that is down) has nothing in
// flight; SIGTERM must end it within SHUTDOWN_TIMEOUT. (Found by review: the start-up
// migrations connected without a deadline or a context, so the first attempt hung for ever and
// SIGTERM did nothing.)
func TestSIGTERMWhileStartUpWaitsOnASilentDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the binary")
	}
	bin := buildBinary(t)
	svc := startService(t, bin, "", "DATABASE_URL="+silentDatabase(t), "SHUTDOWN_TIMEOUT=1s", "REQUEST_TIMEOUT=2s")
	time.Sleep(500 * time.Millisecond) // start-up is now connecting for its migrations
	if got := svc.status(http.MethodGet, "/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while the database does not answer = %d, want 503", got)
	}
	svc.signal(syscall.SIGTERM)
	select {
	case <-svc.done:
		if svc.err != nil {
			t.Errorf("exit after SIGTERM while starting = %v, want status 0 (nothing was in flight)", svc.err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("serve still running 10 s after SIGTERM (SHUTDOWN_TIMEOUT=1s) while its start-up waits on a database that does not answer")
	}
}

// TestCommandsStopOnSignalWithASilentDatabase: the commands run under the same signal
// context (main: signal.NotifyContext for SIGINT and SIGTERM), which takes away the default
// "Ctrl-C kills the process". Against a database that does not answer, `migrate version`,
// `migrate up` and `purge` must then give up when the signal comes. (Found by review: they
// waited for ever, and only SIGKILL ended them.)
func TestCommandsStopOnSignalWithASilentDatabase(t *testing.T) {
	dsn := silentDatabase(t)
	for _, args := range [][]string{{"migrate", "version"}, {"migrate", "up"}, {"purge"}} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- run(ctx, args, env(map[string]string{"DATABASE_URL": dsn}), &strings.Builder{}) }()
		time.Sleep(300 * time.Millisecond)
		cancel() // SIGINT
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("run(%q) after SIGINT against a silent database = nil, want an error", args)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("run(%q) still running 5 s after SIGINT against a database that does not answer", args)
		}
	}
}

// A database that accepts the connection and never answers is unreachable after connect_timeout
// (10 s unless DATABASE_URL sets it), and serve keeps trying, as for a database that is down.
func TestStartUpRetriesASilentDatabase(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the binary")
	}
	bin := buildBinary(t)
	svc := startService(t, bin, "", "DATABASE_URL="+silentDatabase(t)+"&connect_timeout=1")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(svc.logs.String(), "database unreachable; retrying") {
		if time.Now().After(deadline) {
			t.Fatalf("no retry 10 s into start-up against a database that does not answer (connect_timeout=1)")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
