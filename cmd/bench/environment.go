package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the "postgres" driver

	"github.com/guestmsg/messaging/db"
)

// bench is the state of one run: the cluster, database and service it set up, and what to
// tear down at the end.
type bench struct {
	opt     options
	out     io.Writer
	log     io.Writer
	started time.Time

	serverDSN string // the server's maintenance database
	dbName    string
	dsn       string // the bench database
	db        *sqlx.DB
	baseURL   string
	pid       int
	admin     string // admin token of the started service

	clusterDir string
	postmaster int // pid of the cluster's postmaster when the bench started it
	server     *exec.Cmd
	serverGone <-chan struct{} // closed when the started service has exited; nil with -url
	serverLog  *tailBuffer
	tmp        string
	cleanups   []func()
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "[%6.1fs] %s\n", time.Since(b.started).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bench) cleanup() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
}

func (b *bench) run(ctx context.Context) error {
	sd, rep, err := b.prepare(ctx)
	if err != nil {
		return err
	}
	lg := newLoad(b, sd)
	var peers []peer
	for _, name := range b.opt.peers {
		p, err := b.startPeer(ctx, name, sd)
		if err != nil {
			return err
		}
		peers = append(peers, p)
	}
	if err := b.warmUp(ctx, lg, peers); err != nil {
		return err
	}
	if b.opt.reference {
		refs, err := b.ceilings(ctx, sd)
		if err != nil {
			return fmt.Errorf("pgbench reference: %w", err)
		}
		rep.References = append(rep.References, refs...)
	}
	for _, name := range b.opt.scenarios {
		res, err := b.scenario(ctx, lg, peers, "", name)
		if err != nil {
			return err
		}
		rep.Scenarios = append(rep.Scenarios, res...)
	}
	rep.ServerPeakRSSMB = lg.peakRSSMB()
	if b.opt.baseline != "" {
		if err := rep.compare(b.opt.baseline); err != nil {
			return err
		}
	}
	return b.finish(ctx, rep)
}

// prepare makes the run's temporary directory, creates and seeds the database, starts the
// service, and returns the seed and the report that the measurements go into.
func (b *bench) prepare(ctx context.Context) (*seedData, *report, error) {
	var err error
	if b.tmp, err = os.MkdirTemp("", "msgbench-"); err != nil {
		return nil, nil, err
	}
	// The cluster inside may run as another user (postgres, when the bench runs as root).
	if err := os.Chmod(b.tmp, 0o711); err != nil {
		return nil, nil, err
	}
	b.cleanups = append(b.cleanups, func() {
		if !b.opt.keep {
			os.RemoveAll(b.tmp)
		}
	})
	if err := b.setupDatabase(ctx); err != nil {
		return nil, nil, err
	}
	seedStart := time.Now()
	sd, err := seed(ctx, b.db, b.opt, b.logf)
	if err != nil {
		return nil, nil, fmt.Errorf("seed: %w", err)
	}
	seedTime := time.Since(seedStart)
	b.logf("seeded %d messages (%d pending for both partners) in %s", b.opt.messages, sd.pendingMessages, seedTime.Round(100*time.Millisecond))
	if err := b.startServer(ctx); err != nil {
		return nil, nil, err
	}
	rep := &report{
		Machine:  machineInfo(),
		Options:  reportOptions(b.opt),
		Seed:     seedReport{Messages: b.opt.messages, Conversations: len(sd.convs), Partners: len(sd.partners), PendingDeliveries: sd.pendingDeliveries, Seconds: seedTime.Seconds()},
		Database: b.dbVersion(ctx),
	}
	return sd, rep, nil
}

