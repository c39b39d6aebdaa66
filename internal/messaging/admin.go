package messaging

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
)

// keyPrefix marks API key secrets so they are recognisable in a leaked-secret scan.
const keyPrefix = "gmk_"

// NewSecret returns a fresh API key secret (256 random bits) and the hash that is stored.
func NewSecret() (secret string, hash []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	secret = keyPrefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret(secret)
}

// HashSecret is how a secret is stored and looked up. A plain SHA-256 suffices: the secrets are
// random and long, so there is nothing for a slow hash to protect against.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// CreatePartner registers a partner; an AffiliateID of 0 asks for one to be assigned.
// Errors: *ValidationError, ErrConflict (the id is taken), ErrUnavailable.
func (s *Service) CreatePartner(ctx context.Context, p Partner) (Partner, error) {
	switch {
	case p.Kind == "":
		return Partner{}, Missing("kind")
	case !p.Kind.Valid():
		return Partner{}, Invalid("kind")
	case strings.TrimSpace(p.Name) == "":
		return Partner{}, Missing("name")
	case !validName(p.Name):
		return Partner{}, Invalid("name")
	case p.AffiliateID < 0:
		return Partner{}, Invalid("affiliate_id")
	}
	p.CreatedAt = s.Now()
	return s.store.CreatePartner(ctx, p)
}

// CreateKey issues an API key for the partner and returns it with its secret, which is not
// stored and cannot be shown again. Errors: *ValidationError, ErrNotFound (no such partner),
// ErrUnavailable.
func (s *Service) CreateKey(ctx context.Context, affiliateID int64, name string) (APIKey, string, error) {
	if !validName(name) {
		return APIKey{}, "", Invalid("name")
	}
	if _, err := s.store.Partner(ctx, affiliateID); err != nil {
		return APIKey{}, "", err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return APIKey{}, "", err
	}
	secret, hash := NewSecret()
	k := APIKey{ID: id, AffiliateID: affiliateID, Name: name, CreatedAt: s.Now()}
	if err := s.store.CreateKey(ctx, k, hash); err != nil {
		return APIKey{}, "", err
	}
	return k, secret, nil
}

// RevokeKey stops a key from working, at once. Revoking a revoked key keeps its first
// revocation time. Errors: ErrNotFound, ErrUnavailable.
func (s *Service) RevokeKey(ctx context.Context, id uuid.UUID) (APIKey, error) {
	return s.store.RevokeKey(ctx, id, s.Now())
}

// PutAccommodation creates or updates an accommodation. When its owner changes, the old owner's
// queue loses the accommodation's conversations and the new owner's receives their messages:
// all of them, but for an owner that had a conversation before, only what it had not confirmed
// then and what was sent since (a confirmed message never comes back).
// Errors: *ValidationError, ErrUnavailable.
func (s *Service) PutAccommodation(ctx context.Context, a Accommodation) (Accommodation, error) {
	if a.ID <= 0 {
		return Accommodation{}, Invalid("id")
	}
	if !validName(a.Name) {
		return Accommodation{}, Invalid("name")
	}
	if err := s.requirePartner(ctx, a.PartnerID, Property, "partner"); err != nil {
		return Accommodation{}, err
	}
	if err := s.store.PutAccommodation(ctx, a, s.Now()); err != nil {
		return Accommodation{}, err
	}
	return a, nil
}

// PutReservation creates or updates a reservation and its conversation; changing dates or
// cancelling moves the windows at once. Attaching another guest partner moves the
// conversation from the old guest partner's queue to the new one's, as PutAccommodation does
// for owners.
// Errors: *ValidationError, ErrConflict (registered at another accommodation), ErrUnavailable.
func (s *Service) PutReservation(ctx context.Context, r Reservation) (Conversation, error) {
	if r.ID == "" || !ValidReservationID(r.ID) {
		return Conversation{}, Invalid("id")
	}
	if r.AccommodationID <= 0 {
		return Conversation{}, Missing("accommodation")
	}
	if !validName(r.GuestName) {
		return Conversation{}, Invalid("guest_name")
	}
	switch {
	case r.Checkin.IsZero():
		return Conversation{}, Missing("checkin")
	case r.Checkout.IsZero():
		return Conversation{}, Missing("checkout")
	case !inReservationYears(r.Checkin):
		return Conversation{}, Invalid("checkin")
	case !inReservationYears(r.Checkout) || !r.Checkout.After(r.Checkin):
		return Conversation{}, Invalid("checkout")
	}
	switch r.Status {
	case "":
		r.Status = StatusConfirmed
		fallthrough
	case StatusConfirmed:
		r.CancelledAt = time.Time{}
	case StatusCancelled:
		if r.CancelledAt.IsZero() {
			return Conversation{}, Missing("cancelled_at")
		}
		// Kept as the stay end it defines (whatever offset it was written with), so that the
		// two are one instant on the wire.
		r.CancelledAt = r.CancelledAt.UTC().Truncate(time.Millisecond)
		if !inReservationYears(r.CancelledAt) {
			return Conversation{}, Invalid("cancelled_at")
		}
	default:
		return Conversation{}, Invalid("status")
	}
	_, err := s.store.Accommodation(ctx, r.AccommodationID)
	if errors.Is(err, ErrNotFound) {
		return Conversation{}, Invalid("accommodation")
	}
	if err != nil {
		return Conversation{}, err
	}
	if r.GuestPartnerID != 0 {
		if err := s.requirePartner(ctx, r.GuestPartnerID, Guest, "guest_partner"); err != nil {
			return Conversation{}, err
		}
	}
	// The store takes the property partner and name from the accommodation, under lock.
	c := Conversation{Reservation: r, StayEnd: StayEnd(r)}
	// Fresh ids, used only when the conversation is created.
	if c.ID, err = uuid.NewV7(); err != nil {
		return Conversation{}, err
	}
	c.GuestParticipantID, c.PropertyParticipantID = uuid.New(), uuid.New()
	return s.store.PutReservation(ctx, c, s.Now())
}

// A reservation's dates, and its cancellation instant in UTC, lie in the years
// FirstReservationYear to LastReservationYear. Later, the end of the longest retention the
// configuration allows (MaxWindowDays, under 100 years) would need a five-digit year on the wire,
// whatever RETENTION_DAYS is when the reservation is registered, since it can be raised later.
// Earlier, nothing of the stay would be kept under any retention; and the years 1 and 0 hold
// Go's zero time, which stands for "absent" here, and a leap day lib/pq writes wrongly.
const (
	FirstReservationYear = 1900
	LastReservationYear  = 9899
)

func inReservationYears(t time.Time) bool {
	return t.Year() >= FirstReservationYear && t.Year() <= LastReservationYear
}

// requirePartner checks that partner id exists and is of kind; otherwise field is invalid.
func (s *Service) requirePartner(ctx context.Context, id int64, kind Side, field string) error {
	switch {
	case id == 0:
		return Missing(field)
	case id < 0:
		return Invalid(field)
	}
	p, err := s.store.Partner(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && p.Kind != kind) {
		return Invalid(field)
	}
	return err
}

// validName reports whether a name can be stored: PostgreSQL's text holds any UTF-8 but NUL
// (the JSON decoder has already replaced invalid UTF-8).
func validName(name string) bool {
	return !strings.ContainsRune(name, 0)
}

// ValidReservationID reports whether id is 1 to 64 characters of A-Za-z0-9._-.
func ValidReservationID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
