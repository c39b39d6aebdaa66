package main

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/guestmsg/messaging/db"
	"github.com/guestmsg/messaging/internal/pgtest"
)

// migratedTo returns a fresh database with migrations reverted down to version, so that serve
// has the later ones to apply when it starts.
func migratedTo(t *testing.T, version uint) string {
	t.Helper()
	dsn := pgtest.DSN(t)
	mg, err := db.NewMigrator(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	for {
		v, _, err := mg.Version()
		if err != nil {
			t.Fatal(err)
		}
		if v == version {
			return dsn
		}
		if err := mg.Down(); err != nil {
			t.Fatal(err)
		}
	}
}

func migrationVersion(t *testing.T, dsn string) (uint, bool) {
	t.Helper()
	mg, err := db.NewMigrator(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	v, dirty, err := mg.Version()
	if err != nil {
		t.Fatal(err)
	}
	return v, dirty
}

// TestSIGTERMStopsBetweenStartUpMigrations: SIGTERM while serve applies its start-up migrations
// lets the migration in progress finish (it is never cut in the middle, which would leave the
// version dirty), applies no further one, and exits 0.
func TestSIGTERMStopsBetweenStartUpMigrations(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the binary")
	}
	bin := buildBinary(t)
	dsn := migratedTo(t, 5)
	release := holdLock(t, dsn, `LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE`) // migration 6 waits for it
	svc := startService(t, bin, "", "DATABASE_URL="+dsn)
	time.Sleep(time.Second)
	if got := svc.status(http.MethodGet, "/readyz"); got != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while migrating = %d, want 503", got)
	}
	svc.signal(syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	release()
	if err := svc.wait(15 * time.Second); err != nil {
		t.Errorf("exit status %v, want 0\n%s", err, svc.logs)
	}
	if v, dirty := migrationVersion(t, dsn); v != 6 || dirty {
		t.Errorf("version %d (dirty %t) after SIGTERM during migration 6, want 6, clean", v, dirty)
	}
}

// TestKilledStartUpMigrationIsAppliedByTheNextStart: a serve killed while its start-up
// migration waits for a lock leaves the version before that migration, clean: the migration and
// its version commit together, and the orphaned session, which gets the lock once the holder
// lets go, never commits. The next serve applies it and is ready. (Before, golang-migrate's dirty
// mark stopped every start until an operator ran `migrate force`.)
func TestKilledStartUpMigrationIsAppliedByTheNextStart(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the binary")
	}
	bin := buildBinary(t)
	dsn := migratedTo(t, 6)
	release := holdLock(t, dsn, `LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE`) // migration 7 waits for it
	first := startService(t, bin, "", "DATABASE_URL="+dsn)
	time.Sleep(time.Second)
	first.kill()
	release()
	deadline := time.Now().Add(10 * time.Second)
	for { // the orphaned backend gets the lock, runs migration 7 and ends without a commit
		conn := sqlx.MustConnect("postgres", dsn)
		var backends int
		conn.Get(&backends, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
		conn.Close()
		if backends == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v, dirty := migrationVersion(t, dsn); v != 6 || dirty {
		t.Fatalf("version %d (dirty %t) after the kill, want 6, clean", v, dirty)
	}
	second := startService(t, bin, "", "DATABASE_URL="+dsn)
	second.waitReady(30 * time.Second)
	if v, dirty := migrationVersion(t, dsn); v != 9 || dirty {
		t.Errorf("version %d (dirty %t) once the next serve is ready, want 9, clean", v, dirty)
	}
}

// The purge does not migrate, and runs only on the schema its code is written for: on an older
// or a dirty one it says what to do and removes nothing.
func TestPurgeNeedsTheCurrentSchema(t *testing.T) {
	dsn := migratedTo(t, 7)
	cfg := env(map[string]string{"DATABASE_URL": dsn})
	var out strings.Builder
	if err := run(context.Background(), []string{"purge"}, cfg, &out); err == nil ||
		!strings.Contains(err.Error(), "the schema is at version 7 and this binary needs 9: run `messaging migrate up` first") {
		t.Errorf("purge at version 7 = %v, want the versions and `messaging migrate up`", err)
	}
	if out.Len() > 0 {
		t.Errorf("purge at version 7 logged %q, want no pass", out.String())
	}
	if err := run(context.Background(), []string{"migrate", "up"}, cfg, &out); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"purge"}, cfg, &out); err != nil || !strings.Contains(out.String(), "purge") {
		t.Errorf("purge at version 9 = %v, logged %q; want a pass", err, out.String())
	}
	conn := sqlx.MustConnect("postgres", dsn)
	defer conn.Close()
	conn.MustExec(`UPDATE schema_migrations SET dirty = true`)
	if err := run(context.Background(), []string{"purge"}, cfg, &out); err == nil || !strings.Contains(err.Error(), "messaging migrate force 9") {
		t.Errorf("purge on a dirty version = %v, want the way out named", err)
	}
	conn.MustExec(`UPDATE schema_migrations SET version = 10, dirty = false`)
	if err := run(context.Background(), []string{"purge"}, cfg, &out); err == nil || !strings.Contains(err.Error(), "newer than this binary's 9") {
		t.Errorf("purge at version 10 = %v, want it refused", err)
	}
}

