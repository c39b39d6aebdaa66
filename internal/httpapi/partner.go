package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/messaging"
)

// version is the shape family of a partner route: a version prefix changes field names only.
type version int

const (
	v31 version = iota
	v32
)

// refBody is the part of a partner request that names a conversation.
type refBody struct {
	Accommodation json.RawMessage `json:"accommodation"`
	Conversation  json.RawMessage `json:"conversation"`
	Reservation   json.RawMessage `json:"reservation"`
}

func (b refBody) ref(f *messaging.ValidationErrors) messaging.ConversationRef {
	var ref messaging.ConversationRef
	var err error
	ref.AccommodationID, err = parseAccommodation(b.Accommodation, "accommodation")
	f.Add(err)
	f.Add(parseConversation(b.Conversation, false, &ref))
	ref.ReservationID, err = parseReservation(b.Reservation, "reservation")
	f.Add(err)
	return ref
}

type sendBody struct {
	refBody
	Content     json.RawMessage `json:"content"`
	Attachments json.RawMessage `json:"attachments"`
}

func (s *Server) send(c echo.Context) error {
	var b sendBody
	if err := s.bindBody(c, &b); err != nil {
		return err
	}
	var f messaging.ValidationErrors
	in := messaging.SendInput{Ref: b.ref(&f)}
	var err error
	if in.Content, err = parseString(b.Content, "content"); err == nil && in.Content == "" {
		err = messaging.Missing("content")
	}
	f.Add(err)
	in.Attachments, err = parseUUIDs(b.Attachments, "attachments", messaging.MaxAttachments)
	f.Add(err)
	// A key on two lines is one value of two (RFC 9110 §5.3), which a proxy may join into one:
	// invalid, as Authorization and X-Affiliate-Id given twice are.
	if key, ok := c.Request().Header[http.CanonicalHeaderKey("Idempotency-Key")]; ok {
		in.IdempotencyKey = key[0]
		if len(key) > 1 || !validIdempotencyKey(in.IdempotencyKey) {
			f.Add(messaging.Invalid("Idempotency-Key"))
		}
	}
	if err := f.Err(); err != nil {
		return err
	}
	id, err := s.svc.Send(c.Request().Context(), callerOf(c), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.Response[api.SendData]{RequestID: requestID(c), Data: api.SendData{Message: id.String()}})
}

// validIdempotencyKey: 1 to 255 printable ASCII characters.
func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > messaging.MaxIdempotencyKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// latest ignores the request body entirely.
func (s *Server) latest(v version) echo.HandlerFunc {
	return func(c echo.Context) error {
		page, err := s.svc.Latest(c.Request().Context(), callerOf(c))
		if err != nil {
			return err
		}
		return s.writeLatest(c, v, page)
	}
}

type confirmBody struct {
	Messages json.RawMessage `json:"messages"`
}

func (s *Server) confirm(v version) echo.HandlerFunc {
	return func(c echo.Context) error {
		var b confirmBody
		if err := s.bindBody(c, &b); err != nil {
			return err
		}
		ids, err := parseUUIDs(b.Messages, "messages", messaging.MaxConfirmIDs)
		if err != nil {
			return err
		}
		confirmed, err := s.svc.Confirm(c.Request().Context(), callerOf(c), ids)
		if err != nil {
			return err
		}
		return s.writeConfirm(c, v, confirmed, spellings(b.Messages))
	}
}

func (s *Server) conversation(v version) echo.HandlerFunc {
	return func(c echo.Context) error {
		var b refBody
		if err := s.bindBody(c, &b); err != nil {
			return err
		}
		var f messaging.ValidationErrors
		ref := b.ref(&f)
		if err := f.Err(); err != nil {
			return err
		}
		view, err := s.svc.Conversation(c.Request().Context(), callerOf(c), ref)
		if err != nil {
			return err
		}
		return s.writeConversation(c, v, view)
	}
}

// formatTime is t in api.TimeFormat, in UTC.
func formatTime(t time.Time) string { return string(appendTime(nil, t)) }
