package postgres

import (
	"errors"
	"testing"

	"github.com/lib/pq"

	"github.com/guestmsg/messaging/internal/messaging"
)

// TestTranslateTransientErrors: what a retry may cure is ErrUnavailable (503 with Retry-After),
// never an internal error (500); a unique violation is a conflict.
func TestTranslateTransientErrors(t *testing.T) {
	for code, want := range map[pq.ErrorCode]error{
		"40P01": messaging.ErrUnavailable, // deadlock_detected
		"40001": messaging.ErrUnavailable, // serialization_failure
		"57P01": messaging.ErrUnavailable, // admin_shutdown
		"08006": messaging.ErrUnavailable, // connection_failure
		"23505": messaging.ErrConflict,    // unique_violation
	} {
		if got := translate(&pq.Error{Code: code}); !errors.Is(got, want) {
			t.Errorf("translate(%s) = %v, want %v", code, got, want)
		}
	}
}
