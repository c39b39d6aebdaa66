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
	"strings"
	"sync"
	"sync/atomic"
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
	// history holds the message ids of the conversations that conversation reads pick from,
	// oldest first, once loadHistory has run; readable lists those conversations.
	history  map[uuid.UUID][]string
	readable []benchConv
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
		return l.latest(ctx, o.concurrency)
	case "conversation":
		return l.conversation(ctx, o.concurrency)
	case "drain":
		return l.drain(ctx, o.concurrency)
	case "send":
		return l.send(ctx, "send", o.concurrency)
	case "send-low":
		return l.send(ctx, "send-low", o.lowConc)
	case "mixed":
		return l.mixed(ctx, o.concurrency)
	case "windows":
		return l.windows(ctx, o.concurrency)
	case "attachments":
		return l.attachments(ctx, o.concurrency)
	}
	return nil, fmt.Errorf("unknown scenario %q", name)
}

// opStats are one worker's measurements of one kind of request.
type opStats struct {
	lat        []time.Duration
	errors     int // every failed request, the wrong answers included
	firstErr   string
	wrong      int // answers the contract does not allow
	firstWrong string
}

// wrongAnswer is an answer the contract does not allow to a valid request: a page not as the
// queue holds it, a conversation without its messages, a download without the bytes uploaded.
// A request that fails otherwise (a timeout, a 503) is an error of the load; a wrong answer
// also fails the run ("no wrong answer"), and so does a scenario in which every request failed,
// since then no answer was checked.
type wrongAnswer struct{ msg string }

func (e *wrongAnswer) Error() string { return e.msg }

func wrong(format string, args ...any) error { return &wrongAnswer{fmt.Sprintf(format, args...)} }

// isWrong reports whether err is a wrong answer: one the checks found, or an answer that no
// request of the bench should get: any status but the two the contract gives a valid request
// under load, 429 and 503 (every request it makes is valid, and the ones that expect a refusal
// take it before it comes here).
func isWrong(err error) bool {
	var wa *wrongAnswer
	var apiErr *api.Error
	switch {
	case errors.As(err, &wa):
		return true
	case errors.As(err, &apiErr):
		return apiErr.Status != http.StatusTooManyRequests && apiErr.Status != http.StatusServiceUnavailable
	}
	return false
}

