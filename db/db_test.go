package db_test

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/guestmsg/messaging/db"
	"github.com/guestmsg/messaging/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestMigrationsGoDownAndUpAgain reverts every migration of a database holding data, one at a
// time, and applies them all again: each down migration must undo its up migration, and the up
// migrations must fill what they add from the data already there.
func TestMigrationsGoDownAndUpAgain(t *testing.T) {
	dsn := pgtest.DSN(t)
	conn := sqlx.MustConnect("postgres", dsn)
	defer conn.Close()
	conn.MustExec(`
		INSERT INTO partners (affiliate_id, kind, name, created_at) VALUES (1, 'property', 'PMS', now()), (2, 'guest', 'App', now());
		INSERT INTO accommodations (id, partner_id, name, created_at, updated_at) VALUES (7, 1, 'Sea View Rooms', now(), now()),
			(8, 1, NULL, now(), now());
		INSERT INTO conversations (id, reservation_id, accommodation_id, property_partner_id, property_name, checkin, checkout,
			status, stay_end, guest_participant_id, property_participant_id, created_at, updated_at)
		VALUES (gen_random_uuid(), 'R7', 7, 1, 'Sea View Rooms', '2026-07-01', '2026-07-05', 'confirmed', '2026-07-06',
			gen_random_uuid(), gen_random_uuid(), now(), now()),
		       (gen_random_uuid(), 'R8', 8, 1, NULL, '2026-07-01', '2026-07-05', 'confirmed', '2026-07-06',
			gen_random_uuid(), gen_random_uuid(), now(), now());
		INSERT INTO messages (id, conversation_id, sender, content, created_at)
		SELECT gen_random_uuid(), id, sender, 'hello', at
		FROM conversations, (VALUES ('guest', timestamptz '2026-07-02 10:00Z'), ('guest', '2026-07-03 09:00Z'),
			('property', '2026-07-04 08:00Z')) AS v (sender, at)
		WHERE reservation_id = 'R7';
		INSERT INTO deliveries (partner_id, seq, message_id, conversation_id)
		SELECT 1, seq, id, conversation_id FROM messages
		UNION ALL SELECT 1, 1000, gen_random_uuid(), gen_random_uuid(); -- an entry whose message is gone
		-- R7's guest partner had its entries parked; partner 3 left R7 with one unconfirmed.
		UPDATE conversations SET guest_partner_id = 2 WHERE reservation_id = 'R7';
		INSERT INTO departed_queues (conversation_id, partner_id, through_seq, pending)
		SELECT conversation_id, 2, 9223372036854775807, array_agg(seq) FROM messages GROUP BY conversation_id
		UNION ALL SELECT conversation_id, 3, max(seq), array_agg(seq) FROM messages GROUP BY conversation_id`)

	mg, err := db.NewMigrator(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	latest, _, err := mg.Version()
	if err != nil {
		t.Fatal(err)
	}
	// Down to migration 2, which the conversations survive, then all the way down.
	for v := latest; v > 2; v-- {
		if err := mg.Down(); err != nil {
			t.Fatalf("down from %d: %v", v, err)
		}
		if v == 7 { // migration 7 gives parked entries back to the queue; departures go
			var parked, departed int
			if err := conn.Get(&parked, `SELECT count(*) FROM deliveries WHERE partner_id = 2`); err != nil {
				t.Fatal(err)
			}
			if err := conn.Get(&departed, `SELECT count(*) FROM deliveries WHERE partner_id = 3`); err != nil {
				t.Fatal(err)
			}
			if parked != 3 || departed != 0 {
				t.Errorf("after migration 7 down, the guest partner has %d queue entries, the departed partner %d; want 3 and 0", parked, departed)
			}
		}
		if v == 5 { // migration 5 takes when the guest last wrote from the guest's messages
			var last []sql.NullTime
			if err := conn.Select(&last, `SELECT last_guest_message_at FROM conversations ORDER BY reservation_id`); err != nil {
				t.Fatal(err)
			}
			if len(last) != 2 || !last[0].Time.Equal(time.Date(2026, 7, 3, 9, 0, 0, 0, time.UTC)) || last[1].Valid {
				t.Errorf("last_guest_message_at after migration 5 down: %v, want the newest guest message of R7 and none for R8", last)
			}
		}
	}
	if err := mg.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		Reservation string  `db:"reservation_id"`
		Partner     int64   `db:"property_partner_id"`
		Name        *string `db:"property_name"`
	}
	if err := conn.Select(&rows, `SELECT reservation_id, property_partner_id, property_name FROM conversations ORDER BY reservation_id`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Partner != 1 || rows[0].Name == nil || *rows[0].Name != "Sea View Rooms" ||
		rows[1].Partner != 1 || rows[1].Name != nil {
		t.Errorf("conversations after down to 2 and up again: %+v", rows)
	}
	// Migration 6 names each queue entry's message and conversation, and drops the entry whose
	// message is gone.
	var queued, named int
	if err := conn.Get(&queued, `SELECT count(*) FROM deliveries WHERE partner_id = 1`); err != nil {
		t.Fatal(err)
	}
	if err := conn.Get(&named, `SELECT count(*) FROM deliveries d JOIN messages m
		ON m.seq = d.seq AND m.id = d.message_id AND m.conversation_id = d.conversation_id WHERE d.partner_id = 1`); err != nil {
		t.Fatal(err)
	}
	if queued != 3 || named != 3 {
		t.Errorf("queue after down to 2 and up again: %d entries, %d naming their message; want the 3 of R7's messages", queued, named)
	}
	for v := latest; v > 0; v-- {
		if err := mg.Down(); err != nil {
			t.Fatalf("down from %d: %v", v, err)
		}
	}
	var tables int
	if err := conn.Get(&tables, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations'`); err != nil || tables != 0 {
		t.Errorf("tables left after every down migration: %d, %v", tables, err)
	}
	if err := mg.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, dirty, err := mg.Version(); err != nil || dirty || v != latest {
		t.Errorf("version after up again = %d (dirty %t), %v; want %d", v, dirty, err, latest)
	}
}

// privateColumns hold what guests, properties and partners wrote; migration 8 keeps them out of
// PostgreSQL's statistics, where samples of deleted rows would outlive the purge.
var privateColumns = []string{
	"messages.content", "conversations.reservation_id", "conversations.guest_name",
	"attachments.file_name", "attachments.content", "idempotency_keys.key",
}

// sampledPrivateColumns returns the private columns that pg_statistic holds samples of.
func sampledPrivateColumns(t *testing.T, conn *sqlx.DB) []string {
	t.Helper()
	var sampled []string
	if err := conn.Select(&sampled, `SELECT tablename || '.' || attname FROM pg_stats
		WHERE schemaname = current_schema() AND tablename || '.' || attname = ANY($1) ORDER BY 1`,
		pq.Array(privateColumns)); err != nil {
		t.Fatal(err)
	}
	return sampled
}

// TestPrivateColumnsAreNeverSampled: ANALYZE (autovacuum runs it as tables change) keeps samples
// of a column's values in pg_statistic until the next ANALYZE of the table, so text the purge
// deleted could be read there long after. Migration 8 drops the samples already gathered of
// the columns that hold what people wrote, and no ANALYZE gathers any again.
func TestPrivateColumnsAreNeverSampled(t *testing.T) {
	dsn := pgtest.DSN(t)
	conn := sqlx.MustConnect("postgres", dsn)
	defer conn.Close()
	mg, err := db.NewMigrator(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	downTo(t, mg, 7)
	conn.MustExec(`
		INSERT INTO partners (affiliate_id, kind, name, created_at) VALUES (1, 'property', 'PMS', now()), (2, 'guest', 'App', now());
		INSERT INTO accommodations (id, partner_id, name, created_at, updated_at) VALUES (7, 1, 'Sea View Rooms', now(), now());
		INSERT INTO conversations (id, reservation_id, accommodation_id, property_partner_id, guest_name, checkin, checkout,
			status, stay_end, guest_participant_id, property_participant_id, created_at, updated_at)
		SELECT gen_random_uuid(), 'R' || i, 7, 1, 'Guest ' || i, '2026-07-01', '2026-07-05', 'confirmed', '2026-07-06',
			gen_random_uuid(), gen_random_uuid(), now(), now()
		FROM generate_series(1, 50) i;
		INSERT INTO messages (id, conversation_id, sender, content, created_at)
		SELECT gen_random_uuid(), id, 'guest', 'a private note ' || reservation_id, now() FROM conversations;
		INSERT INTO idempotency_keys (partner_id, key, request_hash, message_id, conversation_id, created_at)
		SELECT 2, 'key ' || m.id, '\x00', m.id, m.conversation_id, now() FROM messages m;
		INSERT INTO attachments (id, conversation_id, uploader_id, file_name, file_type, file_size, sha256, content, created_at)
		SELECT gen_random_uuid(), id, 2, 'passport ' || reservation_id || '.png', 'image/png', 4, sha256(reservation_id::bytea),
			convert_to(right(reservation_id || 'xxxx', 4), 'UTF8'), now()
		FROM conversations;
		ANALYZE`)
	if sampled := sampledPrivateColumns(t, conn); len(sampled) != len(privateColumns) {
		t.Fatalf("before migration 8, ANALYZE sampled %v; want every private column (the test's premise)", sampled)
	}
	if err := mg.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sampled := sampledPrivateColumns(t, conn); len(sampled) != 0 {
		t.Errorf("after migration 8, pg_statistic still holds samples of %v", sampled)
	}
	conn.MustExec(`ANALYZE`)
	if sampled := sampledPrivateColumns(t, conn); len(sampled) != 0 {
		t.Errorf("after migration 8, ANALYZE sampled %v", sampled)
	}
	var others int
	if err := conn.Get(&others, `SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'messages'`); err != nil || others == 0 {
		t.Errorf("after migration 8, ANALYZE gathered %d statistics of the messages' other columns (%v), want them kept", others, err)
	}
}

// One migrator at a time works on a database, and the others wait for it however long its
// migrations take, or until their context ends. (Found by review: a second process gave up
// after golang-migrate's 15 s lock timeout, and serve exited 1, while the first applied a
// longer migration; and a signal could not end the wait.)
func TestOneMigratorAtATime(t *testing.T) {
	dsn := pgtest.DSN(t)
	first, err := db.NewMigrator(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	type opened struct {
		mg  *db.Migrator
		err error
	}
	open := func(ctx context.Context) chan opened {
		ch := make(chan opened, 1)
		go func() {
			mg, err := db.NewMigrator(ctx, dsn)
			ch <- opened{mg, err}
		}()
		return ch
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancelled, waiting := open(ctx), open(context.Background())
	time.Sleep(300 * time.Millisecond)
	select {
	case o := <-cancelled:
		t.Fatalf("NewMigrator while another works = %v; want it to wait", o.err)
	case o := <-waiting:
		t.Fatalf("NewMigrator while another works = %v; want it to wait", o.err)
	default:
	}

	cancel() // a signal: the wait ends with ctx's error, which serve reads as a clean stop
	select {
	case o := <-cancelled:
		if o.err != context.Canceled {
			t.Errorf("NewMigrator when its context ends = %v, want context.Canceled", o.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("NewMigrator still waiting 5 s after its context ended")
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-waiting:
		if o.err != nil {
			t.Fatalf("NewMigrator after the other closed = %v", o.err)
		}
		defer o.mg.Close()
		if err := o.mg.Up(context.Background()); err != nil {
			t.Errorf("Up after the other's migrations = %v, want nothing to apply", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("NewMigrator still waiting 5 s after the other closed")
	}
}

// A migration and the version it leads to are recorded in one transaction: a migration that
// fails part-way leaves nothing of itself and the version before it, clean, and the next Up
// applies it once the cause is gone. (golang-migrate alone records the version as dirty before
// it runs the file and clean after, in transactions of their own, so a failure, a kill or a
// lost session in between left a dirty version that only an operator's `migrate force` undid,
// and they had to find out first whether the migration had committed.)
func TestAMigrationCommitsWithItsVersion(t *testing.T) {
	dsn := pgtest.DSN(t)
	mg, err := db.NewMigrator(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	latest, _, err := mg.Version()
	if err != nil {
		t.Fatal(err)
	}
	downTo(t, mg, 1)
	conn := sqlx.MustConnect("postgres", dsn)
	defer conn.Close()
	// Migration 2 creates the attachments table, then two indexes; the second's name is taken.
	conn.MustExec(`CREATE TABLE blocker (x int); CREATE INDEX attachments_orphans_idx ON blocker (x)`)

	if err := mg.Up(context.Background()); err == nil || !strings.Contains(err.Error(), `"attachments_orphans_idx" already exists`) {
		t.Fatalf("Up with migration 2's index name taken = %v, want the failure named", err)
	}
	if v, dirty, err := mg.Version(); v != 1 || dirty || err != nil {
		t.Errorf("version after migration 2 failed = %d (dirty %t, %v), want 1, clean", v, dirty, err)
	}
	var tables int
	if err := conn.Get(&tables, `SELECT count(*) FROM pg_tables WHERE tablename = 'attachments'`); err != nil || tables != 0 {
		t.Errorf("after migration 2 failed, %d attachments tables (%v), want its first statement undone", tables, err)
	}

	conn.MustExec(`DROP TABLE blocker`)
	if err := mg.Up(context.Background()); err != nil {
		t.Fatalf("Up once the name is free = %v", err)
	}
	if v, dirty, err := mg.Version(); v != latest || dirty || err != nil {
		t.Errorf("version = %d (dirty %t, %v), want %d, clean", v, dirty, err, latest)
	}
}

// The migrator runs each file in the transaction that records its version: a file must not end
// that transaction itself (COMMIT, ROLLBACK) or run what cannot run in one (CONCURRENTLY,
// VACUUM), which would record the version apart from the migration again.
func TestMigrationFilesLeaveTheTransactionToTheMigrator(t *testing.T) {
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("migration files: %v, %v", files, err)
	}
	control := regexp.MustCompile(`(?im)^\s*(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE|PREPARE\s+TRANSACTION|VACUUM)\b|\bCONCURRENTLY\b`)
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(body), "\n") {
			if code, _, _ := strings.Cut(line, "--"); control.MatchString(code) {
				t.Errorf("%s: %q: the migrator's transaction holds the migration and its version", file, strings.TrimSpace(line))
			}
		}
	}
}

// Migration 2 stores attachment bytes out of line without trying to compress them (SET STORAGE
// EXTERNAL: "Images and PDFs are compressed already"). Migration 8's "ALTER COLUMN content TYPE
// bytea", written only to drop the column's statistics, also resets the column's storage to
// the type's default, EXTENDED, so that on every schema migrated to the end PostgreSQL tries
// pglz on every upload and decompresses what it managed to compress on every download.
// (Found by review.)
func TestAttachmentBytesKeepExternalStorage(t *testing.T) {
	conn := sqlx.MustConnect("postgres", pgtest.DSN(t))
	defer conn.Close()
	var storage string
	if err := conn.Get(&storage, `SELECT attstorage FROM pg_attribute
		WHERE attrelid = 'attachments'::regclass AND attname = 'content'`); err != nil {
		t.Fatal(err)
	}
	if storage != "e" {
		t.Errorf("attachments.content storage = %q after every migration, want \"e\" (EXTERNAL, migration 2)", storage)
	}

	// What it changes: a file whose bytes pglz can shrink (an uncompressed BMP, a PDF's text
	// streams) is stored compressed, not as it is.
	conn.MustExec(`
		INSERT INTO partners (affiliate_id, kind, name, created_at) VALUES (1, 'property', 'PMS', now());
		INSERT INTO accommodations (id, partner_id, name, created_at, updated_at) VALUES (7, 1, NULL, now(), now());
		INSERT INTO conversations (id, reservation_id, accommodation_id, property_partner_id, checkin, checkout,
			status, stay_end, guest_participant_id, property_participant_id, created_at, updated_at)
		VALUES (gen_random_uuid(), 'R1', 7, 1, '2026-07-01', '2026-07-05', 'confirmed', '2026-07-06',
			gen_random_uuid(), gen_random_uuid(), now(), now());
		INSERT INTO attachments (id, conversation_id, uploader_id, file_name, file_type, file_size, sha256, content, created_at)
		SELECT gen_random_uuid(), id, 1, 'plan.bmp', 'image/bmp', 1048576, sha256(b), b, now()
		FROM conversations, decode(repeat('424d00112233445566778899aabbccdd', 65536), 'hex') AS b`)
	var stored, size int
	if err := conn.QueryRow(`SELECT pg_column_size(content), file_size FROM attachments`).Scan(&stored, &size); err != nil {
		t.Fatal(err)
	}
	if stored != size {
		t.Errorf("a %d-byte attachment takes %d bytes as stored, want it stored as it is (uncompressed)", size, stored)
	}
}

// The service stores text as UTF-8: in a database of another encoding, PostgreSQL refuses
// every character that encoding lacks (SQLSTATE 22P05), and SQL_ASCII checks nothing, so such a
// database is refused by every command, saying so, before anything is migrated. (Found by
// review: sends of such characters answered 500.)
func TestADatabaseNotInUTF8IsRefused(t *testing.T) {
	dsn := pgtest.DSN(t)
	conn := sqlx.MustConnect("postgres", dsn)
	defer conn.Close()
	for _, encoding := range []string{"LATIN1", "SQL_ASCII"} {
		name := "latin_" + strings.ToLower(encoding)
		conn.MustExec(`CREATE DATABASE ` + name + ` ENCODING '` + encoding + `' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`)
		t.Cleanup(func() { conn.Exec(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`) })
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + name
		mg, err := db.NewMigrator(context.Background(), u.String())
		if err == nil {
			mg.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "encoding is "+encoding) || !strings.Contains(err.Error(), "UTF8") {
			t.Errorf("NewMigrator on a %s database = %v, want it refused, naming the encoding", encoding, err)
		}
		var tables int
		other := sqlx.MustConnect("postgres", u.String())
		other.Get(&tables, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`)
		other.Close()
		if tables != 0 {
			t.Errorf("%d tables created in the %s database, want none", tables, encoding)
		}
	}
}

// A migration's locks on the service's tables are "brief" (README, "Commands": migration 9
// "takes the same brief lock on attachments"): held for the migration's own statements. The
// migrator records the version with TRUNCATE of schema_migrations at the end of the
// migration's transaction, and TRUNCATE waits for every transaction that has read the version
// table (a psql session, a monitoring query, another tool checking the schema version, left
// open): while it waits, the migration keeps its ACCESS EXCLUSIVE lock on attachments, and
// every request that reads attachments waits behind it. golang-migrate's own order (the dirty
// mark's TRUNCATE first, in a transaction of its own) waited before taking any lock of the
// service's tables. (Found by review.)
func TestMigrationDoesNotHoldItsLocksWaitingForTheVersionTable(t *testing.T) {
	dsn := pgtest.DSN(t)
	mg, err := db.NewMigrator(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	if err := mg.Down(); err != nil { // to migration 8: migration 9 is to apply
		t.Fatal(err)
	}

	conn := sqlx.MustConnect("postgres", dsn)
	defer conn.Close()
	conn.SetMaxOpenConns(4)
	// Someone has read the schema version and keeps the transaction open.
	reader, err := conn.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Rollback()
	var v int
	if err := reader.Get(&v, `SELECT version FROM schema_migrations`); err != nil {
		t.Fatal(err)
	}

	upDone := make(chan error, 1)
	go func() { upDone <- mg.Up(context.Background()) }()
	defer func() {
		reader.Rollback()
		if err := <-upDone; err != nil {
			t.Errorf("Up = %v", err)
		}
	}()

	// Wait until the migrator waits for a lock (its body done, or its version's TRUNCATE).
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := conn.Get(&waiting, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		select {
		case err := <-upDone:
			upDone <- err
			t.Logf("Up finished without waiting: %v", err)
			return
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the migrator never waited")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A request reading attachments, as a download does.
	ctx := context.Background()
	req, err := conn.Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	if _, err := req.ExecContext(ctx, `SET lock_timeout = '1s'`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := req.GetContext(ctx, &n, `SELECT count(*) FROM attachments`); err != nil {
		var holder string
		conn.Get(&holder, `SELECT coalesce(string_agg(query, ' | '), '') FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`)
		t.Errorf("reading attachments while migration 9 waits to record its version = %v; want the read served "+
			"(the migration holds its lock on attachments while it waits for: %s)", err, holder)
	}
	if _, err := req.ExecContext(ctx, `RESET lock_timeout`); err != nil {
		t.Fatal(err)
	}
}

// A migration takes what it takes, whatever statement_timeout or lock_timeout the role, the
// database or DATABASE_URL sets for the requests: cut off, it would be retried by serve for
// ever, holding its locks for the timeout each time. (Found by review.)
func TestMigrationsOutlastTheConfiguredTimeouts(t *testing.T) {
	dsn := pgtest.DSN(t)
	conn := sqlx.MustConnect("postgres", dsn)
	defer conn.Close()
	mg, err := db.NewMigrator(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	downTo(t, mg, 5)
	mg.Close()
	held, err := conn.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	held.MustExec(`LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE`) // migration 6 waits for it
	time.AfterFunc(time.Second, func() { held.Rollback() })

	timed := dsn + "&options=" + url.QueryEscape("-c statement_timeout=200ms -c lock_timeout=200ms")
	mg, err = db.NewMigrator(context.Background(), timed)
	if err != nil {
		t.Fatal(err)
	}
	defer mg.Close()
	if err := mg.Up(context.Background()); err != nil {
		t.Errorf("Up with statement_timeout and lock_timeout of 200 ms, migration 6 waiting 1 s for a lock = %v, want it applied", err)
	}
}

// downTo reverts mg's migrations until version is the applied one.
func downTo(t *testing.T, mg *db.Migrator, version uint) {
	t.Helper()
	for {
		v, _, err := mg.Version()
		if err != nil {
			t.Fatal(err)
		}
		if v <= version {
			return
		}
		if err := mg.Down(); err != nil {
			t.Fatalf("down from %d: %v", v, err)
		}
	}
}
