package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// The comparison with a comparable open-source message store (-peer ejabberd): Debian's
// ejabberd, an XMPP server that archives every message for both ends (mod_mam) and queues it
// for a recipient who is not connected (mod_offline), both in PostgreSQL. It runs on the same
// cluster as the service, in a database of its own seeded with the same conversations, and each
// of its scenarios runs right after the service's of the same name, at the same concurrency:
//
//   - send: the HTTP API's send_message (mod_admin_extra), a chat message from one end of a
//     random conversation to the other. ejabberd checks no credentials here (the API is open
//     to loopback); the service checks the partner's key and the conversation's windows.
//   - conversation: an XMPP client logged in as a property asks the archive (XEP-0313) for the
//     newest 50 messages with one of its guests; the service answers a whole 50-message
//     conversation over HTTP.
//
// A conversation of the service's seed is, in ejabberd, guest user g<i> (one per conversation)
// and property user p<k> (one per property partner).

// ejabberdSchema is the PostgreSQL schema that Debian's ejabberd package ships.
const ejabberdSchema = "/usr/share/ejabberd/sql/pg.sql"

// ejabberdInstall says how to get what -peer ejabberd needs.
const ejabberdInstall = "apt-get install ejabberd erlang-p1-pgsql (make bench-peer does it)"

// ejabberdPassword is every seeded user's password (stored in plain, as configured).
const ejabberdPassword = "pw"

// peerScenarios are the scenarios that have an ejabberd counterpart.
var peerScenarios = []string{"send", "send-low", "conversation"}

// ejabberd is the running peer.
type ejabberd struct {
	ctl     []string // ejabberdctl and its options
	httpURL string
	c2sAddr string
	pid     int
	db      *sqlx.DB
	props   []string    // property users, by property partner index
	convs   [][2]string // guest and property user of each seeded conversation
	byProp  [][]int     // conversation indexes of each property user
}

// ejabberdConfig is the configuration: the shipped defaults for what is not named, the SQL
// database for everything, the HTTP API and plain client connections on loopback, no limit on
// a recipient's queue (the service has none; with a limit, ejabberd counts the queue at every
// message), and the info log, which has one line per API call as the service has one per
// request.
const ejabberdConfig = `loglevel: info
hosts:
  - localhost
default_db: sql
sql_type: pgsql
sql_server: %q
sql_port: %s
sql_database: %q
sql_username: %q
sql_password: %q
sql_pool_size: %d
auth_method: sql
auth_password_format: plain
listen:
  - port: %d
    ip: "127.0.0.1"
    module: ejabberd_http
    request_handlers:
      /api: mod_http_api
  - port: %d
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    access: c2s
    starttls: false
acl:
  loopback:
    ip:
      - 127.0.0.0/8
access_rules:
  c2s:
    allow: all
shaper_rules:
  max_user_offline_messages: infinity
api_permissions:
  "loopback":
    who:
      ip: 127.0.0.0/8
    what: "*"
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
modules:
  mod_admin_extra: {}
  mod_mam:
    db_type: sql
    default: always
  mod_offline:
    db_type: sql
    access_max_user_messages: max_user_offline_messages
`

