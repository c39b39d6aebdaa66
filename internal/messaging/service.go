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
	// ref.ConversationID or whose reservation is ref.ReservationID (zero, one or two of them);
	// none when keyHash is not an unrevoked key's.
	Conversations(ctx context.Context, keyHash []byte, ref ConversationRef) ([]Conversation, error)
	Messages(ctx context.Context, conversationID uuid.UUID) ([]Message, error)
	// InsertMessage is a whole send in one statement, which concurrent sends may share (each is
	// decided on its own and stored or not as if alone). It stores m in the conversation of
	// caller's side that matches every part ref gives, provided caller's key is unrevoked and
	// open allows the conversation (m.ConversationID is not used); marks m's attachments
	// referenced; and enqueues m for the conversation's partners. With a non-nil idempotency
	// record it stores that too, atomically. It stores nothing and reports false when any of
	// that does not hold or the partner already has a record of the key.
	InsertMessage(ctx context.Context, caller Caller, ref ConversationRef, open SendOpen, m Message, idem *IdempotencyRecord) (bool, error)
	IdempotencyRecord(ctx context.Context, partnerID int64, key string) (IdempotencyRecord, error)
	// Pending returns the oldest limit queue entries of the caller, oldest first, of
	// conversations whose stay end is after readableAfter, with the facts Delivery names;
	// none when the caller's key is revoked.
	Pending(ctx context.Context, caller Caller, readableAfter time.Time, limit int) ([]Delivery, error)
	// Confirm removes the given messages of conversations whose stay end is after readableAfter
	// from the caller's queue and returns the ids, among those given, that are confirmed for the
	// caller now: removed now, or visible to it in such a conversation and no longer queued.
	// It removes and returns nothing when the caller's key is revoked.
	Confirm(ctx context.Context, caller Caller, readableAfter time.Time, ids []uuid.UUID) ([]uuid.UUID, error)

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
	keys        *keyCache
}

// Option changes a default of NewService.
type Option func(*Service)

// WithAttachmentPolicy sets what uploads may be (DefaultAttachmentPolicy otherwise).
func WithAttachmentPolicy(p AttachmentPolicy) Option {
	return func(s *Service) { s.attachments = p }
}

