package messaging

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// The domain's error vocabulary. The HTTP layer maps each to one status and error id; the store
// translates database errors into these.
var (
	// ErrNotFound: the thing does not exist, is not the caller's, or is past the caller's read window.
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized: missing or bad credentials.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: valid credentials that do not allow this.
	ErrForbidden = errors.New("forbidden")
	// ErrConflict: the resource exists already, or cannot change the way asked.
	ErrConflict = errors.New("conflict")
	// ErrConflictingParameters: conversation and reservation name different conversations.
	ErrConflictingParameters = errors.New("conflicting parameters")
	// ErrIdempotencyKeyReused: the same Idempotency-Key came with different parameters.
	ErrIdempotencyKeyReused = errors.New("idempotency key reused")
	// ErrUnavailable: the database cannot be reached.
	ErrUnavailable = errors.New("unavailable")
)

// ValidationError reports one bad request field by its path (e.g. "messages[3]").
type ValidationError struct {
	Field   string
	Missing bool // absent or empty, rather than malformed
}

func (e *ValidationError) Error() string {
	if e.Missing {
		return fmt.Sprintf("parameter %s is missing", e.Field)
	}
	return fmt.Sprintf("parameter %s is invalid", e.Field)
}

// Missing returns a ValidationError for an absent or empty field.
func Missing(field string) error { return &ValidationError{Field: field, Missing: true} }

// Invalid returns a ValidationError for a field of the wrong type, format or size.
func Invalid(field string) error { return &ValidationError{Field: field} }

// ValidationErrors are several field problems of one request, reported together.
type ValidationErrors []*ValidationError

func (e ValidationErrors) Error() string {
	parts := make([]string, len(e))
	for i, v := range e {
		parts[i] = v.Error()
	}
	return strings.Join(parts, "; ")
}

// Add appends the field problems err reports: a *ValidationError or ValidationErrors; nil adds
// nothing. Any other error is a programming error and panics.
func (e *ValidationErrors) Add(err error) {
	var many ValidationErrors
	var one *ValidationError
	switch {
	case err == nil:
	case errors.As(err, &many):
		*e = append(*e, many...)
	case errors.As(err, &one):
		*e = append(*e, one)
	default:
		panic("messaging: ValidationErrors.Add of " + err.Error())
	}
}

// Err returns e as an error, or nil when it is empty.
func (e ValidationErrors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

// WindowClosedError reports a send after the caller's send window closed.
type WindowClosedError struct {
	ClosedAt time.Time
}

func (e *WindowClosedError) Error() string {
	return "send window closed at " + e.ClosedAt.UTC().Format(TimeFormat)
}
