package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/lib/pq"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/messaging"
)

// maxIterations bounds every worker loop in count, in addition to its time limit.
const maxIterations = 10_000_000

// requestTimeout bounds every request.
const requestTimeout = 30 * time.Second

// load runs the scenarios against the service with the seeded data.
type load struct {
	b       *bench
	sd      *seedData
	hc      *http.Client
	clients []*api.Client // one per seeded partner
	pid     int           // the server measured: the service, or a peer (-peer)
	sent    bool          // a scenario has sent messages: pages may no longer be newest first by timestamp
}

func newLoad(b *bench, sd *seedData) *load {
	// One transport for all partners: a connection per client, kept between requests. The
	// client has no Timeout of its own: with a RoundTripper other than net/http's, it would
	// start a goroutine and a timer per request to enforce it; loopTransport bounds each
	// request itself.
	hc := &http.Client{Transport: newLoopTransport()}
	l := &load{b: b, sd: sd, hc: hc, pid: b.pid}
	for _, p := range sd.partners {
		l.clients = append(l.clients, &api.Client{BaseURL: b.baseURL, AffiliateID: p.ID, APIKey: p.Key, HTTP: hc})
	}
	return l
}

func (l *load) peakRSSMB() float64 {
	rss, err := procPeakRSS(l.pid)
	if err != nil {
		return 0
	}
	return float64(rss) / (1 << 20)
}

func (l *load) scenario(ctx context.Context, name string) ([]scenarioResult, error) {
	o := l.b.opt
	if slices.Contains([]string{"send", "send-low", "mixed", "windows", "attachments"}, name) {
		defer func() { l.sent = true }()
	}
	switch name {
	case "latest":
		return l.latest(ctx, o.concurrency), nil
	case "conversation":
		return l.conversation(ctx, o.concurrency), nil
	case "drain":
		return l.drain(ctx, o.concurrency)
	case "send":
		return l.send(ctx, "send", o.concurrency)
	case "send-low":
		return l.send(ctx, "send-low", o.lowConc)
	case "mixed":
		return l.mixed(ctx, o.concurrency), nil
	case "windows":
		return l.windows(ctx, o.concurrency)
	case "attachments":
		return l.attachments(ctx, o.concurrency)
	}
	return nil, fmt.Errorf("unknown scenario %q", name)
}

// opStats are one worker's measurements of one kind of request.
type opStats struct {
	lat      []time.Duration
	errors   int
	firstErr string
}

// worker is one closed-loop client.
type worker struct {
	id  int
	rng *rand.Rand
	ops map[string]*opStats
	buf []byte // the last raw answer; reused, so that reading pages does not churn memory
}

// do times fn as one request of kind op.
func (w *worker) do(op string, fn func() error) error {
	s := w.ops[op]
	if s == nil {
		s = &opStats{}
		w.ops[op] = s
	}
	start := time.Now()
	err := fn()
	if err != nil {
		s.errors++
		if s.firstErr == "" {
			s.firstErr = err.Error()
		}
		return err
	}
	s.lat = append(s.lat, time.Since(start))
	return nil
}

// run runs body in n workers until d has passed (or body reports that it is done), each at
// most maxIterations times, and measures the server over the whole span.
func (l *load) run(ctx context.Context, name string, n int, d time.Duration, body func(w *worker, deadline time.Time) (done bool)) ([]*worker, measurement) {
	workers := make([]*worker, n)
	for i := range workers {
		workers[i] = &worker{id: i, rng: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano()))), ops: map[string]*opStats{}}
	}
	m := l.startMeasure()
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < maxIterations && ctx.Err() == nil && time.Now().Before(deadline); i++ {
				if body(w, deadline) {
					return
				}
			}
		}()
	}
	wg.Wait()
	return workers, l.stopMeasure(m)
}

// measurement is the server's and the machine's use of CPU over a scenario.
type measurement struct {
	start       time.Time
	cpu         time.Duration
	pgCPU       time.Duration // the cluster's, when the bench started it
	selfCPU     time.Duration // the load generator's
	busy, total int64
	elapsed     time.Duration
	serverCPU   time.Duration
	busyPct     float64
	peakRSSMB   float64
}

func (l *load) startMeasure() measurement {
	m := measurement{start: time.Now()}
	m.cpu, _ = procCPU(l.pid)
	m.pgCPU = clusterCPU(l.b.postmaster)
	m.selfCPU, _ = procCPU(os.Getpid())
	m.busy, m.total = machineCPU()
	return m
}