func TestMigrateForceNeedsAVersion(t *testing.T) {
	cfg := env(map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1:1/db"})
	for _, args := range [][]string{{"migrate", "force"}, {"migrate", "force", "x"}, {"migrate", "force", "-2"}, {"migrate", "up", "7"}} {
		if err := run(context.Background(), args, cfg, &strings.Builder{}); err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("%v = %v, want the usage", args, err)
		}
	}
}

// TestDirtyFirstMigrationWayOut: a first `serve` (or `migrate up`) on an empty database killed
// during migration 1 leaves version 1 dirty, and the refusal names `messaging migrate force 0`
// for "it did not take effect". Version 0 is none applied (as `migrate version` prints it), so
// following the advice lets every migration run again; a version the binary does not have is
// refused rather than recorded.
func TestDirtyFirstMigrationWayOut(t *testing.T) {
	dsn := migratedTo(t, 0)
	conn := sqlx.MustConnect("postgres", dsn)
	defer conn.Close()
	// Killed while migration 1 ran: its transaction rolled back, the version stays dirty.
	conn.MustExec(`INSERT INTO schema_migrations (version, dirty) VALUES (1, true)`)
	cfg := env(map[string]string{"DATABASE_URL": dsn})
	var out strings.Builder
	err := run(context.Background(), []string{"migrate", "up"}, cfg, &out)
	if err == nil || !strings.Contains(err.Error(), "`messaging migrate force 0` when it was applying migration 1") {
		t.Fatalf("migrate up on dirty version 1 = %v, want the way out named", err)
	}
	// Migration 1 did not take effect (no table of it exists): follow the advice.
	if err := run(context.Background(), []string{"migrate", "force", "0"}, cfg, &out); err != nil {
		t.Fatalf("migrate force 0 = %v", err)
	}
	if err := run(context.Background(), []string{"migrate", "up"}, cfg, &out); err != nil {
		t.Errorf("migrate up after `migrate force 0`, as the dirty-version message says = %v, want every migration applied", err)
	}
	if v, dirty := migrationVersion(t, dsn); v != 9 || dirty {
		t.Errorf("version %d (dirty %t), want 9, clean", v, dirty)
	}
	if err := run(context.Background(), []string{"migrate", "force", "10"}, cfg, &out); err == nil ||
		!strings.Contains(err.Error(), "version 10 is not one of this binary's migrations") {
		t.Errorf("migrate force 10 = %v, want it refused", err)
	}
	if v, dirty := migrationVersion(t, dsn); v != 9 || dirty {
		t.Errorf("version %d (dirty %t) after a refused force, want 9, clean", v, dirty)
	}
}

// TestDirtyNewerVersionWayOutIsRunnable: a schema left dirty at a version this binary does not
// have (a newer binary's migration 10 was interrupted, and the deployment rolled back to this
// binary) is refused by `migrate up`, `serve` and `purge` with advice this binary can follow: to
// repair it with the binary that has migration 10, not a `migrate force 10` that it refuses.
// (Found by review: the message named `migrate force 8`.)
func TestDirtyNewerVersionWayOutIsRunnable(t *testing.T) {
	dsn := migratedTo(t, 9)
	conn := sqlx.MustConnect("postgres", dsn)
	defer conn.Close()
	conn.MustExec(`UPDATE schema_migrations SET version = 10, dirty = true`) // a newer binary's migration 10, interrupted
	cfg := env(map[string]string{"DATABASE_URL": dsn})
	for _, args := range [][]string{{"migrate", "up"}, {"purge"}} {
		var out strings.Builder
		err := run(context.Background(), args, cfg, &out)
		if err == nil || !strings.Contains(err.Error(), "version 10 is dirty, and newer than this binary's 9") ||
			strings.Contains(err.Error(), "migrate force 10") {
			t.Errorf("%q on dirty version 10 = %v; want it refused, naming the newer binary as the way out", args, err)
		}
	}
}

