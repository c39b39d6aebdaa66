package postgres

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/pgtest"
)

// TestPurgeLockAfterTheDatabaseRestarted: the purge's pool keeps its two connections idle
// between passes (for up to 10 minutes). When PostgreSQL restarts meanwhile (here its sessions
// are ended with pg_terminate_backend, from a connection of the test's own), the database is
// back and answering by the next pass, so the pass must take its lock and run: the service
// "recovers by itself" (README, "Limits, faults and security"). (Found by review: TryPurgeLock
// ran its query on the dead connection it held, which database/sql does not replace, so the pass
// failed, and so did the next one, on the second; with a PURGE_INTERVAL under 10 minutes, two
// whole intervals went by unpurged.)
func TestPurgeLockAfterTheDatabaseRestarted(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	pool, err := Open(dsn, 2) // as openPurgeStore opens the purge's pool
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	store := New(ctx, pool)
	t.Cleanup(func() { store.Close() })

	// A pass: its lock on one connection, its batches on the other; both go back idle.
	release, ok, err := store.TryPurgeLock(ctx)
	if err != nil || !ok {
		t.Fatalf("TryPurgeLock = %v, %v; want the lock", ok, err)
	}
	if _, err := store.ExpiredConversations(ctx, time.Now(), 10); err != nil {
		t.Fatal(err)
	}
	release()
	if idle := pool.Stats().Idle; idle != 2 {
		t.Fatalf("%d idle connections after a pass, want 2", idle)
	}

	watch := sqlx.MustConnect("postgres", dsn)
	t.Cleanup(func() { watch.Close() })
	var pids []int
	if err := watch.Select(&pids, `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if _, err := watch.Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
			t.Fatal(err)
		}
	}
	if err := watch.Ping(); err != nil {
		t.Fatalf("the database is not back: %v", err)
	}

	for pass := 1; pass <= 2; pass++ {
		release, ok, err := store.TryPurgeLock(ctx)
		if err != nil || !ok {
			t.Errorf("pass %d after the restart: TryPurgeLock = %v, %v; want the lock (the database answers)", pass, ok, err)
			continue
		}
		release()
	}
}

// TestTransactionCutOffBeforeItsCommitIsUnavailable: a request's database work ends at its
// deadline (REQUEST_TIMEOUT, or the cut at shutdown) with 503 unavailable, "never a 500"
// (README, "Limits, faults and security"; spec §2: 500 is for what no client can cure). When the
// deadline passes after a transaction's last statement and before its commit, database/sql
// rolls the transaction back on its own (it watches the context) and Commit reports
// sql.ErrTxDone. Here fn ends its work and the deadline passes before it returns, as it does
// when the deadline falls in the microseconds between the two. (Found by review: the admin PUTs
// and the purge's batches, all run through inTx, failed with an unknown error, a 500; a loop of
// PutReservation with deadlines of 0 to 3 ms answered it 2 times in 3,000.)
func TestTransactionCutOffBeforeItsCommitIsUnavailable(t *testing.T) {
	store := New(context.Background(), pgtest.DB(t))
	t.Cleanup(func() { store.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := store.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := tx.ExecContext(ctx, `SELECT 1`); err != nil {
			return err
		}
		cancel()                          // the deadline passes now, after the last statement
		time.Sleep(50 * time.Millisecond) // database/sql rolls back meanwhile
		return nil
	})
	if !errors.Is(err, messaging.ErrUnavailable) {
		t.Errorf("inTx cut off before its commit = %v, want messaging.ErrUnavailable (503), not an unknown error (500)", err)
	}
}

// TestHotStatementsPreparedOnceTheDatabaseIsBack: New's doc says "Preparing needs the database:
// when it is unreachable, statements are prepared later on first use." A store made while the
// database refused connections must therefore prepare its hot statements once the database
// answers again; otherwise the process runs every hot statement unprepared (parsed and planned
// on each call) for the rest of its life, which no recovery of the database undoes.
// (Found by review.)
func TestHotStatementsPreparedOnceTheDatabaseIsBack(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	u.Path = "/postgres" // a database may not disallow connections to itself from within
	watch := sqlx.MustConnect("postgres", u.String())
	t.Cleanup(func() { watch.Close() })
	allow := func(on bool) {
		t.Helper()
		if _, err := watch.Exec(`ALTER DATABASE ` + pq.QuoteIdentifier(name) + ` WITH ALLOW_CONNECTIONS ` +
			map[bool]string{true: "true", false: "false"}[on]); err != nil {
			t.Fatal(err)
		}
	}

	pool, err := Open(dsn, 1) // one connection: the statements below share its session
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	t.Cleanup(func() { allow(true) })
	allow(false) // the database refuses new sessions (as while it restarts)
	store := New(ctx, pool)
	t.Cleanup(func() { store.Close() })
	allow(true) // and is back

	// A hot statement (authentication's) runs, then the session lists what it has prepared.
	if _, err := store.PartnerByKeyHash(ctx, make([]byte, 32)); err == nil {
		t.Fatal("PartnerByKeyHash of an unknown key found a partner")
	}
	var prepared int
	if err := pool.Get(&prepared, `SELECT count(*) FROM pg_prepared_statements WHERE statement = $1`, partnerByKeyHashSQL); err != nil {
		t.Fatal(err)
	}
	if prepared == 0 {
		t.Errorf("after the database came back, the session that ran partnerByKeyHashSQL has it prepared %d times, want it prepared "+
			"(store.go: \"when it is unreachable, statements are prepared later on first use\"); the store has %d of its %d hot statements prepared",
			prepared, len(store.stmts), len(hotQueries))
	}
}
