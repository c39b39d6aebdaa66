// Package messaging is the domain of the guest messaging service: partners and their keys,
// accommodations, reservations with their one conversation each, messages, the per-partner
// delivery queue, and the rules that govern them (access, stay windows, idempotent sends).
// It knows neither SQL nor HTTP.
package messaging

import (
	"strconv"
	"time"

	"github.com/google/uuid"
)

// TimeFormat is how every instant is written on the wire: UTC with milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// Limits of the contract.
const (
	MaxContentLength     = 65535 // code points
	MaxAttachments       = 10
	MaxConfirmIDs        = 1000
	LatestPageSize       = 100
	MaxIdempotencyKeyLen = 255
)

// Side is one of the two participants of a conversation, and the kind of partner acting for it.
type Side string

// The two sides.
const (
	Guest    Side = "guest"
	Property Side = "property"
)

// Valid reports whether s is one of the two sides.
func (s Side) Valid() bool { return s == Guest || s == Property }

// Partner is a property platform or a guest platform.
type Partner struct {
	AffiliateID int64
	Kind        Side
	Name        string
	CreatedAt   time.Time
}

// APIKey is a partner's credential. The secret itself is never stored.
type APIKey struct {
	ID          uuid.UUID
	AffiliateID int64
	Name        string
	CreatedAt   time.Time
	RevokedAt   *time.Time
}

// Accommodation is a property, owned by one property partner.
type Accommodation struct {
	ID        int64
	PartnerID int64
	Name      string // empty when unknown
}

// Reservation status values.
const (
	StatusConfirmed = "confirmed"
	StatusCancelled = "cancelled"
)

// Reservation is what the booking system registers; it carries its one conversation.
type Reservation struct {
	ID              string
	AccommodationID int64
	GuestPartnerID  int64  // 0 when no guest partner is attached
	GuestName       string // empty when unknown
	Checkin         time.Time
	Checkout        time.Time
	Status          string
	CancelledAt     time.Time // zero unless cancelled
}

// Conversation is the one thread of a reservation, with what access and windows need.
type Conversation struct {
	ID                    uuid.UUID
	Reservation           Reservation
	AccommodationName     string
	PropertyPartnerID     int64
	GuestParticipantID    uuid.UUID
	PropertyParticipantID uuid.UUID
	StayEnd               time.Time
	LastGuestMessageAt    time.Time // zero when the guest has not written
}

// ParticipantID returns the participant of side s.
func (c Conversation) ParticipantID(s Side) uuid.UUID {
	if s == Guest {
		return c.GuestParticipantID
	}
	return c.PropertyParticipantID
}

// ParticipantName returns the display name of side s: the accommodation's name (or its id when
// no name is known) for the property, the guest's name (possibly empty) for the guest.
func (c Conversation) ParticipantName(s Side) string {
	if s == Guest {
		return c.Reservation.GuestName
	}
	if c.AccommodationName != "" {
		return c.AccommodationName
	}
	return strconv.FormatInt(c.Reservation.AccommodationID, 10)
}

// sideOf returns the side p acts for in c, and false when p may not access c at all.
func (c Conversation) sideOf(p Partner) (Side, bool) {
	switch {
	case p.Kind == Property && p.AffiliateID == c.PropertyPartnerID:
		return Property, true
	case p.Kind == Guest && p.AffiliateID == c.Reservation.GuestPartnerID:
		return Guest, true
	}
	return "", false
}

// Message is one message of a conversation.
type Message struct {
	ID             uuid.UUID
	ConversationID uuid.UUID
	Sender         Side
	Content        string
	Attachments    []uuid.UUID
	CreatedAt      time.Time
}

// Delivery is a message in a partner's queue with the conversation facts a poller needs: its
// id, reservation and accommodation, and the sender's participant id and name. Conversation
// holds only those: the other participant's id and name are left zero.
type Delivery struct {
	Message
	Conversation Conversation
}

// ConversationRef names a conversation the way partners do: by accommodation plus the
// conversation id, the reservation id, or both.
type ConversationRef struct {
	AccommodationID int64
	ConversationID  uuid.UUID // uuid.Nil when not given
	ReservationID   string    // empty when not given
	// NilConversation is set when the conversation was given as the nil UUID: well-formed, but
	// never a conversation's id, so the ref names no conversation (404), whatever else it gives.
	NilConversation bool
}
