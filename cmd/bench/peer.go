package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/jmoiron/sqlx"
)

// The comparison with comparable open-source message stores (-peer): XMPP servers that archive
// every message for both ends (XEP-0313, message archive management) and queue it for a
// recipient who is not connected (offline messages), both in PostgreSQL. Each runs on the same
// cluster as the service, in a database of its own seeded with the same conversations, and each
// of its scenarios runs right after the service's of the same name, at the same concurrency:
//
//   - send: a chat message between the two ends of a conversation, acknowledged once stored
//     (ejabberd.go and prosody.go say how each peer is sent to); the service checks the
//     partner's key and the conversation's windows as well.
//   - conversation: an XMPP client logged in as a property asks the archive for the newest 50
//     messages with one of its guests; the service answers a whole 50-message conversation over
//     HTTP.
//
// A conversation of the service's seed is, in a peer, guest user g<i> (one per conversation) and
// property user p<k> (one per property partner), both on the domain "localhost".

// knownPeers are the stores -peer accepts; their scenarios run in the order -peer names them.
var knownPeers = []string{"ejabberd", "prosody"}

// peerScenarios are the scenarios that have a peer counterpart.
var peerScenarios = []string{"send", "send-low", "conversation"}

// peerPassword is every seeded user's password (stored in plain, as configured).
const peerPassword = "pw"

// peerBody is the text of every seeded archive message.
const peerBody = "Hello! We arrive around 18:00 with two children. Is late check-in possible? Message "

// peer is a running comparable store.
type peer interface {
	xmpp() *xmppPeer
	// send runs the send scenario name with n clients and checks what was stored.
	send(ctx context.Context, l *load, name string, n int) ([]scenarioResult, error)
}

// xmppPeer is what every peer has: the seed's users, where clients log in, the server's
// process and its database.
type xmppPeer struct {
	name    string
	c2sAddr string
	pid     int
	db      *sqlx.DB
	props   []string    // property users, by property partner index
	convs   [][2]string // guest and property user of each seeded conversation
	byProp  [][]int     // conversation indexes of each property user
}

// newXMPPPeer maps the seed's conversations to users: nProps property users and a guest user
// per conversation.
func newXMPPPeer(name string, sd *seedData, nProps int) *xmppPeer {
	p := &xmppPeer{name: name, props: make([]string, nProps), byProp: make([][]int, nProps), convs: make([][2]string, len(sd.convs))}
	for k := range p.props {
		p.props[k] = "p" + strconv.Itoa(k)
	}
	for i, c := range sd.convs {
		p.convs[i] = [2]string{"g" + strconv.Itoa(i), p.props[c.Property]}
		p.byProp[c.Property] = append(p.byProp[c.Property], i)
	}
	return p
}

// users lists every user: the property users, then the guest users.
func (p *xmppPeer) users() []string {
	out := append([]string{}, p.props...)
	for _, c := range p.convs {
		out = append(out, c[0])
	}
	return out
}

// archived is one seeded message: sender and recipient users and its number.
type archived struct {
	from, to string
	n        int
}

// messages lists the seed's messages in order, alternating between the guest and the property
// within each conversation, as the service's seed does.
func (p *xmppPeer) messages(sd *seedData) []archived {
	var out []archived
	for i, c := range sd.convs {
		for k := 0; k < c.Messages; k++ {
			from, to := p.convs[i][0], p.convs[i][1]
			if k%2 == 1 {
				from, to = to, from
			}
			out = append(out, archived{from, to, len(out)})
		}
	}
	return out
}

// openPeerDB creates the peer's database on the bench's cluster, connects to it and returns its
// name.
func (b *bench) openPeerDB(ctx context.Context, p *xmppPeer) (string, error) {
	name := p.name + "_" + randomHex(4)
	dsn, err := b.createDatabase(ctx, name)
	if err != nil {
		return "", err
	}
	if p.db, err = sqlx.ConnectContext(ctx, "postgres", dsn); err != nil {
		return "", err
	}
	b.cleanups = append(b.cleanups, func() { p.db.Close() })
	return name, nil
}

