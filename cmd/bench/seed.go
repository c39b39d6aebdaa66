package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/guestmsg/messaging/internal/messaging"
)

// benchPartner is a seeded partner with the secret of its one API key.
type benchPartner struct {
	ID   int64
	Kind messaging.Side
	Key  string
}

// benchConv is a seeded conversation and the partners on it (indexes into seedData.partners).
type benchConv struct {
	ID            uuid.UUID
	Reservation   string
	Accommodation int64
	Property      int
	Guest         int
	Messages      int // seeded messages
}

// seedData is what the scenarios need to know about the seeded database.
type seedData struct {
	partners          []benchPartner
	convs             []benchConv
	pendingMessages   int
	pendingDeliveries int
	windows           []windowSet // the windows scenario's conversations, when it runs
}

// seed fills the database with COPY: c/2 property partners and c/2 guest partners with one
// API key each, accommodations, conversations of o.history messages each, and delivery-queue
// entries for both partners of the o.pending newest messages. Conversations take their turns
// in generations of o.active (every conversation when 0 or more than there are): the messages
// of one generation are interleaved in time, as they arrive in reality, and each generation
// follows the one before, as stays do. A larger history therefore adds old conversations, while
// the newest messages, those pending, stay spread over the same o.active conversations. Ids come from a random range so that a
// seed can share a database with other data (-url).
func seed(ctx context.Context, db *sqlx.DB, o options, logf func(string, ...any)) (*seedData, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	run := binary.BigEndian.Uint64(rnd[:]) % 1_000_000
	partnerBase := int64(1_000_000_000 + run*1000)
	accBase := int64(1_000_000_000_000 + run*1_000_000)
	resPrefix := "bench-" + strconv.FormatUint(run, 36) + "-"

	now := time.Now().UTC().Truncate(time.Millisecond)
	today := now.Truncate(24 * time.Hour)
	checkin, checkout := today.AddDate(0, 0, -2), today.AddDate(0, 0, 3)

	nProps, nGuests := o.concurrency/2, o.concurrency-o.concurrency/2
	sd := &seedData{}
	for i := 0; i < nProps+nGuests; i++ {
		kind := messaging.Property
		if i >= nProps {
			kind = messaging.Guest
		}
		secret, _ := messaging.NewSecret()
		sd.partners = append(sd.partners, benchPartner{ID: partnerBase + int64(i), Kind: kind, Key: secret})
	}
	nConvs := (o.messages + o.history - 1) / o.history
	nAccs := nProps * max(1, nConvs/(10*nProps))

	err := copyRows(ctx, db, "partners", []string{"affiliate_id", "kind", "name", "created_at"}, len(sd.partners), func(i int) []any {
		p := sd.partners[i]
		return []any{p.ID, string(p.Kind), fmt.Sprintf("bench %s partner %d", p.Kind, i), now}
	})
	if err == nil {
		err = copyRows(ctx, db, "api_keys", []string{"id", "affiliate_id", "name", "secret_hash", "created_at"}, len(sd.partners), func(i int) []any {
			return []any{uuid.New(), sd.partners[i].ID, "bench", messaging.HashSecret(sd.partners[i].Key), now}
		})
	}
	if err == nil {
		err = copyRows(ctx, db, "accommodations", []string{"id", "partner_id", "name", "created_at", "updated_at"}, nAccs, func(i int) []any {
			return []any{accBase + int64(i), sd.partners[i%nProps].ID, accName(i), now, now}
		})
	}
	if err != nil {
		return nil, err
	}
	// Conversation ids are UUIDv7 in the order the conversations are created, as the service
	// makes them (messaging.Service.PutReservation): the active ones, the newest, sit together
	// at the end of the primary key, as they do in a running service.
	sd.convs = make([]benchConv, nConvs)
	for i := range sd.convs {
		sd.convs[i] = benchConv{
			ID: uuid.Must(uuid.NewV7()), Reservation: resPrefix + strconv.Itoa(i), Accommodation: accBase + int64(i%nAccs),
			Property: i % nAccs % nProps, Guest: nProps + i%nGuests,
		}
	}
	err = copyRows(ctx, db, "conversations", conversationColumns, nConvs, func(i int) []any {
		c := sd.convs[i]
		return sd.conversationRow(c, accName(int(c.Accommodation-accBase)), "Ada Guest "+strconv.Itoa(i), checkin, checkout, now)
	})
	if err != nil {
		return nil, err
	}

	if contains(o.scenarios, "windows") {
		acc := func(i int) (int64, string, int) { a := i % nAccs; return accBase + int64(a), accName(a), a % nProps }
		if err := seedWindows(ctx, db, sd, acc, resPrefix, now); err != nil {
			return nil, err
		}
	}

	var seqBefore int64
	if err := db.GetContext(ctx, &seqBefore, `SELECT COALESCE(max(seq), 0) FROM messages`); err != nil {
		return nil, err
	}
	// Messages in batches of a million rows, one transaction each, so progress shows.
	const batch = 1_000_000
	start := now.Add(-time.Duration(o.messages) * 10 * time.Millisecond)
	active := nConvs
	if o.active > 0 && o.active < nConvs {
		active = o.active
	}
	perGeneration := active * o.history
	for from := 0; from < o.messages; from += batch {
		to := min(from+batch, o.messages)
		err := copyRows(ctx, db, "messages", messageColumns, to-from, func(j int) []any {
			k := from + j
			g, turn := k/perGeneration, k%perGeneration // generation, and turn within it
			ci := min(g*active+turn%active, nConvs-1)
			sender := messaging.Guest
			if (turn/active)%2 == 1 {
				sender = messaging.Property
			}
			sd.convs[ci].Messages++
			id, _ := uuid.NewV7()
			return []any{id, sd.convs[ci].ID, string(sender),
				"Hello! We arrive around 18:00 with two children. Is late check-in possible? Message " + strconv.Itoa(k),
				"{}", start.Add(time.Duration(k) * 10 * time.Millisecond)}
		})
		if err != nil {
			return nil, err
		}
		if o.messages > batch {
			logf("  messages: %d of %d", to, o.messages)
		}
	}
	// The o.pending newest messages are queued for both partners of their conversation.
	const enqueueSQL = `
INSERT INTO deliveries (partner_id, seq, message_id, conversation_id)
SELECT p.partner_id, m.seq, m.id, m.conversation_id
FROM messages m
JOIN conversations c ON c.id = m.conversation_id
JOIN accommodations a ON a.id = c.accommodation_id
CROSS JOIN LATERAL (VALUES (a.partner_id), (c.guest_partner_id)) AS p (partner_id)
WHERE m.seq > $1 AND m.seq > (SELECT max(seq) FROM messages) - $2`
	res, err := db.ExecContext(ctx, enqueueSQL, seqBefore, o.pending)
	if err != nil {
		return nil, fmt.Errorf("enqueue: %w", err)
	}
	n, _ := res.RowsAffected()
	sd.pendingDeliveries, sd.pendingMessages = int(n), o.pending
	for _, t := range []string{"partners", "api_keys", "accommodations", "conversations", "messages", "deliveries"} {
		if _, err := db.ExecContext(ctx, `VACUUM (ANALYZE) `+t); err != nil {
			return nil, fmt.Errorf("vacuum %s: %w", t, err)
		}
	}
	// Write the seed's dirty pages out now, so that a checkpoint does not land in the middle
	// of a measurement. Only a superuser (or pg_checkpoint) may; without it, measure anyway.
	if _, err := db.ExecContext(ctx, `CHECKPOINT`); err != nil {
		logf("checkpoint after seeding skipped: %v", err)
	}
	return sd, nil
}

