// Package db owns the schema: the SQL migrations embedded in the binary and the code that applies them.
package db

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	"github.com/golang-migrate/migrate/v4/database/postgres"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/lib/pq"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrator applies the embedded migrations. It opens its own connection from the DSN it is given,
// because closing a migrator closes the database handle it was built on. One migrator at a time
// works on a database: from NewMigrator to Close it holds the session advisory lock
// migrationLockKey.
type Migrator struct {
	m      *migrate.Migrate
	drv    database.Driver // m's
	pool   *sql.DB
	latest uint // the newest embedded migration's version
}

// connectTimeout bounds connecting for migrations, the handshake included, unless the DSN sets
// connect_timeout itself: a database that accepts the connection and never answers (frozen, or
// a pooler whose database is down) is then unreachable, which serve retries, instead of being
// waited on for ever. Statements have no bound: a migration takes what it takes.
const connectTimeout = 10 * time.Second

// migrationLockKey names the lock one migrator at a time holds (pg_advisory_lock's one-bigint
// space, apart from the purge's). golang-migrate's own lock is not enough: it waits on it without
// a context, so a signal could not end the wait, and gives up after 15 s, where another
// process's migration may take minutes. This one is waited on for as long as that takes, or
// until ctx ends.
const migrationLockKey int64 = 0x6d73_676d_6967_7261 // "msgmigra"

// NewMigrator connects to dsn for migrating, and waits until no other migrator works on the
// database. When ctx ends first, it returns ctx's error. Close it when done.
func NewMigrator(ctx context.Context, dsn string) (*Migrator, error) {
	src, err := iofs.New(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("open embedded migrations: %w", err)
	}
	latest, err := src.First()
	for err == nil {
		var next uint
		if next, err = src.Next(latest); err == nil {
			latest = next
		}
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	cfg, err := pq.NewConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("connect for migrations: %w", err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	connector, err := pq.NewConnectorConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect for migrations: %w", err)
	}
	pool := sql.OpenDB(connector)
	type opened struct {
		drv database.Driver
		err error
	}
	done := make(chan opened, 1)
	go func() {
		drv, err := lockedDriver(ctx, pool)
		done <- opened{drv, err}
	}()
	var o opened
	select {
	case o = <-done:
	case <-ctx.Done():
		// lib/pq's handshake does not watch ctx: leave it to end by connectTimeout, then close
		// what it opened. Nothing was migrated yet.
		go func() { <-done; pool.Close() }()
		return nil, ctx.Err()
	}
	if o.err != nil {
		pool.Close()
		if ctx.Err() != nil { // the lock's wait, cancelled by lib/pq when ctx ended
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("connect for migrations: %w", o.err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "postgres", o.drv)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect for migrations: %w", err)
	}
	return &Migrator{m: m, drv: o.drv, pool: pool, latest: latest}, nil
}

// lockedDriver takes a connection of pool, waits on it for migrationLockKey (a session lock: it
// lasts until the pool closes the connection) with no statement or lock timeout, checks that
// the database stores text as UTF-8 (in another encoding PostgreSQL refuses the characters that
// encoding lacks, and SQL_ASCII checks nothing), and makes golang-migrate's driver of it.
func lockedDriver(ctx context.Context, pool *sql.DB) (database.Driver, error) {
	conn, err := pool.Conn(ctx)
	if err != nil {
		return nil, err
	}
	// The requests' timeouts, which the role, the database or DATABASE_URL may set, are not the
	// migrations': a migration cut off would be retried by serve, taking its locks again each
	// time, and the wait for another process's migrations takes what they take.
	if _, err := conn.ExecContext(ctx, `SET statement_timeout = 0; SET lock_timeout = 0`); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		conn.Close()
		return nil, err
	}
	var encoding string
	if err := conn.QueryRowContext(ctx, `SHOW server_encoding`).Scan(&encoding); err != nil {
		conn.Close()
		return nil, err
	}
	if encoding != "UTF8" {
		conn.Close()
		return nil, fmt.Errorf("the database's encoding is %s, and the service stores text as UTF8: "+
			"create the database with ENCODING 'UTF8'", encoding)
	}
	cfg := &postgres.Config{}
	drv, err := postgres.WithConnection(ctx, conn, cfg) // fills in cfg's schema and table
	if err != nil {
		conn.Close()
		return nil, err
	}
	table := pq.QuoteIdentifier(cfg.SchemaName) + "." + pq.QuoteIdentifier(cfg.MigrationsTable)
	return &atomicDriver{Driver: drv, conn: conn, table: table}, nil
}

// atomicDriver runs each migration in one transaction with the recording of the version it
// leads to, so that the version recorded is always the migrations that took effect, whatever
// ends the process or its session (a kill, a restart of PostgreSQL) or the migration (an
// error): the next Up applies what is missing. golang-migrate's driver records the version as
// dirty, runs the file, then records it clean, each in a transaction of its own; a dirty version
// stopped every start until an operator found out whether the migration had committed and ran
// `migrate force`. The files hold no transaction control of their own (db_test checks).
type atomicDriver struct {
	database.Driver           // golang-migrate's, on conn
	conn            *sql.Conn // the connection holding migrationLockKey
	table           string    // the version table, as the driver names it
	target          int       // the version the migration to run leads to
}

// lineAt returns the line of query that PostgreSQL's error position (1-based, in characters)
// points into, or 0 without one.
func lineAt(query, position string) uint {
	pos, err := strconv.Atoi(position)
	if err != nil || pos < 1 {
		return 0
	}
	line := uint(1)
	for _, r := range query {
		if pos--; pos == 0 {
			break
		}
		if r == '\n' {
			line++
		}
	}
	return line
}

// SetVersion leaves golang-migrate's dirty mark before a migration to Run, which records the
// version with the migration; other versions (clean after a migration, Force) it records.
func (d *atomicDriver) SetVersion(version int, dirty bool) error {
	if dirty {
		d.target = version
		return nil
	}
	return d.Driver.SetVersion(version, false)
}

// Run applies migration and records d.target as the version, clean, in one transaction.
// Statements have no time bound (see lockedDriver): a migration takes what it takes.
func (d *atomicDriver) Run(migration io.Reader) error {
	body, err := io.ReadAll(migration)
	if err != nil {
		return err
	}
	ctx := context.Background()
	tx, err := d.conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrating to version %d: %w", d.target, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		var pqErr *pq.Error
		if errors.As(err, &pqErr) && pqErr.Position != "" {
			return fmt.Errorf("migrating to version %d failed at line %d of its file: %w", d.target, lineAt(string(body), pqErr.Position), err)
		}
		return fmt.Errorf("migrating to version %d failed: %w", d.target, err)
	}
	// DELETE, not TRUNCATE, which would wait for any session that has read the table (a psql
	// left open) while the migration's own locks hold requests up. (Found by review.)
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+d.table); err != nil {
		return fmt.Errorf("migrating to version %d, recording it: %w", d.target, err)
	}
	if d.target >= 0 { // database.NilVersion, after the first migration's down, is no row
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+d.table+` (version, dirty) VALUES ($1, false)`, d.target); err != nil {
			return fmt.Errorf("migrating to version %d, recording it: %w", d.target, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrating to version %d, committing: %w", d.target, err)
	}
	return nil
}

