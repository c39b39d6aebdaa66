package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/messaging"
)

// adminGate answers 404 to every /admin request while no admin token is set, so that the admin
// API does not show at all: whatever route matched, it is forgotten, and the request is logged
// and counted as one of no route (observe runs before the gate, to log its answers too).
func (s *Server) adminGate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := c.Request().URL.Path
		if s.cfg.AdminToken == "" && (p == "/admin" || strings.HasPrefix(p, "/admin/")) {
			c.SetPath("")
			return errNoRoute
		}
		return next(c)
	}
}

// requireAdmin checks the admin bearer token in constant time.
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	want := sha256.Sum256([]byte(s.cfg.AdminToken))
	return func(c echo.Context) error {
		token, ok := bearer(c.Request())
		got := sha256.Sum256([]byte(token))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return messaging.ErrUnauthorized
		}
		return next(c)
	}
}

func (s *Server) createPartner(c echo.Context) error {
	var b api.PartnerRequest
	if err := s.bindBody(c, &b); err != nil {
		return err
	}
	p := messaging.Partner{Kind: messaging.Side(b.Kind), Name: b.Name}
	if b.AffiliateID != nil {
		if *b.AffiliateID <= 0 {
			return messaging.Invalid("affiliate_id")
		}
		p.AffiliateID = *b.AffiliateID
	}
	p, err := s.svc.CreatePartner(c.Request().Context(), p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, api.Response[api.PartnerData]{RequestID: requestID(c), Data: partnerData(p)})
}

func partnerData(p messaging.Partner) api.PartnerData {
	return api.PartnerData{AffiliateID: p.AffiliateID, Kind: string(p.Kind), Name: p.Name, CreatedAt: formatTime(p.CreatedAt)}
}

func (s *Server) createKey(c echo.Context) error {
	id, err := pathInt(c, "affiliate_id")
	if err != nil {
		return err
	}
	var b api.KeyRequest
	if err := s.bindBody(c, &b); err != nil {
		return err
	}
	k, secret, err := s.svc.CreateKey(c.Request().Context(), id, b.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, api.Response[api.KeyData]{RequestID: requestID(c),
		Data: api.KeyData{KeyID: k.ID.String(), APIKey: secret, CreatedAt: formatTime(k.CreatedAt)}})
}

func (s *Server) revokeKey(c echo.Context) error {
	id, ok := canonicalUUID([]byte(c.Param("key_id")))
	if !ok {
		return messaging.Invalid("key_id")
	}
	k, err := s.svc.RevokeKey(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.Response[api.RevokedKeyData]{RequestID: requestID(c),
		Data: api.RevokedKeyData{KeyID: k.ID.String(), RevokedAt: formatTime(*k.RevokedAt)}})
}

func (s *Server) putAccommodation(c echo.Context) error {
	id, err := pathInt(c, "id")
	if err != nil {
		return err
	}
	var b accommodationBody
	if err := s.bindBody(c, &b); err != nil {
		return err
	}
	var partner int64 // absent, null or "" (empty, §2): the domain answers Missing
	if !absent(b.Partner) && string(b.Partner) != `""` {
		n, err := strconv.ParseInt(string(b.Partner), 10, 64)
		if err != nil || n <= 0 || !allDigits(string(b.Partner)) {
			return messaging.Invalid("partner") // given, so not missing
		}
		partner = n
	}
	a, err := s.svc.PutAccommodation(c.Request().Context(), messaging.Accommodation{ID: id, PartnerID: partner, Name: b.Name})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.Response[api.AccommodationData]{RequestID: requestID(c),
		Data: api.AccommodationData{ID: strconv.FormatInt(a.ID, 10), Partner: a.PartnerID, Name: a.Name}})
}

// accommodationBody is api.AccommodationRequest with the partner as written, a JSON integer.
type accommodationBody struct {
	Partner json.RawMessage `json:"partner"`
	Name    string          `json:"name"`
}

type reservationBody struct {
	Accommodation json.RawMessage `json:"accommodation"`
	GuestPartner  *int64          `json:"guest_partner"`
	GuestName     string          `json:"guest_name"`
	Checkin       string          `json:"checkin"`
	Checkout      string          `json:"checkout"`
	Status        string          `json:"status"`
	CancelledAt   string          `json:"cancelled_at"`
}

func (s *Server) putReservation(c echo.Context) error {
	id := c.Param("id")
	if !messaging.ValidReservationID(id) {
		return messaging.Invalid("id")
	}
	var b reservationBody
	if err := s.bindBody(c, &b); err != nil {
		return err
	}
	var f messaging.ValidationErrors
	r := messaging.Reservation{ID: id, GuestName: b.GuestName, Status: b.Status}
	var err error
	r.AccommodationID, err = parseAccommodation(b.Accommodation, "accommodation")
	f.Add(err)
	if b.GuestPartner != nil {
		if r.GuestPartnerID = *b.GuestPartner; r.GuestPartnerID <= 0 {
			f.Add(messaging.Invalid("guest_partner"))
		}
	}
	r.Checkin, err = parseDate(b.Checkin, "checkin")
	f.Add(err)
	r.Checkout, err = parseDate(b.Checkout, "checkout")
	f.Add(err)
	if b.CancelledAt != "" {
		if r.CancelledAt, err = time.Parse(time.RFC3339Nano, b.CancelledAt); err != nil || r.CancelledAt.IsZero() {
			f.Add(messaging.Invalid("cancelled_at")) // the zero instant: see parseDate
		}
	}
	if err := f.Err(); err != nil {
		return err
	}
	conv, err := s.svc.PutReservation(c.Request().Context(), r)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.Response[api.ReservationData]{RequestID: requestID(c), Data: reservationData(conv)})
}

func reservationData(c messaging.Conversation) api.ReservationData {
	r := c.Reservation
	d := api.ReservationData{
		ID: r.ID, Accommodation: strconv.FormatInt(r.AccommodationID, 10), Conversation: c.ID.String(),
		GuestName: r.GuestName, Checkin: r.Checkin.Format(time.DateOnly), Checkout: r.Checkout.Format(time.DateOnly),
		Status: r.Status, StayEnd: formatTime(c.StayEnd),
	}
	if r.GuestPartnerID != 0 {
		d.GuestPartner = &r.GuestPartnerID
	}
	if !r.CancelledAt.IsZero() {
		d.CancelledAt = formatTime(r.CancelledAt)
	}
	return d
}

func parseDate(s, field string) (time.Time, error) {
	if s == "" {
		return time.Time{}, messaging.Missing(field)
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.IsZero() {
		// 0001-01-01 is Go's zero time, which the domain would read as absent: it is given, and
		// outside the reservation years (messaging.FirstReservationYear).
		return time.Time{}, messaging.Invalid(field)
	}
	return t, nil
}

func pathInt(c echo.Context, name string) (int64, error) {
	n, err := strconv.ParseInt(c.Param(name), 10, 64)
	if err != nil || n <= 0 || !allDigits(c.Param(name)) {
		return 0, messaging.Invalid(name)
	}
	return n, nil
}
