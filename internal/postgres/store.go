// Package postgres is the messaging store on PostgreSQL: the SQL, the row structs, and the
// translation of database errors into the domain's.
package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/guestmsg/messaging/internal/messaging"
)

// Open connects to PostgreSQL with a pool of at most maxConns connections, all of which are
// kept open when idle for up to 10 minutes: letting idle connections close sooner churns them
// under moderate load, and closing them then leaves a quiet service holding few.
func Open(dsn string, maxConns int) (*sqlx.DB, error) {
	return OpenWithIOTimeout(dsn, maxConns, 0)
}

// OpenWithIOTimeout is Open where, when ioTimeout is positive, every wait for the server on a
// connection (each read or write) ends with an error after ioTimeout. Contexts alone do not
// bound a call: on cancellation lib/pq asks the server to cancel the query and keeps waiting
// for its answer, which a frozen server, or one the network cut off without closing the
// connection, never sends. The connection is then discarded and the call fails with
// messaging.ErrUnavailable. ioTimeout must exceed the longest statement the pool runs.
func OpenWithIOTimeout(dsn string, maxConns int, ioTimeout time.Duration) (*sqlx.DB, error) {
	connector, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if ioTimeout > 0 {
		connector.Dialer(boundedDialer{timeout: ioTimeout})
	}
	db := sqlx.NewDb(sql.OpenDB(connector), "postgres")
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(10 * time.Minute)
	return db, nil
}

// Probe asks whether the database answers, for /readyz, on a pool of its own of one
// connection: the requests' pool, with every connection busy (under load, or with requests
// waiting on locks), would make a database that answers look unreachable, and take a loaded
// replica out of its load balancer's rotation. (Found by review.)
type Probe struct{ db *sql.DB }

// OpenProbe opens a Probe of the database at dsn, whose reads and writes end after ioTimeout
// (0: none), as OpenWithIOTimeout's do. Close it when done.
func OpenProbe(dsn string, ioTimeout time.Duration) (*Probe, error) {
	db, err := OpenWithIOTimeout(dsn, 1, ioTimeout)
	if err != nil {
		return nil, err
	}
	return &Probe{db.DB}, nil
}

// Ping reports whether the database answers. Errors: messaging.ErrUnavailable.
func (p *Probe) Ping(ctx context.Context) error {
	return translate(p.db.PingContext(ctx))
}

// Close closes the probe's connection.
func (p *Probe) Close() error { return p.db.Close() }

// boundedDialer makes connections whose every read and write must complete within timeout.
type boundedDialer struct {
	net     net.Dialer
	timeout time.Duration
}

