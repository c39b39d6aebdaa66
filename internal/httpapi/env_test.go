package httpapi_test

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/httpapi"
	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/pgtest"
	"github.com/guestmsg/messaging/internal/postgres"
	"github.com/guestmsg/messaging/internal/purge"
	"github.com/guestmsg/messaging/internal/ratelimit"
	"github.com/guestmsg/messaging/internal/testclock"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const adminToken = "test-admin-token-0123456789"

// env is one test's service: a fresh migrated database, the real store and service, and the
// real Echo server behind httptest.
type env struct {
	t     testing.TB
	url   string
	db    *sqlx.DB
	clock *testclock.Clock
	admin *api.AdminClient
	ids   atomic.Int64
}

// start is the clock's initial instant: a weekday in 2026, well inside every window below.
var start = time.Date(2026, 7, 3, 12, 0, 0, 0, time.UTC)

func newEnv(t testing.TB) *env {
	return newEnvWith(t, messaging.DefaultWindows)
}

func newEnvWith(t testing.TB, w messaging.Windows, opts ...messaging.Option) *env {
	return newEnvOpts(t, envOptions{windows: w, service: opts})
}

// envOptions vary a test environment.
type envOptions struct {
	windows   messaging.Windows
	service   []messaging.Option                            // options of the service
	rateLimit func(now func() time.Time) *ratelimit.Limiter // nil: no rate limit
	wrapStore func(messaging.Store) messaging.Store         // nil: the store as it is
	noAdmin   bool                                          // no ADMIN_TOKEN: the admin API answers 404
	refused   bool                                          // PostgreSQL refuses every connection (53300)
	dbTimeout time.Duration                                 // REQUEST_TIMEOUT; 0: 10 s
	answerBy  time.Duration                                 // WRITE_TIMEOUT; 0: none
	poolSize  int                                           // DB_MAX_CONNS; 0: 16
	logs      io.Writer                                     // the service's JSON log; nil: none
}

func newEnvOpts(t testing.TB, o envOptions) *env {
	t.Helper()
	dsn := pgtest.DSN
	if o.refused {
		dsn = pgtest.RefusingDSN
	}
	url := dsn(t)
	pool, err := postgres.Open(url, cmp.Or(o.poolSize, 16))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	probe, err := postgres.OpenProbe(url, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { probe.Close() })
	store := postgres.New(context.Background(), pool)
	c := testclock.New(start)
	var svcStore messaging.Store = store
	if o.wrapStore != nil {
		svcStore = o.wrapStore(store)
	}
	svc := messaging.NewService(svcStore, o.windows, c.Now, o.service...)
	cfg := httpapi.Config{AdminToken: adminToken, MaxBodyBytes: 2 << 20, DBTimeout: cmp.Or(o.dbTimeout, 10*time.Second),
		AnswerWithin: o.answerBy}
	if o.noAdmin {
		cfg.AdminToken = ""
	}
	if o.rateLimit != nil {
		cfg.RateLimit = o.rateLimit(c.Now)
	}
	h := httpapi.New(svc, probe, slog.New(slog.NewJSONHandler(cmp.Or(o.logs, io.Discard), nil)), cfg, prometheus.NewRegistry())
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e := &env{t: t, url: srv.URL, db: pool, clock: c, admin: &api.AdminClient{BaseURL: srv.URL, Token: adminToken}}
	e.ids.Store(1000)
	return e
}

// newRateLimitedEnv is newEnv with a budget of perMinute requests per partner per minute, on the
// env's clock.
func newRateLimitedEnv(t testing.TB, perMinute int) *env {
	return newEnvOpts(t, envOptions{
		windows:   messaging.DefaultWindows,
		rateLimit: func(now func() time.Time) *ratelimit.Limiter { return ratelimit.New(perMinute, 0, now) },
	})
}

func (e *env) nextID() int64 { return e.ids.Add(1) }

// purge runs one retention pass on the env's database at the env's clock.
func (e *env) purge() purge.Report {
	e.t.Helper()
	store := postgres.New(context.Background(), e.db)
	r, err := purge.New(store, messaging.DefaultWindows, e.clock.Now, slog.New(slog.NewTextHandler(io.Discard, nil))).RunOnce(context.Background())
	if err != nil {
		e.t.Fatalf("purge = %v", err)
	}
	return r
}

