package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// reference is one pgbench measurement on the bench's cluster.
type reference struct {
	Name           string  `json:"name"`
	Kind           string  `json:"kind"` // insert or select
	Clients        int     `json:"clients"`
	TPS            float64 `json:"tps"`
	P50ms          float64 `json:"p50_ms"`
	P90ms          float64 `json:"p90_ms"`
	P99ms          float64 `json:"p99_ms"`
	Errors         int     `json:"errors"`
	MachineBusyPct float64 `json:"machine_busy_pct,omitempty"`
}

// The reference workloads: what the service's send and reads are at their core, done by
// pgbench with prepared statements and no HTTP, JSON or Go in between.
const (
	refSetupSQL = `
DROP TABLE IF EXISTS bench_ref_insert, bench_ref_select;
CREATE TABLE bench_ref_insert (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    k          int         NOT NULL,
    payload    text        NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE bench_ref_select (
    k       int  NOT NULL,
    seq     int  NOT NULL,
    payload text NOT NULL,
    PRIMARY KEY (k, seq)
);
INSERT INTO bench_ref_select (k, seq, payload)
SELECT k, s, 'Hello! We arrive around 18:00 with two children. Is late check-in possible? Message ' || (k * 100 + s)
FROM generate_series(1, 1000) AS k, generate_series(1, 100) AS s`

	refInsertScript = `\set k random(1, 1000000)
INSERT INTO bench_ref_insert (k, payload, created_at) VALUES (:k, 'Thanks, see you at 18:00! (bench reference)', now());
`
	refSelectScript = `\set k random(1, 1000)
SELECT k, seq, payload FROM bench_ref_select WHERE k = :k ORDER BY seq LIMIT 100;
`
)

// reference runs pgbench's single-row INSERT and 100-row indexed SELECT at c clients, on
// tables named as the bench's own, made afresh and dropped afterwards (with -url the database
// is the user's).
func (b *bench) reference(ctx context.Context, c int) ([]reference, error) {
	if _, err := b.db.ExecContext(ctx, refSetupSQL); err != nil {
		return nil, fmt.Errorf("set up reference tables: %w", err)
	}
	defer func() {
		if _, err := b.db.Exec(`DROP TABLE bench_ref_insert, bench_ref_select`); err != nil {
			b.logf("reference: drop its tables: %v", err)
		}
	}()
	if _, err := b.db.ExecContext(ctx, `VACUUM (ANALYZE) bench_ref_select`); err != nil {
		return nil, fmt.Errorf("set up reference tables: %w", err)
	}
	var out []reference
	for _, w := range []struct{ kind, script string }{{"insert", refInsertScript}, {"select", refSelectScript}} {
		b.logf("reference: pgbench %s, %d clients", w.kind, c)
		ref, err := b.pgbench(ctx, w.kind, w.script, c)
		if err != nil {
			return nil, err
		}
		out = append(out, ref)
		b.logf("  %s: %.0f tps p50 %.2f ms p99 %.2f ms", ref.Name, ref.TPS, ref.P50ms, ref.P99ms)
	}
	return out, nil
}

var tpsLine = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)

// pgbench runs script at c clients for -d, with vars (name=value) as its fixed variables.
func (b *bench) pgbench(ctx context.Context, kind, script string, c int, vars ...string) (reference, error) {
	ref := reference{Name: "pgbench " + kind, Kind: kind, Clients: c}
	dir, err := os.MkdirTemp(b.tmp, "pgbench-"+kind+"-")
	if err != nil {
		return ref, err
	}
	file := filepath.Join(dir, kind+".sql")
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		return ref, err
	}
	secs := max(1, int(b.opt.duration.Round(time.Second)/time.Second))
	args := []string{"-n", "-T", strconv.Itoa(secs), "-c", strconv.Itoa(c), "-j", "2",
		"-M", "prepared", "-f", file, "-l", "--log-prefix", filepath.Join(dir, "log")}
	for _, v := range vars {
		args = append(args, "-D", v)
	}
	cmd := exec.CommandContext(ctx, "pgbench", append(args, b.dsn)...)
	cmd.Dir = dir
	m := measurement{start: time.Now()}
	m.busy, m.total = machineCPU()
	output, err := cmd.CombinedOutput()
	if err != nil {
		return ref, fmt.Errorf("pgbench %s: %w\n%s", kind, err, output)
	}
	if busy, total := machineCPU(); total > m.total {
		ref.MachineBusyPct = 100 * float64(busy-m.busy) / float64(total-m.total)
	}
	match := tpsLine.FindSubmatch(output)
	if match == nil {
		return ref, fmt.Errorf("pgbench %s: no tps in its output:\n%s", kind, output)
	}
	ref.TPS, _ = strconv.ParseFloat(string(match[1]), 64)
	if n := regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`).FindSubmatch(output); n != nil {
		ref.Errors, _ = strconv.Atoi(string(n[1]))
	}
	lat, err := pgbenchLatencies(dir)
	if err != nil {
		return ref, err
	}
	ref.P50ms, ref.P90ms, ref.P99ms = pct(lat, 50), pct(lat, 90), pct(lat, 99)
	return ref, nil
}

// pgbenchLatencies reads the per-transaction logs of -l: "client_id transaction_no time
// script_no time_epoch time_us", where time is the latency in microseconds.
func pgbenchLatencies(dir string) ([]time.Duration, error) {
	files, err := filepath.Glob(filepath.Join(dir, "log*"))
	if err != nil {
		return nil, err
	}
	var lat []time.Duration
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil {
				continue
			}
			lat = append(lat, time.Duration(us)*time.Microsecond)
		}
		f.Close()
	}
	slices.Sort(lat)
	return lat, nil
}
