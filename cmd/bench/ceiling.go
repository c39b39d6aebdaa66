package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/postgres"
)

// The statement ceilings are the part of the pgbench reference that runs the service's own
// statements instead of a generic INSERT or SELECT: the latest page's, and the conversation
// read's two, exactly as the service prepares them (postgres.HotReads), on the seeded database.
// What pgbench makes of them is what PostgreSQL alone can do of those reads on this machine,
// with no HTTP, JSON or Go in between; the service's rate divided by it is the share of that
// ceiling it reaches. They run before the first scenario, while the queues are full.

// ceiling is one pgbench workload of the service's statements.
type ceiling struct {
	kind   string   // the scenario whose statements it runs: latest or conversation
	script string   // the pgbench script
	vars   []string // its fixed variables, as pgbench's -D name=value
}

// ceilingTableSQL numbers the seeded conversations, so that a pgbench script can pick one at
// random: pgbench variables are numbers, conversation ids are not. The table lives only while
// the ceilings run, since with -url the database is the user's: one left by a run that was
// killed is replaced.
const ceilingTableSQL = `
DROP TABLE IF EXISTS bench_ceiling;
CREATE TABLE bench_ceiling (
    n                integer PRIMARY KEY,
    id               uuid    NOT NULL,
    accommodation_id bigint  NOT NULL
)`

// ceilings measures each ceiling of the scenarios that run, at -c clients.
func (b *bench) ceilings(ctx context.Context, sd *seedData) ([]reference, error) {
	// The property's read window: every seeded conversation is in it, as in the scenarios.
	readableAfter := messaging.DefaultWindows.ReadableStayEndAfter(messaging.Property, time.Now())
	var todo []ceiling
	for _, w := range ceilingWorkloads(sd, readableAfter) {
		if contains(b.opt.scenarios, w.kind) {
			todo = append(todo, w)
		}
	}
	if len(todo) == 0 {
		return nil, nil
	}
	if _, err := b.db.ExecContext(ctx, ceilingTableSQL); err != nil {
		return nil, fmt.Errorf("set up the statement ceilings: %w", err)
	}
	defer func() {
		if _, err := b.db.Exec(`DROP TABLE bench_ceiling`); err != nil {
			b.logf("statement ceilings: drop bench_ceiling: %v", err)
		}
	}()
	err := copyRows(ctx, b.db, "bench_ceiling", []string{"n", "id", "accommodation_id"}, len(sd.convs), func(i int) []any {
		return []any{i, sd.convs[i].ID, sd.convs[i].Accommodation}
	})
	if err != nil {
		return nil, fmt.Errorf("set up the statement ceilings: %w", err)
	}
	var out []reference
	for _, w := range todo {
		if err := b.checkCeiling(ctx, sd, w.kind, readableAfter); err != nil {
			return nil, err
		}
		b.logf("reference: pgbench, the service's %s statements, %d clients", w.kind, b.opt.concurrency)
		ref, err := b.pgbench(ctx, w.kind, w.script, b.opt.concurrency, w.vars...)
		if err != nil {
			return nil, err
		}
		ref.Name = "pgbench " + w.kind + " statements"
		out = append(out, ref)
		b.logf("  %s: %.0f tps p50 %.2f ms p99 %.2f ms", ref.Name, ref.TPS, ref.P50ms, ref.P99ms)
	}
	return out, nil
}

// ceilingWorkloads are the pgbench scripts of the latest page (a random partner's) and of the
// conversation read (a random seeded conversation, by id, as the scenario reads it).
func ceilingWorkloads(sd *seedData, readableAfter time.Time) []ceiling {
	first, last := sd.partners[0].ID, sd.partners[0].ID
	for _, p := range sd.partners {
		first, last = min(first, p.ID), max(last, p.ID)
	}
	// Every statement checks that the caller's key is unrevoked; any seeded key will do.
	vars := []string{
		"after=" + readableAfter.UTC().Format(time.RFC3339Nano),
		`key=\x` + hex.EncodeToString(messaging.HashSecret(sd.partners[0].Key)),
	}
	conv := func(col string) string { return "(SELECT " + col + " FROM bench_ceiling WHERE n = :n)" }
	q := postgres.HotReads
	return []ceiling{{
		kind: "latest",
		script: fmt.Sprintf("\\set p random(%d, %d)\n", first, last) +
			pgbenchBind(q.Pending, ":p", ":after", ":limit", ":key") + ";\n",
		vars: append(vars, "limit="+strconv.Itoa(messaging.LatestPageSize)),
	}, {
		kind: "conversation",
		script: fmt.Sprintf("\\set n random(0, %d)\n", len(sd.convs)-1) +
			pgbenchBind(q.Conversations, conv("accommodation_id"), conv("id"), "''", ":key") + ";\n" +
			pgbenchBind(q.Messages, conv("id")) + ";\n",
		vars: vars,
	}}
}

var sqlParam = regexp.MustCompile(`\$([0-9]+)`)

// pgbenchBind puts args[i-1] in place of each $i of a statement: pgbench variables (":p"),
// which pgbench passes as parameters of its prepared statement, or expressions.
func pgbenchBind(query string, args ...string) string {
	return sqlParam.ReplaceAllStringFunc(query, func(p string) string {
		i, _ := strconv.Atoi(p[1:])
		if i < 1 || i > len(args) {
			panic(fmt.Sprintf("pgbenchBind: %s of a statement bound with %d arguments", p, len(args)))
		}
		return args[i-1]
	})
}

// checkCeiling makes sure a ceiling does the work of its scenario: full pages of the queue, and
// whole seeded conversations. A smaller result would be cheaper and make the ceiling too high.
func (b *bench) checkCeiling(ctx context.Context, sd *seedData, kind string, readableAfter time.Time) error {
	var got, want int
	var err error
	switch kind {
	case "latest":
		p := sd.partners[0]
		want = messaging.LatestPageSize
		err = b.db.GetContext(ctx, &got, `SELECT count(*) FROM (`+postgres.HotReads.Pending+`) x`,
			p.ID, readableAfter, want, messaging.HashSecret(p.Key))
	case "conversation":
		c := sd.convs[0]
		want = c.Messages
		err = b.db.GetContext(ctx, &got, `SELECT count(*) FROM (`+postgres.HotReads.Messages+`) x`, c.ID)
	}
	if err != nil {
		return fmt.Errorf("check the %s statement ceiling: %w", kind, err)
	}
	if got < want {
		return fmt.Errorf("check the %s statement ceiling: the statement found %d rows, want %d", kind, got, want)
	}
	return nil
}

// ceilingLines says, for each scenario with a statement ceiling, what share of it the service
// reached.
func ceilingLines(scenarios []scenarioResult, refs []reference) []string {
	var out []string
	for _, s := range scenarios {
		for _, r := range refs {
			if r.Kind == s.Name && r.Clients == s.Clients && r.TPS > 0 {
				out = append(out, fmt.Sprintf("%s: the service made %.2f× the rate of its statements alone in pgbench (%.0f against %.0f per s)",
					s.Name, s.RPS/r.TPS, s.RPS, r.TPS))
			}
		}
	}
	return out
}