// conversationColumns are the columns of conversationRow, and messageColumns those of a seeded
// message.
var (
	conversationColumns = []string{"id", "reservation_id", "accommodation_id", "property_partner_id", "property_name",
		"guest_partner_id", "guest_name", "checkin", "checkout", "status", "stay_end", "guest_participant_id",
		"property_participant_id", "created_at", "updated_at"}
	messageColumns = []string{"id", "conversation_id", "sender", "content", "attachments", "created_at"}
)

// partnerIDs are the affiliate ids of the seeded partners, in their order.
func (sd *seedData) partnerIDs() []int64 {
	ids := make([]int64, len(sd.partners))
	for i, p := range sd.partners {
		ids[i] = p.ID
	}
	return ids
}

// conversationRow is c as a confirmed reservation from checkin to checkout, created at created,
// with its stay end computed as the service computes it.
func (sd *seedData) conversationRow(c benchConv, propertyName, guestName string, checkin, checkout, created time.Time) []any {
	stayEnd := messaging.StayEnd(messaging.Reservation{Checkout: checkout, Status: messaging.StatusConfirmed})
	return []any{c.ID, c.Reservation, c.Accommodation, sd.partners[c.Property].ID, propertyName, sd.partners[c.Guest].ID,
		guestName, checkin, checkout, messaging.StatusConfirmed, stayEnd, uuid.New(), uuid.New(), created, created}
}

// accName is the name of the i-th seeded accommodation, which its conversations carry too.
func accName(i int) string { return fmt.Sprintf("Sea View Rooms %d", i) }

// copyRows loads n rows into table with one COPY in one transaction.
func copyRows(ctx context.Context, db *sqlx.DB, table string, cols []string, n int, row func(i int) []any) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, pq.CopyIn(table, cols...))
	if err != nil {
		return fmt.Errorf("copy %s: %w", table, err)
	}
	for i := 0; i < n; i++ {
		if _, err := stmt.ExecContext(ctx, row(i)...); err != nil {
			return fmt.Errorf("copy %s: %w", table, err)
		}
	}
	if _, err := stmt.ExecContext(ctx); err != nil {
		return fmt.Errorf("copy %s: %w", table, err)
	}
	if err := stmt.Close(); err != nil {
		return fmt.Errorf("copy %s: %w", table, err)
	}
	return tx.Commit()
}