func (l *load) stopMeasure(m measurement) measurement {
	m.elapsed = time.Since(m.start)
	cpu, err := procCPU(l.pid)
	if err == nil {
		m.serverCPU = cpu - m.cpu
	}
	if m.pgCPU > 0 {
		m.pgCPU = clusterCPU(l.b.postmaster) - m.pgCPU
	}
	self, _ := procCPU(os.Getpid())
	m.selfCPU = self - m.selfCPU
	busy, total := machineCPU()
	if total > m.total {
		m.busyPct = 100 * float64(busy-m.busy) / float64(total-m.total)
	}
	m.peakRSSMB = l.peakRSSMB()
	return m
}

// results turns the workers' measurements into one row for the scenario and, when it mixes
// several kinds of request, one row for each kind.
func results(name string, clients int, ws []*worker, m measurement, checks []check) []scenarioResult {
	merged := map[string]*opStats{}
	var kinds []string
	all := &opStats{}
	for _, w := range ws {
		for op, s := range w.ops {
			t := merged[op]
			if t == nil {
				t = &opStats{}
				merged[op] = t
				kinds = append(kinds, op)
			}
			t.lat = append(t.lat, s.lat...)
			t.errors += s.errors
			if t.firstErr == "" {
				t.firstErr = s.firstErr
			}
			all.lat = append(all.lat, s.lat...)
			all.errors += s.errors
			if all.firstErr == "" {
				all.firstErr = s.firstErr
			}
		}
	}
	slices.Sort(kinds)
	row := func(rowName string, s *opStats) scenarioResult {
		r := scenarioResult{Name: rowName, Clients: clients, Seconds: m.elapsed.Seconds(), Requests: len(s.lat), Errors: s.errors, FirstError: s.firstErr}
		r.RPS = float64(len(s.lat)) / m.elapsed.Seconds()
		slices.Sort(s.lat)
		r.P50ms, r.P90ms, r.P99ms, r.MaxMs = pct(s.lat, 50), pct(s.lat, 90), pct(s.lat, 99), pct(s.lat, 100)
		return r
	}
	top := row(name, all)
	if top.Requests+top.Errors > 0 {
		n := float64(top.Requests + top.Errors)
		top.ServerCPUPerReqUs = float64(m.serverCPU.Microseconds()) / n
		top.PostgresCPUPerReqUs = float64(m.pgCPU.Microseconds()) / n
		top.BenchCPUPerReqUs = float64(m.selfCPU.Microseconds()) / n
	}
	top.MachineBusyPct, top.ServerPeakRSSMB, top.Checks = m.busyPct, m.peakRSSMB, checks
	out := []scenarioResult{top}
	if len(kinds) > 1 {
		for _, k := range kinds {
			out = append(out, row(name+"/"+k, merged[k]))
		}
	}
	return out
}

func pct(sorted []time.Duration, p int) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	i = min(max(i-1, 0), len(sorted)-1)
	return float64(sorted[i].Microseconds()) / 1000
}

// fetchLatest gets a page and checks that no message is in it twice. With seeded it also checks
// that the page is newest first, which only seeded messages show by their timestamps: the
// service orders by its sequence, and concurrent sends may commit out of timestamp order.
// It returns the page's message ids. The answer is read raw into w's buffer, and its ids and
// timestamps picked out by their keys, which cannot occur unescaped inside a JSON string:
// decoding a whole page costs the co-located load generator as much CPU as the service spends
// writing it. Each message object opens with its id; its timestamp is searched backwards from
// the start of the next one, so the page is scanned about once.
func fetchLatest(ctx context.Context, w *worker, c *api.Client, seeded bool) ([]string, error) {
	if err := c.Do(ctx, http.MethodPost, "/messages/latest", nil, &w.buf, nil); err != nil {
		return nil, err
	}
	return latestIDs(w.buf, seeded)
}

