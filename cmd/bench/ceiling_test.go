package main

import (
	"context"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/guestmsg/messaging/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// pgbenchVar is a pgbench variable in a script (":p"), with the character before it, which is
// not a colon (a cast, "::uuid", is no variable).
var pgbenchVar = regexp.MustCompile(`[^:]:[a-z]+`)

func TestPgbenchBind(t *testing.T) {
	got := pgbenchBind("WHERE a = $1 AND (b = $2 OR c = $1) LIMIT 100", ":p", "(SELECT 2)")
	if want := "WHERE a = :p AND (b = (SELECT 2) OR c = :p) LIMIT 100"; got != want {
		t.Errorf("pgbenchBind = %q, want %q", got, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("pgbenchBind with a parameter left unbound did not panic")
		}
	}()
	pgbenchBind("WHERE a = $1 AND b = $2", ":p")
}

// ceilingBench seeds a database of the real schema with messages, all pending, for 1 property
// and 1 guest partner, and returns a bench on it that runs pgbench for a second.
func ceilingBench(t *testing.T, messages int) (*bench, *seedData) {
	t.Helper()
	dsn := pgtest.DSN(t)
	db, err := sqlx.Connect("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	o := options{messages: messages, pending: messages, history: 50, active: 4, concurrency: 2,
		duration: time.Second, scenarios: []string{"latest", "conversation", "send"}}
	sd, err := seed(context.Background(), db, o, func(string, ...any) {})
	if err != nil {
		t.Fatal(err)
	}
	return &bench{opt: o, log: io.Discard, started: time.Now(), dsn: dsn, db: db, tmp: t.TempDir()}, sd
}

// The ceilings run the service's own statements in pgbench against the real schema, every
// transaction without error.
func TestStatementCeilings(t *testing.T) {
	b, sd := ceilingBench(t, 400)
	refs, err := b.ceilings(context.Background(), sd)
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 2 {
		t.Fatalf("ceilings = %+v, want latest and conversation", refs)
	}
	for i, kind := range []string{"latest", "conversation"} {
		r := refs[i]
		if r.Kind != kind || r.Name != "pgbench "+kind+" statements" || r.Clients != 2 || r.TPS <= 0 || r.Errors != 0 || r.P50ms <= 0 {
			t.Errorf("ceiling %d = %+v, want %s at 2 clients, transactions and no errors", i, r, kind)
		}
	}
	// The numbering table is gone, and comes back for the check below.
	var left bool
	if err := b.db.Get(&left, `SELECT to_regclass('bench_ceiling') IS NOT NULL`); err != nil || left {
		t.Fatalf("bench_ceiling left after the ceilings: %v, %v", left, err)
	}
	if _, err := b.db.Exec(ceilingTableSQL); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.Exec(`INSERT INTO bench_ceiling VALUES (0, $1, $2)`, sd.convs[0].ID, sd.convs[0].Accommodation); err != nil {
		t.Fatal(err)
	}
	// Each script does its scenario's work: run with its variables as literals (the first
	// partner and conversation), its statements return a full page, and a whole conversation.
	wantRows := map[string][]int{"latest": {100}, "conversation": {1, 50}}
	for _, w := range ceilingWorkloads(sd, time.Now().Add(-24*time.Hour)) {
		vars := map[string]string{"p": strconv.FormatInt(sd.partners[0].ID, 10), "n": "0"}
		for _, v := range w.vars {
			name, value, _ := strings.Cut(v, "=")
			vars[name] = "'" + value + "'"
		}
		_, body, _ := strings.Cut(w.script, "\n") // after the \set line
		body = pgbenchVar.ReplaceAllStringFunc(body, func(m string) string {
			if v, ok := vars[m[2:]]; ok {
				return m[:1] + v
			}
			return m
		})
		var got []int
		for _, stmt := range strings.Split(strings.TrimSuffix(body, ";\n"), ";\n") {
			var n int
			if err := b.db.Get(&n, "SELECT count(*) FROM ("+stmt+") x"); err != nil {
				t.Fatalf("%s: %v\n%s", w.kind, err, stmt)
			}
			got = append(got, n)
		}
		if !slices.Equal(got, wantRows[w.kind]) {
			t.Errorf("%s script: rows %v, want %v", w.kind, got, wantRows[w.kind])
		}
	}
	lines := ceilingLines([]scenarioResult{{Name: "latest", Clients: 2, RPS: refs[0].TPS / 2}, {Name: "mixed/latest", Clients: 2, RPS: 1}}, refs)
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "latest: the service made 0.50× the rate of its statements alone") {
		t.Errorf("ceilingLines = %q", lines)
	}
}

// A seed whose queues hold less than a page would make the latest ceiling cheaper than the
// scenario's work: the ceilings refuse to run on it.
func TestStatementCeilingsNeedFullPages(t *testing.T) {
	b, sd := ceilingBench(t, 60)
	b.opt.scenarios = []string{"latest"}
	_, err := b.ceilings(context.Background(), sd)
	if err == nil || !strings.Contains(err.Error(), "found 60 rows, want 100") {
		t.Fatalf("ceilings on a 60-message queue = %v, want the latest check to fail", err)
	}
}