// Up applies every pending migration. Having nothing to apply is success. When ctx ends, it
// stops after the migration it is applying (a migration is never cut in the middle: each is one
// transaction with its version, see atomicDriver) and returns ctx's error.
func (mg *Migrator) Up(ctx context.Context) error {
	if err := mg.checkNotNewer(); err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { mg.m.GracefulStop <- true })
	defer stop()
	if err := mg.m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		var dirty migrate.ErrDirty
		if errors.As(err, &dirty) {
			return fmt.Errorf("migrate up: %w", mg.dirtyError(dirty.Version))
		}
		return fmt.Errorf("migrate up: %w", withCause(err))
	}
	return ctx.Err()
}

func (mg *Migrator) dirtyError(version int) error {
	// Only a binary before atomicDriver (or another tool) leaves a dirty version: golang-migrate
	// marked the version a migration leads to as dirty before running it, an up migration's
	// own and a down migration's previous one.
	const before = "a binary older than this one was interrupted, or failed, "
	const either = "The migration took effect in full or not at all (each is one transaction): once you know which, run "
	switch {
	case version <= 0: // a down migration of migration 1
		return errors.New("no version is recorded, and the record is dirty: " + before + "reverting migration 1 " +
			"(`migrate down`). " + either + "`messaging migrate force 0` (it did: none is applied) or " +
			"`messaging migrate force 1` (it did not), then start again")
	case version > int(mg.latest):
		return fmt.Errorf("version %d is dirty, and newer than this binary's %d: a newer binary's migration was "+
			"interrupted or failed; repair it with that binary (`messaging migrate force`), then start it", version, mg.latest)
	}
	msg := fmt.Sprintf("version %d is dirty: %smigrating to it. %s`messaging migrate force %d` (it did) or, if it did not, "+
		"`messaging migrate force %d` when it was applying migration %d (`migrate up`, `serve`)",
		version, before, either, version, version-1, version)
	if version < int(mg.latest) {
		msg += fmt.Sprintf(" or `messaging migrate force %d` when it was reverting migration %d (`migrate down`)", version+1, version+1)
	}
	return errors.New(msg + ", then start again")
}

