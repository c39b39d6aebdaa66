// Package httpapi is the HTTP face of the service on Echo: the route table, the wire decoding
// and encoding of both API versions, authentication, and the one mapping from errors to
// statuses and error ids.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/ratelimit"
)

// Config is what the HTTP layer needs to know.
type Config struct {
	AdminToken   string        // empty: the admin API answers 404 to everything
	MaxBodyBytes int64         // request body limit
	DBTimeout    time.Duration // deadline of a request's database work (see deadline)
	AnswerWithin time.Duration // from a request's start, as the server's write deadline; 0: none
	// MaxHeaderBytes bounds a request's line and header lines (431 above it); 0: no bound of
	// the service's own. net/http's bound must lie above it (see headerBytes).
	MaxHeaderBytes int
	// RateLimit is the per-partner request budget, applied after authentication; nil: none.
	RateLimit *ratelimit.Limiter
}

// Pinger reports whether the database answers, for /readyz: postgres.Probe, which has a
// connection of its own, so that a busy request pool does not read as an unreachable database.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Server is the Echo application of the service.
type Server struct {
	echo    *echo.Echo
	svc     *messaging.Service
	db      Pinger
	log     *slog.Logger
	cfg     Config
	metrics *metrics
	buffers bufferPool        // of answers written by hand (the latest page)
	allow   map[string]string // a route path's methods, the Allow header of its 405s

	metricsHandler echo.HandlerFunc
}

// New builds the server; reg receives its metrics.
func New(svc *messaging.Service, db Pinger, log *slog.Logger, cfg Config, reg *prometheus.Registry) *Server {
	s := &Server{echo: echo.New(), svc: svc, db: db, log: log, cfg: cfg, metrics: newMetrics(reg),
		metricsHandler: echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))}
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Pre(s.requestID)
	e.Use(s.observe, limitHeaders(cfg.MaxHeaderBytes), s.recoverPanic, s.adminGate, wholeSegments, s.deadline)
	methods := map[string][]string{}
	for _, r := range s.routes() {
		e.Add(r.method, r.path, r.handler, r.middleware...)
		// Echo answers OPTIONS itself with 204; the contract wants 405 for every other method.
		e.Add(http.MethodOptions, r.path, func(echo.Context) error { return errBadMethod })
		methods[r.path] = append(methods[r.path], r.method)
	}
	s.allow = make(map[string]string, len(methods))
	for path, m := range methods {
		s.allow[path] = strings.Join(m, ", ")
	}
	return s
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// route is one row of the route table.
type route struct {
	method     string
	path       string
	handler    echo.HandlerFunc
	middleware []echo.MiddlewareFunc
}

// routes is the route table, in the order of openapi.yaml (a test holds the two together).
// Each GET has its HEAD, as HTTP asks of a server (RFC 9110 §9.3.2): health checkers use it.
func (s *Server) routes() []route {
	var rs []route
	for _, p := range []struct {
		prefix string
		v      version
	}{{"/messages", v31}, {"/3.1/messages", v31}, {"/3.2/messages", v32}} {
		rs = append(rs,
			route{http.MethodPost, p.prefix + "/send", s.send, []echo.MiddlewareFunc{s.authenticate}},
			route{http.MethodPost, p.prefix + "/latest", s.latest(p.v), []echo.MiddlewareFunc{s.authenticate}},
			route{http.MethodPost, p.prefix + "/latest/confirm", s.confirm(p.v), []echo.MiddlewareFunc{s.authenticate}},
			route{http.MethodPost, p.prefix + "/conversations", s.conversation(p.v), []echo.MiddlewareFunc{s.authenticate}},
			route{http.MethodPost, p.prefix + "/attachments/upload", s.upload, []echo.MiddlewareFunc{s.authenticate}},
			route{http.MethodPost, p.prefix + "/attachments/metadata", s.metadata, []echo.MiddlewareFunc{s.authenticate}},
			route{http.MethodPost, p.prefix + "/attachments/download", s.download(p.v), []echo.MiddlewareFunc{s.authenticate}},
		)
	}
	admin := []echo.MiddlewareFunc{s.requireAdmin}
	return append(rs,
		route{http.MethodPost, "/admin/partners", s.createPartner, admin},
		route{http.MethodPost, "/admin/partners/:affiliate_id/keys", s.createKey, admin},
		route{http.MethodDelete, "/admin/keys/:key_id", s.revokeKey, admin},
		route{http.MethodPut, "/admin/accommodations/:id", s.putAccommodation, admin},
		route{http.MethodPut, "/admin/reservations/:id", s.putReservation, admin},
		route{http.MethodGet, "/healthz", s.healthz, nil},
		route{http.MethodHead, "/healthz", s.healthz, nil},
		route{http.MethodGet, "/readyz", s.readyz, nil},
		route{http.MethodHead, "/readyz", s.readyz, nil},
		route{http.MethodGet, "/metrics", s.metricsHandler, nil},
		route{http.MethodHead, "/metrics", s.metricsHandler, nil},
	)
}

