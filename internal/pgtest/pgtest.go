// Package pgtest gives tests fresh, fully migrated PostgreSQL databases.
//
// Each call to [DSN] or [DB] creates a new database, cloned from a template database that holds
// the schema of package db, and drops it when the test ends. Tests can therefore run in parallel
// and never see each other's rows.
//
// The server is the one named by the TEST_DATABASE_URL environment variable when it is set: a
// postgres:// DSN whose user may CREATE DATABASE (`make test` starts a cluster and sets it).
// Otherwise the first call starts a throwaway cluster with scripts/localpg.sh, once per test
// process. A test package that uses pgtest must run its tests through [Main], which stops that
// cluster and deletes it when the tests are done:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// The cluster also goes away if the test process dies without reaching the end of Main.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/guestmsg/messaging/db"
)

// serverEnv names the environment variable with the DSN of the server to create databases on.
const serverEnv = "TEST_DATABASE_URL"

// opTimeout bounds each step that talks to PostgreSQL or runs the script.
const opTimeout = 2 * time.Minute

// suite is the state of this test process, set up once by the first DSN call.
var suite struct {
	once   sync.Once
	inMain bool // Main is running the tests

	server   *url.URL // DSN of the server's maintenance database
	admin    *sql.DB  // connected to server, for CREATE and DROP DATABASE
	template string   // name of the migrated template database
	err      error    // why setup failed

	// A cluster started by pgtest is deleted by a `localpg.sh reap` process once its stdin,
	// reapPipe, is closed: by teardown, or by the kernel when this process dies.
	reaper   *exec.Cmd
	reapPipe *os.File
}

// Main runs the tests of m, stops and deletes the cluster pgtest started for them (if any), and
// exits with the tests' status. Call it from TestMain in every test package that uses pgtest.
func Main(m *testing.M) {
	suite.inMain = true
	code := m.Run()
	if err := teardown(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// DSN returns the postgres:// DSN of a new, fully migrated and otherwise empty database for t,
// which is dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	suite.once.Do(setup)
	if suite.err != nil {
		t.Fatalf("pgtest: %v", suite.err)
	}
	name, err := createDatabase()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if _, err := suite.admin.ExecContext(ctx, "DROP DATABASE "+pq.QuoteIdentifier(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return dsnFor(suite.server, name)
}

// DB returns a connection pool (driver "postgres") to a new database made by [DSN]. It is
// closed, and the database dropped, when t ends.
func DB(t testing.TB) *sqlx.DB {
	t.Helper()
	dsn := DSN(t)
	conn, err := sqlx.Connect("postgres", dsn)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", dsn, err)
	}
	t.Cleanup(func() {
		if err := conn.Close(); err != nil {
			t.Errorf("pgtest: close %s: %v", dsn, err)
		}
	})
	return conn
}

// RefusingDSN returns the DSN of a new, migrated database for t (see [DSN]) as a role whose
// every connection PostgreSQL refuses with SQLSTATE 53300, as it refuses all of them at
// max_connections (its CONNECTION LIMIT is 0). The role is dropped when t ends.
func RefusingDSN(t testing.TB) string {
	t.Helper()
	dsn := DSN(t)
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	role := "refused_" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := suite.admin.ExecContext(ctx, "CREATE ROLE "+role+" LOGIN CONNECTION LIMIT 0"); err != nil {
		t.Fatalf("pgtest: create role %s: %v", role, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if _, err := suite.admin.ExecContext(ctx, "DROP ROLE "+role); err != nil {
			t.Errorf("pgtest: drop role %s: %v", role, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	return u.String()
}

// StartCluster initialises a PostgreSQL cluster in dir unless it holds one already, starts it on
// 127.0.0.1:port unless it is running, and returns the DSN of its postgres database. Unlike the
// cluster behind DSN it keeps every committed transaction when the server is stopped or killed,
// so it suits tests of outages and crashes. Stop it with [StopCluster]; dir is the caller's to
// delete.
//
// Run as root, the server runs as user postgres, which must be able to reach dir: a directory
// from os.MkdirTemp("", ...) will do, but not one inside t.TempDir(), whose mode is 0700.
func StartCluster(dir string, port int) (dsn string, err error) {
	return startCluster(dir, port, false)
}

// StopCluster stops the cluster in dir (fast shutdown). A cluster that is not running, or a dir
// that holds none, is not an error.
func StopCluster(dir string) error {
	_, err := localpg(false, "stop", dir)
	return err
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// setup finds or starts the server and makes sure the template database exists.
func setup() {
	suite.err = func() error {
		dsn := os.Getenv(serverEnv)
		if dsn == "" {
			if !suite.inMain {
				return fmt.Errorf("%s is not set, and starting a cluster needs TestMain to call pgtest.Main", serverEnv)
			}
			var err error
			if dsn, err = startThrowawayCluster(); err != nil {
				return err
			}
		}
		server, err := url.Parse(dsn)
		if err != nil || (server.Scheme != "postgres" && server.Scheme != "postgresql") {
			return fmt.Errorf("%s must be a postgres:// URL, got %q", serverEnv, dsn)
		}
		suite.server = server
		if suite.admin, err = sql.Open("postgres", dsn); err != nil {
			return fmt.Errorf("open %s: %w", dsn, err)
		}
		suite.template, err = ensureTemplate()
		return err
	}()
}

// teardown closes the admin pool and deletes the cluster pgtest started, if any.
func teardown() error {
	suite.once.Do(func() {}) // waits for a running setup, or keeps one from starting
	var errs []error
	if suite.admin != nil {
		errs = append(errs, suite.admin.Close())
	}
	if suite.reaper != nil {
		errs = append(errs, suite.reapPipe.Close())
		if err := suite.reaper.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("stop and delete the test cluster: %w", err))
		}
	}
	return errors.Join(errs...)
}

// startThrowawayCluster starts a crash-unsafe cluster in a new temporary directory, and a
// reaper that stops and deletes it when this process ends or teardown says so.
func startThrowawayCluster() (string, error) {
	script, err := scriptPath()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return "", fmt.Errorf("make a directory for the test cluster: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("make the reaper's pipe: %w", err)
	}
	reaper := exec.Command("bash", script, "reap", dir)
	reaper.Stdin = r
	// Its own session, so that a ^C meant for the tests leaves it to clean up after them.
	reaper.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := reaper.Start(); err != nil {
		r.Close()
		w.Close()
		os.RemoveAll(dir)
		return "", fmt.Errorf("start the test cluster's reaper: %w", err)
	}
	r.Close()
	suite.reaper, suite.reapPipe = reaper, w

	port, err := FreePort()
	if err != nil {
		return "", err
	}
	return startCluster(dir, port, true)
}

// startCluster runs `localpg.sh start dir port`, with LOCALPG_FAST=1 when fast.
func startCluster(dir string, port int, fast bool) (string, error) {
	return localpg(fast, "start", dir, strconv.Itoa(port))
}

// localpg runs scripts/localpg.sh with args and returns its standard output, trimmed. Its
// standard error is part of the error when it fails.
func localpg(fast bool, args ...string) (string, error) {
	script, err := scriptPath()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "LOCALPG_FAST=")
	})
	if fast {
		cmd.Env = append(cmd.Env, "LOCALPG_FAST=1")
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second // in case a server it started kept its output open
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("localpg.sh %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return strings.TrimSpace(stdout.String()), nil
}

// ensureTemplate creates and migrates the template database unless it exists, under an advisory
// lock so that test processes sharing a server build it once. It is built under a temporary
// name and renamed when complete, so an interrupted build is never used.
func ensureTemplate() (string, error) {
	sum, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := "pgtest_tpl_" + hex.EncodeToString(sum[:8])
	lockKey := int64(binary.BigEndian.Uint64(sum[:8]))

	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn, err := suite.admin.Conn(ctx) // a session-level lock needs one connection throughout
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", suite.server.Redacted(), err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return "", fmt.Errorf("lock the template database: %w", err)
	}
	defer conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", lockKey)

	var exists bool
	err = conn.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		return "", fmt.Errorf("look for the template database: %w", err)
	}
	if exists {
		return name, nil
	}

	building := name + "_building"
	for _, stmt := range []string{
		"DROP DATABASE IF EXISTS " + pq.QuoteIdentifier(building) + " WITH (FORCE)",
		"CREATE DATABASE " + pq.QuoteIdentifier(building),
	} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return "", fmt.Errorf("prepare the template database: %s: %w", stmt, err)
		}
	}
	if err := db.Migrate(ctx, dsnFor(suite.server, building)); err != nil {
		return "", fmt.Errorf("migrate the template database: %w", err)
	}
	for _, stmt := range []string{
		"ALTER DATABASE " + pq.QuoteIdentifier(building) + " RENAME TO " + pq.QuoteIdentifier(name),
		// Nobody needs to connect to it, and a connection would block copying it.
		"ALTER DATABASE " + pq.QuoteIdentifier(name) + " WITH ALLOW_CONNECTIONS false",
	} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return "", fmt.Errorf("finish the template database: %s: %w", stmt, err)
		}
	}
	return name, nil
}