// CheckCurrent returns an error, saying what to do, unless the schema is clean and at the
// newest embedded migration: the one the binary's code is written for. For commands that use
// the database without migrating it.
func (mg *Migrator) CheckCurrent() error {
	v, dirty, err := mg.Version()
	switch {
	case err != nil:
		return fmt.Errorf("read the schema version: %w", err)
	case dirty:
		return fmt.Errorf("schema: %w", mg.dirtyError(int(v)))
	case v < mg.latest:
		return fmt.Errorf("the schema is at version %d and this binary needs %d: run `messaging migrate up` first", v, mg.latest)
	case v > mg.latest:
		return mg.newerError(v)
	}
	return nil
}

// checkNotNewer refuses a clean schema newer than the binary's migrations, which golang-migrate
// would report as a missing migration file. (A dirty one is dirtyError's.)
func (mg *Migrator) checkNotNewer() error {
	if v, dirty, err := mg.Version(); err == nil && !dirty && v > mg.latest {
		return mg.newerError(v)
	}
	return nil
}

func (mg *Migrator) newerError(v uint) error {
	return fmt.Errorf("the schema is at version %d, newer than this binary's %d: run the binary that migrated it", v, mg.latest)
}

// Force records version as the applied one, clean, without running anything: the way out of a
// dirty version (see Up) once the operator knows what the interrupted migration did. Version 0
// is none applied, as Version reports it; a version the binary does not have is refused.
func (mg *Migrator) Force(version int) error {
	if version < 0 || version > int(mg.latest) {
		return fmt.Errorf("migrate force: version %d is not one of this binary's migrations (0, none applied, to %d)", version, mg.latest)
	}
	if version == 0 {
		version = database.NilVersion
	}
	if err := mg.m.Force(version); err != nil {
		return fmt.Errorf("migrate force: %w", withCause(err))
	}
	return nil
}

// Down reverts the most recent migration.
func (mg *Migrator) Down() error {
	if v, dirty, err := mg.Version(); err == nil {
		switch {
		case dirty:
			return fmt.Errorf("migrate down: %w", mg.dirtyError(int(v)))
		case v == 0:
			return errors.New("migrate down: no migration is applied")
		case v > mg.latest:
			return fmt.Errorf("migrate down: %w", mg.newerError(v))
		}
	}
	if err := mg.m.Steps(-1); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate down: %w", withCause(err))
	}
	return nil
}

// Version reports the applied version and whether a failed migration left the schema dirty.
// A database with no migrations applied reports version 0, dirty when an older binary's
// revert of migration 1 was interrupted (golang-migrate reports no version then, without the
// mark).
func (mg *Migrator) Version() (version uint, dirty bool, err error) {
	version, dirty, err = mg.m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		_, dirty, err = mg.drv.Version()
		return 0, dirty, withCause(err)
	}
	return version, dirty, withCause(err)
}

// withCause puts the driver's error that golang-migrate's database.Error holds, without
// unwrapping it, in reach of errors.Is and errors.As: serve tells a lost connection, which it
// retries, from a failed migration by it. (Found by review: a restart of PostgreSQL during the
// start-up migrations ended serve.)
func withCause(err error) error {
	var dbErr *database.Error
	if errors.As(err, &dbErr) && dbErr.OrigErr != nil {
		return causeError{err, dbErr.OrigErr}
	}
	return err
}

type causeError struct{ err, cause error }

func (e causeError) Error() string   { return e.err.Error() }
func (e causeError) Unwrap() []error { return []error{e.err, e.cause} }

// Close releases the migrator's connection, and with it the lock.
func (mg *Migrator) Close() error {
	srcErr, dbErr := mg.m.Close()
	return errors.Join(srcErr, dbErr, mg.pool.Close())
}

// Migrate applies every pending migration to the database at dsn, as Up does.
func Migrate(ctx context.Context, dsn string) error {
	mg, err := NewMigrator(ctx, dsn)
	if err != nil {
		return err
	}
	defer mg.Close()
	return mg.Up(ctx)
}

// CheckCurrent checks the schema of the database at dsn, as Migrator.CheckCurrent does.
func CheckCurrent(ctx context.Context, dsn string) error {
	mg, err := NewMigrator(ctx, dsn)
	if err != nil {
		return err
	}
	defer mg.Close()
	return mg.CheckCurrent()
}