// partner registers a partner of kind with a key and returns a client acting as it.
func (e *env) partner(kind string) *api.Client {
	e.t.Helper()
	ctx := context.Background()
	p, err := e.admin.CreatePartner(ctx, api.PartnerRequest{Kind: kind, Name: kind + " platform"})
	if err != nil {
		e.t.Fatalf("CreatePartner: %v", err)
	}
	k, err := e.admin.CreateKey(ctx, p.AffiliateID, "test")
	if err != nil {
		e.t.Fatalf("CreateKey: %v", err)
	}
	return &api.Client{BaseURL: e.url, AffiliateID: p.AffiliateID, APIKey: k.APIKey}
}

// accommodation registers an accommodation owned by owner and returns its id.
func (e *env) accommodation(owner *api.Client, name string) string {
	e.t.Helper()
	id := strconv.FormatInt(e.nextID(), 10)
	if _, err := e.admin.PutAccommodation(context.Background(), id, api.AccommodationRequest{Partner: owner.AffiliateID, Name: name}); err != nil {
		e.t.Fatalf("PutAccommodation: %v", err)
	}
	return id
}

// reservation registers a confirmed stay of 2026-07-01 to 2026-07-05 at accommodation,
// attached to guest (when not nil), and returns the reservation and conversation ids.
func (e *env) reservation(accommodation string, guest *api.Client) (string, string) {
	e.t.Helper()
	req := api.ReservationRequest{Accommodation: accommodation, GuestName: "Ada", Checkin: "2026-07-01", Checkout: "2026-07-05"}
	return e.putReservation(strconv.FormatInt(e.nextID(), 10), req, guest)
}

func (e *env) putReservation(id string, req api.ReservationRequest, guest *api.Client) (string, string) {
	e.t.Helper()
	if guest != nil {
		req.GuestPartner = &guest.AffiliateID
	}
	r, err := e.admin.PutReservation(context.Background(), id, req)
	if err != nil {
		e.t.Fatalf("PutReservation: %v", err)
	}
	return r.ID, r.Conversation
}

// thread is a ready conversation: a property partner, a guest partner, and their reservation.
type thread struct {
	property, guest            *api.Client
	accommodation, reservation string
	conversation               string
}

func (e *env) thread() thread {
	e.t.Helper()
	th := thread{property: e.partner("property"), guest: e.partner("guest")}
	th.accommodation = e.accommodation(th.property, "Sea View Rooms")
	th.reservation, th.conversation = e.reservation(th.accommodation, th.guest)
	return th
}

func (th thread) send(t *testing.T, from *api.Client, content string) string {
	t.Helper()
	d, err := from.Send(context.Background(), api.SendRequest{Accommodation: th.accommodation, Reservation: th.reservation, Content: content}, "")
	if err != nil {
		t.Fatalf("Send(%q) = %v", content, err)
	}
	return d.Message
}

// answer is a raw HTTP answer.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the answer body into a generic value.
func (a answer) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %s", a.status, err, a.body)
	}
	return v
}

// errorID returns the first error id of an error envelope, checking the envelope's shape.
func (a answer) errorID(t testing.TB) string {
	t.Helper()
	var env api.ErrorResponse
	if err := json.Unmarshal(a.body, &env); err != nil || len(env.Errors) == 0 || env.RequestID == "" {
		t.Fatalf("answer %d is not an error envelope: %s", a.status, a.body)
	}
	if env.RequestID != a.header.Get("X-Request-Id") {
		t.Errorf("request_id %q differs from X-Request-Id %q", env.RequestID, a.header.Get("X-Request-Id"))
	}
	return env.Errors[0].ID
}

// raw sends a request with exactly the given headers and body.
func (e *env) raw(method, path string, header map[string]string, body string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// as sends a JSON request with c's credentials.
func (e *env) as(c *api.Client, path, body string) answer {
	e.t.Helper()
	return e.raw(http.MethodPost, path, authHeaders(c), body)
}

func authHeaders(c *api.Client) map[string]string {
	return map[string]string{
		"Authorization":  "Bearer " + c.APIKey,
		"X-Affiliate-Id": strconv.FormatInt(c.AffiliateID, 10),
		"Content-Type":   "application/json",
	}
}

// apiErrorID returns the error id of an *api.Error, or fails.
func apiErrorID(t *testing.T, err error) string {
	t.Helper()
	apiErr, ok := err.(*api.Error)
	if !ok {
		t.Fatalf("error %v is not an *api.Error", err)
	}
	return apiErr.ID()
}
