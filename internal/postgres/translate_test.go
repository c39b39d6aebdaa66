package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/lib/pq"

	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/pgtest"
)

// TestTranslateTransientErrors: what a retry may cure is ErrUnavailable (503 with Retry-After),
// never an internal error (500); a unique violation is a conflict.
func TestTranslateTransientErrors(t *testing.T) {
	for code, want := range map[pq.ErrorCode]error{
		"40P01": messaging.ErrUnavailable, // deadlock_detected
		"40001": messaging.ErrUnavailable, // serialization_failure
		"57P01": messaging.ErrUnavailable, // admin_shutdown
		"08006": messaging.ErrUnavailable, // connection_failure
		"53300": messaging.ErrUnavailable, // too_many_connections
		"53100": messaging.ErrUnavailable, // disk_full
		"55P03": messaging.ErrUnavailable, // lock_not_available (a lock_timeout)
		"23505": messaging.ErrConflict,    // unique_violation
	} {
		if got := translate(&pq.Error{Code: code}); !errors.Is(got, want) {
			t.Errorf("translate(%s) = %v, want %v", code, got, want)
		}
	}
}

// TestConnectionLimitIsUnavailable: PostgreSQL at its connection limit (max_connections, or a
// role's or database's CONNECTION LIMIT) refuses new connections with SQLSTATE 53300. That is
// the database refusing connections now, which a retry cures: 503 unavailable, and serve keeps
// trying at start (Unreachable). (Found by review: it was an unknown error, a 500, and serve
// exited at once.)
func TestConnectionLimitIsUnavailable(t *testing.T) {
	ctx := context.Background()
	db, err := Open(pgtest.RefusingDSN(t), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	store := New(ctx, db)
	defer store.Close()
	_, err = store.PartnerByKeyHash(ctx, messaging.HashSecret("gmk_whatever"))
	if !errors.Is(err, messaging.ErrUnavailable) || !Unreachable(err) || !strings.Contains(err.Error(), "53300") {
		t.Errorf("PartnerByKeyHash with every connection refused = %v; want 53300 as messaging.ErrUnavailable, unreachable", err)
	}
}