// mayHaveStored reports whether a send that failed with err may have stored its message: any
// failure but a 4xx answer, which must store nothing.
func mayHaveStored(err error) bool {
	var apiErr *api.Error
	return !errors.As(err, &apiErr) || apiErr.Status >= 500
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
		if isWrong(err) {
			s.wrong++
			if s.firstWrong == "" {
				s.firstWrong = err.Error()
			}
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
			all.wrong += s.wrong
			if all.firstWrong == "" {
				all.firstWrong = s.firstWrong
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
	detail := fmt.Sprintf("%d answers; %d wrong", top.Requests+top.Errors, all.wrong)
	if all.wrong > 0 {
		detail += ", the first: " + all.firstWrong
	}
	// A kind of request of which not one was answered without an error had none of its
	// answers checked (a download's bytes, a confirm's ids), though its scenario's other kinds
	// were: that fails the scenario as a whole would.
	var unchecked []string
	for _, k := range kinds {
		if len(merged[k].lat) == 0 {
			unchecked = append(unchecked, k)
		}
	}
	if len(unchecked) > 0 {
		detail += "; not one answered without an error, so nothing was checked, of: " + strings.Join(unchecked, ", ")
	}
	checks = append([]check{{Name: "no wrong answer", OK: all.wrong == 0 && top.Requests > 0 && len(unchecked) == 0, Detail: detail}}, checks...)
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
		return nil, wrong("not a latest answer: %.200s", body)
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
			return nil, wrong("message %d of the page has no id or timestamp: %.200s", i, msg)
		}
		ids[i] = string(msg[len(idKey) : len(idKey)+36])
		stamp := msg[k+len(stampKey) : k+len(stampKey)+len(api.TimeFormat)]
		if seeded && i > 0 && bytes.Compare(stamp, previous) > 0 {
			return nil, wrong("page not newest first")
		}
		previous = stamp
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			return nil, wrong("message %s twice in one page", id)
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

// latest: every client polls its own partner's queue, which holds more than a page unless a
// scenario before confirmed most of it (mixed), and does not confirm: each answer must be the
// page the queue holds, read from the database before the scenario (nothing changes the queues
// during it): its 100 oldest entries, newest first.
func (l *load) latest(ctx context.Context, n int) ([]scenarioResult, error) {
	want, err := l.expectedPages(ctx)
	if err != nil {
		return nil, err
	}
	ws, m := l.run(ctx, "latest", n, l.b.opt.duration, func(w *worker, _ time.Time) bool {
		p := w.id % len(l.clients)
		_ = w.do("latest", func() error {
			ids, err := fetchLatest(ctx, w, l.clients[p], !l.sent)
			if err == nil && !slices.Equal(ids, want[p]) {
				i := 0
				for i < min(len(ids), len(want[p])) && ids[i] == want[p][i] {
					i++
				}
				err = wrong("page of partner %d (%d messages) differs from its queue's %d oldest, newest first, at message %d: %v, want %v",
					l.sd.partners[p].ID, len(ids), messaging.LatestPageSize, i, first(ids[i:], 1), first(want[p][i:], 1))
			}
			return err
		})
		return false
	})
	return results("latest", n, ws, m, nil), nil
}

// expectedPages reads, for every seeded partner, the page its queue holds: the ids of its
// LatestPageSize oldest entries (or all, when it holds fewer), newest first. Every entry the
// bench queues is readable (no seeded stay is past a read window with messages queued), so the
// page is the queue's head.
func (l *load) expectedPages(ctx context.Context) ([][]string, error) {
	partnerIDs := l.sd.partnerIDs()
	var rows []struct {
		Partner int64          `db:"partner_id"`
		IDs     pq.StringArray `db:"ids"`
	}
	err := l.b.db.SelectContext(ctx, &rows, `
SELECT p AS partner_id, ARRAY(
    SELECT m.id::text FROM (SELECT seq FROM deliveries WHERE partner_id = p ORDER BY seq LIMIT $2) d
    JOIN messages m ON m.seq = d.seq ORDER BY d.seq DESC) AS ids
FROM unnest($1::int8[]) WITH ORDINALITY AS x (p, i)
ORDER BY i`, pq.Int64Array(partnerIDs), messaging.LatestPageSize)
	if err != nil {
		return nil, err
	}
	out := make([][]string, len(partnerIDs))
	for i, r := range rows {
		if r.Partner != partnerIDs[i] {
			return nil, fmt.Errorf("expected pages out of order: partner %d at %d", r.Partner, i)
		}
		out[i] = r.IDs // fewer than a page when a scenario before (mixed) confirmed most of the queue
	}
	return out, nil
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

// readConversation reads a random conversation as its guest or property. The answer names the
// conversation, then each message, then the two participants, by "id": it must be that
// conversation with at least its seeded messages, and once loadHistory has run, its messages
// must begin with exactly those stored when it ran, oldest first.
func (l *load) readConversation(ctx context.Context, w *worker) {
	convs := l.sd.convs
	if l.readable != nil {
		convs = l.readable
	}
	conv := convs[w.rng.IntN(len(convs))]
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
		ids := valuesOf(body, `"id":"`, 36)
		if !bytes.HasPrefix(body, []byte(`{"request_id":`)) || len(ids) < 3 || ids[0] != req.Conversation || len(ids)-3 < conv.Messages {
			return wrong("conversation %s: want it with at least %d messages, got %.200s", req.Conversation, conv.Messages, body)
		}
		if want, ok := l.history[conv.ID]; ok {
			if got := ids[1 : len(ids)-2]; len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
				return wrong("conversation %s: %d messages, not beginning with its %d stored, oldest first (the first %v, want %v)",
					req.Conversation, len(got), len(want), first(got, 1), first(want, 1))
			}
		}
		return nil
	})
}

// maxReadable bounds the conversations whose history loadHistory keeps (50 ids each by default).
const maxReadable = 4000

