// Command messaging is the guest messaging service: "serve" (the default) runs the HTTP API and
// the retention purge; "migrate up|down|version|force" manages the schema; "purge" runs one retention
// pass; "bootstrap" creates a partner and an API key.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/db"
	"github.com/guestmsg/messaging/internal/httpapi"
	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/postgres"
	"github.com/guestmsg/messaging/internal/purge"
	"github.com/guestmsg/messaging/internal/ratelimit"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "messaging:", err)
		os.Exit(1)
	}
}

const usage = `usage: messaging [command]
  serve                      run the HTTP API (the default); applies pending migrations first
  migrate up|down|version    apply all migrations, revert the last one, or print the version
  migrate force VERSION      record VERSION as applied: the way out of a dirty version
  purge                      run one retention pass now and log what it removed
  bootstrap -kind K -name N  create a partner (and an API key) and print them as JSON`

// run carries out one command; ctx is cancelled on SIGINT or SIGTERM. The command line is
// checked before the configuration, so that a mistyped command or -h needs no database.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	var command func(context.Context, Config, *slog.Logger) error
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	case "serve", "purge":
		if len(args) > 0 {
			return fmt.Errorf("%s takes no arguments, got %q\n%s", cmd, args, usage)
		}
		command = serve
		if cmd == "purge" {
			command = purgeCommand
		}
	case "migrate":
		m, err := parseMigrate(args)
		if err != nil {
			return err
		}
		command = func(ctx context.Context, cfg Config, _ *slog.Logger) error {
			return migrateCommand(ctx, cfg, m, stdout)
		}
	case "bootstrap":
		b, err := parseBootstrap(args, stdout)
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		if err != nil {
			return err
		}
		command = func(ctx context.Context, cfg Config, _ *slog.Logger) error {
			return bootstrap(ctx, cfg, b, stdout)
		}
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	return command(ctx, cfg, slog.New(slog.NewJSONHandler(stdout, nil)))
}

// serve runs the HTTP API until ctx is cancelled, then finishes in-flight requests. It listens
// at once: until the database has been reached and migrated, /healthz answers 200 and every
// other request 503 unavailable, and it keeps trying to reach the database (a database that is
// down is waited for; only an error retrying cannot fix, such as a failed migration, ends it).
func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	log.Info("starting", cfg.logFields()...)
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return err
	}
	var app atomic.Pointer[httpapi.Server]
	starting := httpapi.NewStarting(log, cfg.MaxHeaderBytes)
	// Every request's context ends when shutdown gives up on it (cutRequests), so that its
	// database work is cancelled rather than waited for.
	requests, cutRequests := context.WithCancel(context.Background())
	defer cutRequests()
	srv := &http.Server{
		BaseContext: func(net.Listener) context.Context { return requests },
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if h := app.Load(); h != nil {
				h.ServeHTTP(w, r)
				return
			}
			starting.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		// The service answers headers over MAX_HEADER_BYTES with 431 in the envelope
		// (httpapi.Config.MaxHeaderBytes); net/http's own bound, which answers in plain text
		// before any handler runs, lies above it, at twice that (at most 1 MiB more).
		MaxHeaderBytes: cfg.MaxHeaderBytes + min(cfg.MaxHeaderBytes, 1<<20),
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// net/http would answer "OPTIONS *" itself, 200 without the envelope or a log line.
		DisableGeneralOptionsHandler: true,
	}
	log.Info("listening", "addr", ln.Addr().String())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	err = func() error {
		if err := migrateWithRetry(ctx, cfg.DatabaseURL, log); err != nil {
			return err
		}
		// Every database call of a request ends by REQUEST_TIMEOUT through its context; the I/O
		// timeout catches a database that does not answer the cancellation either. No statement
		// of a request waits longer than REQUEST_TIMEOUT anyway, so it cuts nothing that could
		// have succeeded. Worst case, against a database that answers nothing at all: twice
		// REQUEST_TIMEOUT (lib/pq waits for the cancel request it sends at the deadline).
		pool, err := postgres.OpenWithIOTimeout(cfg.DatabaseURL, cfg.DBMaxConns, cfg.RequestTimeout)
		if err != nil {
			return err
		}
		defer pool.Close()
		store := postgres.New(ctx, pool)
		defer store.Close()
		svc := messaging.NewService(store, cfg.Windows, time.Now, messaging.WithAttachmentPolicy(cfg.Attachments))
		probe, err := postgres.OpenProbe(cfg.DatabaseURL, cfg.RequestTimeout)
		if err != nil {
			return err
		}
		defer probe.Close()

		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		app.Store(httpapi.New(svc, probe, log, httpapi.Config{
			AdminToken: cfg.AdminToken, MaxBodyBytes: cfg.MaxBodyBytes, DBTimeout: cfg.RequestTimeout,
			AnswerWithin: cfg.WriteTimeout, MaxHeaderBytes: cfg.MaxHeaderBytes,
			RateLimit: ratelimit.New(cfg.RateLimitPerMinute, ratelimit.DefaultMaxKeys, time.Now),
		}, reg))
		log.Info("ready")

		// The purge stops with the server, however it stops: a batch in flight is cancelled and
		// rolled back, and its store closes only after the purge has returned.
		purgeStore, closePurge, err := openPurgeStore(ctx, cfg.DatabaseURL, cfg.RequestTimeout)
		if err != nil {
			return err
		}
		defer closePurge()
		purgeCtx, stopPurge := context.WithCancel(ctx)
		purged := make(chan struct{})
		go func() {
			defer close(purged)
			purge.New(purgeStore, cfg.Windows, time.Now, log.With("component", "purge")).Run(purgeCtx, cfg.PurgeInterval)
		}()
		defer func() { stopPurge(); <-purged }()

		select {
		case err := <-served:
			return err
		case <-ctx.Done():
		}
		// The pool and the store stay open until the in-flight requests are done.
		return shutdown(srv, cfg.ShutdownTimeout, cutRequests, log)
	}()
	if app.Load() == nil { // ended while starting
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return errors.Join(err, shutdown(srv, cfg.ShutdownTimeout, cutRequests, log))
	}
	return err
}

