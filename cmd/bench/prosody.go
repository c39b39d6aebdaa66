package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Prosody as a peer (-peer prosody; see peer.go): Debian's Prosody, with mod_mam for the archive
// and mod_offline for the queue, stored in PostgreSQL by mod_storage_sql. Debian's Prosody has
// no HTTP API to send with, so each send client is logged in over XMPP as a property user and
// sends to one of its guests, at random; the ping that follows each message is its
// acknowledgment (xmppConn.sendAcked). Prosody is one process with one database connection:
// that is its design, not a setting.

// prosodyInstall says how to get what -peer prosody needs.
const prosodyInstall = "apt-get install prosody lua-dbi-postgresql (make bench-peer does it)"

// prosodyConfig is the configuration: Prosody's defaults for what is not named; SQL storage for
// everything; plain client connections on loopback, with SASL PLAIN allowed on them (as for
// ejabberd); the modules a chat archive needs; and no expiry of the archive, so that no cleanup
// runs during the bench.
const prosodyConfig = `-- Written by the bench.
data_path = %q
log = { info = %q }
modules_enabled = { "saslauth", "ping", "mam", "offline" }
modules_disabled = { "s2s" }
c2s_ports = { %d }
c2s_interfaces = { "127.0.0.1" }
s2s_ports = { }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "sql"
sql = { driver = "PostgreSQL", database = %q, username = %q, password = %q, host = %q, port = %s }
archive_expires_after = "never"
default_archive_policy = true
VirtualHost "localhost"
`

// prosody is the running peer.
type prosody struct {
	*xmppPeer
}

func (p *prosody) xmpp() *xmppPeer { return p.xmppPeer }

