package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// loopTransport is the load generator's http.RoundTripper: plain HTTP/1.1 over kept-alive
// loopback connections, each request written and its answer read on the calling goroutine.
// net/http's Transport runs a reading and a writing goroutine per connection and hands every
// request and answer between them and the caller; on two cores shared with the service and
// PostgreSQL, that was about a third of the generator's CPU per send (perf). What it does
// besides is not needed here: no TLS, proxies, compression or HTTP/2. It serves the service
// and the peers' HTTP APIs alike, so that the comparison with them stays fair.
//
// A request is bounded by requestTimeout, or its context's deadline when that is sooner, as a
// connection deadline; a context cancelled without a deadline does not interrupt it. A
// connection is reused only after its answer was read to the end and did not ask to close,
// and only within idleReuse of its last answer, well inside the server's idle timeout: an idle
// connection that the server has closed would otherwise fail the next request, which cannot be
// retried blindly (a send is not idempotent).
type loopTransport struct {
	dial net.Dialer

	mu   sync.Mutex
	idle map[string][]*loopConn // by host:port, most recently used last
}

// idleReuse is how long a connection may sit idle and still be reused.
const idleReuse = 10 * time.Second

type loopConn struct {
	host     string
	conn     net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	lastUsed time.Time
}

func newLoopTransport() *loopTransport {
	return &loopTransport{dial: net.Dialer{Timeout: 5 * time.Second}, idle: map[string][]*loopConn{}}
}

// RoundTrip sends req on an idle connection, or a new one, and returns the answer with its
// headers read; the connection goes back to the pool when the body has been read to its end.
func (t *loopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		closeBody(req)
		return nil, errors.New("loopTransport: plain HTTP only, not " + req.URL.Scheme)
	}
	c, err := t.get(req.Context(), req.URL.Host)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	deadline := time.Now().Add(requestTimeout)
	if d, ok := req.Context().Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	resp, err := c.roundTrip(req, deadline)
	if err != nil {
		c.conn.Close()
		return nil, err
	}
	resp.Body = &loopBody{ReadCloser: resp.Body, t: t, c: c, reuse: !resp.Close}
	return resp, nil
}

func (c *loopConn) roundTrip(req *http.Request, deadline time.Time) (*http.Response, error) {
	if err := c.conn.SetDeadline(deadline); err != nil {
		closeBody(req)
		return nil, err
	}
	if err := req.Write(c.w); err != nil { // closes the request's body
		return nil, err
	}
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	return http.ReadResponse(c.r, req)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// get takes the most recently used idle connection still fresh enough, or dials a new one.
func (t *loopTransport) get(ctx context.Context, host string) (*loopConn, error) {
	now := time.Now()
	t.mu.Lock()
	for idle := t.idle[host]; len(idle) > 0; idle = t.idle[host] {
		c := idle[len(idle)-1]
		t.idle[host] = idle[:len(idle)-1]
		if now.Sub(c.lastUsed) < idleReuse {
			t.mu.Unlock()
			return c, nil
		}
		c.conn.Close()
	}
	t.mu.Unlock()
	conn, err := t.dial.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	return &loopConn{host: host, conn: conn, r: bufio.NewReaderSize(conn, 64<<10), w: bufio.NewWriterSize(conn, 16<<10)}, nil
}

func (t *loopTransport) put(c *loopConn) {
	c.lastUsed = time.Now()
	t.mu.Lock()
	t.idle[c.host] = append(t.idle[c.host], c)
	t.mu.Unlock()
}

// CloseIdleConnections closes the pooled connections (http.Client.CloseIdleConnections).
func (t *loopTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = map[string][]*loopConn{}
	t.mu.Unlock()
	for _, conns := range idle {
		for _, c := range conns {
			c.conn.Close()
		}
	}
}

// loopBody hands its connection back when the answer has been read to its end, and closes it
// when the answer is abandoned or fails.
type loopBody struct {
	io.ReadCloser
	t     *loopTransport
	c     *loopConn // nil once handed back or closed
	reuse bool
}

func (b *loopBody) Read(p []byte) (int, error) {
	if b.c == nil {
		return 0, errors.New("loopTransport: read after close")
	}
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.release(err == io.EOF)
	}
	return n, err
}

// Close drops the connection unless the answer was read to its end (the body reports its end
// with its last bytes): the rest would be read as the next answer.
func (b *loopBody) Close() error {
	b.release(false)
	return nil
}

func (b *loopBody) release(whole bool) {
	if b.c == nil {
		return
	}
	if whole && b.reuse {
		b.t.put(b.c)
	} else {
		b.c.conn.Close()
	}
	b.c = nil
}
