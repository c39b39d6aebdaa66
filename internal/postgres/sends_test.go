package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/pgtest"
)

// withGuest gives the fixture's reservation R1 a guest partner and returns that partner's caller.
func withGuest(t testing.TB, f fixture) messaging.Caller {
	t.Helper()
	guest := newCaller(t, f.svc, messaging.Guest, "App")
	r := f.conv.Reservation
	r.GuestPartnerID = guest.AffiliateID
	if _, err := f.svc.PutReservation(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return guest
}

// TestInsertMessagesDecidesEachSendAlone stores many sends in one statement: each is stored,
// or not, exactly as it would be alone, and one send's refusal stores nothing of it and costs
// the others nothing.
func TestInsertMessagesDecidesEachSendAlone(t *testing.T) {
	ctx := context.Background()
	db := pgtest.DB(t)
	store := New(ctx, db)
	f := newFixture(t, store)
	guest := withGuest(t, f)
	attachment := messaging.Attachment{ID: uuid.New(), ConversationID: f.conv.ID, UploaderID: f.caller.AffiliateID,
		FileName: "a.png", FileType: "image/png", Size: 3, CreatedAt: f.now}
	if err := store.InsertAttachment(ctx, attachment, []byte("AAAA")); err != nil {
		t.Fatal(err)
	}
	earlier := messaging.IdempotencyRecord{PartnerID: f.caller.AffiliateID, Key: "earlier", RequestHash: []byte{1},
		MessageID: uuid.Must(uuid.NewV7()), CreatedAt: f.now}
	if stored, err := store.InsertMessage(ctx, f.caller, messaging.ConversationRef{AccommodationID: 7, ReservationID: "R1"},
		messaging.DefaultWindows.SendOpenAt(messaging.Property, f.now), messaging.Message{ID: earlier.MessageID,
			Sender: messaging.Property, Content: "earlier", CreatedAt: f.now}, &earlier); !stored || err != nil {
		t.Fatalf("InsertMessage(earlier) = %t, %v; want true, nil", stored, err)
	}

	byID := messaging.ConversationRef{AccommodationID: 7, ConversationID: f.conv.ID}
	byReservation := messaging.ConversationRef{AccommodationID: 7, ReservationID: "R1"}
	later := f.now.AddDate(0, 1, 0) // the stay ended four weeks before: only the guest may send
	newSend := func(caller messaging.Caller, ref messaging.ConversationRef, at time.Time, key string, attachments ...uuid.UUID) send {
		m := messaging.Message{ID: uuid.Must(uuid.NewV7()), Sender: caller.Kind, Content: fmt.Sprint("by ", caller.Kind, " at ", at),
			Attachments: attachments, CreatedAt: at}
		x := send{caller: caller, ref: ref, open: messaging.DefaultWindows.SendOpenAt(caller.Kind, at), m: m}
		if key != "" {
			x.idem = &messaging.IdempotencyRecord{PartnerID: caller.AffiliateID, Key: key, RequestHash: []byte{2},
				MessageID: m.ID, CreatedAt: at}
		}
		return x
	}
	tests := []struct {
		name string
		send send
		want bool
	}{
		{"property by conversation", newSend(f.caller, byID, f.now, ""), true},
		{"guest by reservation", newSend(guest, byReservation, f.now, ""), true},
		{"property after its window", newSend(f.caller, byID, later, ""), false},
		{"guest after the property's window", newSend(guest, byID, later, ""), true},
		{"another accommodation", newSend(f.caller, messaging.ConversationRef{AccommodationID: 8, ReservationID: "R1"}, f.now, ""), false},
		{"conversation and reservation disagree", newSend(f.caller, messaging.ConversationRef{AccommodationID: 7,
			ConversationID: uuid.New(), ReservationID: "R1"}, f.now, ""), false},
		{"key used before", newSend(f.caller, byID, f.now, "earlier"), false},
		{"new key", newSend(f.caller, byID, f.now, "once"), true},
		{"key of the guest's", newSend(guest, byID, f.now, "once"), true},
		{"with an attachment", newSend(f.caller, byID, f.now, "", attachment.ID), true},
	}
	sends := make([]send, len(tests))
	for i, tt := range tests {
		sends[i] = tt.send
	}
	twice := newSend(f.caller, byID, f.now, "twice")
	again := newSend(f.caller, byID, f.now, "twice")
	sends = append(sends, twice, again)

	stored, err := store.insertMessages(ctx, 0, sends)
	if err != nil || len(stored) != len(sends) {
		t.Fatalf("insertMessages = %v, %v; want %d outcomes", stored, err, len(sends))
	}
	for i, tt := range tests {
		if stored[i] != tt.want {
			t.Errorf("%s: stored = %t, want %t", tt.name, stored[i], tt.want)
		}
	}
	if n := len(stored); stored[n-2] == stored[n-1] {
		t.Errorf("two sends with one key: stored %t and %t, want exactly one", stored[n-2], stored[n-1])
	}

	var keyNames uuid.UUID
	if err := db.Get(&keyNames, `SELECT message_id FROM idempotency_keys WHERE partner_id = $1 AND key = 'twice'`, f.caller.AffiliateID); err != nil {
		t.Fatal(err)
	}
	for i, x := range sends {
		var messages, queued int
		err := db.QueryRow(`SELECT (SELECT count(*) FROM messages WHERE id = $1 AND content = $2 AND conversation_id = $3),
		                           (SELECT count(*) FROM deliveries WHERE message_id = $1 AND partner_id IN ($4, $5))`,
			x.m.ID, x.m.Content, f.conv.ID, f.caller.AffiliateID, guest.AffiliateID).Scan(&messages, &queued)
		want := map[bool][2]int{true: {1, 2}, false: {0, 0}}[stored[i]]
		if err != nil || messages != want[0] || queued != want[1] {
			t.Errorf("send %d (stored %t): %d messages, %d queue entries, %v; want %v", i, stored[i], messages, queued, err, want)
		}
		if x.idem != nil && x.idem.Key == "twice" && stored[i] != (keyNames == x.m.ID) {
			t.Errorf("send %d (stored %t): the key record names %v, want it to name the stored message", i, stored[i], keyNames)
		}
	}
	var referencedAt time.Time
	if err := db.Get(&referencedAt, `SELECT referenced_at FROM attachments WHERE id = $1`, attachment.ID); err != nil || !referencedAt.Equal(f.now) {
		t.Errorf("attachment referenced at %v, %v; want %v", referencedAt, err, f.now)
	}
}

// TestConcurrentSendsShareStatements sends from many clients at once through a store that
// stores one batch at a time, with half of the sends repeated under the same Idempotency-Key:
// each send is stored exactly once, queued for both partners, and answered with its own id,
// a repeat with the first's.
func TestConcurrentSendsShareStatements(t *testing.T) {
	ctx := context.Background()
	db := pgtest.DB(t)
	store := New(ctx, db)
	f := newFixture(t, store)
	guest := withGuest(t, f)

	var mu sync.Mutex
	var sizes []int
	var first sync.Once
	store.sends = newSendBatcher(1, sendBatchMax, func(ctx context.Context, lane int, sends []send) ([]bool, error) {
		mu.Lock()
		sizes = append(sizes, len(sends))
		mu.Unlock()
		return store.insertMessages(ctx, lane, sends)
	}, func(ctx context.Context, lane int, x send) (bool, error) {
		first.Do(func() { waitForWaiting(t, store.sends, 10) }) // so that a batch of many forms
		return store.insertMessage(ctx, lane, x)
	})

	const clients, sendsEach = 24, 5
	ids := make([][]uuid.UUID, clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			caller := map[bool]messaging.Caller{true: f.caller, false: guest}[c%2 == 0]
			for i := range sendsEach {
				in := messaging.SendInput{Ref: messaging.ConversationRef{AccommodationID: 7, ReservationID: "R1"},
					Content: fmt.Sprint("message ", i)}
				if c < clients/2 { // clients c and c+2 repeat each other, as the same partner
					in.IdempotencyKey = fmt.Sprint("key ", c/4, " ", c%2, " ", i)
				} else {
					in.Content = fmt.Sprint("client ", c, " message ", i)
				}
				id, err := f.svc.Send(ctx, caller, in)
				if err != nil {
					t.Errorf("client %d: Send(%+v) = %v", c, in, err)
					return
				}
				ids[c] = append(ids[c], id)
			}
		}()
	}
	wg.Wait()

	unique := make(map[uuid.UUID]bool)
	for c := range clients {
		for i, id := range ids[c] {
			unique[id] = true
			if c < clients/2 && c%4 < 2 && id != ids[c+2][i] {
				t.Errorf("clients %d and %d, send %d with the same key: ids %v and %v, want one", c, c+2, i, id, ids[c+2][i])
			}
		}
	}
	if want := clients*sendsEach - clients/2*sendsEach/2; len(unique) != want {
		t.Errorf("%d different ids answered, want %d", len(unique), want)
	}
	var messages, queued, stored int
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM deliveries),
	                              (SELECT count(*) FROM messages WHERE id = ANY($1::uuid[]))`,
		uuidArray(slices.Collect(maps.Keys(unique)))).Scan(&messages, &queued, &stored); err != nil {
		t.Fatal(err)
	}
	if messages != len(unique) || stored != len(unique) || queued != 2*len(unique) {
		t.Errorf("%d messages (%d of them answered), %d queue entries; want %d, %[4]d, %d", messages, stored, queued, len(unique), 2*len(unique))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) == 0 || slices.Max(sizes) < 10 {
		t.Errorf("batches of %v sends, want one of 10 or more", sizes)
	}
}

// waitForWaiting waits until n sends wait in b.
func waitForWaiting(t *testing.T, b *sendBatcher, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b.mu.Lock()
		waiting := len(b.waiting)
		b.mu.Unlock()
		if waiting >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Errorf("fewer than %d sends waited", n)
}

// TestFailedBatchStoresEachSendAlone: a batch runs until the earliest deadline of its sends;
// when its statement fails, each of its sends is stored alone under its own context, and
// tells its own outcome. A send whose context ends while it waits leaves without being stored.
func TestFailedBatchStoresEachSendAlone(t *testing.T) {
	var mu sync.Mutex
	var alone []string
	var batchDeadline time.Time
	var lanesAlone int // calls on the pool
	release := make(chan struct{})
	b := newSendBatcher(1, 8, func(ctx context.Context, _ int, sends []send) ([]bool, error) {
		batchDeadline, _ = ctx.Deadline()
		return nil, errors.New("deadlock detected")
	}, func(ctx context.Context, lane int, x send) (bool, error) {
		if x.m.Content == "first" {
			<-release
			return true, nil
		}
		mu.Lock()
		alone = append(alone, x.m.Content)
		if lane < 0 {
			lanesAlone++
		}
		mu.Unlock()
		return x.m.Content == "stored", nil
	})
	outcome := func(ctx context.Context, content string) chan string { return sendOutcomeOf(ctx, b, content) }
	first := outcome(context.Background(), "first")
	waitForRunning(t, b)
	soon := time.Now().Add(time.Hour)
	deadlines := map[string]time.Time{"stored": soon.Add(time.Minute), "refused": soon, "gone": soon.Add(-time.Minute)}
	got := make(map[string]chan string)
	var cancelGone context.CancelFunc
	for _, content := range []string{"stored", "refused", "gone"} {
		ctx, cancel := context.WithDeadline(context.Background(), deadlines[content])
		defer cancel()
		if content == "gone" {
			cancelGone = cancel
		}
		got[content] = outcome(ctx, content)
		waitForWaiting(t, b, len(got))
	}
	cancelGone()
	if o := <-got["gone"]; o != "false unavailable: context canceled" {
		t.Errorf("send gone while waiting = %s, want false unavailable: context canceled", o)
	}
	close(release)
	if o := <-first; o != "true <nil>" {
		t.Errorf("first send = %s, want true <nil>", o)
	}
	for content, want := range map[string]string{"stored": "true <nil>", "refused": "false <nil>"} {
		if o := <-got[content]; o != want {
			t.Errorf("send %q = %s, want %s", content, o, want)
		}
	}
	if !batchDeadline.Equal(soon) {
		t.Errorf("the batch's deadline = %v, want the earliest of its sends', %v", batchDeadline, soon)
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(alone)
	if !slices.Equal(alone, []string{"refused", "stored"}) {
		t.Errorf("stored alone: %v, want each of the failed batch's sends", alone)
	}
	if lanesAlone != 2 {
		t.Errorf("%d sends stored alone on the pool, want the failed batch's 2", lanesAlone)
	}
	if len(b.free) != 1 || len(b.waiting) != 0 {
		t.Errorf("afterwards %d lanes free, %d sends waiting; want 1 and none", len(b.free), len(b.waiting))
	}
}

// TestBatchEndsWhenEverySendIsGone: one send's caller going away does not end its batch's
// statement, which stores the others too; the statement ends once every send of the batch is
// gone (all callers hung up, or the requests cut off at shutdown), rather than running on to
// the earliest deadline.
func TestBatchEndsWhenEverySendIsGone(t *testing.T) {
	release := make(chan struct{})
	batchStarted, batchEnded := make(chan struct{}), make(chan struct{})
	b := newSendBatcher(1, 8, func(ctx context.Context, _ int, sends []send) ([]bool, error) {
		close(batchStarted)
		<-ctx.Done()
		close(batchEnded)
		return nil, ctx.Err()
	}, func(ctx context.Context, _ int, x send) (bool, error) {
		if x.m.Content == "first" {
			<-release
			return true, nil
		}
		return false, translate(ctx.Err())
	})
	outcome := func(ctx context.Context, content string) chan string { return sendOutcomeOf(ctx, b, content) }
	first := outcome(context.Background(), "first")
	waitForRunning(t, b)
	ctxA, cancelA := context.WithTimeout(context.Background(), time.Hour)
	defer cancelA()
	ctxB, cancelB := context.WithTimeout(context.Background(), time.Hour)
	defer cancelB()
	a := outcome(ctxA, "a")
	waitForWaiting(t, b, 1)
	bOut := outcome(ctxB, "b")
	waitForWaiting(t, b, 2)
	close(release) // "first" leads the next batch, "a" and "b", on its lane
	<-first
	<-batchStarted
	cancelA()
	select {
	case <-batchEnded:
		t.Fatal("the batch ended when one of its two sends was gone")
	case <-time.After(100 * time.Millisecond):
	}
	cancelB()
	select {
	case <-batchEnded:
	case <-time.After(10 * time.Second):
		t.Fatal("the batch still runs 10 s after every one of its sends was gone")
	}
	for name, out := range map[string]chan string{"a": a, "b": bOut} {
		if o := <-out; o != "false unavailable: context canceled" {
			t.Errorf("send %s = %s, want false unavailable: context canceled", name, o)
		}
	}
}

// sendOutcomeOf sends content through b in a goroutine of its own and answers its outcome as
// "stored err".
func sendOutcomeOf(ctx context.Context, b *sendBatcher, content string) chan string {
	out := make(chan string, 1)
	go func() {
		stored, err := b.do(ctx, send{m: messaging.Message{Content: content}})
		out <- fmt.Sprint(stored, " ", err)
	}()
	return out
}

func waitForRunning(t *testing.T, b *sendBatcher) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b.mu.Lock()
		free := len(b.free)
		b.mu.Unlock()
		if free == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Errorf("no batch started")
}

// TestSendRacingAPartnerChange: a change of a conversation's guest partner, or of its
// accommodation's owner, moves the conversation's queue entries that its transaction can see. A
// send whose statement read the conversation's partners before such a change committed must
// therefore not queue for the old partner after it: the statement locks the conversation row
// FOR SHARE, so either the change waits for the send and then moves its entries too, or the
// send waits for the change and reads the new partners. Here the send is held in the middle of
// its statement by an uncommitted Idempotency-Key row with the same key, the change starts, and
// then the key is released. (Found by review: without the lock, the message stayed queued for
// the old partners only, and the new one never received it.)
func TestSendRacingAPartnerChange(t *testing.T) {
	cases := []struct {
		name   string
		sender func(f fixture, guest messaging.Caller) messaging.Caller
		change func(ctx context.Context, f fixture, to messaging.Caller) error
		to     messaging.Side
	}{
		{"guest partner changes", func(f fixture, _ messaging.Caller) messaging.Caller { return f.caller },
			func(ctx context.Context, f fixture, to messaging.Caller) error {
				r := f.conv.Reservation
				r.GuestPartnerID = to.AffiliateID
				_, err := f.svc.PutReservation(ctx, r)
				return err
			}, messaging.Guest},
		{"owner changes", func(_ fixture, guest messaging.Caller) messaging.Caller { return guest },
			func(ctx context.Context, f fixture, to messaging.Caller) error {
				_, err := f.svc.PutAccommodation(ctx, messaging.Accommodation{ID: 7, PartnerID: to.AffiliateID})
				return err
			}, messaging.Property},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := pgtest.DB(t)
			f := newFixture(t, New(ctx, db))
			guest := withGuest(t, f)
			sender, to := tc.sender(f, guest), newCaller(t, f.svc, tc.to, "new partner")
			// The blocking key row names another conversation, so that its foreign key locks
			// nothing of R1's.
			other, err := f.svc.PutReservation(ctx, messaging.Reservation{ID: "R9", AccommodationID: 7,
				Checkin: f.conv.Reservation.Checkin, Checkout: f.conv.Reservation.Checkout})
			if err != nil {
				t.Fatal(err)
			}
			blocker, err := db.Beginx()
			if err != nil {
				t.Fatal(err)
			}
			defer blocker.Rollback()
			if _, err := blocker.Exec(`INSERT INTO idempotency_keys (partner_id, key, request_hash, message_id, conversation_id, created_at)
				VALUES ($1, 'K', '\x00', $2, $3, now())`, sender.AffiliateID, uuid.New(), other.ID); err != nil {
				t.Fatal(err)
			}
			type sent struct {
				id  uuid.UUID
				err error
			}
			sends, changes := make(chan sent, 1), make(chan error, 1)
			go func() {
				id, err := f.svc.Send(ctx, sender, messaging.SendInput{
					Ref: messaging.ConversationRef{AccommodationID: 7, ReservationID: "R1"}, Content: "raced", IdempotencyKey: "K"})
				sends <- sent{id, err}
			}()
			waitForLockWaiters(t, db, 1) // the send, on the key
			deadline := time.Now().Add(10 * time.Second)
			go func() { changes <- tc.change(ctx, f, to) }()
			for changed := false; !changed && lockWaiters(t, db) < 2; { // done, or waiting for the send
				if time.Now().After(deadline) {
					t.Fatal("the change neither ended nor waited")
				}
				select {
				case err := <-changes:
					changes <- err
					changed = true
				case <-time.After(5 * time.Millisecond):
				}
			}
			if err := blocker.Rollback(); err != nil {
				t.Fatal(err)
			}
			s := <-sends
			if err := <-changes; s.err != nil || err != nil {
				t.Fatalf("send: %v; change: %v", s.err, err)
			}

			var partners []int64
			if err := db.Select(&partners, `SELECT partner_id FROM deliveries WHERE message_id = $1 ORDER BY partner_id`, s.id); err != nil {
				t.Fatal(err)
			}
			var want []int64
			if err := db.Select(&want, `SELECT unnest(ARRAY[property_partner_id, guest_partner_id]) AS p FROM conversations WHERE id = $1 ORDER BY p`, f.conv.ID); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(partners, want) || !slices.Contains(want, to.AffiliateID) {
				t.Errorf("message queued for partners %v, want the conversation's %v (with the new partner %d)", partners, want, to.AffiliateID)
			}
		})
	}
}

// lockWaiters returns how many sessions of the test's database wait for a lock.
func lockWaiters(t *testing.T, db *sqlx.DB) int {
	t.Helper()
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitForLockWaiters waits until at least n sessions of the test's database wait for a lock.
func waitForLockWaiters(t *testing.T, db *sqlx.DB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for lockWaiters(t, db) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d sessions wait for a lock after 10 s", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSendsElsewhereDoNotWaitForAHeldConversation: an operator's change of an accommodation (a
// rename, a new owner) holds the rows of all its conversations for as long as its transaction
// runs, seconds when they are many; here a second connection holds them as such a change would.
// Sends to that accommodation wait for it, as they must; sends elsewhere must not, and the
// waiting sends must not take every connection of the pool from the other requests. (Found by
// review: the two sends' batches held both lanes, and every other send of the service waited
// behind them, then answered 503 at its request deadline.)
func TestSendsElsewhereDoNotWaitForAHeldConversation(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	pool, err := Open(dsn, 8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	store := New(ctx, pool)
	t.Cleanup(func() { store.Close() })
	f := newFixture(t, store)
	if _, err := f.svc.PutReservation(ctx, messaging.Reservation{ID: "R2", AccommodationID: 7,
		Checkin: f.conv.Reservation.Checkin, Checkout: f.conv.Reservation.Checkout}); err != nil {
		t.Fatal(err)
	}
	elsewhere := newCaller(t, f.svc, messaging.Property, "other PMS") // another owner's accommodation
	if _, err := f.svc.PutAccommodation(ctx, messaging.Accommodation{ID: 8, PartnerID: elsewhere.AffiliateID}); err != nil {
		t.Fatal(err)
	}
	s1, err := f.svc.PutReservation(ctx, messaging.Reservation{ID: "S1", AccommodationID: 8,
		Checkin: f.conv.Reservation.Checkin, Checkout: f.conv.Reservation.Checkout})
	if err != nil {
		t.Fatal(err)
	}

	watch, err := sqlx.Connect("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watch.Close() })
	change, err := watch.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	defer change.Rollback()
	if _, err := change.Exec(`UPDATE conversations SET property_name = 'Renamed' WHERE accommodation_id = 7`); err != nil {
		t.Fatal(err)
	}
	const held = 10
	heldDone := make(chan error, held)
	for i := range held {
		go func() {
			_, err := f.svc.Send(ctx, f.caller, messaging.SendInput{
				Ref: messaging.ConversationRef{AccommodationID: 7, ReservationID: []string{"R1", "R2"}[i%2]}, Content: "during the change"})
			heldDone <- err
		}()
	}
	waitForLockWaiters(t, watch, sendLanes)
	time.Sleep(3 * 100 * time.Millisecond) // a few laneLockTimeouts: every held send is on the pool or waits for it

	if n := lockWaiters(t, watch); n > cap(store.poolSends)+sendLanes {
		t.Errorf("%d sessions wait for the held rows, want at most %d on the pool and the %d lanes", n, cap(store.poolSends), sendLanes)
	}
	reqCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	began := time.Now()
	_, err = f.svc.Send(reqCtx, elsewhere, messaging.SendInput{
		Ref: messaging.ConversationRef{AccommodationID: 8, ReservationID: "S1"}, Content: "unrelated"})
	if took := time.Since(began); err != nil || took > time.Second {
		t.Errorf("a send elsewhere while %d sends waited for held rows = %v after %v, want it stored at once", held, err, took.Round(time.Millisecond))
	}
	began = time.Now()
	_, err = f.svc.Conversation(reqCtx, elsewhere, messaging.ConversationRef{AccommodationID: 8, ConversationID: s1.ID})
	if took := time.Since(began); err != nil || took > time.Second {
		t.Errorf("a conversation read while %d sends waited for held rows = %v after %v, want it answered at once", held, err, took.Round(time.Millisecond))
	}

	if err := change.Rollback(); err != nil {
		t.Fatal(err)
	}
	for range held {
		if err := <-heldDone; err != nil {
			t.Errorf("a send to the held accommodation, once the change ended = %v, want it stored", err)
		}
	}
	var stored int
	if err := watch.Get(&stored, `SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.accommodation_id = 7`); err != nil {
		t.Fatal(err)
	}
	if stored != held {
		t.Errorf("%d messages stored in the held accommodation, want %d", stored, held)
	}
}

// TestCloseWhileSendsRun closes the store while batches run on its lanes, as at shutdown, when
// a send cut off can leave its batch still running: Close returns at once, and takes no lane
// from the batch that holds it (run with -race to see the lanes' connections unshared).
func TestCloseWhileSendsRun(t *testing.T) {
	ctx := context.Background()
	db := pgtest.DB(t)
	store := New(ctx, db)
	f := newFixture(t, store)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	sent := make(chan struct{})
	var once sync.Once
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				in := messaging.SendInput{Ref: messaging.ConversationRef{AccommodationID: 7, ReservationID: "R1"},
					Content: fmt.Sprint("client ", c, " message ", i)}
				if _, err := f.svc.Send(ctx, f.caller, in); err == nil && i == 3 {
					once.Do(func() { close(sent) }) // the lanes have their connections
				}
			}
		}()
	}
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Error("no client stored four sends")
	}
	closed := make(chan error, 1)
	go func() { closed <- store.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Error("Close did not return while sends ran")
	}
	close(stop)
	wg.Wait()
}