const (
	ctxRequestID = "request_id"
	ctxCaller    = "caller"
	ctxDeadline  = "deadline"
)

// requestID reuses a client's X-Request-Id of 1 to 128 printable ASCII characters, or makes one,
// and repeats it on the answer.
func (s *Server) requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !printableASCII(id, 128) {
			var b [16]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(ctxRequestID, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

func requestID(c echo.Context) string {
	id, _ := c.Get(ctxRequestID).(string)
	return id
}

func printableASCII(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// wholeSegments answers 404 for a path of more segments than its route: Echo lets a route's
// last parameter take the rest of the path, so /admin/keys/x/y would reach DELETE
// /admin/keys/:key_id, or its 405, though no route has that shape.
func wholeSegments(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if route := c.Path(); route != "" && strings.Count(c.Request().URL.Path, "/") > strings.Count(route, "/") {
			return errNoRoute
		}
		return next(c)
	}
}

// limitHeaders answers 431 in the error envelope to a request whose line and header lines come
// to more than limit bytes (headerBytes); limit 0: none. net/http refuses headers itself only
// above its own MaxHeaderBytes, which the server sets higher (cmd/messaging), and then answers
// in plain text, before any handler runs.
func limitHeaders(limit int) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		if limit <= 0 {
			return next
		}
		return func(c echo.Context) error {
			if headerBytes(c.Request()) > limit {
				return errHeadersTooLarge
			}
			return next(c)
		}
	}
}

// headerBytes is the size of r's request line and header lines as they were sent, each
// "Name: value" and its CRLF, with the blank line that ends them: what net/http's MaxHeaderBytes
// counts (net/http takes Host out of the header map into r.Host).
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(" ") + len(r.RequestURI) + len(" ") + len(r.Proto) + len("\r\n\r\n")
	if r.Host != "" {
		n += len("Host: \r\n") + len(r.Host)
	}
	for name, values := range r.Header {
		for _, v := range values {
			n += len(name) + len(": \r\n") + len(v)
		}
	}
	return n
}

// deadline bounds the database work of every request: DBTimeout from its start, and once its
// body has arrived (bindBody), DBTimeout from then, since the time a client takes to send the body
// (READ_TIMEOUT bounds it) is not database work. Either deadline ends AnswerMargin before
// AnswerWithin from the start at the latest, so that a 503 can be written before the server's
// own write deadline cuts the answer off. A body that took less than a tenth of DBTimeout leaves the
// first deadline as it is: moving it costs a new context, 1.3 µs and 5 allocations per request.
func (s *Server) deadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		now := time.Now()
		d := &dbDeadline{parent: c.Request().Context(), timeout: s.cfg.DBTimeout, start: now}
		until := now.Add(s.cfg.DBTimeout)
		if s.cfg.AnswerWithin > 0 {
			d.latest = now.Add(s.cfg.AnswerWithin - AnswerMargin)
			if until.After(d.latest) {
				until = d.latest
			}
		}
		d.set(c, until)
		defer func() { d.cancel() }()
		c.Set(ctxDeadline, d)
		return next(c)
	}
}

// AnswerMargin is the time a request's answer has to be written after its database deadline:
// REQUEST_TIMEOUT must leave it before WRITE_TIMEOUT.
const AnswerMargin = time.Second

// dbDeadline is a request's database deadline (see deadline).
type dbDeadline struct {
	parent  context.Context
	timeout time.Duration
	start   time.Time // of the request
	latest  time.Time // no deadline after it; zero: none
	until   time.Time // the deadline now
	cancel  context.CancelFunc
}