// startProsody creates Prosody's database on the cluster, seeds it like sd and starts Prosody.
// Prosody's own prosodyctl registers the first user, which creates its tables as Prosody
// defines them; the rest is copied in.
func (b *bench) startProsody(ctx context.Context, sd *seedData) (*prosody, error) {
	bin, err := exec.LookPath("prosody")
	if err != nil {
		return nil, fmt.Errorf("-peer prosody: prosody not found: %s", prosodyInstall)
	}
	ctl, err := exec.LookPath("prosodyctl")
	if err != nil {
		return nil, fmt.Errorf("-peer prosody: prosodyctl not found: %s", prosodyInstall)
	}
	// Prosody refuses to run as root; as root, the bench runs it as the package's user.
	owner, err := serviceUser("prosody")
	if err != nil {
		return nil, err
	}
	p := &prosody{newXMPPPeer("prosody", sd, b.opt.concurrency/2)}
	dbName, err := b.openPeerDB(ctx, p.xmppPeer)
	if err != nil {
		return nil, err
	}

	dir := filepath.Join(b.tmp, "prosody")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	host, port, pgUser, password, err := b.clusterLogin()
	if err != nil {
		return nil, err
	}
	c2sAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p.c2sAddr = c2sAddr.String()
	cfgPath := filepath.Join(dir, "prosody.cfg.lua")
	cfg := fmt.Sprintf(prosodyConfig, filepath.Join(dir, "data"), filepath.Join(dir, "prosody.log"), c2sAddr.Port,
		dbName, pgUser, password, host, port)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o640); err != nil {
		return nil, err
	}
	if err := chownTree(dir, owner); err != nil {
		return nil, err
	}
	as := func(cmd *exec.Cmd) *exec.Cmd {
		cmd.Dir = dir
		if owner != nil {
			uid, _ := strconv.Atoi(owner.Uid)
			gid, _ := strconv.Atoi(owner.Gid)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		}
		return cmd
	}

	first := p.props[0]
	if out, err := as(exec.CommandContext(ctx, ctl, "--config", cfgPath, "register", first, "localhost", peerPassword)).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("prosodyctl register: %w: %s", err, out)
	}
	if err := p.seed(ctx, sd, first); err != nil {
		return nil, fmt.Errorf("prosody seed: %w", err)
	}
	b.seeded(ctx, p.xmppPeer)

	logPath := filepath.Join(dir, "prosody.out")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := as(exec.Command(bin, "--config", cfgPath, "-F"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	b.logf("starting prosody (log: %s)", filepath.Join(dir, "prosody.log"))
	exited, err := b.startOwned(cmd, 10*time.Second)
	if err != nil {
		return nil, fmt.Errorf("start prosody: %w", err)
	}
	p.pid = cmd.Process.Pid
	if err := p.waitStarted(ctx, exited, logPath); err != nil {
		return nil, err
	}
	b.logf("prosody pid %d, clients on %s", p.pid, p.c2sAddr)
	return p, nil
}

// waitStarted waits up to a minute for a client to log in.
func (p *prosody) waitStarted(ctx context.Context, exited <-chan struct{}, logPath string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := dialXMPP(ctx, p.c2sAddr, "localhost", p.props[0], peerPassword)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("prosody did not accept a client within a minute: %w; see %s", err, logPath)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return fmt.Errorf("prosody exited; see %s", logPath)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// seed copies the service seed's conversations into Prosody's tables: a user per guest and per
// property partner (but the one prosodyctl registered), and each conversation's messages twice,
// once in each end's archive, as mod_mam stores them.
func (p *prosody) seed(ctx context.Context, sd *seedData, registered string) error {
	var users []string
	for _, u := range p.users() {
		if u != registered {
			users = append(users, u)
		}
	}
	if err := copyRows(ctx, p.db, "prosody", []string{"host", "user", "store", "key", "type", "value"}, len(users), func(i int) []any {
		return []any{"localhost", users[i], "accounts", "password", "string", peerPassword}
	}); err != nil {
		return err
	}
	msgs := p.messages(sd)
	start := time.Now().Add(-time.Duration(len(msgs)) * 10 * time.Millisecond).Unix()
	return copyRows(ctx, p.db, "prosodyarchive", []string{"host", "user", "store", "key", "when", "with", "type", "value"}, 2*len(msgs), func(j int) []any {
		m := msgs[j/2]
		owner, with := m.from, m.to
		if j%2 == 1 {
			owner, with = m.to, m.from
		}
		xml := "<message type='chat' id='seed" + strconv.Itoa(m.n) + "' to='" + m.to + "@localhost' from='" + m.from +
			"@localhost'><body>" + peerBody + strconv.Itoa(m.n) + "</body></message>"
		return []any{"localhost", owner, "archive", "seed" + strconv.Itoa(m.n), start + int64(m.n)/100, with + "@localhost", "xml", xml}
	})
}

// send: each client is logged in as a property user (logging in is not measured) and sends a
// chat message to one of its guests at random, acknowledged by the ping after it. Checked
// afterwards with sendChecks.
func (p *prosody) send(ctx context.Context, l *load, name string, n int) ([]scenarioResult, error) {
	var before int64
	if err := p.db.GetContext(ctx, &before, `SELECT COALESCE(max(sort_id), 0) FROM prosodyarchive`); err != nil {
		return nil, err
	}
	conns, of, err := p.propertyLogins(ctx, n)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	ws, m, answered, failed := l.peerSends(ctx, name, n, func(w *worker, k int) (string, error) {
		convs := p.byProp[of[w.id]]
		guest := p.convs[convs[w.rng.IntN(len(convs))]][0]
		body := "Thanks, see you at 18:00! (bench " + strconv.Itoa(w.id) + "-" + strconv.Itoa(k) + ")"
		return body, conns[w.id].sendAcked(guest+"@localhost", body)
	})
	times, err := countBodies(ctx, p.db, `SELECT substring(value FROM '<body>([^<]*)</body>'), count(*)
		FROM prosodyarchive WHERE sort_id > $1 AND store = 'archive' GROUP BY 1`, before)
	if err != nil {
		return nil, err
	}
	var queued int
	if err := p.db.GetContext(ctx, &queued, `SELECT count(*) FROM prosodyarchive WHERE sort_id > $1 AND store = 'offline'`, before); err != nil {
		return nil, err
	}
	return results(name, n, ws, m, sendChecks(answered, failed, times, queued)), nil
}