// latestIDs is fetchLatest's reading of a page.
func latestIDs(body []byte, seeded bool) ([]string, error) {
	if !bytes.HasPrefix(body, []byte(`{"request_id":`)) || !bytes.HasSuffix(bytes.TrimSpace(body), []byte("]}}")) {
		return nil, fmt.Errorf("not a latest answer: %.200s", body)
	}
	const idKey, stampKey = `{"message_id":"`, `"timestamp":"`
	starts := indexAll(body, idKey)
	ids := make([]string, len(starts))
	var previous []byte
	for i, start := range starts {
		end := len(body)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		msg := body[start:end]
		k := bytes.LastIndex(msg, []byte(stampKey))
		if len(msg) < len(idKey)+36 || k < 0 || k+len(stampKey)+len(api.TimeFormat) > len(msg) {
			return nil, fmt.Errorf("message %d of the page has no id or timestamp: %.200s", i, msg)
		}
		ids[i] = string(msg[len(idKey) : len(idKey)+36])
		stamp := msg[k+len(stampKey) : k+len(stampKey)+len(api.TimeFormat)]
		if seeded && i > 0 && bytes.Compare(stamp, previous) > 0 {
			return nil, errors.New("page not newest first")
		}
		previous = stamp
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			return nil, fmt.Errorf("message %s twice in one page", id)
		}
		seen[id] = true
	}
	return ids, nil
}

// indexAll returns the offset of every occurrence of key in body.
func indexAll(body []byte, key string) []int {
	out := make([]int, 0, messaging.LatestPageSize)
	for i := 0; i < len(body); {
		j := bytes.Index(body[i:], []byte(key))
		if j < 0 {
			break
		}
		out = append(out, i+j)
		i += j + len(key)
	}
	return out
}

// valuesOf returns the n bytes after every occurrence of key in body.
func valuesOf(body []byte, key string, n int) []string {
	var out []string
	for i := 0; i < len(body); {
		j := bytes.Index(body[i:], []byte(key))
		if j < 0 || i+j+len(key)+n > len(body) {
			break
		}
		start := i + j + len(key)
		out = append(out, string(body[start:start+n]))
		i = start + n
	}
	return out
}

// latest: every client polls its own partner's queue, which holds more than a page, and does
// not confirm: each answer must be a full page of 100.
func (l *load) latest(ctx context.Context, n int) []scenarioResult {
	ws, m := l.run(ctx, "latest", n, l.b.opt.duration, func(w *worker, _ time.Time) bool {
		c := l.clients[w.id%len(l.clients)]
		_ = w.do("latest", func() error {
			ids, err := fetchLatest(ctx, w, c, !l.sent)
			if err == nil && len(ids) != messaging.LatestPageSize {
				err = fmt.Errorf("short page: %d messages", len(ids))
			}
			return err
		})
		return false
	})
	return results("latest", n, ws, m, nil)
}

// warmUp reads for the -warmup time, unmeasured, before the first scenario: latest pages that
// are not confirmed and whole conversations, which change nothing. It brings the service (its
// pool and each connection's prepared statements), PostgreSQL's buffers and the machine's
// caches to where a running service has them, so that the first scenario, and the growth check
// between a freshly seeded small and large database, do not measure a cold start. It returns
// the requests made and the first error seen.
func (l *load) warmUp(ctx context.Context) (int, string) {
	ws, _ := l.run(ctx, "warm-up", l.b.opt.concurrency, l.b.opt.warmup, func(w *worker, _ time.Time) bool {
		if w.id%2 == 0 {
			_ = w.do("latest", func() error {
				_, err := fetchLatest(ctx, w, l.clients[w.id%len(l.clients)], true)
				return err
			})
		} else {
			l.readConversation(ctx, w)
		}
		return false
	})
	n, firstErr := 0, ""
	for _, w := range ws {
		for _, s := range w.ops {
			n += len(s.lat) + s.errors
			if firstErr == "" {
				firstErr = s.firstErr
			}
		}
	}
	return n, firstErr
}

func (l *load) readConversation(ctx context.Context, w *worker) {
	conv := l.sd.convs[w.rng.IntN(len(l.sd.convs))]
	caller := conv.Property
	if w.rng.IntN(2) == 0 {
		caller = conv.Guest
	}
	req := api.ConversationRequest{Accommodation: strconv.FormatInt(conv.Accommodation, 10), Conversation: conv.ID.String()}
	_ = w.do("conversation", func() error {
		if err := l.clients[caller].Do(ctx, http.MethodPost, "/messages/conversations", req, &w.buf, nil); err != nil {
			return err
		}
		body := w.buf
		// The answer names the conversation, each message and the two participants by "id".
		ids := valuesOf(body, `"id":"`, 36)
		if !bytes.HasPrefix(body, []byte(`{"request_id":`)) || len(ids) < 3 || ids[0] != req.Conversation || len(ids)-3 < conv.Messages {
			return fmt.Errorf("conversation %s: want it with at least %d messages, got %.200s", req.Conversation, conv.Messages, body)
		}
		return nil
	})
}