// NewService returns a service on store with the given windows and clock.
func NewService(store Store, windows Windows, now func() time.Time, opts ...Option) *Service {
	s := &Service{store: store, windows: windows, now: now, attachments: DefaultAttachmentPolicy, keys: newKeyCache()}
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
// reservation that name two different visible conversations are ErrConflictingParameters; a
// revoked key is ErrUnauthorized.
func (s *Service) resolve(ctx context.Context, caller Caller, ref ConversationRef, now time.Time) (Conversation, Side, error) {
	if ref.NilConversation {
		return Conversation{}, "", s.recheck(ctx, caller, ErrNotFound)
	}
	found, err := s.store.Conversations(ctx, caller.KeyHash, ref)
	if err != nil {
		return Conversation{}, "", err
	}
	var byID, byReservation *Conversation
	for i := range found {
		c := &found[i]
		if side, ok := c.sideOf(caller.Partner); !ok || !now.Before(s.windows.ReadableUntil(*c, side)) {
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
		// The store found nothing when the key has been revoked. Whether it found a conversation
		// the caller may not see or none, the same calls follow: refusals look like absence.
		return Conversation{}, "", s.recheck(ctx, caller, ErrNotFound)
	case byID != nil && byReservation != nil && byID.ID != byReservation.ID:
		return Conversation{}, "", ErrConflictingParameters
	case byID == nil:
		byID = byReservation
	}
	side, _ := byID.sideOf(caller.Partner)
	return *byID, side, nil
}

func validateRef(ref ConversationRef) error {
	if ref.AccommodationID == 0 {
		return Missing("accommodation")
	}
	if ref.ConversationID == uuid.Nil && !ref.NilConversation && ref.ReservationID == "" {
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
// and field order because it is computed from the decoded input, and an empty list of
// attachments is no attachments, as an absent one is (hashed as null, as before). N is left out
// unless set, so that the records of requests without the nil conversation keep their hashes.
func (in SendInput) hash() []byte {
	attachments := in.Attachments
	if len(attachments) == 0 {
		attachments = nil
	}
	canonical, _ := json.Marshal(struct {
		A int64
		C uuid.UUID
		N bool `json:",omitempty"` // the nil conversation, which C alone cannot tell from none
		R string
		T string
		F []uuid.UUID
	}{in.Ref.AccommodationID, in.Ref.ConversationID, in.Ref.NilConversation, in.Ref.ReservationID, in.Content, attachments})
	sum := sha256.Sum256(canonical)
	return sum[:]
}

// Send stores a message from caller's side and enqueues it for every partner on the
// conversation. It returns the new message's id, or with a repeated Idempotency-Key the first
// request's. Attachments must be the conversation's and visible to the caller (see
// checkAttachments); storing the message marks them referenced. Errors: *ValidationError,
// ValidationErrors (bad attachments), ErrNotFound, ErrConflictingParameters,
// *WindowClosedError, ErrIdempotencyKeyReused, ErrUnauthorized (revoked key), ErrUnavailable.
//
// The common send, without attachments, into an open conversation and with a new key if any,
// is one statement (Store.InsertMessage). When that stores nothing, the send is made again step by
// step, which tells why (or stores, if what stopped the statement has changed since).
func (s *Service) Send(ctx context.Context, caller Caller, in SendInput) (uuid.UUID, error) {
	if err := in.validate(); err != nil {
		return uuid.Nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.Nil, err
	}
	now := s.Now()
	var idem *IdempotencyRecord
	if in.IdempotencyKey != "" {
		idem = &IdempotencyRecord{PartnerID: caller.AffiliateID, Key: in.IdempotencyKey, RequestHash: in.hash(),
			MessageID: id, CreatedAt: now}
	}
	m := Message{ID: id, Sender: caller.Kind, Content: in.Content, Attachments: in.Attachments, CreatedAt: now}
	open := s.windows.SendOpenAt(caller.Kind, now)
	if len(in.Attachments) == 0 && !in.Ref.NilConversation {
		ok, err := s.store.InsertMessage(ctx, caller, in.Ref, open, m, idem)
		if err != nil {
			return uuid.Nil, err
		}
		if ok {
			return id, nil
		}
	}
	// Step by step: explain why the statement stored nothing, or check the attachments first.
	// When the conversation changes between the steps and the statement, they run once more.
	for attempt := 0; attempt < 2; attempt++ {
		if id, done, err := s.sendStepByStep(ctx, caller, in, m, open, idem); done {
			return id, err
		}
	}
	// It changed again: nothing was stored, and a retry will tell why.
	return uuid.Nil, s.recheck(ctx, caller, ErrNotFound)
}

// sendStepByStep is Send one rule at a time, ending in the same statement. It returns done
// false, having stored nothing, when that statement no longer found the conversation as the
// steps saw it (the reservation moved, the key was revoked, the conversation was purged).
func (s *Service) sendStepByStep(ctx context.Context, caller Caller, in SendInput, m Message, open SendOpen, idem *IdempotencyRecord) (id uuid.UUID, done bool, err error) {
	if idem != nil {
		// A replay reads no conversation, so the key is checked first.
		if err := s.recheck(ctx, caller, nil); err != nil {
			return uuid.Nil, true, err
		}
		if id, err := s.replay(ctx, *idem); !errors.Is(err, ErrNotFound) {
			return id, true, err
		}
	}
	conv, side, err := s.resolve(ctx, caller, in.Ref, m.CreatedAt)
	if err != nil {
		return uuid.Nil, true, err
	}
	if until := s.windows.SendAllowedUntil(conv, side); !m.CreatedAt.Before(until) {
		return uuid.Nil, true, &WindowClosedError{ClosedAt: until}
	}
	if len(in.Attachments) > 0 {
		if err := s.checkAttachments(ctx, caller.Partner, conv.ID, in.Attachments, m.CreatedAt); err != nil {
			return uuid.Nil, true, err
		}
	}
	// The conversation is now named by its id alone: the reservation was resolved to it.
	ok, err := s.store.InsertMessage(ctx, caller, ConversationRef{AccommodationID: in.Ref.AccommodationID, ConversationID: conv.ID}, open, m, idem)
	switch {
	case err != nil:
		return uuid.Nil, true, err
	case ok:
		return m.ID, true, nil
	case idem != nil: // a concurrent request with the same key may have won; answer as it did
		if id, err := s.replay(ctx, *idem); !errors.Is(err, ErrNotFound) {
			return id, true, err
		}
	}
	return uuid.Nil, false, nil
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
// unconfirmed ones, newest first. Errors: ErrUnauthorized (revoked key), ErrUnavailable.
func (s *Service) Latest(ctx context.Context, caller Caller) ([]Delivery, error) {
	readableAfter := s.windows.ReadableStayEndAfter(caller.Kind, s.Now())
	page, err := s.store.Pending(ctx, caller, readableAfter, LatestPageSize)
	if err != nil {
		return nil, err
	}
	if len(page) == 0 {
		return page, s.recheck(ctx, caller, nil)
	}
	slices.Reverse(page)
	return page, nil
}

// Confirm removes the given messages from the caller's queue. It returns the ids of the request
// that are confirmed for the caller now, newly or before, in request order and without
// duplicates; ids that are not the caller's are left out without error.
// Errors: *ValidationError, ErrUnauthorized (revoked key), ErrUnavailable.
func (s *Service) Confirm(ctx context.Context, caller Caller, ids []uuid.UUID) ([]uuid.UUID, error) {
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
	confirmed, err := s.store.Confirm(ctx, caller, readableAfter, unique)
	if err != nil {
		return nil, err
	}
	if len(confirmed) == 0 {
		if err := s.recheck(ctx, caller, nil); err != nil {
			return nil, err
		}
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
// first. Errors: *ValidationError, ErrNotFound, ErrConflictingParameters, ErrUnauthorized
// (revoked key), ErrUnavailable.
func (s *Service) Conversation(ctx context.Context, caller Caller, ref ConversationRef) (ConversationView, error) {
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
