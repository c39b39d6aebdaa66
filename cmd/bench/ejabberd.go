package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ejabberd as a peer (-peer ejabberd; see peer.go): Debian's ejabberd, with mod_mam for the
// archive and mod_offline for the queue. Its send is the HTTP API's send_message
// (mod_admin_extra), a chat message from one end of a random conversation to the other,
// acknowledged by its answer; ejabberd checks no credentials there (the API is open to
// loopback).

// ejabberdSchema is the PostgreSQL schema that Debian's ejabberd package ships.
const ejabberdSchema = "/usr/share/ejabberd/sql/pg.sql"

// ejabberdInstall says how to get what -peer ejabberd needs.
const ejabberdInstall = "apt-get install ejabberd erlang-p1-pgsql (make bench-peer does it)"

// ejabberd is the running peer.
type ejabberd struct {
	*xmppPeer
	ctl     []string // ejabberdctl and its options
	httpURL string
}

func (e *ejabberd) xmpp() *xmppPeer { return e.xmppPeer }

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

	e := &ejabberd{xmppPeer: newXMPPPeer("ejabberd", sd, b.opt.concurrency/2)}
	dbName, err := b.openPeerDB(ctx, e.xmppPeer)
	if err != nil {
		return nil, err
	}
	if _, err := e.db.ExecContext(ctx, string(schema)); err != nil {
		return nil, fmt.Errorf("ejabberd schema: %w", err)
	}
	if err := e.seed(ctx, sd); err != nil {
		return nil, fmt.Errorf("ejabberd seed: %w", err)
	}
	b.seeded(ctx, e.xmppPeer)

	dir := filepath.Join(b.tmp, "ejabberd")
	for _, d := range []string{dir, filepath.Join(dir, "spool"), filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	host, port, pgUser, password, err := b.clusterLogin()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	c2sAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(ejabberdConfig, host, port, dbName, pgUser, password, b.opt.dbMaxConns,
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
func (e *ejabberd) seed(ctx context.Context, sd *seedData) error {
	users := e.users()
	if err := copyRows(ctx, e.db, "users", []string{"username", "password"}, len(users), func(i int) []any {
		return []any{users[i], peerPassword}
	}); err != nil {
		return err
	}
	msgs := e.messages(sd)
	// Two archive rows per message: the sender's and the recipient's. The timestamp is the
	// archive's id (microseconds), unique per user.
	start := time.Now().Add(-time.Duration(len(msgs)) * 10 * time.Millisecond).UnixMicro()
	return copyRows(ctx, e.db, "archive", []string{"username", "timestamp", "peer", "bare_peer", "xml", "txt", "kind", "nick"}, 2*len(msgs), func(j int) []any {
		m := msgs[j/2]
		owner, peer := m.from, m.to
		if j%2 == 1 {
			owner, peer = m.to, m.from
		}
		body := peerBody + strconv.Itoa(m.n)
		xml := "<message to='" + m.to + "@localhost' from='" + m.from + "@localhost' type='chat' id='seed" + strconv.Itoa(m.n) +
			"' xmlns='jabber:client'><body>" + body + "</body></message>"
		return []any{owner, start + int64(m.n)*10_000, peer + "@localhost", peer + "@localhost", xml, body, "chat", ""}
	})
}

// post posts a chat message from one end of a random conversation to the other and reports
// the body it sent when ejabberd answered 200 with its success code, 0.
func (e *ejabberd) post(ctx context.Context, hc *http.Client, w *worker, n int) (string, error) {
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

// send: clients send chat messages through ejabberd's HTTP API; a 200 is the acknowledgment.
// Checked afterwards with sendChecks.
func (e *ejabberd) send(ctx context.Context, l *load, name string, n int) ([]scenarioResult, error) {
	var archiveBefore, spoolBefore int64
	if err := e.db.GetContext(ctx, &archiveBefore, `SELECT COALESCE(max(id), 0) FROM archive`); err != nil {
		return nil, err
	}
	if err := e.db.GetContext(ctx, &spoolBefore, `SELECT COALESCE(max(seq), 0) FROM spool`); err != nil {
		return nil, err
	}
	ws, m, answered, failed := l.peerSends(ctx, name, n, func(w *worker, k int) (string, error) {
		return e.post(ctx, l.hc, w, k)
	})
	times, err := countBodies(ctx, e.db, `SELECT txt, count(*) FROM archive WHERE id > $1 GROUP BY txt`, archiveBefore)
	if err != nil {
		return nil, err
	}
	var queued int
	if err := e.db.GetContext(ctx, &queued, `SELECT count(*) FROM spool WHERE seq > $1`, spoolBefore); err != nil {
		return nil, err
	}
	return results(name, n, ws, m, sendChecks(answered, failed, times, queued)), nil
}
