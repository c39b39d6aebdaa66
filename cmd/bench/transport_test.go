package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoopTransport holds the load generator's transport to what the scenarios need from it:
// requests and answers intact, a connection reused once its answer was read, and dropped when
// the answer was abandoned or cut short, the server asked to close it, or it sat idle too long.
func TestLoopTransport(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/close":
			w.Header().Set("Connection", "close")
		case "/truncated":
			conn, _, _ := w.(http.Hijacker).Hijack()
			_, _ = conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"))
			_ = conn.Close()
			return
		case "/big":
			_, _ = w.Write([]byte(strings.Repeat("x", 1<<20)))
			return
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"method": r.Method, "auth": r.Header.Get("Authorization"), "body": string(body)})
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	tr := newLoopTransport()
	hc := &http.Client{Transport: tr}

	call := func(ctx context.Context, path, body string, readAll bool) (map[string]string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer k")
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var got map[string]string
		if readAll {
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				return nil, err
			}
			return got, json.Unmarshal(b, &got)
		}
		return got, json.NewDecoder(resp.Body).Decode(&got) // stops before the final newline
	}
	for i := range 5 {
		got, err := call(context.Background(), "/echo", `{"n":1}`, i%2 == 0)
		if err != nil || got["method"] != "POST" || got["auth"] != "Bearer k" || got["body"] != `{"n":1}` {
			t.Fatalf("request %d = %v, %v; want the request echoed", i, got, err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("five requests in a row used %d connections, want 1", n)
	}

	if _, err := call(context.Background(), "/close", "", true); err != nil {
		t.Fatal(err)
	}
	if _, err := call(context.Background(), "/echo", "", true); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("after an answer with Connection: close, %d connections, want 2", n)
	}

	// An answer abandoned unread: its rest must not be taken for the next answer.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/big", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if got, err := call(context.Background(), "/echo", "after", true); err != nil || got["body"] != "after" {
		t.Fatalf("request after an abandoned answer = %v, %v", got, err)
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("after an abandoned answer, %d connections, want 3", n)
	}

	// An answer cut short: the connection is broken and must not be reused.
	if _, err := call(context.Background(), "/truncated", "", true); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated answer = %v, want unexpected EOF", err)
	}
	if got, err := call(context.Background(), "/echo", "after", true); err != nil || got["body"] != "after" {
		t.Fatalf("request after a truncated answer = %v, %v", got, err)
	}
	if n := conns.Load(); n != 4 {
		t.Errorf("after a truncated answer, %d connections, want 4", n)
	}

	for _, c := range tr.idle[srv.Listener.Addr().String()] {
		c.lastUsed = c.lastUsed.Add(-idleReuse)
	}
	if _, err := call(context.Background(), "/echo", "", true); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 5 {
		t.Errorf("after a connection sat idle for idleReuse, %d connections, want 5", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var netErr net.Error
	if _, err := call(ctx, "/slow", "", true); !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Errorf("request past its context's deadline = %v, want a timeout", err)
	}
	if _, err := hc.Get("https://" + strings.TrimPrefix(srv.URL, "http://")); err == nil {
		t.Error("a request to another scheme succeeded, want an error")
	}
}