// TestNewerSchemaIsNamed: the binary against a clean schema newer than its own (a newer
// binary migrated it; the deployment rolled back). `purge` says so ("the schema is at version 10,
// newer than this binary's 9: run the binary that migrated it"), and a dirty newer version is
// named as such for serve and migrate (TestDirtyNewerVersionWayOutIsRunnable). `serve`,
// `migrate up` and `bootstrap` (which migrate first) fail instead with golang-migrate's
// "no migration found for version 10: read down for version 10 migrations: file does not exist",
// which reads as a broken binary and names no way out.
func TestNewerSchemaIsNamed(t *testing.T) {
	dsn := migratedTo(t, 9)
	conn := sqlx.MustConnect("postgres", dsn)
	defer conn.Close()
	conn.MustExec(`UPDATE schema_migrations SET version = 10, dirty = false`)
	cfg := env(map[string]string{"DATABASE_URL": dsn})
	for _, args := range [][]string{{"migrate", "up"}, {"migrate", "down"}, {"bootstrap", "-kind", "guest", "-name", "App"}} {
		err := run(context.Background(), args, cfg, &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), "newer than this binary's 9") {
			t.Errorf("%q on clean version 10 = %v; want it refused, saying the schema is newer than this binary's 9", args, err)
		}
	}
	if v, dirty := migrationVersion(t, dsn); v != 10 || dirty {
		t.Errorf("version %d (dirty %t) after the refusals, want 10, clean", v, dirty)
	}
}

// TestDirtyNilVersionWayOut: a binary before this session's migrator, killed while `migrate
// down` reverted migration 1, leaves golang-migrate's dirty mark of "no version" (its driver
// records version -1, dirty, before it runs the first migration's down file, so that the mark
// is not lost: golang-migrate issue 330). README ("Commands") says of such a dirty version that
// `serve` and `migrate` refuse to run "and say so", and that the way out is `messaging migrate
// force N` or `force N-1`, `force 0` recording that none is applied. Here `migrate version`
// reports the schema clean at version 0, `purge` sends the operator to `migrate up`, and
// `migrate up` (serve alike) names `migrate force -1` and `migrate force -2`, which the binary
// refuses as bad usage: no command the binary prints leads out. (Found by review.)
func TestDirtyNilVersionWayOut(t *testing.T) {
	dsn := migratedTo(t, 1)
	conn := sqlx.MustConnect("postgres", dsn)
	defer conn.Close()
	// The old binary's `migrate down` from 1, killed while the down file ran: its transaction
	// rolled back (migration 1 is still there), the mark stays.
	conn.MustExec(`UPDATE schema_migrations SET version = -1, dirty = true`)
	cfg := env(map[string]string{"DATABASE_URL": dsn})

	var out strings.Builder
	if err := run(context.Background(), []string{"migrate", "version"}, cfg, &out); err != nil || strings.Contains(out.String(), "dirty false") {
		t.Errorf("migrate version on a dirty mark = %q, %v; want it reported dirty", out.String(), err)
	}
	err := run(context.Background(), []string{"migrate", "up"}, cfg, &strings.Builder{})
	if err == nil {
		t.Fatal("migrate up on a dirty mark = nil, want it refused")
	}
	advice := regexp.MustCompile("`messaging migrate force (-?[0-9]+)`").FindAllStringSubmatch(err.Error(), -1)
	if len(advice) == 0 {
		t.Fatalf("migrate up on a dirty mark = %v; want a `messaging migrate force N` to run", err)
	}
	for _, a := range advice {
		if perr := run(context.Background(), []string{"migrate", "force", a[1]}, cfg, &strings.Builder{}); perr != nil {
			t.Errorf("migrate up on a dirty mark says %s; running it = %v", a[0], perr)
		}
	}
}

// An older binary's `migrate down` of migration 7, interrupted, leaves version 6 dirty: if it
// did not take effect the schema is at 7, so the way out names `force 7` beside `force 5`, and
// `migrate down` refuses with that advice too, not golang-migrate's bare "Dirty database
// version 6. Fix and force version.". (Found by review.)
func TestDirtyVersionAfterAnInterruptedDownWayOut(t *testing.T) {
	dsn := migratedTo(t, 7)
	conn := sqlx.MustConnect("postgres", dsn)
	defer conn.Close()
	conn.MustExec(`UPDATE schema_migrations SET version = 6, dirty = true`)
	cfg := env(map[string]string{"DATABASE_URL": dsn})
	for _, args := range [][]string{{"migrate", "up"}, {"migrate", "down"}, {"purge"}} {
		err := run(context.Background(), args, cfg, &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), "`messaging migrate force 5` when it was applying migration 6") ||
			!strings.Contains(err.Error(), "`messaging migrate force 7` when it was reverting migration 7") {
			t.Errorf("%q on dirty version 6 = %v; want both ways out named", args, err)
		}
	}
	if err := run(context.Background(), []string{"migrate", "force", "7"}, cfg, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"migrate", "up"}, cfg, &strings.Builder{}); err != nil {
		t.Errorf("migrate up after `migrate force 7` = %v", err)
	}
}