// conversation: clients read random whole conversations, as the guest or the property.
func (l *load) conversation(ctx context.Context, n int) []scenarioResult {
	ws, m := l.run(ctx, "conversation", n, l.b.opt.duration, func(w *worker, _ time.Time) bool {
		l.readConversation(ctx, w)
		return false
	})
	return results("conversation", n, ws, m, nil)
}

// sent is a message the service answered 200 for.
type sent struct {
	id   string
	conv uuid.UUID
}

// send posts req as c and returns the new message's id. Like a latest page, the answer is read
// raw into w's buffer and the id picked out by its key (sentID), rather than decoded.
func (w *worker) send(ctx context.Context, c *api.Client, req api.SendRequest) (string, error) {
	if err := c.Do(ctx, http.MethodPost, "/messages/send", req, &w.buf, nil); err != nil {
		return "", err
	}
	return sentID(w.buf)
}

// sentID is the message id of a send's answer (api.Response of api.SendData).
func sentID(body []byte) (string, error) {
	if ids := valuesOf(body, `"data":{"message":"`, 36); len(ids) == 1 {
		return ids[0], nil
	}
	return "", fmt.Errorf("not a send answer: %.200s", body)
}

func (l *load) sendOne(ctx context.Context, w *worker, out *[]sent) {
	conv := l.sd.convs[w.rng.IntN(len(l.sd.convs))]
	caller := conv.Property
	if w.rng.IntN(2) == 0 {
		caller = conv.Guest
	}
	req := api.SendRequest{Accommodation: strconv.FormatInt(conv.Accommodation, 10), Conversation: conv.ID.String(),
		Content: "Thanks, see you at 18:00! (bench " + strconv.Itoa(w.id) + "-" + strconv.Itoa(len(*out)) + ")"}
	_ = w.do("send", func() error {
		id, err := w.send(ctx, l.clients[caller], req)
		if err == nil {
			*out = append(*out, sent{id: id, conv: conv.ID})
		}
		return err
	})
}

// send: clients post messages to random conversations, as the guest or the property. Checked
// afterwards: every message answered 200 is stored exactly once, in its conversation, and is
// queued for both partners; and no message was stored without a 200 beyond the requests that
// failed.
func (l *load) send(ctx context.Context, name string, n int) ([]scenarioResult, error) {
	seqBefore, err := l.newestSeq(ctx)
	if err != nil {
		return nil, err
	}
	perWorker := make([][]sent, n)
	ws, m := l.run(ctx, name, n, l.b.opt.duration, func(w *worker, _ time.Time) bool {
		l.sendOne(ctx, w, &perWorker[w.id])
		return false
	})
	checks, err := l.checkSent(ctx, slices.Concat(perWorker...), seqBefore, failures(ws, "send"))
	if err != nil {
		return nil, err
	}
	return results(name, n, ws, m, checks), nil
}

// newestSeq is the sequence number of the newest stored message: what a scenario stores
// comes after it.
func (l *load) newestSeq(ctx context.Context) (int64, error) {
	var seq int64
	err := l.b.db.GetContext(ctx, &seq, `SELECT COALESCE(max(seq), 0) FROM messages`)
	return seq, err
}

// failures counts the workers' failed requests of the kinds ops (of every kind when none).
func failures(ws []*worker, ops ...string) int {
	n := 0
	for _, w := range ws {
		for op, s := range w.ops {
			if len(ops) == 0 || slices.Contains(ops, op) {
				n += s.errors
			}
		}
	}
	return n
}