// set gives c's request a context that ends at until, and cancels the one before.
func (d *dbDeadline) set(c echo.Context, until time.Time) {
	if d.cancel != nil {
		d.cancel()
	}
	var ctx context.Context
	ctx, d.cancel = context.WithDeadline(d.parent, until)
	d.until = until
	c.SetRequest(c.Request().WithContext(ctx))
}

// restartDeadline moves c's database deadline to DBTimeout from now, within its latest, and
// never earlier than it was, unless the request started less than a tenth of DBTimeout ago (see
// deadline); without a deadline, it does nothing.
func restartDeadline(c echo.Context) {
	d, ok := c.Get(ctxDeadline).(*dbDeadline)
	now := time.Now()
	if !ok || now.Sub(d.start) < d.timeout/10 {
		return
	}
	until := now.Add(d.timeout)
	if !d.latest.IsZero() && until.After(d.latest) {
		until = d.latest
	}
	if until.After(d.until) {
		d.set(c, until)
	}
}

// recoverPanic turns a panic into a 500, which handleError logs once with where it happened.
func (s *Server) recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				err = &panicError{value: r, stack: debug.Stack()}
			}
		}()
		return next(c)
	}
}

// panicError is a recovered panic: an internal error (500) whose log line carries the stack.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// authenticate admits a partner request carrying "Authorization: Bearer <key>" and the key's
// partner in X-Affiliate-Id, within the partner's request budget.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key, ok := bearer(c.Request())
		if !ok {
			return messaging.ErrUnauthorized
		}
		header, ok := single(c.Request().Header, "X-Affiliate-Id")
		affiliateID, err := strconv.ParseInt(header, 10, 64)
		if !ok || err != nil || affiliateID <= 0 || !allDigits(header) {
			return messaging.ErrUnauthorized
		}
		p, err := s.svc.Authenticate(c.Request().Context(), key, affiliateID)
		if err != nil {
			return err
		}
		c.Set(ctxCaller, p)
		if ok, retryAfter := s.cfg.RateLimit.Allow(p.AffiliateID); !ok {
			return s.unlessRevoked(c, p, &rateLimitedError{retryAfter: retryAfter})
		}
		err = next(c)
		if err != nil && refusedUnread(err) {
			return s.unlessRevoked(c, p, err)
		}
		return err
	}
}

// unlessRevoked answers a request refused before any store call (over the budget, or for its
// body), whose key nothing has checked against a revocation since the process cached it: 401
// when it has been revoked, as for an unknown key, and refusal otherwise. (A revoked key is
// forgotten then, so it stops spending the partner's request budget too.) The check costs what
// an unknown key's request does.
func (s *Server) unlessRevoked(c echo.Context, p messaging.Caller, refusal error) error {
	if err := s.svc.CheckKey(c.Request().Context(), p); errors.Is(err, messaging.ErrUnauthorized) {
		return err
	}
	return refusal
}

// refusedUnread reports whether err answers a request refused for its body (400, 413, 415),
// which a handler does before its first store call.
func refusedUnread(err error) bool {
	switch status, _ := problem(err); status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return true
	}
	return false
}

func callerOf(c echo.Context) messaging.Caller {
	p, _ := c.Get(ctxCaller).(messaging.Caller)
	return p
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	auth, ok := single(r.Header, echo.HeaderAuthorization)
	scheme, token, cut := strings.Cut(auth, " ")
	token = strings.TrimSpace(token)
	if !ok || !cut || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}

// single returns the value of a header that must come once. Two field lines of one header are,
// by RFC 9110 §5.3, one comma-separated value: no credential or affiliate id, whichever line
// would have been read.
func single(h http.Header, canonicalKey string) (string, bool) {
	v := h[canonicalKey]
	if len(v) != 1 {
		return "", false
	}
	return v[0], true
}

type status struct {
	Status string `json:"status"`
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"request_id": requestID(c), "data": status{"ok"}})
}

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.db.Ping(ctx); err != nil {
		return messaging.ErrUnavailable
	}
	return c.JSON(http.StatusOK, map[string]any{"request_id": requestID(c), "data": status{"ok"}})
}
