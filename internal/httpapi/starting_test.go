package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/guestmsg/messaging/internal/httpapi"
)

func TestStartingServiceAnswersUnavailable(t *testing.T) {
	srv := httptest.NewServer(httpapi.NewStarting(slog.New(slog.NewTextHandler(io.Discard, nil)), 0))
	t.Cleanup(srv.Close)
	e := &env{t: t, url: srv.URL}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		if a := e.raw(method, "/healthz", nil, ""); a.status != http.StatusOK {
			t.Errorf("%s /healthz while starting = %d %s, want 200", method, a.status, a.body)
		}
	}
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/readyz"}, {http.MethodPost, "/messages/send"}, {http.MethodPost, "/3.2/messages/latest"},
		{http.MethodPut, "/admin/reservations/1"}, {http.MethodPost, "/healthz"}, {http.MethodGet, "/nope"},
	} {
		a := e.raw(r.method, r.path, map[string]string{"Content-Type": "application/json"}, "{}")
		if a.status != http.StatusServiceUnavailable || a.errorID(t) != "unavailable" || a.header.Get("Retry-After") == "" {
			t.Errorf("%s %s while starting = %d %v %s, want 503 unavailable with Retry-After", r.method, r.path, a.status, a.header, a.body)
		}
	}
	// A request of no path at all, which the server passes on as it is (DisableGeneralOptionsHandler).
	req := httptest.NewRequest(http.MethodOptions, "*", nil)
	rec := httptest.NewRecorder()
	httpapi.NewStarting(slog.New(slog.NewTextHandler(io.Discard, nil)), 0).ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("X-Request-Id") == "" {
		t.Errorf("OPTIONS * while starting = %d %v, want 503 with X-Request-Id", rec.Code, rec.Header())
	}
}
