// Package db owns the schema: the SQL migrations embedded in the binary and the code that applies them.
package db

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	// The postgres driver registers the "postgres" database scheme for migrate.New.
	_ "github.com/golang-migrate/migrate/v4/database/postgres"
	"github.com/golang-migrate/migrate/v4/source/iofs"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrator applies the embedded migrations. It opens its own connection from the DSN it is given,
// because closing a migrator closes the database handle it was built on.
type Migrator struct {
	m      *migrate.Migrate
	latest uint // the newest embedded migration's version
}

// NewMigrator connects to dsn for migrating. Close it when done.
func NewMigrator(dsn string) (*Migrator, error) {
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
	m, err := migrate.NewWithSourceInstance("iofs", src, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect for migrations: %w", err)
	}
	return &Migrator{m: m, latest: latest}, nil
}

// Up applies every pending migration. Having nothing to apply is success. When ctx ends, it
// stops after the migration it is applying (a migration is never cut in the middle: each is one
// transaction, and an interrupted one leaves the version dirty) and returns ctx's error.
func (mg *Migrator) Up(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { mg.m.GracefulStop <- true })
	defer stop()
	if err := mg.m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		var dirty migrate.ErrDirty
		if errors.As(err, &dirty) {
			return fmt.Errorf("migrate up: %w", mg.dirtyError(dirty.Version))
		}
		return fmt.Errorf("migrate up: %w", err)
	}
	return ctx.Err()
}

func (mg *Migrator) dirtyError(version int) error {
	if version > int(mg.latest) {
		return fmt.Errorf("version %d is dirty, and newer than this binary's %d: a newer binary's migration was "+
			"interrupted or failed; repair it with that binary (`messaging migrate force`), then start it", version, mg.latest)
	}
	return fmt.Errorf("version %d is dirty: its migration was interrupted or failed. "+
		"Each migration is one transaction, so it took effect in full or not at all: once you know which, "+
		"run `messaging migrate force %d` (it did) or `messaging migrate force %d` (it did not), then start again",
		version, version, version-1)
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
		return fmt.Errorf("schema %w", mg.dirtyError(int(v)))
	case v < mg.latest:
		return fmt.Errorf("the schema is at version %d and this binary needs %d: run `messaging migrate up` first", v, mg.latest)
	case v > mg.latest:
		return fmt.Errorf("the schema is at version %d, newer than this binary's %d: run the binary that migrated it", v, mg.latest)
	}
	return nil
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
		return fmt.Errorf("migrate force: %w", err)
	}
	return nil
}

// Down reverts the most recent migration.
func (mg *Migrator) Down() error {
	if v, dirty, err := mg.Version(); err == nil && v == 0 && !dirty {
		return errors.New("migrate down: no migration is applied")
	}
	if err := mg.m.Steps(-1); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate down: %w", err)
	}
	return nil
}

// Version reports the applied version and whether a failed migration left the schema dirty.
// A database with no migrations applied reports version 0.
func (mg *Migrator) Version() (version uint, dirty bool, err error) {
	version, dirty, err = mg.m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return 0, false, nil
	}
	return version, dirty, err
}

// Close releases the migrator's connection.
func (mg *Migrator) Close() error {
	srcErr, dbErr := mg.m.Close()
	return errors.Join(srcErr, dbErr)
}

// Migrate applies every pending migration to the database at dsn, as Up does.
func Migrate(ctx context.Context, dsn string) error {
	mg, err := NewMigrator(dsn)
	if err != nil {
		return err
	}
	defer mg.Close()
	return mg.Up(ctx)
}

// CheckCurrent checks the schema of the database at dsn, as Migrator.CheckCurrent does.
func CheckCurrent(dsn string) error {
	mg, err := NewMigrator(dsn)
	if err != nil {
		return err
	}
	defer mg.Close()
	return mg.CheckCurrent()
}