func (l *load) checkSent(ctx context.Context, all []sent, seqBefore int64, failed int) ([]check, error) {
	ids := make([]string, len(all))
	want := make(map[string]uuid.UUID, len(all))
	dupAnswers := 0
	for i, s := range all {
		ids[i] = s.id
		if _, ok := want[s.id]; ok {
			dupAnswers++
		}
		want[s.id] = s.conv
	}
	found, wrongConv := map[string]int{}, 0
	const batch = 10000
	for from := 0; from < len(ids); from += batch {
		var rows []struct {
			ID   string    `db:"id"`
			Conv uuid.UUID `db:"conversation_id"`
		}
		err := l.b.db.SelectContext(ctx, &rows, `SELECT id::text AS id, conversation_id FROM messages WHERE id = ANY($1::uuid[])`,
			pq.StringArray(ids[from:min(from+batch, len(ids))]))
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			found[r.ID]++
			if want[r.ID] != r.Conv {
				wrongConv++
			}
		}
	}
	missing, twice := 0, 0
	for id := range want {
		switch found[id] {
		case 0:
			missing++
		case 1:
		default:
			twice++
		}
	}
	var stored, queued int
	if err := l.b.db.GetContext(ctx, &stored, `SELECT count(*) FROM messages WHERE seq > $1`, seqBefore); err != nil {
		return nil, err
	}
	if err := l.b.db.GetContext(ctx, &queued, `SELECT count(*) FROM deliveries d JOIN messages m ON m.seq = d.seq WHERE d.seq > $1 AND m.id = ANY($2::uuid[])`, seqBefore, pq.StringArray(ids)); err != nil {
		return nil, err
	}
	return []check{
		{Name: "every 200 stored exactly once", OK: len(all) > 0 && missing == 0 && twice == 0 && dupAnswers == 0 && wrongConv == 0,
			Detail: fmt.Sprintf("%d answered 200; %d missing, %d stored twice, %d ids answered twice, %d in the wrong conversation", len(all), missing, twice, dupAnswers, wrongConv)},
		{Name: "nothing stored without a 200", OK: stored >= len(all) && stored-len(all) <= failed,
			Detail: fmt.Sprintf("%d new rows for %d answers of 200 and %d failed requests", stored, len(all), failed)},
		{Name: "every sent message queued for both partners", OK: queued == 2*len(all),
			Detail: fmt.Sprintf("%d queue entries for %d messages", queued, len(all))},
	}, nil
}

// pageEvent is one latest answer in the drain: when it was asked for, and what it held.
type pageEvent struct {
	partner int
	start   time.Time
	ids     []string
}

// confirmEvent is one confirm in the drain: when its answer arrived, and the ids it confirmed.
type confirmEvent struct {
	partner int
	done    time.Time
	ids     []string
}

