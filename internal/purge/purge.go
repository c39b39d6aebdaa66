// Package purge deletes what the retention rules of the contract (§6) no longer let the service
// keep: everything of a conversation whose stay end + RETENTION_DAYS has passed (messages, their
// queue entries, Idempotency-Key records, attachments, the reservation row with its
// participants), Idempotency-Key records older than 24 hours, and uploads no message referenced
// within 24 hours; and it parks the queue entries a guest partner can no longer read (past its
// read window), which every latest page of the partner would pass over, and gives them back
// when they are readable again. It deletes in bounded batches, each one short
// statement of its own, so that sends and polls keep flowing while it runs, and under a lock
// that lets one replica purge at a time. The domain (package messaging) decides the cutoffs;
// the store applies them.
package purge

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/guestmsg/messaging/internal/messaging"
)

// Store is what the purge needs from persistence. Each method other than TryPurgeLock and
// ExpiredConversations deletes at most one bounded batch in one transaction and returns how many
// rows of its table it deleted. Methods return messaging.ErrUnavailable when the database
// cannot be reached.
type Store interface {
	// TryPurgeLock takes the lock that one purging replica holds, and reports false without
	// waiting when another holds it. release gives it back.
	TryPurgeLock(ctx context.Context) (release func(), ok bool, err error)
	// ExpiredConversations returns up to limit conversations whose stay end is at or before
	// cutoff.
	ExpiredConversations(ctx context.Context, cutoff time.Time, limit int) ([]uuid.UUID, error)
	// PurgeMessages deletes up to limit messages of the conversations ids that are still
	// expired at cutoff, with their queue entries and the Idempotency-Key records that answer
	// them, in one transaction.
	PurgeMessages(ctx context.Context, ids []uuid.UUID, cutoff time.Time, limit int) (messages, deliveries, keys int, err error)
	// PurgeIdempotencyKeys deletes up to limit Idempotency-Key records of the conversations
	// ids that are still expired at cutoff: those the message batches left.
	PurgeIdempotencyKeys(ctx context.Context, ids []uuid.UUID, cutoff time.Time, limit int) (int, error)
	// PurgeAttachments deletes up to limit attachments of the conversations ids that are still
	// expired at cutoff.
	PurgeAttachments(ctx context.Context, ids []uuid.UUID, cutoff time.Time, limit int) (int, error)
	// DeleteConversations deletes the conversations ids that are still expired at cutoff and
	// hold nothing any more.
	DeleteConversations(ctx context.Context, ids []uuid.UUID, cutoff time.Time) (int, error)
	// DeleteIdempotencyKeysBefore deletes up to limit Idempotency-Key records created before
	// cutoff.
	DeleteIdempotencyKeysBefore(ctx context.Context, cutoff time.Time, limit int) (int, error)
	// DeleteOrphanAttachments deletes up to limit attachments no message references, created at
	// or before cutoff.
	DeleteOrphanAttachments(ctx context.Context, cutoff time.Time, limit int) (int, error)
	// GuestPartners returns the affiliate ids of the guest partners.
	GuestPartners(ctx context.Context) ([]int64, error)
	// ParkUnreadable walks the first walk entries of a guest partner's queue and moves those of
	// conversations whose stay end is at or before readableAfter out of it, into the
	// conversations' parked queues; it returns how many it moved, and how many readable
	// entries it passed.
	ParkUnreadable(ctx context.Context, partnerID int64, readableAfter time.Time, walk int) (parked, readable int, err error)
	// UnparkReadable gives up to limit parked queues of conversations whose stay end is after
	// readableAfter back to their guest partners, and returns how many.
	UnparkReadable(ctx context.Context, readableAfter time.Time, limit int) (int, error)
}

// Default batch sizes: each batch is one transaction that deletes at most DefaultRowBatch rows of
// one table (a message batch also deletes the messages' queue entries, at most two each), or at
// most DefaultAttachmentBatch attachments, whose rows carry up to a few MiB each.
const (
	DefaultConversationBatch = 100
	DefaultRowBatch          = 2000
	DefaultAttachmentBatch   = 50
)

