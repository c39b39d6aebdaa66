package purge_test

import (
	"context"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/guestmsg/messaging/internal/messaging"
)

// TestPurgeMillion measures a purge of many expired messages while a partner keeps sending and
// polling a live conversation. It is a measurement, not part of `make test`: it runs only when
// PURGE_BENCH_MESSAGES is set (`make bench-purge` sets it to 1000000 on a crash-safe cluster).
func TestPurgeMillion(t *testing.T) {
	total, _ := strconv.Atoi(os.Getenv("PURGE_BENCH_MESSAGES"))
	if total <= 0 {
		t.Skip("set PURGE_BENCH_MESSAGES (e.g. 1000000) to measure a large purge")
	}
	const perConversation = 100
	conversations := (total + perConversation - 1) / perConversation
	f := newFixture(t, messaging.DefaultWindows)
	live := f.reservation("LIVE", "2026-07-05")
	f.send(f.guest, live, "hello", "")

	// Seed with SQL: expired conversations of the same partners, 100 messages of 200
	// characters each, both partners' queue entries, and an Idempotency-Key record for one
	// message in ten.
	began := time.Now()
	type statement struct {
		query string
		args  []any
	}
	seed := []statement{
		{`INSERT INTO conversations (id, reservation_id, accommodation_id, property_partner_id, guest_partner_id, guest_name,
		      checkin, checkout, status, stay_end, guest_participant_id, property_participant_id, created_at, updated_at)
		  SELECT gen_random_uuid(), 'OLD-' || i, $1, (SELECT partner_id FROM accommodations WHERE id = $1), $2, 'Ada',
		      '2024-12-28', '2024-12-31', 'confirmed', '2025-01-01T00:00:00Z', gen_random_uuid(), gen_random_uuid(), now(), now()
		  FROM generate_series(1, $3) AS i`,
			[]any{f.accommodation, f.guest.AffiliateID, conversations}},
		{`INSERT INTO messages (id, conversation_id, sender, content, created_at)
		  SELECT gen_random_uuid(), c.id, CASE WHEN g % 2 = 0 THEN 'guest' ELSE 'property' END,
		      repeat('x', 200), '2024-12-30T12:00:00Z'
		  FROM conversations c CROSS JOIN generate_series(1, $1) AS g
		  WHERE c.reservation_id LIKE 'OLD-%'`,
			[]any{perConversation}},
		{`INSERT INTO deliveries (partner_id, seq, message_id, conversation_id)
		  SELECT p, m.seq, m.id, m.conversation_id
		  FROM messages m JOIN conversations c ON c.id = m.conversation_id, (VALUES ($1::bigint), ($2::bigint)) AS v (p)
		  WHERE c.reservation_id LIKE 'OLD-%'`,
			[]any{f.property.AffiliateID, f.guest.AffiliateID}},
		{`INSERT INTO idempotency_keys (partner_id, key, request_hash, message_id, conversation_id, created_at)
		  SELECT $1, 'k-' || m.seq, '\x00', m.id, m.conversation_id, m.created_at
		  FROM messages m JOIN conversations c ON c.id = m.conversation_id
		  WHERE c.reservation_id LIKE 'OLD-%' AND m.seq % 10 = 0`,
			[]any{f.guest.AffiliateID}},
		{`ANALYZE`, nil},
	}
	for _, st := range seed {
		if _, err := f.db.Exec(st.query, st.args...); err != nil {
			t.Fatalf("seed: %v\n%s", err, st.query)
		}
	}
	seeded := f.count(`SELECT count(*) FROM messages`) - 1
	t.Logf("seeded %d expired messages in %d conversations, %d queue rows, %d idempotency records in %v",
		seeded, conversations, f.count(`SELECT count(*) FROM deliveries`)-2, f.count(`SELECT count(*) FROM idempotency_keys`), time.Since(began).Round(time.Millisecond))

	if n, _ := strconv.Atoi(os.Getenv("PURGE_BENCH_BATCH")); n > 0 {
		f.worker.RowBatch = n
	}
	// The guest polls and confirms and the property sends in the live conversation, one
	// request at a time, first for a few seconds alone, then while the purge runs; the two
	// latency distributions are compared.
	ref := messaging.ConversationRef{AccommodationID: f.accommodation, ReservationID: live.Reservation.ID}
	traffic := func(ctx context.Context) (latencies []time.Duration, failures int) {
		for i := 0; ctx.Err() == nil; i++ {
			began := time.Now()
			var err error
			if i%2 == 0 {
				_, err = f.svc.Send(ctx, f.property, messaging.SendInput{Ref: ref, Content: "still here"})
			} else {
				var page []messaging.Delivery
				if page, err = f.svc.Latest(ctx, f.guest); err == nil && len(page) > 0 {
					_, err = f.svc.Confirm(ctx, f.guest, []uuid.UUID{page[0].ID})
				}
			}
			if err != nil && ctx.Err() == nil {
				failures++
			}
			latencies = append(latencies, time.Since(began))
		}
		return latencies, failures
	}
	alone, stopAlone := context.WithTimeout(context.Background(), 5*time.Second)
	baseline, _ := traffic(alone)
	stopAlone()

	ctx, stop := context.WithCancel(context.Background())
	var (
		wg        sync.WaitGroup
		latencies []time.Duration
		failures  int
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		latencies, failures = traffic(ctx)
	}()

	f.clock.Set(time.Date(2026, 7, 3, 12, 0, 0, 0, time.UTC))
	r, err := f.worker.RunOnce(context.Background())
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("RunOnce = %v", err)
	}
	if r.Messages != seeded || r.Conversations != conversations {
		t.Errorf("purged %d messages of %d conversations, want %d of %d", r.Messages, r.Conversations, seeded, conversations)
	}
	if n := f.count(`SELECT count(*) FROM conversations WHERE reservation_id LIKE 'OLD-%'`); n != 0 {
		t.Errorf("%d expired conversations left", n)
	}
	if failures > 0 {
		t.Errorf("%d sends or polls failed during the purge", failures)
	}
	rows := r.Messages + r.Deliveries + r.IdempotencyKeys + r.Conversations
	t.Logf("purge: %+v", r)
	t.Logf("purge: %d messages in %v = %.0f messages/s; %d rows of all tables = %.0f rows/s; %d batches of at most %d rows, longest %v",
		r.Messages, r.Elapsed.Round(time.Millisecond), float64(r.Messages)/r.Elapsed.Seconds(),
		rows, float64(rows)/r.Elapsed.Seconds(), r.Batches, f.worker.RowBatch, r.LongestBatch.Round(time.Microsecond))
	for _, d := range []struct {
		name string
		l    []time.Duration
	}{{"alone (5 s before the purge)", baseline}, {"during the purge", latencies}} {
		slices.Sort(d.l)
		pct := func(p float64) time.Duration { return d.l[int(float64(len(d.l)-1)*p)].Round(time.Microsecond) }
		t.Logf("live sends and polls %s: %d requests, p50 %v, p99 %v, max %v", d.name, len(d.l), pct(0.5), pct(0.99), pct(1))
	}
}