// clusterLogin is how a peer logs in to the bench's cluster: host, port, user and password.
func (b *bench) clusterLogin() (host, port, user, password string, err error) {
	u, err := url.Parse(b.serverDSN)
	if err != nil {
		return "", "", "", "", err
	}
	password, _ = u.User.Password()
	if port = u.Port(); port == "" {
		port = "5432"
	}
	return u.Hostname(), port, u.User.Username(), password, nil
}

// seeded checkpoints the cluster after a peer's seed, so that the seed's writes are not
// flushed during the scenarios.
func (b *bench) seeded(ctx context.Context, x *xmppPeer) {
	if _, err := x.db.ExecContext(ctx, `CHECKPOINT`); err != nil {
		b.logf("checkpoint after seeding %s skipped: %v", x.name, err)
	}
}

// startPeer starts the peer name, seeded like sd.
func (b *bench) startPeer(ctx context.Context, name string, sd *seedData) (peer, error) {
	switch name {
	case "ejabberd":
		return b.startEjabberd(ctx, sd)
	case "prosody":
		return b.startProsody(ctx, sd)
	}
	return nil, fmt.Errorf("-peer: unknown %q", name)
}

// serviceUser returns the system user that the package of the peer name runs it as (the
// peer's name), when the bench runs as root; nil otherwise: the peer then runs as the bench's
// user.
func serviceUser(name string) (*user.User, error) {
	if os.Getuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("-peer %s: %w", name, err)
	}
	return u, nil
}

// chownTree gives dir and everything in it to u (nothing when u is nil).
func chownTree(dir string, u *user.User) error {
	if u == nil || os.Getuid() != 0 {
		return nil
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(path, uid, gid)
	})
}

// peerWarmUp gives a peer the service's warm-up: archive reads, unmeasured, for -warmup.
func (l *load) peerWarmUp(ctx context.Context, p peer) error {
	x := p.xmpp()
	res, err := l.peerConversation(ctx, x, l.b.opt.concurrency, l.b.opt.warmup, x.name+"/warm-up")
	if err == nil {
		l.b.logf("%s warm-up: %d reads in %s, not measured", x.name, res[0].Requests+res[0].Errors, l.b.opt.warmup)
	}
	return err
}

// peerScenario runs a peer's counterpart of the scenario name, measuring the peer's process.
func (l *load) peerScenario(ctx context.Context, p peer, name string) ([]scenarioResult, error) {
	x := p.xmpp()
	pl := *l
	pl.pid = x.pid
	switch name {
	case "send":
		return p.send(ctx, &pl, x.name+"/send", l.b.opt.concurrency)
	case "send-low":
		return p.send(ctx, &pl, x.name+"/send-low", l.b.opt.lowConc)
	case "conversation":
		return pl.peerConversation(ctx, x, l.b.opt.concurrency, l.b.opt.duration, x.name+"/conversation")
	}
	return nil, fmt.Errorf("no %s counterpart of %q", x.name, name)
}

// propertyLogins logs n clients in, each as a property user with conversations (in turn), and
// returns the connections and each one's property index. Logging in is not measured.
func (x *xmppPeer) propertyLogins(ctx context.Context, n int) ([]*xmppConn, []int, error) {
	var props []int // property users with conversations
	for k, convs := range x.byProp {
		if len(convs) > 0 {
			props = append(props, k)
		}
	}
	if len(props) == 0 {
		return nil, nil, fmt.Errorf("%s: no seeded conversations", x.name)
	}
	conns, of := make([]*xmppConn, n), make([]int, n)
	for i := range conns {
		of[i] = props[i%len(props)]
		var err error
		if conns[i], err = dialXMPP(ctx, x.c2sAddr, "localhost", x.props[of[i]], peerPassword); err != nil {
			closeAll(conns)
			return nil, nil, fmt.Errorf("%s: log in as %s: %w", x.name, x.props[of[i]], err)
		}
	}
	return conns, of, nil
}

