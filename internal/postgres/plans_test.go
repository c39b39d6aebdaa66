package postgres

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/guestmsg/messaging/internal/messaging"
	"github.com/guestmsg/messaging/internal/pgtest"
)

// TestHotStatementsKeepGenericPlans holds the hot prepared statements to one cached plan:
// a statement whose generic plan PostgreSQL costs above its custom plans is planned anew on
// every call, which cost the latest page a third of its database time. The queue is seeded
// large enough (and analysed) for the planner to see the difference.
func TestHotStatementsKeepGenericPlans(t *testing.T) {
	ctx := context.Background()
	db, store, f := pooledFixture(t, 1) // one connection, so that its prepared statements are the ones inspected
	svc, caller, conv, now, owner := f.svc, f.caller, f.conv, f.now, f.caller.Partner
	const seedSQL = `
WITH m AS (
    INSERT INTO messages (id, conversation_id, sender, content, created_at)
    SELECT gen_random_uuid(), $1, 'guest', 'message ' || g, $3::timestamptz + g * interval '1 ms'
    FROM generate_series(1, 5000) AS g
    RETURNING seq, id, conversation_id
)
INSERT INTO deliveries (partner_id, seq, message_id, conversation_id) SELECT $2, seq, id, conversation_id FROM m`
	if _, err := db.ExecContext(ctx, seedSQL, conv.ID, owner.AffiliateID, now); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}

	readableAfter := messaging.DefaultWindows.ReadableStayEndAfter(messaging.Property, now)
	for i := 0; i < 8; i++ {
		page, err := store.Pending(ctx, caller, readableAfter, messaging.LatestPageSize)
		if err != nil || len(page) != messaging.LatestPageSize || page[0].Content != "message 1" {
			t.Fatalf("Pending = %d rows, %v; want %d from message 1", len(page), err, messaging.LatestPageSize)
		}
	}
	genericPlans := func(name, statement string) {
		t.Helper()
		var generic, custom int
		err := db.QueryRowContext(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1`,
			statement).Scan(&generic, &custom)
		if err != nil || generic == 0 {
			t.Errorf("%s statement: %d generic and %d custom plans, %v; want generic plans after the first five", name, generic, custom, err)
		}
	}
	genericPlans("pending", pendingSQL)

	for i := 0; i < 8; i++ {
		if _, err := svc.Send(ctx, caller, messaging.SendInput{Ref: messaging.ConversationRef{AccommodationID: 7, ReservationID: "R1"}, Content: "hi"}); err != nil {
			t.Fatal(err)
		}
	}
	genericPlans("send", insertMessageSQL)

	page, err := store.Pending(ctx, caller, readableAfter, 2)
	if err != nil || len(page) != 2 || page[0].Content != "message 1" || page[1].Content != "message 2" {
		t.Errorf("Pending(limit 2) = %d rows, %v; want messages 1 and 2", len(page), err)
	}
	if _, err := store.Pending(ctx, caller, readableAfter, pendingMaxRows+1); err == nil {
		t.Errorf("Pending(limit %d) = nil error, want one", pendingMaxRows+1)
	}

	for i := 0; i < 8; i++ {
		page, err := store.Pending(ctx, caller, readableAfter, 10)
		if err != nil || len(page) != 10 {
			t.Fatalf("Pending = %d rows, %v; want 10", len(page), err)
		}
		ids := make([]uuid.UUID, len(page))
		for j, d := range page {
			ids[j] = d.ID
		}
		if got, err := store.Confirm(ctx, caller, readableAfter, ids); err != nil || len(got) != len(ids) {
			t.Fatalf("Confirm = %d ids, %v; want %d", len(got), err, len(ids))
		}
	}
	genericPlans("confirm", confirmSQL)
}

// TestSendLanesPlanOnce: a lane's connection runs the send statement with its generic plan
// for every batch, however small (batches of one here), and a closed lane's connection leaves
// the pool rather than carry that setting to other statements.
func TestSendLanesPlanOnce(t *testing.T) {
	ctx := context.Background()
	db, store, f := pooledFixture(t, 8) // enough for the lanes to keep their connections
	for i := 0; i < 12; i++ {
		if _, err := f.svc.Send(ctx, f.caller, messaging.SendInput{Ref: messaging.ConversationRef{AccommodationID: 7, ReservationID: "R1"}, Content: "hi"}); err != nil {
			t.Fatal(err)
		}
	}
	used := 0
	for i := range store.lanes {
		l := &store.lanes[i]
		if l.conn == nil {
			continue
		}
		used++
		var generic, custom int
		if err := l.conn.QueryRowContext(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1`,
			insertMessageSQL).Scan(&generic, &custom); err != nil {
			t.Fatal(err)
		}
		if custom != 0 || generic == 0 {
			t.Errorf("lane %d: %d generic and %d custom plans, want only generic ones", i, generic, custom)
		}
		open := db.Stats().OpenConnections
		if err := l.close(); err != nil {
			t.Fatal(err)
		}
		if got := db.Stats().OpenConnections; got != open-1 {
			t.Errorf("lane %d closed: %d connections open, want %d", i, got, open-1)
		}
	}
	if used == 0 {
		t.Fatal("no lane kept a connection")
	}
}

// pooledFixture is newFixture on a store of its own pool of maxConns connections.
func pooledFixture(t *testing.T, maxConns int) (*sqlx.DB, *Store, fixture) {
	t.Helper()
	db, err := Open(pgtest.DSN(t), maxConns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	store := New(context.Background(), db)
	t.Cleanup(func() { store.Close() })
	return db, store, newFixture(t, store)
}
