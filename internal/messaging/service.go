package messaging

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Store is what the service needs from persistence. Methods return ErrNotFound for missing rows,
// ErrConflict for taken keys, and ErrUnavailable when the database cannot be reached.
type Store interface {
	PartnerByKeyHash(ctx context.Context, hash []byte) (Partner, error)
	Partner(ctx context.Context, affiliateID int64) (Partner, error)
	CreatePartner(ctx context.Context, p Partner) (Partner, error)
	CreateKey(ctx context.Context, k APIKey, hash []byte) error
	RevokeKey(ctx context.Context, id uuid.UUID, at time.Time) (APIKey, error)
	Accommodation(ctx context.Context, id int64) (Accommodation, error)
	PutAccommodation(ctx context.Context, a Accommodation, now time.Time) error
	PutReservation(ctx context.Context, c Conversation, now time.Time) (Conversation, error)

	// Conversations returns the conversations of accommodation ref.AccommodationID whose id is
	// ref.ConversationID or whose reservation is ref.ReservationID (zero, one or two of them).
	Conversations(ctx context.Context, ref ConversationRef) ([]Conversation, error)
	Messages(ctx context.Context, conversationID uuid.UUID) ([]Message, error)
	// InsertMessage stores m, marks its attachments referenced and enqueues it for the
	// recipients. With a non-nil idempotency record it stores that too, atomically, and reports
	// false without storing anything when the partner already has a record of that key.
	InsertMessage(ctx context.Context, m Message, recipients []int64, idem *IdempotencyRecord) (bool, error)
	IdempotencyRecord(ctx context.Context, partnerID int64, key string) (IdempotencyRecord, error)
	// Pending returns the oldest limit queue entries of the partner, oldest first, of
	// conversations whose stay end is after readableAfter.
	Pending(ctx context.Context, partnerID int64, readableAfter time.Time, limit int) ([]Delivery, error)
	// Confirm removes the given messages of conversations whose stay end is after readableAfter
	// from the partner's queue and returns the ids, among those given, that are confirmed for the
	// partner now: removed now, or visible to it in such a conversation and no longer queued.
	Confirm(ctx context.Context, partnerID int64, readableAfter time.Time, ids []uuid.UUID) ([]uuid.UUID, error)

	AttachmentStore
}

// IdempotencyRecord remembers the outcome of a send made with an Idempotency-Key.
type IdempotencyRecord struct {
	PartnerID      int64
	Key            string
	RequestHash    []byte
	MessageID      uuid.UUID
	ConversationID uuid.UUID
	CreatedAt      time.Time
}

// Service carries out the partner and operator use cases.
type Service struct {
	store       Store
	windows     Windows
	now         func() time.Time
	attachments AttachmentPolicy
}

// Option changes a default of NewService.
type Option func(*Service)

// WithAttachmentPolicy sets what uploads may be (DefaultAttachmentPolicy otherwise).
func WithAttachmentPolicy(p AttachmentPolicy) Option {
	return func(s *Service) { s.attachments = p }
}

// NewService returns a service on store with the given windows and clock.
func NewService(store Store, windows Windows, now func() time.Time, opts ...Option) *Service {
	s := &Service{store: store, windows: windows, now: now, attachments: DefaultAttachmentPolicy}
	for _, o := range opts {
		o(s)
	}
	return s
}

// AttachmentPolicy returns what uploads may be.
func (s *Service) AttachmentPolicy() AttachmentPolicy { return s.attachments }

// Windows returns the window durations the service applies.
func (s *Service) Windows() Windows { return s.windows }

// Now returns the service clock's current instant, truncated to the milliseconds the wire shows.
func (s *Service) Now() time.Time { return s.now().UTC().Truncate(time.Millisecond) }

