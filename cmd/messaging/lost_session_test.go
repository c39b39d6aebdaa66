package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
)

// readyOrExited polls /readyz of s for up to timeout and reports "" once it answers 200, or why
// it never did (the service exited, or it stayed unready).
func readyOrExited(s *service, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			logs := strings.TrimSpace(s.logs.String())
			if i := strings.LastIndexByte(logs, '\n'); i >= 0 {
				logs = logs[i+1:]
			}
			return "exited (" + s.err.Error() + "): " + logs
		default:
		}
		if s.status(http.MethodGet, "/readyz") == http.StatusOK {
			return ""
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "not ready after " + timeout.String()
}

// startUpWaiters starts a replica on a database one migration behind while a long transaction
// holds the table that migration needs (as a large queue would, README "Commands"): it applies
// migration 6 and waits for the table. With second, a second replica starts too and waits for
// golang-migrate's lock. It returns the replicas, a connection that watches the database, and the
// holder's release, once every replica's session waits for a lock.
func startUpWaiters(t *testing.T, second bool) (dsn string, migrating, waiting *service, watch *sqlx.DB, release func()) {
	t.Helper()
	bin := buildBinary(t)
	dsn = migratedTo(t, 5)
	release = holdLock(t, dsn, `LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE`) // migration 6 waits for it
	watch = sqlx.MustConnect("postgres", dsn)
	t.Cleanup(func() { watch.Close() })
	migrating = startService(t, bin, "", "DATABASE_URL="+dsn)
	waitForWait(t, watch, "relation")
	if second {
		waiting = startService(t, bin, "", "DATABASE_URL="+dsn)
		waitForWait(t, watch, "advisory")
	}
	return dsn, migrating, waiting, watch, release
}

// waitForWait waits until a session of the database waits for a lock of type event
// (pg_stat_activity.wait_event: "relation", "advisory").
func waitForWait(t *testing.T, watch *sqlx.DB, event string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := watch.Get(&n, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = $1`, event); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session waits for a %s lock after 20 s", event)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// endWaitingSessions ends, as a PostgreSQL restart or failover would, the sessions that wait for
// a lock of type event, from the test's own connection, and returns how many it ended.
func endWaitingSessions(t *testing.T, watch *sqlx.DB, event string) int {
	t.Helper()
	var pids []int
	if err := watch.Select(&pids, `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = $1
		  AND pid <> pg_backend_pid()`, event); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if _, err := watch.Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
			t.Fatal(err)
		}
	}
	return len(pids)
}

// TestStartUpWaitingForTheMigrationLockOutlivesALostSession: README, "Limits, faults and
// security": until serve has reached the database and applied the migrations it "keeps trying
// (backing off to every 5 s) instead of exiting", and the service "recovers by itself" when the
// database comes back. A second replica that starts while the first applies a long migration
// waits for golang-migrate's advisory lock; when its session is ended (a PostgreSQL restart or
// failover, here pg_terminate_backend) it must try again, and serve once the migration is done.
// (Found by review: it exited.)
func TestStartUpWaitingForTheMigrationLockOutlivesALostSession(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the binary")
	}
	_, migrating, waiting, watch, release := startUpWaiters(t, true)
	ended := endWaitingSessions(t, watch, "advisory")
	time.Sleep(500 * time.Millisecond)
	release()
	if why := readyOrExited(migrating, 30*time.Second); why != "" {
		t.Fatalf("the replica applying migration 6 (untouched): %s", why)
	}
	if why := readyOrExited(waiting, 30*time.Second); why != "" {
		t.Errorf("the replica waiting for the migration lock, after its session was ended (%d ended): %s; "+
			"want it to retry and serve", ended, why)
	}
}

// The replica applying a migration when its session ends tries again too, and applies it: the
// migration and its version commit together, so the version still says the migration is to do.
// (Before, golang-migrate's dirty mark stopped it, and the operator had to find out whether the
// migration had committed before the session ended, then run `migrate force`.)
func TestStartUpMigrationOutlivesALostSession(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the binary")
	}
	dsn, migrating, _, watch, release := startUpWaiters(t, false)
	ended := endWaitingSessions(t, watch, "relation")
	time.Sleep(500 * time.Millisecond)
	release()
	if why := readyOrExited(migrating, 30*time.Second); why != "" || !strings.Contains(migrating.logs.String(), "database unreachable; retrying") {
		t.Errorf("the replica applying migration 6, after its session was ended (%d ended): %q; want a retry, then ready", ended, why)
	}
	if v, dirty := migrationVersion(t, dsn); v != 9 || dirty {
		t.Errorf("schema version %d (dirty %t), want 9, clean", v, dirty)
	}
}