// drain: pollers call latest and confirm every page until their partner's queue is empty.
// Each of o.drainPollers pollers per partner is a slot; slots are dealt to the clients, which
// work through theirs one after the other. Checked afterwards against a snapshot of the queues
// taken before: every queued message was delivered to its partner, and with one poller per
// partner exactly once; no message came back in a page asked for after its confirm had been
// answered; each confirm answer listed every id it was sent; the queues are empty.
func (l *load) drain(ctx context.Context, n int) ([]scenarioResult, error) {
	partnerIDs := make([]int64, len(l.sd.partners))
	for i, p := range l.sd.partners {
		partnerIDs[i] = p.ID
	}
	var snapshot []struct {
		Partner int64  `db:"partner_id"`
		ID      string `db:"id"`
	}
	err := l.b.db.SelectContext(ctx, &snapshot, `SELECT d.partner_id, m.id::text AS id FROM deliveries d JOIN messages m ON m.seq = d.seq WHERE d.partner_id = ANY($1)`, pq.Int64Array(partnerIDs))
	if err != nil {
		return nil, err
	}
	index := make(map[int64]int, len(partnerIDs))
	for i, id := range partnerIDs {
		index[id] = i
	}
	expected := make([]map[string]bool, len(partnerIDs))
	for i := range expected {
		expected[i] = map[string]bool{}
	}
	for _, s := range snapshot {
		expected[index[s.Partner]][s.ID] = true
	}

	type slot struct{ partner int }
	var slots []slot
	for p := range partnerIDs {
		for j := 0; j < l.b.opt.drainPollers; j++ {
			slots = append(slots, slot{p})
		}
	}
	n = min(n, len(slots))
	pages := make([][]pageEvent, n)
	confirms := make([][]confirmEvent, n)
	var confirmMismatch []string
	var mu sync.Mutex
	maxPages := len(snapshot)/messaging.LatestPageSize*2 + 100
	ws, m := l.run(ctx, "drain", n, l.b.opt.drainTimeout, func(w *worker, deadline time.Time) bool {
		for s := w.id; s < len(slots); s += n {
			p := slots[s].partner
			c := l.clients[p]
			for i := 0; i < maxPages && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				start := time.Now()
				var ids []string
				if w.do("latest", func() (err error) { ids, err = fetchLatest(ctx, w, c, !l.sent); return err }) != nil {
					continue
				}
				if len(ids) == 0 {
					break
				}
				pages[w.id] = append(pages[w.id], pageEvent{partner: p, start: start, ids: ids})
				var got []string
				if w.do("confirm", func() (err error) { got, err = c.Confirm(ctx, ids); return err }) != nil {
					continue
				}
				confirms[w.id] = append(confirms[w.id], confirmEvent{partner: p, done: time.Now(), ids: got})
				if !slices.Equal(got, ids) {
					mu.Lock()
					confirmMismatch = append(confirmMismatch, fmt.Sprintf("partner %d: sent %d ids, %d confirmed", partnerIDs[p], len(ids), len(got)))
					mu.Unlock()
				}
			}
		}
		return true
	})

	// Verification.
	type key struct {
		partner int
		id      string
	}
	delivered := map[key]int{}
	confirmedAt := map[key]time.Time{}
	for _, cs := range confirms {
		for _, c := range cs {
			for _, id := range c.ids {
				k := key{c.partner, id}
				if t, ok := confirmedAt[k]; !ok || c.done.Before(t) {
					confirmedAt[k] = c.done
				}
			}
		}
	}
	redelivered := 0
	for _, ps := range pages {
		for _, pg := range ps {
			for _, id := range pg.ids {
				k := key{pg.partner, id}
				delivered[k]++
				if t, ok := confirmedAt[k]; ok && pg.start.After(t) {
					redelivered++
				}
			}
		}
	}
	missing, unexpected, twice, total := 0, 0, 0, 0
	for p, set := range expected {
		total += len(set)
		for id := range set {
			switch delivered[key{p, id}] {
			case 0:
				missing++
			case 1:
			default:
				twice++
			}
		}
	}
	for k := range delivered {
		if !expected[k.partner][k.id] {
			unexpected++
		}
	}
	var left int
	if err := l.b.db.GetContext(ctx, &left, `SELECT count(*) FROM deliveries WHERE partner_id = ANY($1)`, pq.Int64Array(partnerIDs)); err != nil {
		return nil, err
	}
	onceOK := twice == 0 || l.b.opt.drainPollers > 1
	checks := []check{
		{Name: "every queued message delivered", OK: total > 0 && missing == 0 && unexpected == 0,
			Detail: fmt.Sprintf("%d queued for %d partners; %d not delivered, %d delivered that were not queued", total, len(partnerIDs), missing, unexpected)},
		{Name: "delivered exactly once before its confirm", OK: onceOK && redelivered == 0,
			Detail: fmt.Sprintf("%d pollers per partner; %d delivered more than once (allowed only with several pollers), %d delivered again after their confirm was answered", l.b.opt.drainPollers, twice, redelivered)},
		{Name: "every confirm answered with its ids", OK: len(confirmMismatch) == 0, Detail: fmt.Sprintf("%d mismatches %v", len(confirmMismatch), first(confirmMismatch, 3))},
		{Name: "queues empty afterwards", OK: left == 0, Detail: fmt.Sprintf("%d entries left", left)},
	}
	out := results("drain", n, ws, m, checks)
	out[0].DeliveredPerSec = float64(total-missing) / m.elapsed.Seconds()
	return out, nil
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// mixed is the realistic blend: 40% of the clients poll (latest, and confirm what came) for a
// different partner at every turn, 35% send as guests and properties, 25% read whole
// conversations as dashboards do.
func (l *load) mixed(ctx context.Context, n int) []scenarioResult {
	pollers, senders := n*40/100, n*35/100
	perWorker := make([][]sent, n)
	ws, m := l.run(ctx, "mixed", n, l.b.opt.duration, func(w *worker, _ time.Time) bool {
		switch {
		case w.id < pollers:
			c := l.clients[w.rng.IntN(len(l.clients))]
			var ids []string
			if w.do("latest", func() (err error) { ids, err = fetchLatest(ctx, w, c, false); return err }) == nil && len(ids) > 0 {
				_ = w.do("confirm", func() error {
					got, err := c.Confirm(ctx, ids)
					if err == nil && len(got) != len(ids) {
						// Another poller of the same partner may have confirmed some first;
						// they are still listed as confirmed, so the answer is always whole.
						err = fmt.Errorf("confirm: sent %d ids, %d confirmed", len(ids), len(got))
					}
					return err
				})
			}
		case w.id < pollers+senders:
			l.sendOne(ctx, w, &perWorker[w.id])
		default:
			l.readConversation(ctx, w)
		}
		return false
	})
	return results("mixed", n, ws, m, nil)
}