// startEjabberd creates ejabberd's database on the cluster, seeds it like sd, and starts
// ejabberd with a pool as large as the service's.
func (b *bench) startEjabberd(ctx context.Context, sd *seedData) (*ejabberd, error) {
	ctlPath, err := exec.LookPath("ejabberdctl")
	if err != nil {
		return nil, fmt.Errorf("-peer ejabberd: ejabberdctl not found: %s", ejabberdInstall)
	}
	schema, err := os.ReadFile(ejabberdSchema)
	if err != nil {
		return nil, fmt.Errorf("-peer ejabberd: %w: %s", err, ejabberdInstall)
	}
	// ejabberdctl runs ejabberd as the user "ejabberd", and only root or that user may call it.
	owner, err := user.Lookup("ejabberd")
	if err != nil {
		return nil, fmt.Errorf("-peer ejabberd: %w", err)
	}
	if uid := strconv.Itoa(os.Getuid()); uid != "0" && uid != owner.Uid {
		return nil, errors.New("-peer ejabberd: run the bench as root or as the user ejabberd (ejabberdctl allows no one else)")
	}

	e := &ejabberd{}
	dbName := "ejabberd_" + randomHex(4)
	dsn, err := b.createDatabase(ctx, dbName)
	if err != nil {
		return nil, err
	}
	if e.db, err = sqlx.ConnectContext(ctx, "postgres", dsn); err != nil {
		return nil, err
	}
	b.cleanups = append(b.cleanups, func() { e.db.Close() })
	if _, err := e.db.ExecContext(ctx, string(schema)); err != nil {
		return nil, fmt.Errorf("ejabberd schema: %w", err)
	}
	if err := e.seed(ctx, sd, b.opt.concurrency/2); err != nil {
		return nil, fmt.Errorf("ejabberd seed: %w", err)
	}
	if _, err := e.db.ExecContext(ctx, `CHECKPOINT`); err != nil {
		b.logf("checkpoint after seeding ejabberd skipped: %v", err)
	}

	dir := filepath.Join(b.tmp, "ejabberd")
	for _, d := range []string{dir, filepath.Join(dir, "spool"), filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	u, err := url.Parse(b.serverDSN)
	if err != nil {
		return nil, err
	}
	password, _ := u.User.Password()
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	c2sAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(ejabberdConfig, u.Hostname(), port, dbName, u.User.Username(), password, b.opt.dbMaxConns,
		httpAddr.Port, c2sAddr.Port)
	// ejabberdctl.cfg of our own: the shipped one names /etc/ejabberd/ejabberd.yml.
	ctlCfg := "ERL_OPTIONS=\"-env ERL_CRASH_DUMP_BYTES 0\"\nEJABBERD_PID_PATH=" + filepath.Join(dir, "ejabberd.pid") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "ejabberd.yml"), []byte(cfg), 0o640); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "ejabberdctl.cfg"), []byte(ctlCfg), 0o644); err != nil {
		return nil, err
	}
	if err := chownTree(dir, owner); err != nil {
		return nil, err
	}
	e.ctl = []string{ctlPath, "--config-dir", dir, "--spool", filepath.Join(dir, "spool"), "--logs", filepath.Join(dir, "logs"),
		"--node", "msgbench" + randomHex(4) + "@localhost"}
	e.httpURL, e.c2sAddr = "http://"+httpAddr.String(), c2sAddr.String()
	b.logf("starting ejabberd (log: %s)", filepath.Join(dir, "logs", "ejabberd.log"))
	if out, err := e.run(ctx, "start"); err != nil {
		return nil, fmt.Errorf("ejabberdctl start: %w: %s", err, out)
	}
	b.cleanups = append(b.cleanups, func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = e.run(ctx, "stop")
		_, _ = e.run(ctx, "stopped")
		if e.pid > 0 {
			if p, err := os.FindProcess(e.pid); err == nil && p.Signal(nil) == nil {
				_ = p.Kill()
			}
		}
	})
	if err := e.waitStarted(ctx, dir); err != nil {
		return nil, err
	}
	b.logf("ejabberd pid %d, HTTP API on %s, clients on %s", e.pid, e.httpURL, e.c2sAddr)
	return e, nil
}