func closeAll(conns []*xmppConn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// peerConversation: each client is logged in over XMPP as a property user and asks the archive
// for the newest 50 messages with one of its guests, at random.
func (l *load) peerConversation(ctx context.Context, x *xmppPeer, n int, d time.Duration, name string) ([]scenarioResult, error) {
	conns, of, err := x.propertyLogins(ctx, n)
	if err != nil {
		return nil, err
	}
	defer closeAll(conns)
	ws, m := l.run(ctx, name, n, d, func(w *worker, _ time.Time) bool {
		convs := x.byProp[of[w.id]]
		ci := convs[w.rng.IntN(len(convs))]
		want := min(50, l.sd.convs[ci].Messages)
		_ = w.do("conversation", func() error {
			got, err := conns[w.id].mamQuery(x.convs[ci][0]+"@localhost", 50)
			if err == nil && (got < want || got > 50) {
				err = fmt.Errorf("archive of %s with %s: want %d to 50 messages, got %d", x.convs[ci][1], x.convs[ci][0], want, got)
			}
			return err
		})
		return false
	})
	return results(name, n, ws, m, nil), nil
}

// peerSends runs n clients for -d, each sending with send (which returns the body of its k-th
// message once the peer acknowledged it, bodies being unique), and returns the workers, the
// measurement, the acknowledged bodies and the number of failed sends.
func (l *load) peerSends(ctx context.Context, name string, n int, send func(w *worker, k int) (string, error)) ([]*worker, measurement, map[string]bool, int) {
	perWorker := make([][]string, n)
	ws, m := l.run(ctx, name, n, l.b.opt.duration, func(w *worker, _ time.Time) bool {
		_ = w.do("send", func() error {
			body, err := send(w, len(perWorker[w.id]))
			if err == nil {
				perWorker[w.id] = append(perWorker[w.id], body)
			}
			return err
		})
		return false
	})
	answered := map[string]bool{}
	for _, body := range slices.Concat(perWorker...) {
		answered[body] = true
	}
	return ws, m, answered, failures(ws, "send")
}

// countBodies runs query (rows of a message body and a count) and returns the counts by body.
func countBodies(ctx context.Context, db *sqlx.DB, query string, args ...any) (map[string]int, error) {
	rows, err := db.QueryxContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var body string
		var count int
		if err := rows.Scan(&body, &count); err != nil {
			return nil, err
		}
		out[body] += count
	}
	return out, rows.Err()
}

// sendChecks are the checks of a peer's send, as for the service: every message acknowledged
// is archived exactly twice (once for each end) and queued once for its recipient, none of
// whom is connected; and nothing was stored beyond the acknowledged messages and the failed
// requests. archivedTimes counts each stored body's archive rows; queued counts the new queue
// rows.
func sendChecks(answered map[string]bool, failed int, archivedTimes map[string]int, queued int) []check {
	archived, wrong, extra := 0, 0, 0
	for body, count := range archivedTimes {
		switch {
		case !answered[body]:
			extra++
		case count != 2:
			wrong++
		default:
			archived++
		}
	}
	return []check{
		{Name: "every acknowledged message archived for both ends", OK: archived == len(answered) && wrong == 0,
			Detail: fmt.Sprintf("%d of %d acknowledged messages archived twice, %d archived another number of times", archived, len(answered), wrong)},
		{Name: "queued for the recipient", OK: queued >= len(answered) && queued <= len(answered)+failed,
			Detail: fmt.Sprintf("%d queue rows for %d acknowledged messages and %d failed requests", queued, len(answered), failed)},
		{Name: "nothing stored beyond the acknowledged", OK: extra <= failed,
			Detail: fmt.Sprintf("%d archived messages without an acknowledgment, %d failed requests", extra, failed)},
	}
}
