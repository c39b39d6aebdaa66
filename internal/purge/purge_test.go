package purge_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/pgtest"
	"github.com/guestmsg/messaging/internal/postgres"
	"github.com/guestmsg/messaging/internal/purge"
	"github.com/guestmsg/messaging/internal/testclock"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// fixture is one test's database, store, service and purge worker on one injected clock.
type fixture struct {
	t      *testing.T
	db     *sqlx.DB
	store  *postgres.Store
	svc    *messaging.Service
	worker *purge.Worker
	clock  *testclock.Clock
	ctx    context.Context

	property, guest messaging.Caller
	accommodation   int64
}

func newFixture(t *testing.T, w messaging.Windows) *fixture {
	t.Helper()
	pool, err := postgres.Open(pgtest.DSN(t), 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	ctx := context.Background()
	store := postgres.New(ctx, pool)
	c := testclock.New(time.Date(2026, 7, 3, 12, 0, 0, 0, time.UTC))
	f := &fixture{
		t: t, db: pool, store: store, svc: messaging.NewService(store, w, c.Now),
		worker: purge.New(store, w, c.Now, slog.New(slog.NewTextHandler(io.Discard, nil))),
		clock:  c, ctx: ctx,
	}
	f.property, f.guest = f.caller(messaging.Property), f.caller(messaging.Guest)
	f.accommodation = 6819547
	if _, err := f.svc.PutAccommodation(ctx, messaging.Accommodation{ID: f.accommodation, PartnerID: f.property.AffiliateID, Name: "Sea View"}); err != nil {
		t.Fatal(err)
	}
	return f
}

// caller registers a partner of kind with a key and authenticates with it.
func (f *fixture) caller(kind messaging.Side) messaging.Caller {
	f.t.Helper()
	p, err := f.svc.CreatePartner(f.ctx, messaging.Partner{Kind: kind, Name: string(kind)})
	if err != nil {
		f.t.Fatal(err)
	}
	_, secret, err := f.svc.CreateKey(f.ctx, p.AffiliateID, "test")
	if err != nil {
		f.t.Fatal(err)
	}
	c, err := f.svc.Authenticate(f.ctx, secret, p.AffiliateID)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// reservation registers a confirmed stay checking out on checkout (YYYY-MM-DD).
func (f *fixture) reservation(id, checkout string) messaging.Conversation {
	f.t.Helper()
	out, err := time.Parse(time.DateOnly, checkout)
	if err != nil {
		f.t.Fatal(err)
	}
	c, err := f.svc.PutReservation(f.ctx, messaging.Reservation{
		ID: id, AccommodationID: f.accommodation, GuestPartnerID: f.guest.AffiliateID, GuestName: "Ada",
		Checkin: out.AddDate(0, 0, -3), Checkout: out,
	})
	if err != nil {
		f.t.Fatalf("PutReservation(%s) = %v", id, err)
	}
	return c
}

func (f *fixture) send(from messaging.Caller, c messaging.Conversation, content, key string) uuid.UUID {
	f.t.Helper()
	id, err := f.svc.Send(f.ctx, from, messaging.SendInput{
		Ref:     messaging.ConversationRef{AccommodationID: f.accommodation, ReservationID: c.Reservation.ID},
		Content: content, IdempotencyKey: key,
	})
	if err != nil {
		f.t.Fatalf("Send(%q) = %v", content, err)
	}
	return id
}

// sendAttachment uploads a small PNG to c as from and sends a message referencing it.
func (f *fixture) sendAttachment(from messaging.Caller, c messaging.Conversation) uuid.UUID {
	f.t.Helper()
	png, _ := base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
	ref := messaging.ConversationRef{AccommodationID: f.accommodation, ConversationID: c.ID}
	att, err := f.svc.Upload(f.ctx, from, messaging.UploadInput{
		Ref: ref, FileName: "photo.png", FileType: "image/png", FileSize: int64(len(png)),
		Content: messaging.Content{Size: int64(len(png)), SHA256: sha256.Sum256(png), SniffedType: "image/png",
			Base64: []byte(base64.StdEncoding.EncodeToString(png))},
	})
	if err != nil {
		f.t.Fatalf("Upload = %v", err)
	}
	id, err := f.svc.Send(f.ctx, from, messaging.SendInput{Ref: ref, Content: "see the photo", Attachments: []uuid.UUID{att}})
	if err != nil {
		f.t.Fatalf("Send(attachment) = %v", err)
	}
	return id
}

func (f *fixture) count(query string, args ...any) int {
	f.t.Helper()
	var n int
	if err := f.db.Get(&n, query, args...); err != nil {
		f.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// snapshot returns every row of every table of the schema, as text, by table. Tables added
// later (attachments, ...) are included without changing this test.
func (f *fixture) snapshot() map[string][]string {
	f.t.Helper()
	var tables []string
	if err := f.db.Select(&tables, `
		SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'
		ORDER BY table_name`); err != nil {
		f.t.Fatal(err)
	}
	out := make(map[string][]string, len(tables))
	for _, table := range tables {
		var rows []string
		if err := f.db.Select(&rows, `SELECT t::text FROM `+pq.QuoteIdentifier(table)+` t ORDER BY 1`); err != nil {
			f.t.Fatal(err)
		}
		out[table] = rows
	}
	return out
}

func TestPurgeRemovesEverythingOfAnExpiredConversation(t *testing.T) {
	// Retention as short as the guest's window, so that a record written in the last
	// millisecond of the guest's window is under 24 hours old when its conversation expires.
	w := messaging.Windows{GuestDays: 10, PropertySendDays: 7, PropertyReplyDays: 14, RetentionDays: 10}
	f := newFixture(t, w)
	x := f.reservation("X-EXPIRING", "2026-07-05") // stay end 2026-07-06, expires 2026-07-16
	y := f.reservation("Y-LIVE", "2026-08-05")     // stay end 2026-08-06

	var xMessages []uuid.UUID
	xMessages = append(xMessages,
		f.send(f.guest, x, "x question", "x-key-1"),
		f.send(f.property, x, "x answer", "x-key-2"),
		f.send(f.guest, x, "x thanks", ""))
	f.send(f.guest, y, "y question", "y-old-key") // > 24 hours old at the purge: goes by age
	f.send(f.property, y, "y answer", "")
	xMessages = append(xMessages, f.sendAttachment(f.guest, x))              // X holds an attachment too
	if _, err := f.svc.Confirm(f.ctx, f.guest, xMessages[1:2]); err != nil { // one X queue row fewer
		t.Fatal(err)
	}

	expiry := x.StayEnd.Add(10 * 24 * time.Hour)
	f.clock.Set(expiry.Add(-time.Millisecond))
	xMessages = append(xMessages, f.send(f.guest, x, "x last word", "x-key-late")) // fresh record
	f.send(f.guest, y, "y fresh", "y-fresh-key")
	f.send(f.property, y, "y fresh answer", "y-fresh-key")

	// One millisecond before expiry nothing of X goes, and the property still reads it.
	r, err := f.worker.RunOnce(f.ctx)
	if err != nil || r.Conversations != 0 || r.Messages != 0 || r.IdempotencyKeys != 0 {
		t.Fatalf("RunOnce before expiry = %+v, %v; want nothing of a conversation removed", r, err)
	}
	if r.StaleIdempotencyKeys != 3 { // x-key-1, x-key-2 and y-old-key are 12 days old
		t.Errorf("stale idempotency records removed before expiry = %d, want 3", r.StaleIdempotencyKeys)
	}
	ref := messaging.ConversationRef{AccommodationID: f.accommodation, ReservationID: x.Reservation.ID}
	if _, err := f.svc.Conversation(f.ctx, f.property, ref); err != nil {
		t.Fatalf("property reads X 1 ms before expiry: %v", err)
	}

	// Everything that identifies X, to look for in every row of every table.
	xIDs := []string{x.ID.String(), x.Reservation.ID, x.GuestParticipantID.String(), x.PropertyParticipantID.String(), "x-key-late"}
	for _, id := range xMessages {
		xIDs = append(xIDs, id.String())
	}
	var xSeqs pq.Int64Array
	if err := f.db.Select(&xSeqs, `SELECT seq FROM messages WHERE conversation_id = $1`, x.ID); err != nil {
		t.Fatal(err)
	}
	var xQueue []string
	if err := f.db.Select(&xQueue, `SELECT d::text FROM deliveries d WHERE seq = ANY($1)`, xSeqs); err != nil {
		t.Fatal(err)
	}
	if len(xSeqs) != 5 || len(xQueue) != 9 {
		t.Fatalf("X has %d messages and %d queue rows, want 5 and 9", len(xSeqs), len(xQueue))
	}
	isX := func(table, row string) bool {
		if table == "deliveries" {
			return slices.Contains(xQueue, row)
		}
		return slices.ContainsFunc(xIDs, func(id string) bool { return strings.Contains(row, id) })
	}
	before := f.snapshot()
	for _, table := range []string{"conversations", "messages", "deliveries", "idempotency_keys"} {
		if !slices.ContainsFunc(before[table], func(row string) bool { return isX(table, row) }) {
			t.Fatalf("table %s holds nothing of X before the purge; the test proves nothing", table)
		}
	}

	f.clock.Set(expiry)
	r, err = f.worker.RunOnce(f.ctx)
	if err != nil {
		t.Fatalf("RunOnce at expiry = %v", err)
	}
	want := purge.Report{Conversations: 1, Messages: 5, Deliveries: 9, IdempotencyKeys: 1, Attachments: 1}
	if r.Conversations != want.Conversations || r.Messages != want.Messages || r.Deliveries != want.Deliveries ||
		r.IdempotencyKeys != want.IdempotencyKeys || r.Attachments != want.Attachments || r.StaleIdempotencyKeys != 0 {
		t.Errorf("RunOnce at expiry = %+v, want counts %+v", r, want)
	}

	// Nothing of X is left anywhere, and every other row is still there, unchanged.
	after := f.snapshot()
	for table, rows := range before {
		var kept []string
		for _, row := range rows {
			if !isX(table, row) {
				kept = append(kept, row)
			}
		}
		if !slices.Equal(after[table], kept) {
			t.Errorf("table %s after the purge:\n%q\nwant every row but X's:\n%q", table, after[table], kept)
		}
	}
	if n := f.count(`SELECT count(*) FROM deliveries d WHERE NOT EXISTS (SELECT FROM messages m WHERE m.seq = d.seq)`); n != 0 {
		t.Errorf("%d queue rows without their message", n)
	}

	// The neighbour works as before: its thread, its queue, its idempotency records.
	view, err := f.svc.Conversation(f.ctx, f.property, messaging.ConversationRef{AccommodationID: f.accommodation, ReservationID: y.Reservation.ID})
	if err != nil || len(view.Messages) != 4 {
		t.Errorf("property reads Y after the purge: %d messages, %v; want 4", len(view.Messages), err)
	}
	page, err := f.svc.Latest(f.ctx, f.guest)
	if err != nil || len(page) != 4 {
		t.Errorf("guest's queue after the purge: %d messages, %v; want Y's 4", len(page), err)
	}
	if got := f.send(f.guest, y, "y fresh", "y-fresh-key"); !slices.ContainsFunc(view.Messages, func(m messaging.Message) bool { return m.ID == got }) {
		t.Errorf("repeat of a fresh idempotent send made message %v, want the first one", got)
	}
	if _, err := f.svc.Conversation(f.ctx, f.property, ref); !errors.Is(err, messaging.ErrNotFound) {
		t.Errorf("property reads X after the purge: %v, want ErrNotFound", err)
	}
}

func TestPurgeDeletesInBoundedBatches(t *testing.T) {
	f := newFixture(t, messaging.DefaultWindows)
	f.worker.ConversationBatch, f.worker.RowBatch = 2, 3
	var expired []messaging.Conversation
	for _, id := range []string{"E1", "E2", "E3", "E4", "E5"} {
		c := f.reservation(id, "2026-07-05")
		for i := range 7 {
			f.send(f.guest, c, "message "+string(rune('a'+i)), "")
		}
		expired = append(expired, c)
	}
	live := f.reservation("LIVE", "2026-07-06") // stay end one day later
	f.send(f.guest, live, "still here", "")

	f.clock.Set(expired[0].StayEnd.Add(365 * 24 * time.Hour))
	r, err := f.worker.RunOnce(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Conversations != 5 || r.Messages != 35 || r.Deliveries != 70 {
		t.Errorf("RunOnce = %+v, want 5 conversations, 35 messages, 70 queue rows", r)
	}
	// Rounds of 2, 2 and 1 conversations: 14 messages in batches of 3, 3, 3, 3, 2 (5 batches),
	// one batch each of keys, attachments and conversations; the same again; 7 messages in 3,
	// 3, 1 plus the three; then two walks of the guest partner's queue (the first parks the
	// live conversation's entry, past the guest's window; the second finds nothing) and one
	// batch of parked queues readable again; then one batch of stale keys and one of orphan
	// uploads: 8 + 8 + 6 + 3 + 2 transactions.
	if r.LargestBatch != 3 || r.Batches != 27 || r.Parked != 1 {
		t.Errorf("RunOnce ran %d batches of at most %d rows and parked %d, want 27 of at most 3 and 1", r.Batches, r.LargestBatch, r.Parked)
	}
	if n := f.count(`SELECT count(*) FROM messages`); n != 1 {
		t.Errorf("messages left = %d, want the live conversation's 1", n)
	}
	if n := f.count(`SELECT count(*) FROM deliveries`); n != 1 {
		t.Errorf("queue rows left = %d, want the live conversation's property's 1", n)
	}
	if n := f.count(`SELECT count(*) FROM conversations`); n != 1 {
		t.Errorf("conversations left = %d, want 1", n)
	}
}

func TestPurgeRunsOnOneReplicaAtATime(t *testing.T) {
	f := newFixture(t, messaging.DefaultWindows)
	c := f.reservation("E1", "2026-07-05")
	f.send(f.guest, c, "hello", "")
	f.clock.Set(c.StayEnd.Add(365 * 24 * time.Hour))

	release, ok, err := f.store.TryPurgeLock(f.ctx) // another replica's pass
	if err != nil || !ok {
		t.Fatalf("TryPurgeLock = %v, %v", ok, err)
	}
	r, err := f.worker.RunOnce(f.ctx)
	if err != nil || !r.Skipped || r.Messages != 0 {
		t.Errorf("RunOnce while another replica purges = %+v, %v; want skipped", r, err)
	}
	if n := f.count(`SELECT count(*) FROM messages`); n != 1 {
		t.Errorf("messages = %d while the other replica holds the lock, want 1", n)
	}
	release()
	if r, err := f.worker.RunOnce(f.ctx); err != nil || r.Skipped || r.Messages != 1 {
		t.Errorf("RunOnce after the lock is released = %+v, %v; want 1 message removed", r, err)
	}
}

func TestIdempotencyRecordsAreKept24Hours(t *testing.T) {
	f := newFixture(t, messaging.DefaultWindows)
	c := f.reservation("R1", "2026-08-05")
	created := f.clock.Now()
	first := f.send(f.guest, c, "hello", "k1")

	f.clock.Set(created.Add(24 * time.Hour))
	if r, err := f.worker.RunOnce(f.ctx); err != nil || r.StaleIdempotencyKeys != 0 {
		t.Fatalf("RunOnce 24 hours after = %+v, %v; want the record kept", r, err)
	}
	if again := f.send(f.guest, c, "hello", "k1"); again != first {
		t.Errorf("repeat 24 hours after = %v, want the first message %v", again, first)
	}
	f.clock.Set(created.Add(24*time.Hour + time.Millisecond))
	if r, err := f.worker.RunOnce(f.ctx); err != nil || r.StaleIdempotencyKeys != 1 {
		t.Fatalf("RunOnce 24 hours and 1 ms after = %+v, %v; want the record removed", r, err)
	}
	if again := f.send(f.guest, c, "hello", "k1"); again == first {
		t.Errorf("repeat after the record was purged = the first message, want a new one")
	}
}

// TestPurgeParksWhatTheGuestCanNoLongerRead: a pass moves the queue entries of conversations
// past the guest's read window out of the guest partner's queue, where each latest page would
// pass over them, into the conversation's parked queue; a change of the reservation that
// reopens the window gives them back at once, as does a pass after GUEST_WINDOW_DAYS was
// raised; a change of guest partner takes them along; and a confirmed message never comes back.
func TestPurgeParksWhatTheGuestCanNoLongerRead(t *testing.T) {
	f := newFixture(t, messaging.DefaultWindows)
	later := f.reservation("LATER", "2026-12-01")
	n1 := f.send(f.property, later, "n1", "")
	old := f.reservation("OLD", "2026-07-05") // stay end 2026-07-06
	g1 := f.send(f.guest, old, "g1", "")
	p1 := f.send(f.property, old, "p1", "")
	if _, err := f.svc.Confirm(f.ctx, f.guest, []uuid.UUID{g1}); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(old.StayEnd.Add(60 * 24 * time.Hour))
	g2 := f.send(f.guest, old, "g2", "")
	f.clock.Set(old.StayEnd.Add(70 * 24 * time.Hour)) // the guest's window closed 4 days ago
	p2 := f.send(f.property, old, "p2", "")           // the property may reply for 14 days

	latest := func(svc *messaging.Service, want ...uuid.UUID) {
		t.Helper()
		page, err := svc.Latest(f.ctx, f.guest)
		if err != nil {
			t.Fatal(err)
		}
		var got []uuid.UUID
		for _, d := range page {
			got = append(got, d.ID)
		}
		slices.SortFunc(got, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
		slices.SortFunc(want, func(a, b uuid.UUID) int { return strings.Compare(a.String(), b.String()) })
		if !slices.Equal(got, want) {
			t.Errorf("guest's latest = %v, want %v", got, want)
		}
	}
	queued := func() int {
		return f.count(`SELECT count(*) FROM deliveries WHERE partner_id = $1`, f.guest.AffiliateID)
	}
	run := func(w *purge.Worker, parked, unparked int) {
		t.Helper()
		r, err := w.RunOnce(f.ctx)
		if err != nil || r.Parked != parked || r.Unparked != unparked {
			t.Fatalf("RunOnce = parked %d, unparked %d, %v; want %d and %d", r.Parked, r.Unparked, err, parked, unparked)
		}
	}

	latest(f.svc, n1)
	run(f.worker, 3, 0) // p1, g2 and p2; g1 was confirmed
	if n := queued(); n != 1 {
		t.Errorf("guest's queue holds %d entries after the pass, want n1 alone", n)
	}
	latest(f.svc, n1)
	run(f.worker, 0, 0)

	// The checkout moves 10 weeks later: the guest reads the conversation again.
	reopen := func(guest int64, checkout time.Time) {
		t.Helper()
		r := old.Reservation
		r.GuestPartnerID, r.Checkout = guest, checkout
		if _, err := f.svc.PutReservation(f.ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	moved := old.Reservation.Checkout.AddDate(0, 0, 70)
	reopen(f.guest.AffiliateID, moved)
	latest(f.svc, n1, p1, g2, p2)
	run(f.worker, 0, 0)
	if _, err := f.svc.Confirm(f.ctx, f.guest, []uuid.UUID{g2}); err != nil {
		t.Fatal(err)
	}

	// Back to the first dates: parked again; then the conversation passes to another guest
	// partner and back, and the parked messages go along with the guest partner's queue.
	reopen(f.guest.AffiliateID, old.Reservation.Checkout)
	latest(f.svc, n1)
	run(f.worker, 2, 0) // p1 and p2
	other := f.caller(messaging.Guest)
	reopen(other.AffiliateID, old.Reservation.Checkout)
	reopen(f.guest.AffiliateID, moved)
	latest(f.svc, n1, p1, p2)

	// Parked again, and given back by a pass once the guest's window is 100 days.
	reopen(f.guest.AffiliateID, old.Reservation.Checkout)
	run(f.worker, 2, 0)
	wider := messaging.DefaultWindows
	wider.GuestDays = 100
	latest(messaging.NewService(f.store, wider, f.clock.Now), n1)
	run(purge.New(f.store, wider, f.clock.Now, slog.New(slog.NewTextHandler(io.Discard, nil))), 0, 1)
	latest(messaging.NewService(f.store, wider, f.clock.Now), n1, p1, p2)
	if n := f.count(`SELECT count(*) FROM departed_queues`); n != 1 {
		t.Errorf("%d departed queues, want the other guest partner's alone", n)
	}
}

// TestConfirmedParkedMessageNeverComesBack: once GUEST_WINDOW_DAYS is raised, a message the
// purge parked is readable by the guest partner again, but stays parked until the next pass
// gives it back. A confirm of it in that gap confirms it (the caller can read it): it is taken
// out of the parked queue, so the pass does not give it back (spec §5.2: once confirmed it never
// comes back; §5.3: the answer lists the ids confirmed for the caller now).
func TestConfirmedParkedMessageNeverComesBack(t *testing.T) {
	f := newFixture(t, messaging.DefaultWindows)
	old := f.reservation("OLD", "2026-07-05") // stay end 2026-07-06
	p1 := f.send(f.property, old, "p1", "")
	f.clock.Set(old.StayEnd.Add(70 * 24 * time.Hour)) // the guest's 66-day window closed 4 days ago
	if r, err := f.worker.RunOnce(f.ctx); err != nil || r.Parked != 1 {
		t.Fatalf("RunOnce = parked %d, %v; want p1 parked", r.Parked, err)
	}

	// GUEST_WINDOW_DAYS is raised to 100: the conversation is readable by the guest again.
	wider := messaging.DefaultWindows
	wider.GuestDays = 100
	svc := messaging.NewService(f.store, wider, f.clock.Now)
	worker := purge.New(f.store, wider, f.clock.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	confirmed, err := svc.Confirm(f.ctx, f.guest, []uuid.UUID{p1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := worker.RunOnce(f.ctx); err != nil {
		t.Fatal(err)
	}
	page, err := svc.Latest(f.ctx, f.guest)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(confirmed, []uuid.UUID{p1}) {
		t.Errorf("confirm of the parked, readable p1 = %v, want it confirmed", confirmed)
	}
	if slices.ContainsFunc(page, func(d messaging.Delivery) bool { return d.ID == p1 }) {
		t.Errorf("the pass after the confirm put p1 back on the guest's latest page: a confirmed message came back")
	}
}