// createDatabase copies the template to a new database with a unique name and returns the name.
func createDatabase() (string, error) {
	var suffix [8]byte
	if _, err := io.ReadFull(rand.Reader, suffix[:]); err != nil {
		return "", fmt.Errorf("name a database: %w", err)
	}
	name := "pgtest_" + hex.EncodeToString(suffix[:])
	stmt := "CREATE DATABASE " + pq.QuoteIdentifier(name) + " TEMPLATE " + pq.QuoteIdentifier(suite.template)

	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		_, err := suite.admin.ExecContext(ctx, stmt)
		if err == nil {
			return name, nil
		}
		// "source database is being accessed by other users": wait for them to leave.
		var pqErr *pq.Error
		if !errors.As(err, &pqErr) || pqErr.SQLState() != "55006" {
			return "", fmt.Errorf("create database %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("create database %s: %w", name, err)
		case <-time.After(wait):
		}
	}
}

// dsnFor returns server's DSN with the database replaced by name.
func dsnFor(server *url.URL, name string) string {
	u := *server
	u.Path, u.RawPath = "/"+name, ""
	return u.String()
}

// migrationsHash hashes the names and contents of db/migrations, the files package db embeds.
func migrationsHash() ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	root, err := moduleRoot()
	if err != nil {
		return sum, err
	}
	dir := filepath.Join(root, "db", "migrations")
	entries, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return sum, fmt.Errorf("read the migrations: %w", err)
	}
	h := sha256.New()
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		content, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return sum, fmt.Errorf("read the migrations: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", e.Name(), len(content))
		h.Write(content)
	}
	h.Sum(sum[:0])
	return sum, nil
}

// scriptPath returns the path of scripts/localpg.sh in this module.
func scriptPath() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "scripts", "localpg.sh"), nil
}

// moduleRoot returns the nearest directory at or above the working directory that holds go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find the module root: no go.mod at or above the working directory")
		}
		dir = parent
	}
}
