// Command bench is the load generator of the messaging service. It creates a fresh database,
// seeds it with COPY, starts the real service binary against it on loopback (or targets a
// running one with -url), runs the scenarios (latest, conversation, drain, send, mixed,
// windows, attachments) for a fixed time each at a fixed concurrency, checks the results for
// correctness, measures a pgbench reference on the same cluster (generic statements, and the
// service's own read statements alone: ceiling.go), and prints a table (and JSON with -json).
// With -growth N it also seeds a database of N messages on the same cluster, with its own
// service, and measures the two side by side (the growth check, growth.go).
//
// Usage (from the repository root; see BENCHMARKS.md):
//
//	go run ./cmd/bench [-quick] [-messages 100000] [-c 64] [-json out.json]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getenv("GOGC") == "" {
		// The load generator shares the cores with what it measures; its heap is small, so it
		// collects garbage less often than Go's default (as the service does, see -gogc).
		debug.SetGCPercent(400)
	}
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the flags of one run.
type options struct {
	dsn            string        // server to create the database on; empty: a throwaway cluster
	url            string        // a running service; empty: start bin/messaging
	pid            int           // with -url: the service's pid, for CPU and RSS
	messages       int           // stored messages to seed
	pending        int           // how many of the newest messages are queued for delivery
	history        int           // messages per conversation
	active         int           // conversations receiving messages at one time; 0: all
	concurrency    int           // clients
	lowConc        int           // clients of the send-at-low-concurrency scenario
	duration       time.Duration // per scenario
	warmup         time.Duration // unmeasured reads before the first scenario
	drainTimeout   time.Duration // upper bound of the drain scenario
	drainPollers   int           // concurrent pollers per partner in the drain scenario
	attachmentSize int           // bytes of each file the attachments scenario uploads
	scenarios      []string
	jsonOut        string
	baseline       string // earlier -json file to compare p50s with (the growth check in pairs)
	growth         int    // side-by-side growth check: a second database of this many messages; 0: none
	growthRounds   int    // alternating rounds of the side-by-side growth check
	quick          bool
	reference      bool   // run the pgbench reference
	fastPG         bool   // throwaway cluster without fsync
	sharedBuffers  string // shared_buffers of the throwaway cluster
	keep           bool   // keep the database (and cluster) afterwards
	serverBin      string
	dbMaxConns     int
	gogc           string
	gomaxprocs     string
	gomemlimit     string
	peers          []string // comparable stores to run the peer scenarios against too (knownPeers)
}

var allScenarios = []string{"latest", "conversation", "drain", "send", "send-low", "mixed", "windows", "attachments"}