// warmUp runs -warmup's unmeasured reads against the service, and against each peer.
func (b *bench) warmUp(ctx context.Context, lg *load, peers []peer) error {
	if b.opt.warmup <= 0 {
		return nil
	}
	n, firstErr := lg.warmUp(ctx)
	b.logf("warm-up: %d reads in %s, not measured", n, b.opt.warmup)
	if firstErr != "" {
		b.logf("warm-up: first error: %s", firstErr)
	}
	for _, p := range peers {
		if err := lg.peerWarmUp(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// scenario runs one scenario, followed by the peers' counterpart, and returns its rows with
// prefix before each name.
func (b *bench) scenario(ctx context.Context, lg *load, peers []peer, prefix, name string) ([]scenarioResult, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	b.logf("scenario %s%s", prefix, name)
	res, err := lg.scenario(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("scenario %s%s: %w", prefix, name, err)
	}
	select {
	case <-b.serverGone:
		// Its requests since then failed in transit, which counts only against the load: the
		// checks of what was answered may all pass, yet the run must not.
		return nil, fmt.Errorf("scenario %s%s: the service exited (%v); its output ends with:\n%s",
			prefix, name, b.server.ProcessState, b.serverLog.String())
	default:
	}
	for _, p := range peers {
		if !contains(peerScenarios, name) {
			break
		}
		pname := p.xmpp().name + "/" + name
		b.logf("scenario %s", pname)
		peerRes, err := lg.peerScenario(ctx, p, name)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", pname, err)
		}
		if pid := p.xmpp().pid; pid > 0 && syscall.Kill(pid, 0) == syscall.ESRCH {
			return nil, fmt.Errorf("scenario %s: %s (pid %d) exited", pname, p.xmpp().name, pid)
		}
		res = append(res, peerRes...)
	}
	for i := range res {
		res[i].Name = prefix + res[i].Name
		r := res[i]
		b.logf("  %s: %.0f req/s p50 %.2f ms p99 %.2f ms errors %d", r.Name, r.RPS, r.P50ms, r.P99ms, r.Errors)
	}
	return res, nil
}

// finish measures the pgbench reference, sets the ratios, prints the report and writes its
// JSON, and fails when a correctness check did.
func (b *bench) finish(ctx context.Context, rep *report) error {
	if b.opt.reference {
		concs := []int{b.opt.concurrency}
		if contains(b.opt.scenarios, "send-low") && b.opt.lowConc != b.opt.concurrency {
			concs = append(concs, b.opt.lowConc)
		}
		for _, c := range concs {
			refs, err := b.reference(ctx, c)
			if err != nil {
				return fmt.Errorf("pgbench reference: %w", err)
			}
			rep.References = append(rep.References, refs...)
		}
	}
	rep.finish()
	rep.print(b.out)
	if b.opt.jsonOut != "" {
		if err := rep.write(b.opt.jsonOut); err != nil {
			return err
		}
	}
	if failed := rep.failedChecks(); len(failed) > 0 {
		return fmt.Errorf("correctness checks failed: %s", strings.Join(failed, "; "))
	}
	return nil
}

// setupDatabase provisions a throwaway cluster when no server is given, creates a fresh
// database on the server, and migrates it.
func (b *bench) setupDatabase(ctx context.Context) error {
	b.serverDSN = b.opt.dsn
	if b.opt.url != "" {
		// The running service already has its database: seed into that one.
		b.dsn = b.opt.dsn
	} else {
		if b.serverDSN == "" {
			if err := b.startCluster(ctx); err != nil {
				return err
			}
		}
		b.dbName = "bench_" + randomHex(4)
		var err error
		if b.dsn, err = b.createDatabase(ctx, b.dbName); err != nil {
			return err
		}
	}
	if err := db.Migrate(ctx, b.dsn); err != nil {
		return err
	}
	var err error
	if b.db, err = sqlx.ConnectContext(ctx, "postgres", b.dsn); err != nil {
		return err
	}
	b.db.SetMaxOpenConns(8)
	b.cleanups = append(b.cleanups, func() { b.db.Close() })
	return nil
}

// createDatabase creates database name on the server, to be dropped at the end unless -keep,
// and returns its DSN.
func (b *bench) createDatabase(ctx context.Context, name string) (string, error) {
	admin, err := sqlx.ConnectContext(ctx, "postgres", b.serverDSN)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", redact(b.serverDSN), err)
	}
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		admin.Close()
		return "", fmt.Errorf("create database: %w", err)
	}
	b.cleanups = append(b.cleanups, func() {
		defer admin.Close()
		if b.opt.keep {
			b.logf("kept database %s", name)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			b.logf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(b.serverDSN)
	if err != nil {
		return "", fmt.Errorf("parse -dsn: %w", err)
	}
	u.Path = "/" + name
	b.logf("created database %s", name)
	return u.String(), nil
}

// startCluster starts a throwaway cluster through scripts/localpg.sh, the one place that
// provisions clusters, and arranges for it to be stopped and deleted.
func (b *bench) startCluster(ctx context.Context) error {
	b.clusterDir = filepath.Join(b.tmp, "pg")
	port, err := exec.CommandContext(ctx, "bash", "scripts/localpg.sh", "freeport").Output()
	if err != nil {
		return fmt.Errorf("localpg.sh freeport (run from the repository root): %w", err)
	}
	cmd := exec.CommandContext(ctx, "bash", "scripts/localpg.sh", "start", b.clusterDir, strings.TrimSpace(string(port)))
	cmd.Stderr = b.log
	cmd.Env = append(os.Environ(), "LOCALPG_FAST="+map[bool]string{true: "1", false: "0"}[b.opt.fastPG],
		"LOCALPG_SHARED_BUFFERS="+b.opt.sharedBuffers)
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("localpg.sh start: %w", err)
	}
	b.cleanups = append(b.cleanups, func() {
		if b.opt.keep {
			b.logf("kept cluster in %s", b.clusterDir)
			return
		}
		stop := exec.Command("bash", "scripts/localpg.sh", "stop", b.clusterDir)
		stop.Stderr = b.log
		_ = stop.Run()
	})
	b.serverDSN = strings.TrimSpace(string(out))
	b.postmaster = postmasterPID(b.clusterDir)
	return nil
}

func (b *bench) dbVersion(ctx context.Context) string {
	var v string
	_ = b.db.GetContext(ctx, &v, `SHOW server_version`)
	var fsync, sync string
	_ = b.db.GetContext(ctx, &fsync, `SHOW fsync`)
	_ = b.db.GetContext(ctx, &sync, `SHOW synchronous_commit`)
	return fmt.Sprintf("PostgreSQL %s (fsync=%s, synchronous_commit=%s)", v, fsync, sync)
}

// startServer builds and starts the service on a free loopback port, or adopts -url.
func (b *bench) startServer(ctx context.Context) error {
	if b.opt.url != "" {
		b.baseURL, b.pid = strings.TrimRight(b.opt.url, "/"), b.opt.pid
		return waitHealthy(ctx, b.baseURL)
	}
	bin := b.opt.serverBin
	if bin == "" {
		bin = filepath.Join(b.tmp, "messaging")
		b.logf("building the service")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/messaging")
		build.Stdout, build.Stderr = b.log, b.log
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/messaging (run from the repository root): %w", err)
		}
	}
	tcpAddr, err := freeAddr()
	if err != nil {
		return err
	}
	addr := tcpAddr.String()
	b.admin = "bench-admin-" + randomHex(16)
	env := append(os.Environ(),
		"DATABASE_URL="+b.dsn,
		"LISTEN_ADDR="+addr,
		"ADMIN_TOKEN="+b.admin,
		"RATE_LIMIT_PER_MINUTE=1000000000",
		"DB_MAX_CONNS="+strconv.Itoa(b.opt.dbMaxConns),
		"PURGE_INTERVAL=24h",
	)
	if b.opt.gogc != "" {
		env = append(env, "GOGC="+b.opt.gogc)
	}
	if b.opt.gomaxprocs != "" {
		env = append(env, "GOMAXPROCS="+b.opt.gomaxprocs)
	}
	if b.opt.gomemlimit != "" {
		env = append(env, "GOMEMLIMIT="+b.opt.gomemlimit)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	// The request log goes through a pipe, as it would to a log collector; the bench keeps the
	// end of it to show when something fails.
	b.serverLog = &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = b.serverLog, b.serverLog
	gone, err := b.startOwned(cmd, 20*time.Second)
	if err != nil {
		return err
	}
	b.server, b.serverGone, b.pid, b.baseURL = cmd, gone, cmd.Process.Pid, "http://"+addr
	b.logf("service pid %d on %s (DB_MAX_CONNS=%d GOGC=%q GOMAXPROCS=%q GOMEMLIMIT=%q)", b.pid, addr, b.opt.dbMaxConns, b.opt.gogc, b.opt.gomaxprocs, b.opt.gomemlimit)
	if err := waitHealthy(ctx, b.baseURL); err != nil {
		return fmt.Errorf("%w; the service's output ends with:\n%s", err, b.serverLog.String())
	}
	return nil
}

// freeAddr returns an address on 127.0.0.1 with a TCP port that nobody listens on now.
func freeAddr() (*net.TCPAddr, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr), nil
}

// waitHealthy polls /readyz for at most 60 seconds.
func waitHealthy(ctx context.Context, base string) error {
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < 600 && time.Now().Before(deadline); i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("the service did not become ready within 60 s")
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(dsn)"
	}
	return u.Redacted()
}