// loadHistory reads the message ids of the conversations that conversation reads pick from from
// then on: every seeded conversation, or maxReadable of them at random when there are more.
func (l *load) loadHistory(ctx context.Context) error {
	convs := l.sd.convs
	if len(convs) > maxReadable {
		convs = make([]benchConv, maxReadable)
		for i, j := range rand.Perm(len(l.sd.convs))[:maxReadable] {
			convs[i] = l.sd.convs[j]
		}
	}
	ids := make(pq.StringArray, len(convs))
	for i, c := range convs {
		ids[i] = c.ID.String()
	}
	var rows []struct {
		Conv uuid.UUID      `db:"conversation_id"`
		IDs  pq.StringArray `db:"ids"`
	}
	if err := l.b.db.SelectContext(ctx, &rows, `
SELECT conversation_id, array_agg(id::text ORDER BY seq) AS ids FROM messages
WHERE conversation_id = ANY($1::uuid[]) GROUP BY conversation_id`, ids); err != nil {
		return err
	}
	l.history = make(map[uuid.UUID][]string, len(rows))
	for _, r := range rows {
		l.history[r.Conv] = r.IDs
	}
	l.readable = convs
	return nil
}

// conversation: clients read random whole conversations, as the guest or the property.
func (l *load) conversation(ctx context.Context, n int) ([]scenarioResult, error) {
	if err := l.loadHistory(ctx); err != nil {
		return nil, err
	}
	ws, m := l.run(ctx, "conversation", n, l.b.opt.duration, func(w *worker, _ time.Time) bool {
		l.readConversation(ctx, w)
		return false
	})
	return results("conversation", n, ws, m, nil), nil
}

// sent is a message the service answered 200 for.
type sent struct {
	id     string
	conv   uuid.UUID
	tag    string         // the send's tag, at the end of its content
	sender messaging.Side // the caller's side
}

// sendLog is what one worker's sends came to: the messages answered 200, and the tags of the
// sends that failed in a way that may have stored their message (see mayHaveStored). Each send
// carries a tag unique in the run, "(bench <worker>-<k>)", at the end of its content.
type sendLog struct {
	ok    []sent
	maybe []string
	n     int // sends tagged
}

// tag returns the next send's tag.
func (s *sendLog) tag(w *worker) string {
	s.n++
	return "(bench " + strconv.Itoa(w.id) + "-" + strconv.Itoa(s.n) + ")"
}

// record notes the outcome of the send m (m.id is the answer's message id): m on success,
// else its tag when the send may have stored it.
func (s *sendLog) record(m sent, err error) {
	switch {
	case err == nil:
		s.ok = append(s.ok, m)
	case mayHaveStored(err):
		s.maybe = append(s.maybe, m.tag)
	}
}

// merged is the logs of all workers as one.
func merged(logs []sendLog) sendLog {
	var out sendLog
	for _, s := range logs {
		out.ok = append(out.ok, s.ok...)
		out.maybe = append(out.maybe, s.maybe...)
	}
	return out
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
	return "", wrong("not a send answer: %.200s", body)
}

func (l *load) sendOne(ctx context.Context, w *worker, log *sendLog) {
	conv := l.sd.convs[w.rng.IntN(len(l.sd.convs))]
	caller := conv.Property
	if w.rng.IntN(2) == 0 {
		caller = conv.Guest
	}
	tag := log.tag(w)
	req := api.SendRequest{Accommodation: strconv.FormatInt(conv.Accommodation, 10), Conversation: conv.ID.String(),
		Content: "Thanks, see you at 18:00! " + tag}
	_ = w.do("send", func() error {
		id, err := w.send(ctx, l.clients[caller], req)
		log.record(sent{id: id, conv: conv.ID, tag: tag, sender: l.sd.partners[caller].Kind}, err)
		return err
	})
}