// Report is what one pass removed, in counts only, and how its batches went.
type Report struct {
	Skipped              bool // another replica held the lock; nothing was done
	Conversations        int
	Messages             int
	Deliveries           int
	IdempotencyKeys      int // records of expired conversations
	Attachments          int // attachments of expired conversations
	StaleIdempotencyKeys int // records older than 24 hours
	OrphanAttachments    int // uploads no message referenced in time
	Parked               int // queue entries of guest partners past their read window
	Unparked             int // parked queues given back, readable again
	Batches              int // write transactions run
	LargestBatch         int // most rows of one table deleted by one batch
	LongestBatch         time.Duration
	Elapsed              time.Duration
}

// Worker runs purge passes.
type Worker struct {
	store   Store
	windows messaging.Windows
	now     func() time.Time
	log     *slog.Logger

	// ConversationBatch is how many expired conversations one round of a pass works on;
	// RowBatch bounds the rows of one table a single batch deletes, AttachmentBatch the
	// attachments.
	ConversationBatch int
	RowBatch          int
	AttachmentBatch   int
}

// New returns a worker that purges store by the retention of windows, at the instants now gives,
// logging each pass to log, with the default batch sizes.
func New(store Store, windows messaging.Windows, now func() time.Time, log *slog.Logger) *Worker {
	return &Worker{
		store: store, windows: windows, now: now, log: log,
		ConversationBatch: DefaultConversationBatch, RowBatch: DefaultRowBatch, AttachmentBatch: DefaultAttachmentBatch,
	}
}

// Run purges once at once and then every interval until ctx is done. A failed pass is logged
// and retried at the next interval.
func (w *Worker) Run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		_, _ = w.RunOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// RunOnce runs one pass and logs what it removed. When another replica is purging it does
// nothing and reports Skipped. A pass that fails part way keeps what it deleted and reports it
// with the error; the next pass continues. Errors: messaging.ErrUnavailable, the context's error.
func (w *Worker) RunOnce(ctx context.Context) (Report, error) {
	began := time.Now()
	release, ok, err := w.store.TryPurgeLock(ctx)
	if err != nil {
		w.log.Warn("purge failed", "error", err.Error())
		return Report{}, err
	}
	if !ok {
		w.log.Info("purge skipped: another replica is purging")
		return Report{Skipped: true}, nil
	}
	defer release()
	var r Report
	err = w.pass(ctx, w.now().UTC().Truncate(time.Millisecond), &r)
	r.Elapsed = time.Since(began)
	attrs := []any{
		"conversations", r.Conversations, "messages", r.Messages, "deliveries", r.Deliveries,
		"idempotency_keys", r.IdempotencyKeys, "attachments", r.Attachments,
		"stale_idempotency_keys", r.StaleIdempotencyKeys, "orphan_attachments", r.OrphanAttachments,
		"parked", r.Parked, "unparked", r.Unparked,
		"batches", r.Batches, "largest_batch", r.LargestBatch,
		"longest_batch_ms", r.LongestBatch.Milliseconds(), "elapsed_ms", r.Elapsed.Milliseconds(),
	}
	if err != nil {
		w.log.Warn("purge failed", append(attrs, "error", err.Error())...)
		return r, err
	}
	w.log.Info("purge done", attrs...)
	return r, nil
}