// resolve finds the conversation ref names and the side caller acts for in it. Conversations
// the caller may not access, or may no longer read, are ErrNotFound; a conversation id and a
// reservation that name two different visible conversations are ErrConflictingParameters.
func (s *Service) resolve(ctx context.Context, caller Partner, ref ConversationRef, now time.Time) (Conversation, Side, error) {
	found, err := s.store.Conversations(ctx, ref)
	if err != nil {
		return Conversation{}, "", err
	}
	var byID, byReservation *Conversation
	for i := range found {
		c := &found[i]
		if side, ok := c.sideOf(caller); !ok || !now.Before(s.windows.ReadableUntil(*c, side)) {
			continue
		}
		if ref.ConversationID != uuid.Nil && c.ID == ref.ConversationID {
			byID = c
		}
		if ref.ReservationID != "" && c.Reservation.ID == ref.ReservationID {
			byReservation = c
		}
	}
	switch {
	case ref.ConversationID != uuid.Nil && byID == nil, ref.ReservationID != "" && byReservation == nil:
		return Conversation{}, "", ErrNotFound
	case byID != nil && byReservation != nil && byID.ID != byReservation.ID:
		return Conversation{}, "", ErrConflictingParameters
	case byID == nil:
		byID = byReservation
	}
	side, _ := byID.sideOf(caller)
	return *byID, side, nil
}

func validateRef(ref ConversationRef) error {
	if ref.AccommodationID == 0 {
		return Missing("accommodation")
	}
	if ref.ConversationID == uuid.Nil && ref.ReservationID == "" {
		return Missing("reservation")
	}
	return nil
}

// SendInput is a partner's send request, already decoded from the wire.
type SendInput struct {
	Ref            ConversationRef
	Content        string
	Attachments    []uuid.UUID
	IdempotencyKey string // empty when not given
}

// validate checks the rules on content; the attachment rules need the store.
func (in SendInput) validate() error {
	if err := validateRef(in.Ref); err != nil {
		return err
	}
	if strings.TrimSpace(in.Content) == "" {
		return Missing("content")
	}
	if utf8.RuneCountInString(in.Content) > MaxContentLength || strings.ContainsRune(in.Content, 0) {
		return Invalid("content")
	}
	if len(in.Attachments) > MaxAttachments {
		return Invalid("attachments")
	}
	return nil
}

// hash identifies the request's parameters for idempotency; it ignores the wire's white space
// and field order because it is computed from the decoded input.
func (in SendInput) hash() []byte {
	canonical, _ := json.Marshal(struct {
		A int64
		C uuid.UUID
		R string
		T string
		F []uuid.UUID
	}{in.Ref.AccommodationID, in.Ref.ConversationID, in.Ref.ReservationID, in.Content, in.Attachments})
	sum := sha256.Sum256(canonical)
	return sum[:]
}

// Send stores a message from caller's side and enqueues it for every partner on the
// conversation. It returns the new message's id, or with a repeated Idempotency-Key the first
// request's. Attachments must be the conversation's and visible to the caller (see
// checkAttachments); storing the message marks them referenced. Errors: *ValidationError,
// ValidationErrors (bad attachments), ErrNotFound, ErrConflictingParameters,
// *WindowClosedError, ErrIdempotencyKeyReused, ErrUnavailable.
func (s *Service) Send(ctx context.Context, caller Partner, in SendInput) (uuid.UUID, error) {
	if err := in.validate(); err != nil {
		return uuid.Nil, err
	}
	var idem *IdempotencyRecord
	if in.IdempotencyKey != "" {
		idem = &IdempotencyRecord{PartnerID: caller.AffiliateID, Key: in.IdempotencyKey, RequestHash: in.hash()}
		if id, err := s.replay(ctx, *idem); !errors.Is(err, ErrNotFound) {
			return id, err
		}
	}
	now := s.Now()
	conv, side, err := s.resolve(ctx, caller, in.Ref, now)
	if err != nil {
		return uuid.Nil, err
	}
	if until := s.windows.SendAllowedUntil(conv, side); !now.Before(until) {
		return uuid.Nil, &WindowClosedError{ClosedAt: until}
	}
	if len(in.Attachments) > 0 {
		if err := s.checkAttachments(ctx, caller, conv.ID, in.Attachments, now); err != nil {
			return uuid.Nil, err
		}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.Nil, err
	}
	m := Message{ID: id, ConversationID: conv.ID, Sender: side, Content: in.Content, Attachments: in.Attachments, CreatedAt: now}
	if idem != nil {
		idem.MessageID, idem.ConversationID, idem.CreatedAt = id, conv.ID, now
	}
	inserted, err := s.store.InsertMessage(ctx, m, conv.Recipients(), idem)
	if err != nil {
		return uuid.Nil, err
	}
	if !inserted { // a concurrent request with the same key won; answer as it did
		return s.replay(ctx, *idem)
	}
	return id, nil
}

