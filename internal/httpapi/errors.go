package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/messaging"
)

// requestError is a problem with the request as a whole, found before the domain sees it.
type requestError struct {
	status  int
	id      string
	message string
}

func (e *requestError) Error() string { return e.message }

var (
	errNotJSONObject   = &requestError{http.StatusBadRequest, api.ErrInvalidRequest, "The request body must be a JSON object."}
	errBadJSON         = &requestError{http.StatusBadRequest, api.ErrInvalidRequest, "The request body is not valid JSON."}
	errMediaType       = &requestError{http.StatusUnsupportedMediaType, api.ErrUnsupportedMediaType, "Content-Type must be application/json."}
	errEncoding        = &requestError{http.StatusUnsupportedMediaType, api.ErrUnsupportedMediaType, "Content-Encoding is not supported: send the body uncompressed."}
	errTooLarge        = &requestError{http.StatusRequestEntityTooLarge, api.ErrPayloadTooLarge, "The request body is too large."}
	errHeadersTooLarge = &requestError{http.StatusRequestHeaderFieldsTooLarge, api.ErrHeadersTooLarge, "The request headers are too large."}
	errNoRoute         = &requestError{http.StatusNotFound, api.ErrNotFound, "Not found."}
	errBadMethod       = &requestError{http.StatusMethodNotAllowed, api.ErrMethodNotAllowed, "Method not allowed."}
)

// rateLimitedError is a partner over its request budget.
type rateLimitedError struct {
	retryAfter int // seconds until the next request is allowed
}

func (e *rateLimitedError) Error() string { return "rate limited" }

// retryAfterUnavailable is the Retry-After, in seconds, of a 503.
const retryAfterUnavailable = "2"

// problem is the status and error items one error is answered with.
func problem(err error) (int, []api.ErrorItem) {
	var (
		reqErr    *requestError
		valErr    *messaging.ValidationError
		valErrs   messaging.ValidationErrors
		windowErr *messaging.WindowClosedError
		httpErr   *echo.HTTPError
		limited   *rateLimitedError
	)
	switch {
	case errors.As(err, &valErrs):
		items := make([]api.ErrorItem, 0, len(valErrs))
		for _, v := range valErrs {
			_, item := problem(v)
			items = append(items, item...)
		}
		return http.StatusBadRequest, items
	case errors.As(err, &valErr):
		if valErr.Missing {
			return http.StatusBadRequest, item(api.ErrMissingParameter, fmt.Sprintf("Parameter '%s' is missing.", valErr.Field))
		}
		return http.StatusBadRequest, item(api.ErrInvalidParameter, fmt.Sprintf("Parameter '%s' is invalid.", valErr.Field))
	case errors.As(err, &reqErr):
		return reqErr.status, item(reqErr.id, reqErr.message)
	case errors.As(err, &limited):
		return http.StatusTooManyRequests, item(api.ErrRateLimited, "Too many requests; retry after the time in Retry-After.")
	case errors.As(err, &windowErr):
		return http.StatusConflict, item(api.ErrWindowClosed,
			"The send window of this conversation closed at "+windowErr.ClosedAt.UTC().Format(api.TimeFormat)+".")
	case errors.Is(err, messaging.ErrNotFound):
		return http.StatusNotFound, item(api.ErrNotFound, "Not found.")
	case errors.Is(err, messaging.ErrUnauthorized):
		return http.StatusUnauthorized, item(api.ErrUnauthorized, "Missing or invalid credentials.")
	case errors.Is(err, messaging.ErrForbidden):
		return http.StatusForbidden, item(api.ErrForbidden, "These credentials do not allow this.")
	case errors.Is(err, messaging.ErrConflictingParameters):
		return http.StatusBadRequest, item(api.ErrConflictingParameters,
			"Parameters 'conversation' and 'reservation' name different conversations.")
	case errors.Is(err, messaging.ErrConflict):
		return http.StatusConflict, item(api.ErrConflict, "The resource exists already.")
	case errors.Is(err, messaging.ErrIdempotencyKeyReused):
		return http.StatusConflict, item(api.ErrIdempotencyKeyReused,
			"This Idempotency-Key was used with different parameters.")
	case errors.Is(err, messaging.ErrUnavailable):
		return http.StatusServiceUnavailable, item(api.ErrUnavailable, "The service is unavailable; retry later.")
	case errors.As(err, &httpErr):
		switch httpErr.Code {
		case http.StatusNotFound:
			return problem(errNoRoute)
		case http.StatusMethodNotAllowed:
			return problem(errBadMethod)
		case http.StatusRequestEntityTooLarge:
			return problem(errTooLarge)
		case http.StatusUnsupportedMediaType:
			return problem(errMediaType)
		}
	}
	return http.StatusInternalServerError, item(api.ErrInternal, "Internal server error.")
}

func item(id, message string) []api.ErrorItem {
	return []api.ErrorItem{{ID: id, Message: message}}
}

// handleError is Echo's error handler: the one place that picks a status and an error id.
// Anything unknown is logged once with the request id and answered without detail.
func (s *Server) handleError(err error, c echo.Context) {
	status, items := problem(err)
	if status == http.StatusInternalServerError { // logged even when the answer has begun
		attrs := []slog.Attr{slog.String("request_id", requestID(c)), slog.String("error", err.Error())}
		var panicked *panicError
		if errors.As(err, &panicked) {
			attrs = append(attrs, slog.String("stack", string(panicked.stack)))
		}
		s.log.LogAttrs(c.Request().Context(), slog.LevelError, "internal error", attrs...)
	}
	if c.Response().Committed {
		return
	}
	h := c.Response().Header()
	switch status {
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", retryAfterUnavailable)
	case http.StatusTooManyRequests:
		var limited *rateLimitedError
		if errors.As(err, &limited) {
			h.Set("Retry-After", strconv.Itoa(limited.retryAfter))
		}
	}
	if status == http.StatusMethodNotAllowed {
		h.Set("Allow", s.allow[c.Path()])
	}
	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(status)
	} else {
		werr = c.JSON(status, api.ErrorResponse{RequestID: requestID(c), Errors: items})
	}
	if werr != nil && !strings.Contains(werr.Error(), "broken pipe") {
		s.log.Warn("write error answer", "request_id", requestID(c), "error", werr.Error())
	}
}
