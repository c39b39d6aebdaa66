package httpapi

import (
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/guestmsg/messaging/internal/messaging"
)

// NewStarting returns the handler of a service that cannot serve yet because it has not
// reached and migrated its database: GET and HEAD /healthz answer 200 (the process is up) and every
// other request 503 unavailable with Retry-After, in the error envelope (headers over
// maxHeaderBytes 431, as in the running service; 0: no bound). Each request is logged
// as the running service logs it; its metrics are not kept (no /metrics is served yet).
func NewStarting(log *slog.Logger, maxHeaderBytes int) http.Handler {
	s := &Server{echo: echo.New(), log: log, metrics: newMetrics(prometheus.NewRegistry())}
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.Pre(s.requestID)
	// Not a route for the rest: a request no route could match ("OPTIONS *", say) is 503 too.
	e.Use(s.observe, limitHeaders(maxHeaderBytes), func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if m := c.Request().Method; m != http.MethodGet && m != http.MethodHead || c.Path() != "/healthz" {
				return messaging.ErrUnavailable
			}
			return next(c)
		}
	})
	e.GET("/healthz", s.healthz)
	e.HEAD("/healthz", s.healthz)
	// A route of its own, answered 503 by the gate above, so that the probe polling it while the
	// service starts is logged and counted as /readyz rather than as an unmatched path.
	e.GET("/readyz", func(echo.Context) error { return messaging.ErrUnavailable })
	return s
}