// replay answers a send whose Idempotency-Key the partner used before: the first message id
// when the parameters match. ErrNotFound means the key is new.
func (s *Service) replay(ctx context.Context, want IdempotencyRecord) (uuid.UUID, error) {
	rec, err := s.store.IdempotencyRecord(ctx, want.PartnerID, want.Key)
	if err != nil {
		return uuid.Nil, err
	}
	if !slices.Equal(rec.RequestHash, want.RequestHash) {
		return uuid.Nil, ErrIdempotencyKeyReused
	}
	return rec.MessageID, nil
}

// Latest returns the caller's page of undelivered messages: the LatestPageSize oldest
// unconfirmed ones, newest first. Errors: ErrUnavailable.
func (s *Service) Latest(ctx context.Context, caller Partner) ([]Delivery, error) {
	readableAfter := s.windows.ReadableStayEndAfter(caller.Kind, s.Now())
	page, err := s.store.Pending(ctx, caller.AffiliateID, readableAfter, LatestPageSize)
	if err != nil {
		return nil, err
	}
	slices.Reverse(page)
	return page, nil
}

// Confirm removes the given messages from the caller's queue. It returns the ids of the request
// that are confirmed for the caller now, newly or before, in request order and without
// duplicates; ids that are not the caller's are left out without error.
// Errors: *ValidationError, ErrUnavailable.
func (s *Service) Confirm(ctx context.Context, caller Partner, ids []uuid.UUID) ([]uuid.UUID, error) {
	if len(ids) == 0 {
		return nil, Missing("messages")
	}
	if len(ids) > MaxConfirmIDs {
		return nil, Invalid("messages")
	}
	unique := make([]uuid.UUID, 0, len(ids))
	seen := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			unique = append(unique, id)
		}
	}
	readableAfter := s.windows.ReadableStayEndAfter(caller.Kind, s.Now())
	confirmed, err := s.store.Confirm(ctx, caller.AffiliateID, readableAfter, unique)
	if err != nil {
		return nil, err
	}
	ok := make(map[uuid.UUID]bool, len(confirmed))
	for _, id := range confirmed {
		ok[id] = true
	}
	return slices.DeleteFunc(unique, func(id uuid.UUID) bool { return !ok[id] }), nil
}

// ConversationView is a whole conversation as one side sees it, with that side's windows.
type ConversationView struct {
	Conversation
	Messages         []Message
	Side             Side
	SendAllowedUntil time.Time
	ReadableUntil    time.Time
	Open             bool // the side may send now
}

// Conversation returns the conversation ref names, as the caller sees it, messages oldest
// first. Errors: *ValidationError, ErrNotFound, ErrConflictingParameters, ErrUnavailable.
func (s *Service) Conversation(ctx context.Context, caller Partner, ref ConversationRef) (ConversationView, error) {
	if err := validateRef(ref); err != nil {
		return ConversationView{}, err
	}
	now := s.Now()
	conv, side, err := s.resolve(ctx, caller, ref, now)
	if err != nil {
		return ConversationView{}, err
	}
	msgs, err := s.store.Messages(ctx, conv.ID)
	if err != nil {
		return ConversationView{}, err
	}
	until := s.windows.SendAllowedUntil(conv, side)
	return ConversationView{
		Conversation:     conv,
		Messages:         msgs,
		Side:             side,
		SendAllowedUntil: until,
		ReadableUntil:    s.windows.ReadableUntil(conv, side),
		Open:             now.Before(until),
	}, nil
}

// Indexed names element i of an array field the way error messages do: "messages[3]".
func Indexed(field string, i int) string {
	return field + "[" + strconv.Itoa(i) + "]"
}