func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.dsn, "dsn", getenv("DATABASE_URL"), "PostgreSQL server to create the bench database on (default $DATABASE_URL; empty: a throwaway cluster via scripts/localpg.sh)")
	fs.StringVar(&o.url, "url", "", "base URL of a running service on 127.0.0.1 (its database must be -dsn); empty: build and start the service")
	fs.IntVar(&o.pid, "pid", 0, "with -url: the service's process id, for CPU and RSS")
	fs.IntVar(&o.messages, "messages", 100000, "stored messages to seed (up to 10,000,000)")
	fs.IntVar(&o.pending, "pending", 100000, "how many of the newest seeded messages are pending delivery (queued for both partners)")
	fs.IntVar(&o.history, "history", 50, "messages per seeded conversation")
	fs.IntVar(&o.active, "active", 2000, "conversations receiving messages at one time: the newest messages, those pending, are spread over this many (0: over every conversation)")
	fs.IntVar(&o.concurrency, "c", 64, "concurrent clients")
	fs.IntVar(&o.lowConc, "c-low", 8, "concurrent clients of the send-low scenario")
	fs.DurationVar(&o.duration, "d", 20*time.Second, "duration of each scenario")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "unmeasured reads (latest pages, not confirmed, and conversations) before the first scenario, which change nothing (0: none)")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 2*time.Minute, "upper bound of the drain scenario")
	fs.IntVar(&o.drainPollers, "drain-pollers", 1, "concurrent pollers per partner in the drain scenario")
	fs.IntVar(&o.attachmentSize, "attachment-size", 100<<10, "bytes of each PNG the attachments scenario uploads (32 to 1 MiB, the service's default limit)")
	scen := fs.String("scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios to run, in this order")
	fs.StringVar(&o.jsonOut, "json", "", "write the results as JSON to this file")
	fs.StringVar(&o.baseline, "baseline", "", "an earlier -json file: print each p50 as a ratio to it (the growth check in two runs; see -growth)")
	fs.IntVar(&o.growth, "growth", 0, "side-by-side growth check: also seed a database of this many messages (up to 10,000,000) on the same cluster, with its own service, run each of -scenarios on the two back to back, in -growth-rounds rounds, and print each p50 of the large one as a ratio to the small one's (0: off)")
	fs.IntVar(&o.growthRounds, "growth-rounds", 3, "rounds of the side-by-side growth check (-growth)")
	fs.BoolVar(&o.quick, "quick", false, "smoke run: 3 s per scenario")
	fs.BoolVar(&o.reference, "reference", true, "measure the pgbench reference: before the scenarios, the service's own latest-page and conversation statements alone (their ceilings); after them, a single-row INSERT and a 100-row SELECT")
	fs.BoolVar(&o.fastPG, "fast-pg", false, "throwaway cluster with fsync and synchronous_commit off")
	fs.StringVar(&o.sharedBuffers, "shared-buffers", "2GB", "shared_buffers of the throwaway cluster (a production-like share of this machine's memory; PostgreSQL's default is 128MB)")
	fs.BoolVar(&o.keep, "keep", false, "keep the bench database and cluster afterwards")
	fs.StringVar(&o.serverBin, "server-bin", "", "service binary to start (default: go build ./cmd/messaging)")
	fs.IntVar(&o.dbMaxConns, "db-max-conns", 16, "DB_MAX_CONNS of the started service (16 is its default)")
	fs.StringVar(&o.gogc, "gogc", "400", "GOGC of the started service, as the Dockerfile sets it (empty: Go's default, 100)")
	fs.StringVar(&o.gomaxprocs, "gomaxprocs", "", "GOMAXPROCS of the started service (empty: Go's default)")
	fs.StringVar(&o.gomemlimit, "gomemlimit", "256MiB", "GOMEMLIMIT of the started service, as the Dockerfile sets it (empty: none, unless the environment sets one)")
	peer := fs.String("peer", "", "also run the send, send-low and conversation scenarios against comparable open-source stores on the same cluster, comma-separated: ejabberd, prosody (Debian's packages; run as root)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.quick {
		o.duration = 3 * time.Second
		o.warmup = min(o.warmup, time.Second)
	}
	var errs []error
	for _, s := range strings.Split(*scen, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !contains(allScenarios, s) {
			errs = append(errs, fmt.Errorf("-scenarios: unknown %q (known: %s)", s, strings.Join(allScenarios, ", ")))
		}
		if s == "latest" && contains(o.scenarios, "drain") {
			errs = append(errs, errors.New("-scenarios: latest after drain: the drain empties the queues that latest reads full pages of"))
		}
		o.scenarios = append(o.scenarios, s)
	}
	for _, p := range strings.Split(*peer, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "":
		case !contains(knownPeers, p):
			errs = append(errs, fmt.Errorf("-peer: unknown %q (known: %s)", p, strings.Join(knownPeers, ", ")))
		case contains(o.peers, p):
			errs = append(errs, fmt.Errorf("-peer: %q named twice", p))
		default:
			o.peers = append(o.peers, p)
		}
	}
	if o.messages < 1 || o.messages > 10_000_000 {
		errs = append(errs, errors.New("-messages: want 1 to 10,000,000"))
	}
	if o.active < 0 {
		errs = append(errs, errors.New("-active: want 0 or more"))
	}
	if o.history < 1 {
		errs = append(errs, errors.New("-history: want at least 1"))
	}
	if o.pending < 0 {
		errs = append(errs, errors.New("-pending: want 0 or more"))
	}
	o.pending = min(o.pending, o.messages)
	if o.concurrency < 2 || o.concurrency > 1024 || o.lowConc < 1 || o.lowConc > 1024 {
		errs = append(errs, errors.New("-c and -c-low: want 2 to 1024 and 1 to 1024"))
	}
	if o.duration <= 0 || o.duration > 5*time.Minute {
		errs = append(errs, errors.New("-d: want more than 0 and at most 5m"))
	}
	if o.warmup < 0 || o.warmup > 5*time.Minute {
		errs = append(errs, errors.New("-warmup: want 0 to 5m"))
	}
	if o.attachmentSize < 32 || o.attachmentSize > 1<<20 {
		errs = append(errs, errors.New("-attachment-size: want 32 to 1048576"))
	}
	if o.drainPollers < 1 || o.drainPollers > o.concurrency {
		errs = append(errs, errors.New("-drain-pollers: want 1 to -c"))
	}
	if o.growth != 0 {
		switch {
		case o.growth <= o.messages || o.growth > 10_000_000:
			errs = append(errs, errors.New("-growth: want more than -messages and at most 10,000,000"))
		case o.growthRounds < 1 || o.growthRounds > 20:
			errs = append(errs, errors.New("-growth-rounds: want 1 to 20"))
		case o.url != "" || o.baseline != "" || len(o.peers) > 0:
			errs = append(errs, errors.New("-growth starts its own two services: not with -url, -baseline or -peer"))
		}
	}
	if o.dsn != "" {
		// A database of its own is named in the DSN's path (createDatabase): a key=value DSN
		// would parse as a relative URL and name none.
		if u, err := url.Parse(o.dsn); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			errs = append(errs, errors.New("-dsn (or DATABASE_URL): want a postgres:// URL"))
		}
	}
	if o.url != "" {
		if o.dsn == "" {
			errs = append(errs, errors.New("-url needs -dsn (or DATABASE_URL): the database of that service, to seed and check"))
		}
		if !strings.HasPrefix(o.url, "http://127.0.0.1:") {
			errs = append(errs, errors.New("-url: only http://127.0.0.1:PORT is allowed"))
		}
	}
	return o, errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// run carries out one bench run; ctx is cancelled on SIGINT or SIGTERM.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, getenv, stderr)
	if err != nil {
		return err
	}
	b := &bench{opt: o, out: stdout, log: stderr, started: time.Now()}
	defer b.cleanup()
	if o.growth > 0 {
		return b.runGrowth(ctx)
	}
	return b.run(ctx)
}