// statFields are the fields of /proc/<pid>/stat after the command name (field 2, which may
// contain spaces): f[0] is field 3.
func statFields(pid int) ([]string, error) {
	if pid == 0 {
		return nil, errors.New("no pid")
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, errors.New("malformed stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return nil, errors.New("malformed stat")
	}
	return f, nil
}

// ticks is the sum of the clock-tick fields of f (statFields) at the indexes given, as time.
func ticks(f []string, at ...int) time.Duration {
	var n int64
	for _, i := range at {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		n += v
	}
	return time.Duration(n) * time.Second / clockTicks
}

// procCPU is the CPU time so far of the process pid (utime and stime, fields 14 and 15).
func procCPU(pid int) (time.Duration, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	return ticks(f, 11, 12), nil
}

// clusterCPU is the CPU time so far of the postmaster with pid and of its children (the
// backends and workers): of those alive, their own; of those that exited and were reaped,
// what the postmaster counts for them (cutime and cstime, fields 16 and 17), so that a worker
// that ends during a scenario neither takes its time out of the sum nor goes uncounted.
// 0 when the cluster is not ours to watch.
func clusterCPU(postmaster int) time.Duration {
	f, err := statFields(postmaster)
	if err != nil {
		return 0
	}
	total, ppid := ticks(f, 11, 12, 13, 14), strconv.Itoa(postmaster)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == postmaster {
			continue
		}
		if f, err := statFields(pid); err == nil && f[1] == ppid { // field 4: ppid
			total += ticks(f, 11, 12)
		}
	}
	return total
}

// postmasterPID reads the pid of the cluster in dir from its postmaster.pid.
func postmasterPID(dir string) int {
	if dir == "" {
		return 0
	}
	data, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// clockTicks is USER_HZ, which Linux fixes at 100 for /proc on every architecture Go supports.
const clockTicks = 100

// procPeakRSS is VmHWM of a process in bytes.
func procPeakRSS(pid int) (int64, error) {
	if pid == 0 {
		return 0, errors.New("no pid")
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM")
}

// machineCPU returns the busy and total jiffies of all CPUs, from /proc/stat.
func machineCPU() (busy, total int64) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	f := strings.Fields(string(line))
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest time is already in user
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// startOwned starts cmd and registers its stop as a cleanup: SIGTERM, then SIGKILL after grace.
// The channel is closed when the process has exited.
func (b *bench) startOwned(cmd *exec.Cmd, grace time.Duration) (<-chan struct{}, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	b.cleanups = append(b.cleanups, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(grace):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	return exited, nil
}