// shutdown stops accepting connections and waits up to timeout for in-flight requests; those
// still running then are cut off (cutRequests): their database work is cancelled and rolled
// back, and they answer 503, for which they get up to cutGrace more.
func shutdown(srv *http.Server, timeout time.Duration, cutRequests func(), log *slog.Logger) error {
	log.Info("shutting down: finishing in-flight requests")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		cutRequests()
		answered, cancelAnswered := context.WithTimeout(context.Background(), cutGrace)
		defer cancelAnswered()
		_ = srv.Shutdown(answered) // waits for the cut requests' connections to go idle
		return fmt.Errorf("shutdown: requests still running after SHUTDOWN_TIMEOUT were cut off: %w", err)
	}
	log.Info("stopped")
	return nil
}

// cutGrace is how long requests cut off at shutdown get to answer 503: their statements end as
// soon as PostgreSQL has the cancel, in milliseconds.
const cutGrace = time.Second

// migrateWithRetry applies pending migrations, waiting as long as it takes for a database that
// cannot be reached (down, starting, or refusing connections), with backoff up to 5 s. Other
// errors end it at once. Errors: ctx's error when it is cancelled while waiting.
func migrateWithRetry(ctx context.Context, dsn string, log *slog.Logger) error {
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := db.Migrate(ctx, dsn)
		if err == nil || ctx.Err() != nil || !postgres.Unreachable(err) {
			return err
		}
		log.Warn("database unreachable; retrying", "attempt", attempt, "retry_in", wait.String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// migrateArgs is a parsed migrate command line: the action and, for force, the version.
type migrateArgs struct {
	action string
	force  int
}

func parseMigrate(args []string) (migrateArgs, error) {
	const migrateUsage = "usage: messaging migrate up|down|version|force VERSION"
	switch {
	case len(args) == 2 && args[0] == "force":
		v, err := strconv.Atoi(args[1])
		if err != nil || v < 0 {
			return migrateArgs{}, errors.New(migrateUsage)
		}
		return migrateArgs{action: "force", force: v}, nil
	case len(args) != 1 || !slices.Contains([]string{"up", "down", "version"}, args[0]):
		return migrateArgs{}, errors.New(migrateUsage)
	}
	return migrateArgs{action: args[0]}, nil
}

func migrateCommand(ctx context.Context, cfg Config, args migrateArgs, stdout io.Writer) error {
	mg, err := db.NewMigrator(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer mg.Close()
	switch args.action {
	case "up":
		err = mg.Up(ctx)
	case "down":
		err = mg.Down()
	case "force":
		err = mg.Force(args.force)
	}
	if err != nil {
		return err
	}
	v, dirty, err := mg.Version()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "version %d dirty %t\n", v, dirty)
	return nil
}

// bootstrapArgs is a parsed bootstrap command line.
type bootstrapArgs struct {
	partner messaging.Partner
	keyName string
}

// parseBootstrap parses bootstrap's flags; with -h it prints them to stdout and returns
// flag.ErrHelp.
func parseBootstrap(args []string, stdout io.Writer) (bootstrapArgs, error) {
	const bootstrapUsage = "usage: messaging bootstrap -kind K -name N [-affiliate-id N] [-key-name NAME]"
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kind := fs.String("kind", "", "partner kind: property or guest (required)")
	name := fs.String("name", "", "partner name (required)")
	affiliateID := fs.Int64("affiliate-id", 0, "affiliate id to use (assigned when 0)")
	keyName := fs.String("key-name", "bootstrap", "name of the API key")
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintln(stdout, bootstrapUsage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return bootstrapArgs{}, err
	case err != nil:
		return bootstrapArgs{}, fmt.Errorf("%w\n%s", err, bootstrapUsage)
	case fs.NArg() > 0:
		return bootstrapArgs{}, fmt.Errorf("bootstrap takes only flags, got %q\n%s", fs.Args(), bootstrapUsage)
	}
	return bootstrapArgs{messaging.Partner{AffiliateID: *affiliateID, Kind: messaging.Side(*kind), Name: *name}, *keyName}, nil
}

// bootstrap creates a partner and one API key for it and prints both, so an operator can start
// without the admin API.
func bootstrap(ctx context.Context, cfg Config, args bootstrapArgs, stdout io.Writer) error {
	if err := db.Migrate(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	pool, err := postgres.Open(cfg.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	svc := messaging.NewService(postgres.New(ctx, pool), cfg.Windows, time.Now)
	p, err := svc.CreatePartner(ctx, args.partner)
	if err != nil {
		return fmt.Errorf("create partner: %w", err)
	}
	k, secret, err := svc.CreateKey(ctx, p.AffiliateID, args.keyName)
	if err != nil { // the partner stays: say so, and how to give it a key
		return fmt.Errorf("partner %d was created, but its key was not (issue one with POST /admin/partners/%d/keys): %w",
			p.AffiliateID, p.AffiliateID, err)
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Partner api.PartnerData `json:"partner"`
		Key     api.KeyData     `json:"key"`
	}{
		api.PartnerData{AffiliateID: p.AffiliateID, Kind: string(p.Kind), Name: p.Name, CreatedAt: p.CreatedAt.Format(api.TimeFormat)},
		api.KeyData{KeyID: k.ID.String(), APIKey: secret, CreatedAt: k.CreatedAt.Format(api.TimeFormat)},
	})
}

// maskDSN hides the password of a database URL for logging, given after the user name or, as
// lib/pq also takes it, as the query parameter password.
func maskDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" || u.Opaque != "" { // a key=value DSN, say
		return "(set)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// purgeCommand runs one retention pass; the pass logs what it removed. It does not migrate: a
// schema other than the one its code is written for is an error, not something to change behind
// the operator's back.
func purgeCommand(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := db.CheckCurrent(ctx, cfg.DatabaseURL); err != nil {
		return err
	}
	store, closeStore, err := openPurgeStore(ctx, cfg.DatabaseURL, 0)
	if err != nil {
		return err
	}
	defer closeStore()
	_, err = purge.New(store, cfg.Windows, time.Now, log).RunOnce(ctx)
	return err
}

// openPurgeStore opens the purge's store on a pool of its own of two connections: a pass holds
// its lock on one for the whole pass and runs its batches on the other. On the requests' pool,
// a pass would wait for itself forever with DB_MAX_CONNS=1, holding the only connection, and
// its batches would take connections from requests at any size. ioTimeout is as for
// postgres.OpenWithIOTimeout (0: none).
func openPurgeStore(ctx context.Context, dsn string, ioTimeout time.Duration) (*postgres.Store, func(), error) {
	pool, err := postgres.OpenWithIOTimeout(dsn, 2, ioTimeout)
	if err != nil {
		return nil, nil, err
	}
	store := postgres.New(ctx, pool)
	return store, func() { store.Close(); pool.Close() }, nil
}
