package api

// PartnerRequest is the body of POST /admin/partners; AffiliateID is assigned when nil.
type PartnerRequest struct {
	Kind        string `json:"kind"`
	Name        string `json:"name"`
	AffiliateID *int64 `json:"affiliate_id,omitempty"`
}

// PartnerData describes a partner.
type PartnerData struct {
	AffiliateID int64  `json:"affiliate_id"`
	Kind        string `json:"kind"`
	Name        string `json:"name"`
	CreatedAt   string `json:"created_at"`
}

// KeyRequest is the body of POST /admin/partners/{affiliate_id}/keys.
type KeyRequest struct {
	Name string `json:"name,omitempty"`
}

// KeyData is a new key: the only time APIKey, the secret, is shown.
type KeyData struct {
	KeyID     string `json:"key_id"`
	APIKey    string `json:"api_key"`
	CreatedAt string `json:"created_at"`
}

// RevokedKeyData is the answer of DELETE /admin/keys/{key_id}.
type RevokedKeyData struct {
	KeyID     string `json:"key_id"`
	RevokedAt string `json:"revoked_at"`
}

// AccommodationRequest is the body of PUT /admin/accommodations/{id}.
type AccommodationRequest struct {
	Partner int64  `json:"partner"`
	Name    string `json:"name,omitempty"`
}

// AccommodationData describes an accommodation; Name is omitted when unknown.
type AccommodationData struct {
	ID      string `json:"id"`
	Partner int64  `json:"partner"`
	Name    string `json:"name,omitempty"`
}

// Reservation statuses.
const (
	StatusConfirmed = "confirmed"
	StatusCancelled = "cancelled"
)

// ReservationRequest is the body of PUT /admin/reservations/{id}. Checkin and Checkout are
// dates (2026-07-01); CancelledAt is a timestamp, required when Status is "cancelled".
type ReservationRequest struct {
	Accommodation string `json:"accommodation"`
	GuestPartner  *int64 `json:"guest_partner,omitempty"`
	GuestName     string `json:"guest_name,omitempty"`
	Checkin       string `json:"checkin"`
	Checkout      string `json:"checkout"`
	Status        string `json:"status,omitempty"`
	CancelledAt   string `json:"cancelled_at,omitempty"`
}

// ReservationData describes a registered reservation and its conversation.
type ReservationData struct {
	ID            string `json:"id"`
	Accommodation string `json:"accommodation"`
	Conversation  string `json:"conversation"`
	GuestPartner  *int64 `json:"guest_partner"`
	GuestName     string `json:"guest_name,omitempty"`
	Checkin       string `json:"checkin"`
	Checkout      string `json:"checkout"`
	Status        string `json:"status"`
	CancelledAt   string `json:"cancelled_at,omitempty"`
	StayEnd       string `json:"stay_end"`
}