// send: clients post messages to random conversations, as the guest or the property. Checked
// afterwards (checkSent): every message answered 200 is stored exactly once, in its
// conversation, with its send's content and sender, and is queued for its two partners; and
// nothing else was stored but the messages of sends that failed in transit.
func (l *load) send(ctx context.Context, name string, n int) ([]scenarioResult, error) {
	seqBefore, err := l.newestSeq(ctx)
	if err != nil {
		return nil, err
	}
	logs := make([]sendLog, n)
	ws, m := l.run(ctx, name, n, l.b.opt.duration, func(w *worker, _ time.Time) bool {
		l.sendOne(ctx, w, &logs[w.id])
		return false
	})
	checks, err := l.checkSent(ctx, merged(logs), seqBefore, true)
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

// checkSent checks what the sends of log stored, against every message stored after seqBefore
// (nothing but the scenario's sends stores messages while it runs): every message answered 200
// is stored exactly once, in its conversation, with its send's content (by its tag) and the
// caller's side as sender; every other message stored is that of a send
// that failed in transit (by its tag), each at most once; and with queues, every message
// answered 200 is queued for exactly the two partners of its conversation (not in a scenario
// whose pollers confirm as it runs).
func (l *load) checkSent(ctx context.Context, log sendLog, seqBefore int64, queues bool) ([]check, error) {
	want := make(map[string]sent, len(log.ok))
	dupAnswers := 0
	for _, s := range log.ok {
		if _, ok := want[s.id]; ok {
			dupAnswers++
		}
		want[s.id] = s
	}
	maybe := make(map[string]bool, len(log.maybe))
	for _, t := range log.maybe {
		maybe[t] = true
	}
	var rows []struct {
		ID     string         `db:"id"`
		Conv   uuid.UUID      `db:"conversation_id"`
		Tag    string         `db:"tag"`
		Sender messaging.Side `db:"sender"`
	}
	if err := l.b.db.SelectContext(ctx, &rows, `
SELECT id::text AS id, conversation_id, COALESCE(substring(content from '\(bench [0-9]+-[0-9]+\)$'), '') AS tag, sender
FROM messages WHERE seq > $1`, seqBefore); err != nil {
		return nil, err
	}
	found, wrongConv, wrongSend, inTransit, unexplained := map[string]int{}, 0, 0, 0, []string{}
	for _, r := range rows {
		s, answered := want[r.ID]
		switch {
		case answered:
			found[r.ID]++
			if r.Conv != s.conv {
				wrongConv++
			}
			if r.Tag != s.tag || r.Sender != s.sender {
				wrongSend++ // another send's content, or the other side's message
			}
		case maybe[r.Tag]:
			maybe[r.Tag] = false // one message per send
			inTransit++
		default:
			unexplained = append(unexplained, fmt.Sprintf("%s %q", r.ID, r.Tag))
		}
	}
	missing := 0
	for id := range want {
		if found[id] == 0 {
			missing++
		}
	}
	checks := []check{
		{Name: "every 200 stored exactly once", OK: len(log.ok) > 0 && missing == 0 && dupAnswers == 0 && wrongConv == 0 && wrongSend == 0,
			Detail: fmt.Sprintf("%d answered 200; %d missing, %d ids answered twice, %d in the wrong conversation, %d with another send's content or sender",
				len(log.ok), missing, dupAnswers, wrongConv, wrongSend)},
		{Name: "nothing stored but the 200s", OK: len(unexplained) == 0,
			Detail: fmt.Sprintf("%d new rows: %d answered 200, %d of the %d sends that failed in transit, %d of no such send%s",
				len(rows), len(rows)-inTransit-len(unexplained), inTransit, len(log.maybe), len(unexplained), listed(unexplained))},
	}
	if !queues {
		return checks, nil
	}
	partnersOf := map[uuid.UUID][2]int64{}
	convs := l.sd.convs
	for _, set := range l.sd.windows {
		convs = slices.Concat(convs, set.convs)
	}
	for _, c := range convs {
		partnersOf[c.ID] = [2]int64{l.sd.partners[c.Property].ID, l.sd.partners[c.Guest].ID}
	}
	var queued []struct {
		ID      string    `db:"id"`
		Partner int64     `db:"partner_id"`
		Conv    uuid.UUID `db:"conversation_id"`
	}
	if err := l.b.db.SelectContext(ctx, &queued, `SELECT message_id::text AS id, partner_id, conversation_id FROM deliveries WHERE seq > $1`, seqBefore); err != nil {
		return nil, err
	}
	entries := map[string][]int64{}
	badEntry := 0
	for _, q := range queued {
		if s, ok := want[q.ID]; ok {
			entries[q.ID] = append(entries[q.ID], q.Partner)
			if q.Conv != s.conv {
				badEntry++
			}
		}
	}
	wrongPartners := 0
	for id, s := range want {
		got, p := entries[id], partnersOf[s.conv]
		slices.Sort(got)
		if !slices.Equal(got, []int64{min(p[0], p[1]), max(p[0], p[1])}) {
			wrongPartners++
		}
	}
	return append(checks, check{Name: "every sent message queued for its two partners", OK: wrongPartners == 0 && badEntry == 0,
		Detail: fmt.Sprintf("%d queue entries for %d messages; %d messages not queued for exactly their conversation's two partners, %d entries naming another conversation",
			len(queued), len(log.ok), wrongPartners, badEntry)}), nil
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
	partnerIDs := l.sd.partnerIDs()
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
	var unanswered atomic.Int64 // pages whose confirm was never answered
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
				// A confirm that failed is made again until it is answered (it is idempotent,
				// and lists the ids confirmed before): every page's answer is checked.
				var got []string
				answered := false
				for !answered && time.Now().Before(deadline) && ctx.Err() == nil {
					err := w.do("confirm", func() (err error) { got, err = c.Confirm(ctx, ids); return err })
					if answered = err == nil; isWrong(err) {
						break // refused: no retry changes that, and the run fails on it
					}
				}
				if !answered {
					unanswered.Add(1)
					continue
				}
				confirms[w.id] = append(confirms[w.id], confirmEvent{partner: p, done: time.Now(), ids: got})
				if !slices.Equal(got, ids) {
					mu.Lock()
					confirmMismatch = append(confirmMismatch, fmt.Sprintf("partner %d: %s", partnerIDs[p], confirmDiff(ids, got)))
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
		{Name: "every confirm answered with its ids", OK: len(confirmMismatch) == 0 && unanswered.Load() == 0,
			Detail: fmt.Sprintf("%d pages whose confirm was never answered; %d answers not listing the ids sent%s",
				unanswered.Load(), len(confirmMismatch), listed(confirmMismatch))},
		{Name: "queues empty afterwards", OK: left == 0, Detail: fmt.Sprintf("%d entries left", left)},
	}
	out := results("drain", n, ws, m, checks)
	out[0].DeliveredPerSec = float64(total-missing) / m.elapsed.Seconds()
	return out, nil
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// listed is ": " and the first three of s, one after the other, or "" when s is empty.
func listed(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return ": " + strings.Join(first(s, 3), "; ")
}

// mixed is the realistic blend: 40% of the clients poll (latest, and confirm what came) for a
// different partner at every turn, 35% send as guests and properties, 25% read whole
// conversations as dashboards do.
func (l *load) mixed(ctx context.Context, n int) ([]scenarioResult, error) {
	if l.history == nil {
		if err := l.loadHistory(ctx); err != nil {
			return nil, err
		}
	}
	seqBefore, err := l.newestSeq(ctx)
	if err != nil {
		return nil, err
	}
	pollers := max(1, n*40/100)
	senders := min(n-pollers, max(1, n*35/100)) // at -c 2: a poller and a sender
	logs := make([]sendLog, n)
	ws, m := l.run(ctx, "mixed", n, l.b.opt.duration, func(w *worker, _ time.Time) bool {
		switch {
		case w.id < pollers:
			c := l.clients[w.rng.IntN(len(l.clients))]
			var ids []string
			if w.do("latest", func() (err error) { ids, err = fetchLatest(ctx, w, c, false); return err }) == nil && len(ids) > 0 {
				_ = w.do("confirm", func() error {
					// Another poller of the same partner may have confirmed some first; they
					// are still listed as confirmed, so the answer is always every id sent.
					got, err := c.Confirm(ctx, ids)
					if err == nil && !slices.Equal(got, ids) {
						err = wrong("confirm: %s", confirmDiff(ids, got))
					}
					return err
				})
			}
		case w.id < pollers+senders:
			l.sendOne(ctx, w, &logs[w.id])
		default:
			l.readConversation(ctx, w)
		}
		return false
	})
	checks, err := l.checkSent(ctx, merged(logs), seqBefore, false)
	if err != nil {
		return nil, err
	}
	return results("mixed", n, ws, m, checks), nil
}

// confirmDiff describes how a confirm's answer got differs from the ids it was sent.
func confirmDiff(sent, got []string) string {
	out := fmt.Sprintf("sent %d ids, %d confirmed", len(sent), len(got))
	for i := range max(len(sent), len(got)) {
		if i >= len(sent) || i >= len(got) || sent[i] != got[i] {
			return out + fmt.Sprintf(", from position %d: %v, want %v", i, first(got[min(i, len(got)):], 1), first(sent[min(i, len(sent)):], 1))
		}
	}
	return out
}