func (e *ejabberd) run(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, e.ctl[0], append(e.ctl[1:], args...)...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// waitStarted waits up to a minute for the node to report itself started and the HTTP API to
// answer, and reads the pid.
func (e *ejabberd) waitStarted(ctx context.Context, dir string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if e.pid == 0 {
			if data, err := os.ReadFile(filepath.Join(dir, "ejabberd.pid")); err == nil {
				e.pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
			}
		}
		if out, err := e.run(ctx, "status"); err == nil && strings.Contains(out, "status: started") && e.pid > 0 {
			resp, err := http.Post(e.httpURL+"/api/status", "application/json", strings.NewReader("{}"))
			if err == nil {
				resp.Body.Close()
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("ejabberd did not start within a minute; see %s", filepath.Join(dir, "logs"))
}

// seed copies the service seed's conversations into ejabberd's tables: a user per guest and
// per property partner, and each conversation's messages twice, once in each end's archive,
// as mod_mam stores them.
func (e *ejabberd) seed(ctx context.Context, sd *seedData, nProps int) error {
	e.props = make([]string, nProps)
	e.byProp = make([][]int, nProps)
	for k := range e.props {
		e.props[k] = "p" + strconv.Itoa(k)
	}
	e.convs = make([][2]string, len(sd.convs))
	for i, c := range sd.convs {
		e.convs[i] = [2]string{"g" + strconv.Itoa(i), e.props[c.Property]}
		e.byProp[c.Property] = append(e.byProp[c.Property], i)
	}
	users := append(append([]string{}, e.props...), make([]string, len(e.convs))...)
	for i := range e.convs {
		users[nProps+i] = e.convs[i][0]
	}
	if err := copyRows(ctx, e.db, "users", []string{"username", "password"}, len(users), func(i int) []any {
		return []any{users[i], ejabberdPassword}
	}); err != nil {
		return err
	}
	type row struct {
		conv, k int
	}
	var rows []row
	for i, c := range sd.convs {
		for k := 0; k < c.Messages; k++ {
			rows = append(rows, row{i, k})
		}
	}
	// Two archive rows per message: the sender's and the recipient's. The timestamp is the
	// archive's id (microseconds), unique per user.
	start := time.Now().Add(-time.Duration(len(rows)) * 10 * time.Millisecond).UnixMicro()
	return copyRows(ctx, e.db, "archive", []string{"username", "timestamp", "peer", "bare_peer", "xml", "txt", "kind", "nick"}, 2*len(rows), func(j int) []any {
		r := rows[j/2]
		from, to := e.convs[r.conv][0], e.convs[r.conv][1]
		if r.k%2 == 1 {
			from, to = to, from
		}
		owner, peer := from, to
		if j%2 == 1 {
			owner, peer = to, from
		}
		body := "Hello! We arrive around 18:00 with two children. Is late check-in possible? Message " + strconv.Itoa(j/2)
		xml := "<message to='" + to + "@localhost' from='" + from + "@localhost' type='chat' id='seed" + strconv.Itoa(j/2) +
			"' xmlns='jabber:client'><body>" + body + "</body></message>"
		return []any{owner, start + int64(j/2)*10_000, peer + "@localhost", peer + "@localhost", xml, body, "chat", ""}
	})
}

// chownTree gives dir and everything in it to u.
func chownTree(dir string, u *user.User) error {
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if os.Getuid() != 0 {
		return nil
	}
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(path, uid, gid)
	})
}

// send posts a chat message from one end of a random conversation to the other and reports
// the body it sent when ejabberd answered 200 with its success code, 0.
func (e *ejabberd) send(ctx context.Context, hc *http.Client, w *worker, n int) (string, error) {
	c := e.convs[w.rng.IntN(len(e.convs))]
	from, to := c[0], c[1]
	if w.rng.IntN(2) == 0 {
		from, to = to, from
	}
	body := "Thanks, see you at 18:00! (bench " + strconv.Itoa(w.id) + "-" + strconv.Itoa(n) + ")"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.httpURL+"/api/send_message",
		strings.NewReader(`{"type":"chat","from":"`+from+`@localhost","to":"`+to+`@localhost","subject":"","body":"`+body+`"}`))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(bytes.TrimSpace(answer), []byte("0")) {
		return "", fmt.Errorf("send_message: %d %.200s", resp.StatusCode, answer)
	}
	return body, nil
}

// peerWarmUp gives ejabberd the service's warm-up: archive reads, unmeasured, for -warmup.
func (l *load) peerWarmUp(ctx context.Context, e *ejabberd) error {
	pl := *l
	pl.pid = e.pid
	res, err := pl.peerConversation(ctx, e, l.b.opt.concurrency, l.b.opt.warmup, "ejabberd/warm-up")
	if err == nil {
		l.b.logf("ejabberd warm-up: %d reads in %s, not measured", res[0].Requests+res[0].Errors, l.b.opt.warmup)
	}
	return err
}

// peerScenario runs ejabberd's counterpart of the scenario name, measuring ejabberd's process.
func (l *load) peerScenario(ctx context.Context, e *ejabberd, name string) ([]scenarioResult, error) {
	pl := *l
	pl.pid = e.pid
	switch name {
	case "send":
		return pl.peerSend(ctx, e, "ejabberd/send", l.b.opt.concurrency)
	case "send-low":
		return pl.peerSend(ctx, e, "ejabberd/send-low", l.b.opt.lowConc)
	case "conversation":
		return pl.peerConversation(ctx, e, l.b.opt.concurrency, l.b.opt.duration, "ejabberd/conversation")
	}
	return nil, fmt.Errorf("no ejabberd counterpart of %q", name)
}