// pass deletes, round by round, the expired conversations with oldest stay end first: each
// round drains one table after the other for up to ConversationBatch conversations, then
// deletes the emptied conversations. Last go the Idempotency-Key records past their 24 hours and
// the uploads no message referenced.
func (w *Worker) pass(ctx context.Context, now time.Time, r *Report) error {
	cutoff := w.windows.RetentionCutoff(now)
	for {
		ids, err := w.store.ExpiredConversations(ctx, cutoff, w.ConversationBatch)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			break
		}
		// Each message goes with its Idempotency-Key record: a pass cut off part way never
		// leaves a record whose replay would answer the id of a deleted message, and a change
		// of the reservation that takes the conversation out of reach between two batches
		// never leaves a message whose replay would store it again. The records that answer no
		// message follow.
		err = w.drain(ctx, r, w.RowBatch, func() (int, error) {
			m, d, k, err := w.store.PurgeMessages(ctx, ids, cutoff, w.RowBatch)
			r.Messages += m
			r.Deliveries += d
			r.IdempotencyKeys += k
			return m, err
		})
		if err != nil {
			return err
		}
		err = w.drain(ctx, r, w.RowBatch, func() (int, error) {
			n, err := w.store.PurgeIdempotencyKeys(ctx, ids, cutoff, w.RowBatch)
			r.IdempotencyKeys += n
			return n, err
		})
		if err != nil {
			return err
		}
		err = w.drain(ctx, r, w.AttachmentBatch, func() (int, error) {
			n, err := w.store.PurgeAttachments(ctx, ids, cutoff, w.AttachmentBatch)
			r.Attachments += n
			return n, err
		})
		if err != nil {
			return err
		}
		var deleted int
		_, err = w.batch(r, func() (int, error) {
			n, err := w.store.DeleteConversations(ctx, ids, cutoff)
			deleted = n
			r.Conversations += n
			return n, err
		})
		if err != nil {
			return err
		}
		if deleted == 0 {
			// Whatever is left of this round was written to while it ran, or moved out of
			// the purge's reach; stop rather than spin, and let the next pass retry.
			break
		}
	}
	err := w.drain(ctx, r, w.RowBatch, func() (int, error) {
		n, err := w.store.DeleteIdempotencyKeysBefore(ctx, messaging.IdempotencyCutoff(now), w.RowBatch)
		r.StaleIdempotencyKeys += n
		return n, err
	})
	if err != nil {
		return err
	}
	err = w.drain(ctx, r, w.AttachmentBatch, func() (int, error) {
		n, err := w.store.DeleteOrphanAttachments(ctx, messaging.OrphanAttachmentCutoff(now), w.AttachmentBatch)
		r.OrphanAttachments += n
		return n, err
	})
	if err != nil {
		return err
	}
	// Last: what the pass deletes is promised (retention); parking only spares the latest pages.
	return w.park(ctx, now, r)
}

// park moves, for each guest partner, the queue entries of conversations it can no longer read
// out of the part of its queue that a latest page walks (the first page of readable entries and
// whatever lies before them), so that the page no longer passes over them one by one; then it
// gives back the parked queues that are readable again (after GUEST_WINDOW_DAYS was raised; a
// reservation's change gives its own back at once). A property partner reads until retention,
// when the entries are purged, so it has none to park.
func (w *Worker) park(ctx context.Context, now time.Time, r *Report) error {
	readableAfter := w.windows.ReadableStayEndAfter(messaging.Guest, now)
	guests, err := w.store.GuestPartners(ctx)
	if err != nil {
		return err
	}
	for _, p := range guests {
		for {
			var readable int
			n, err := w.batch(r, func() (int, error) {
				n, rd, err := w.store.ParkUnreadable(ctx, p, readableAfter, w.RowBatch)
				r.Parked += n
				readable = rd
				return n, err
			})
			if err != nil {
				return err
			}
			if n == 0 || readable >= messaging.LatestPageSize {
				break
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	return w.drain(ctx, r, w.ConversationBatch, func() (int, error) {
		n, err := w.store.UnparkReadable(ctx, readableAfter, w.ConversationBatch)
		r.Unparked += n
		return n, err
	})
}

// drain runs batch until it deletes less than a whole batch of limit rows.
func (w *Worker) drain(ctx context.Context, r *Report, limit int, batch func() (int, error)) error {
	for {
		n, err := w.batch(r, batch)
		if err != nil || n < limit {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// batch runs one batch and records its size and duration.
func (w *Worker) batch(r *Report, batch func() (int, error)) (int, error) {
	began := time.Now()
	n, err := batch()
	r.Batches++
	r.LargestBatch = max(r.LargestBatch, n)
	r.LongestBatch = max(r.LongestBatch, time.Since(began))
	return n, err
}