func (d boundedDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d boundedDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

func (d boundedDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := d.net.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return boundedConn{Conn: c, timeout: d.timeout}, nil
}

// boundedConn sets a deadline before each read and write. An idle pooled connection does
// neither, so only a wait for the server can time out.
type boundedConn struct {
	net.Conn
	timeout time.Duration
}

func (c boundedConn) Read(b []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(b)
}

func (c boundedConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// The reads that return many rows (the latest page, a conversation, a confirm's ids) hand
// their ids over as uuid_send(…), 16 raw bytes: lib/pq asks for uuid and bytea columns in
// binary, but turns a uuid into its 36 characters of text, which uuid.UUID then parses back,
// two allocations and a parse per value (a sixth of the service's CPU on a latest page); a
// bytea it passes on as it is, and uuid.UUID takes 16 bytes as they are.

// They hand their times over as timestamptz_send(…) too, 8 raw bytes, for the same reason:
// lib/pq reads a timestamptz as text, which PostgreSQL formats in the session's time zone and
// lib/pq parses back; sentTime takes the binary form as it is.

// sentTime scans timestamptz_send(…), PostgreSQL's binary timestamptz: microseconds since
// 2000-01-01 00:00:00 UTC, a big-endian int64. The time is set in UTC.
type sentTime struct{ t *time.Time }

// pgEpochMicros is 2000-01-01 00:00:00 UTC in microseconds since the Unix epoch.
const pgEpochMicros = 946_684_800_000_000

func (s sentTime) Scan(src any) error {
	b, ok := src.([]byte)
	if !ok || len(b) != 8 {
		return fmt.Errorf("scan timestamptz_send: want 8 bytes, got %T of %d", src, len(b))
	}
	*s.t = time.UnixMicro(int64(binary.BigEndian.Uint64(b)) + pgEpochMicros).UTC()
	return nil
}

// Store implements messaging.Store. The statements of the hot paths (auth, send, latest,
// confirm, conversation) are prepared once and reused on every connection.
type Store struct {
	db        *sqlx.DB
	stmts     map[string]*hotStmt // one per hotQueries, fixed by New
	sends     *sendBatcher
	lanes     []sendLane    // of sends: see sendBatcher
	keepLanes bool          // whether lanes keep a connection each
	poolSends chan struct{} // a slot per send stored alone on the pool: see insertMessage
}

// hotQueries are prepared by New.
var hotQueries = []string{
	partnerByKeyHashSQL, conversationsSQL, insertMessageSQL,
	idempotencyRecordSQL, pendingSQL, confirmSQL, confirmedBeforeSQL, messagesSQL,
}

// HotReads are the statements of the latest page and of a conversation read (the conversation,
// then its messages), exactly as the service prepares them, for cmd/bench: pgbench runs them
// alone to measure what PostgreSQL can do of those reads on the machine (its -reference).
var HotReads = struct{ Pending, Conversations, Messages string }{pendingSQL, conversationsSQL, messagesSQL}

// hotStmt is a hot query's prepared statement, once it has one.
type hotStmt struct {
	st     atomic.Pointer[sqlx.Stmt]
	mu     sync.Mutex // held while preparing it, and by Store.Close
	closed bool       // by Store.Close: it is not prepared again
}

// New returns a store on db and prepares its hot statements. Preparing needs the database:
// when it is unreachable, a statement is prepared on its first use once the database answers.
func New(ctx context.Context, db *sqlx.DB) *Store {
	s := &Store{db: db, stmts: make(map[string]*hotStmt, len(hotQueries))}
	s.sends = newSendBatcher(sendLanes, sendBatchMax, s.insertMessages, s.insertMessage)
	s.lanes = make([]sendLane, sendLanes)
	maxConns := db.Stats().MaxOpenConnections // 0: no limit
	s.keepLanes = maxConns == 0 || maxConns >= 2*sendLanes
	// Half of the connections the lanes leave, so that sends waiting for a held row leave the
	// other half to the other requests.
	poolSends := 8
	if maxConns > 0 {
		poolSends = max(1, (maxConns-sendLanes)/2)
	}
	s.poolSends = make(chan struct{}, poolSends)
	for _, q := range hotQueries {
		h := &hotStmt{}
		if st, err := db.PreparexContext(ctx, q); err == nil {
			h.st.Store(st)
		}
		s.stmts[q] = h
	}
	return s
}

// q returns the prepared form of a hot query, preparing it if New could not (one caller at a
// time; the others meanwhile, and every caller while preparing fails, run it on the pool).
// (Found by review: a store made while the database was unreachable never prepared them.)
func (s *Store) q(ctx context.Context, q string) queryer {
	h := s.stmts[q]
	if h == nil {
		return poolQueryer{db: s.db, q: q}
	}
	if st := h.st.Load(); st != nil {
		return preparedQueryer{st}
	}
	if h.mu.TryLock() {
		defer h.mu.Unlock()
		if st := h.st.Load(); st != nil {
			return preparedQueryer{st}
		}
		if !h.closed {
			if st, err := s.db.PreparexContext(ctx, q); err == nil {
				h.st.Store(st)
				return preparedQueryer{st}
			}
		}
	}
	return poolQueryer{db: s.db, q: q}
}

// queryer runs one known statement with arguments.
type queryer interface {
	QueryxContext(ctx context.Context, args ...any) (*sqlx.Rows, error)
	QueryRowxContext(ctx context.Context, args ...any) *sqlx.Row
}

type preparedQueryer struct{ *sqlx.Stmt }

type poolQueryer struct {
	db *sqlx.DB
	q  string
}

func (p poolQueryer) QueryxContext(ctx context.Context, args ...any) (*sqlx.Rows, error) {
	return p.db.QueryxContext(ctx, p.q, args...)
}

func (p poolQueryer) QueryRowxContext(ctx context.Context, args ...any) *sqlx.Row {
	return p.db.QueryRowxContext(ctx, p.q, args...)
}

// Close closes the prepared statements and the connections kept for sends; the caller closes
// the pool. Calls still in flight should have been cancelled by their contexts (at shutdown, the
// requests cut off), but a batch of sends can outlast its callers against a database that does
// not answer: Close does not wait for it, and leaves it its lane's connection, which closes
// when the process exits.
func (s *Store) Close() error {
	var errs []error
	for _, h := range s.stmts {
		h.mu.Lock()
		h.closed = true
		if st := h.st.Swap(nil); st != nil {
			errs = append(errs, st.Close())
		}
		h.mu.Unlock()
	}
	for i := range s.lanes {
		l := &s.lanes[i]
		if l.mu.TryLock() {
			errs = append(errs, l.close())
			l.closed = true
			l.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// inTx runs fn in one transaction, committed when fn returns nil, and runs it again in a new one
// when PostgreSQL rolled it back as a deadlock's victim, having changed nothing
// (outlivingDeadlocks): the operator's changes rewrite every conversation of an accommodation or
// the queues of a reservation, and the purge deletes them, so either can meet sends, confirms and
// the purge's parking in another order. fn must set what it returns on every run.
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	_, err := outlivingDeadlocks(ctx, func() (struct{}, error) { return struct{}{}, s.inTxOnce(ctx, fn) })
	return err
}

func (s *Store) inTxOnce(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return translate(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return translate(cutOff(ctx, err))
	}
	return translate(cutOff(ctx, tx.Commit()))
}

// cutOff is err, or ctx's error when database/sql rolled the transaction back itself because
// ctx ended (it watches the context), which it then reports as sql.ErrTxDone: a request cut
// off, not an unknown error. (Found by review: a deadline between the last statement and the
// commit answered 500.)
func cutOff(ctx context.Context, err error) error {
	if errors.Is(err, sql.ErrTxDone) && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// lockOrInsert runs lock, which reads a row FOR UPDATE, and when there is none, insert, which
// creates it unless a concurrent transaction already has (ON CONFLICT DO NOTHING, which waits
// for that transaction, and then sql.ErrNoRows), in which case lock runs again and reads the row
// that transaction committed. It reports whether insert created the row. Without the second
// lock, two first PUTs of one id would both read "nothing before", and the one that lost the
// insert, an update in fact, would not see what it replaces (such as the partner whose queue
// entries it must move).
func lockOrInsert(lock, insert func() error) (created bool, err error) {
	if err = lock(); !errors.Is(err, sql.ErrNoRows) {
		return false, err
	}
	if err = insert(); !errors.Is(err, sql.ErrNoRows) {
		return err == nil, err
	}
	return false, lock()
}

// Unreachable reports whether err means that the database cannot be reached now (down,
// starting up, refusing connections, or too slow), which retrying may cure.
func Unreachable(err error) bool {
	return errors.Is(translate(err), messaging.ErrUnavailable)
}

// deadlocked reports whether err is PostgreSQL's rollback of a deadlock's victim.
func deadlocked(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "40P01" // deadlock_detected
}

// lockTimedOut reports whether err is a statement's wait for a lock cut off by lock_timeout.
func lockTimedOut(err error) bool {
	var pqErr *pq.Error
	return errors.As(err, &pqErr) && pqErr.Code == "55P03" // lock_not_available
}

// translate turns database errors into the domain's vocabulary, once, for every method.
func translate(err error) error {
	var pqErr *pq.Error
	var netErr *net.OpError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, messaging.ErrNotFound), errors.Is(err, messaging.ErrConflict),
		errors.Is(err, messaging.ErrUnavailable):
		return err
	case errors.Is(err, sql.ErrNoRows):
		return messaging.ErrNotFound
	case errors.As(err, &pqErr) && pqErr.Code == "23505": // unique_violation
		return messaging.ErrConflict
	case errors.As(err, &pqErr) && (pqErr.Code.Class() == "08" || pqErr.Code.Class() == "57" || pqErr.Code.Class() == "53"):
		// connection exceptions; admin shutdown, crash shutdown, cannot connect now;
		// insufficient resources: too many connections (max_connections, or a role's or
		// database's CONNECTION LIMIT), out of memory, disk full, which may pass
		return fmt.Errorf("%w: %v", messaging.ErrUnavailable, err)
	case errors.As(err, &pqErr) && pqErr.Code == "25006":
		// read_only_sql_transaction: a hot standby (a failover's DNS or proxy not yet moved, an
		// old primary rejoined as one) or default_transaction_read_only set for maintenance;
		// nothing was written, and a retry may succeed once writes are taken again
		return fmt.Errorf("%w: %w", messaging.ErrUnavailable, err)
	case errors.As(err, &pqErr) && (pqErr.Code.Class() == "40" || pqErr.Code == "55P03"):
		// transaction rollback: a deadlock (say, an owner change against a batch of sends to
		// its conversations) or a serialization failure; or a lock not available within a
		// lock_timeout the operator set; nothing was committed, and a retry may well succeed
		// (the error stays in the chain for [deadlocked])
		return fmt.Errorf("%w: %w", messaging.ErrUnavailable, err)
	case errors.As(err, &netErr), errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// a request cut off: by REQUEST_TIMEOUT, its client, or the end of SHUTDOWN_TIMEOUT
		return fmt.Errorf("%w: %w", messaging.ErrUnavailable, err)
	}
	return err
}