// peerSend: clients send chat messages through ejabberd's HTTP API. Checked afterwards, as for
// the service: every message answered 200 is archived exactly twice (once for each end) and
// queued once for its recipient, none of whom is connected; and nothing was stored beyond the
// 200s and the failed requests.
func (l *load) peerSend(ctx context.Context, e *ejabberd, name string, n int) ([]scenarioResult, error) {
	var archiveBefore, spoolBefore int64
	if err := e.db.GetContext(ctx, &archiveBefore, `SELECT COALESCE(max(id), 0) FROM archive`); err != nil {
		return nil, err
	}
	if err := e.db.GetContext(ctx, &spoolBefore, `SELECT COALESCE(max(seq), 0) FROM spool`); err != nil {
		return nil, err
	}
	perWorker := make([][]string, n)
	ws, m := l.run(ctx, name, n, l.b.opt.duration, func(w *worker, _ time.Time) bool {
		_ = w.do("send", func() error {
			body, err := e.send(ctx, l.hc, w, len(perWorker[w.id]))
			if err == nil {
				perWorker[w.id] = append(perWorker[w.id], body)
			}
			return err
		})
		return false
	})
	failed, answered := 0, map[string]bool{}
	for _, w := range ws {
		failed += w.ops["send"].errorsOrZero()
	}
	for _, s := range perWorker {
		for _, body := range s {
			answered[body] = true
		}
	}
	rows, err := e.db.QueryxContext(ctx, `SELECT txt, count(*) FROM archive WHERE id > $1 GROUP BY txt`, archiveBefore)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	archived, wrong, extra := 0, 0, 0
	for rows.Next() {
		var txt string
		var count int
		if err := rows.Scan(&txt, &count); err != nil {
			return nil, err
		}
		switch {
		case !answered[txt]:
			extra++
		case count != 2:
			wrong++
		default:
			archived++
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var queued int
	if err := e.db.GetContext(ctx, &queued, `SELECT count(*) FROM spool WHERE seq > $1`, spoolBefore); err != nil {
		return nil, err
	}
	checks := []check{
		{Name: "every 200 archived for both ends", OK: archived == len(answered) && wrong == 0,
			Detail: fmt.Sprintf("%d of %d answered messages archived twice, %d archived another number of times", archived, len(answered), wrong)},
		{Name: "queued for the recipient", OK: queued >= len(answered) && queued <= len(answered)+failed,
			Detail: fmt.Sprintf("%d queue rows for %d answered messages and %d failed requests", queued, len(answered), failed)},
		{Name: "nothing stored beyond the 200s", OK: extra <= failed,
			Detail: fmt.Sprintf("%d archived messages without a 200, %d failed requests", extra, failed)},
	}
	return results(name, n, ws, m, checks), nil
}

// peerConversation: each client is logged in over XMPP as a property user (logging in is not
// measured) and asks the archive for the newest 50 messages with one of its guests, at random.
func (l *load) peerConversation(ctx context.Context, e *ejabberd, n int, d time.Duration, name string) ([]scenarioResult, error) {
	var props []int // property users with conversations
	for k, convs := range e.byProp {
		if len(convs) > 0 {
			props = append(props, k)
		}
	}
	if len(props) == 0 {
		return nil, errors.New("ejabberd: no seeded conversations")
	}
	conns := make([]*xmppConn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range conns {
		var err error
		if conns[i], err = dialXMPP(ctx, e.c2sAddr, "localhost", e.props[props[i%len(props)]], ejabberdPassword); err != nil {
			return nil, fmt.Errorf("ejabberd: log in as %s: %w", e.props[props[i%len(props)]], err)
		}
	}
	ws, m := l.run(ctx, name, n, d, func(w *worker, _ time.Time) bool {
		convs := e.byProp[props[w.id%len(props)]]
		ci := convs[w.rng.IntN(len(convs))]
		want := min(50, l.sd.convs[ci].Messages)
		_ = w.do("conversation", func() error {
			got, err := conns[w.id].mamQuery(e.convs[ci][0]+"@localhost", 50)
			if err == nil && (got < want || got > 50) {
				err = fmt.Errorf("archive of %s with %s: want %d to 50 messages, got %d", e.convs[ci][1], e.convs[ci][0], want, got)
			}
			return err
		})
		return false
	})
	return results(name, n, ws, m, nil), nil
}
