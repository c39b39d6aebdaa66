package httpapi

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "messaging_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "messaging_http_request_duration_seconds", Help: "HTTP request latency by route, method and status.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// observe writes one structured log line and the metrics of every request. It logs neither
// bodies nor credentials; a 503's line carries its cause.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err) // answer now, so the status below is the one sent
		}
		elapsed := time.Since(start)
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		code, method := strconv.Itoa(c.Response().Status), metricMethod(c.Request().Method)
		s.metrics.requests.WithLabelValues(route, method, code).Inc()
		s.metrics.duration.WithLabelValues(route, method, code).Observe(elapsed.Seconds())
		attrs := []slog.Attr{
			slog.String("request_id", requestID(c)),
			slog.String("method", c.Request().Method),
			slog.String("route", route),
			slog.Int("status", c.Response().Status),
			slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		}
		if p := callerOf(c); p.AffiliateID != 0 {
			attrs = append(attrs, slog.Int64("partner", p.AffiliateID))
		}
		// The cause of a 503 (a 500's has its own ERROR line, from handleError): the answer
		// says nothing of it, and the operator's response depends on it.
		if status := c.Response().Status; err != nil && status > http.StatusInternalServerError {
			attrs = append(attrs, slog.String("error", err.Error()))
		}
		s.log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request", attrs...)
		return nil
	}
}

// metricMethod is a request's method as a metrics label: HTTP lets a client send any token as
// a method, and each label value would keep a counter and a histogram for the life of the process.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}
