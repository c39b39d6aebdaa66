package httpapi

import (
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/messaging"
)

// The answers of the hot paths (the latest page, its confirm, and the conversation) are written
// by hand into a pooled buffer: byte for byte what encoding/json writes for their wire types of
// package api (tests hold the two together), without reflection and without building the
// intermediate structs and strings.

// bufferPool reuses the buffers answers are written into.
type bufferPool struct{ pool sync.Pool }

// maxPooledBuffer keeps unusually large answers from staying in the pool.
const maxPooledBuffer = 1 << 20

func (p *bufferPool) get() *[]byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

func (p *bufferPool) put(b *[]byte) {
	if cap(*b) <= maxPooledBuffer {
		*b = (*b)[:0]
		p.pool.Put(b)
	}
}

// writeLatest answers with the page in the shapes of v.
func (s *Server) writeLatest(c echo.Context, v version, page []messaging.Delivery) error {
	return s.writeJSON(c, func(b []byte) []byte { return appendLatest(b, v, requestID(c), page) })
}

// writeConversation answers with the conversation in the shapes of v.
func (s *Server) writeConversation(c echo.Context, v version, view messaging.ConversationView) error {
	return s.writeJSON(c, func(b []byte) []byte { return appendConversation(b, v, requestID(c), view) })
}

// writeConfirm answers with the confirmed ids in the shapes of v, each as spelled maps it when
// spelled is not nil (see spellings).
func (s *Server) writeConfirm(c echo.Context, v version, ids []uuid.UUID, spelled map[uuid.UUID]string) error {
	return s.writeJSON(c, func(b []byte) []byte { return appendConfirm(b, v, requestID(c), ids, spelled) })
}

// writeJSON answers 200 with the JSON that appendAnswer appends to a pooled buffer.
func (s *Server) writeJSON(c echo.Context, appendAnswer func([]byte) []byte) error {
	buf := s.buffers.get()
	defer s.buffers.put(buf)
	*buf = appendAnswer((*buf)[:0])
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	h.Set(echo.HeaderContentLength, strconv.Itoa(len(*buf)))
	c.Response().WriteHeader(http.StatusOK)
	_, err := c.Response().Write(*buf)
	return err
}

// appendLatest appends the latest answer, with encoding/json's trailing newline.
func appendLatest(b []byte, v version, requestID string, page []messaging.Delivery) []byte {
	b = append(b, `{"request_id":`...)
	b = appendJSONString(b, requestID)
	b = append(b, `,"data":{"messages":[`...)
	for i := range page {
		d := &page[i]
		if i > 0 {
			b = append(b, ',')
		}
		if v == v32 {
			b = append(b, `{"id":"`...)
		} else {
			b = append(b, `{"message_id":"`...)
		}
		b = appendUUID(b, d.ID)
		if v == v32 {
			b = append(b, `","conversation":{"id":"`...)
		} else {
			b = append(b, `","reply_to":null,"conversation":{"id":"`...)
		}
		b = appendUUID(b, d.Conversation.ID)
		b = append(b, `","accommodation":"`...)
		b = strconv.AppendInt(b, d.Conversation.Reservation.AccommodationID, 10)
		b = append(b, `","reservation":`...)
		b = appendJSONString(b, d.Conversation.Reservation.ID)
		b = append(b, `},"content":`...)
		b = appendJSONString(b, d.Content)
		if v == v32 {
			b = append(b, `,"sender":{"participant":"`...)
		} else {
			b = append(b, `,"sender":{"participant_id":"`...)
		}
		sender := d.Message.Sender
		b = appendUUID(b, d.Conversation.ParticipantID(sender))
		b = append(b, `","metadata":`...)
		b = appendMetadata(b, sender, d.Conversation.ParticipantName(sender))
		b = append(b, `},"attachments":`...)
		b = appendUUIDs(b, d.Attachments, nil)
		b = append(b, `,"timestamp":"`...)
		b = appendTime(b, d.CreatedAt)
		b = append(b, `"}`...)
	}
	return append(b, "]}}\n"...)
}

// appendConfirm appends the confirm answer (api.Response of api.ConfirmData31, or
// api.ConfirmResponse32), with encoding/json's trailing newline; the ids as spelled maps them
// when it is not nil.
func appendConfirm(b []byte, v version, requestID string, ids []uuid.UUID, spelled map[uuid.UUID]string) []byte {
	b = append(b, `{"request_id":`...)
	b = appendJSONString(b, requestID)
	if v == v32 {
		b = append(b, `,"confirmedMessages":`...)
		b = appendUUIDs(b, ids, spelled)
		return append(b, "}\n"...)
	}
	b = append(b, `,"data":{"confirmed_messages":`...)
	b = appendUUIDs(b, ids, spelled)
	return append(b, "}}\n"...)
}

// appendConversation appends the conversations answer (api.Response of api.ConversationData31
// or api.ConversationData32), with encoding/json's trailing newline.
func appendConversation(b []byte, v version, requestID string, view messaging.ConversationView) []byte {
	b = append(b, `{"request_id":`...)
	b = appendJSONString(b, requestID)
	if v == v32 {
		b = append(b, `,"data":{"conversation":{"id":"`...)
	} else {
		b = append(b, `,"data":{"conversations":{"id":"`...)
	}
	b = appendUUID(b, view.ID)
	b = append(b, `","accommodation":"`...)
	b = strconv.AppendInt(b, view.Reservation.AccommodationID, 10)
	b = append(b, `","reservation":`...)
	b = appendJSONString(b, view.Reservation.ID)
	b = append(b, `,"messages":[`...)
	for i := range view.Messages {
		m := &view.Messages[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = appendUUID(b, m.ID)
		b = append(b, `","sender":"`...)
		b = appendUUID(b, view.ParticipantID(m.Sender))
		b = append(b, `","content":`...)
		b = appendJSONString(b, m.Content)
		b = append(b, `,"attachments":`...)
		b = appendUUIDs(b, m.Attachments, nil)
		b = append(b, `,"timestamp":"`...)
		b = appendTime(b, m.CreatedAt)
		if v == v32 {
			b = append(b, `"}`...)
		} else {
			b = append(b, `","reply_to":null}`...)
		}
	}
	b = append(b, `],"participants":[`...)
	for i, side := range []messaging.Side{messaging.Guest, messaging.Property} {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`...)
		b = appendUUID(b, view.ParticipantID(side))
		b = append(b, `","metadata":`...)
		b = appendMetadata(b, side, view.ParticipantName(side))
		b = append(b, '}')
	}
	b = append(b, `],"state":"`...)
	if view.Open {
		b = append(b, api.StateOpen...)
	} else {
		b = append(b, api.StateReadOnly...)
	}
	b = append(b, `","send_allowed_until":"`...)
	b = appendTime(b, view.SendAllowedUntil)
	b = append(b, `","readable_until":"`...)
	b = appendTime(b, view.ReadableUntil)
	return append(b, "\"}}}\n"...)
}

// appendMetadata appends a participant's metadata (api.ParticipantMetadata): its side, and its
// name unless empty.
func appendMetadata(b []byte, side messaging.Side, name string) []byte {
	b = append(b, `{"type":`...)
	b = appendJSONString(b, string(side))
	if name != "" {
		b = append(b, `,"name":`...)
		b = appendJSONString(b, name)
	}
	return append(b, '}')
}

// appendUUIDs appends ids as a JSON array of strings, each as spelled maps it when spelled is
// not nil, and as the service writes ids otherwise.
func appendUUIDs(b []byte, ids []uuid.UUID, spelled map[uuid.UUID]string) []byte {
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		if spelled != nil {
			b = appendJSONString(b, spelled[id])
			continue
		}
		b = append(b, '"')
		b = appendUUID(b, id)
		b = append(b, '"')
	}
	return append(b, ']')
}

// appendTime appends t as t.UTC().AppendFormat(b, api.TimeFormat) does, digit by digit rather
// than by interpreting the layout (a latest page has 100 times to write).
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, api.TimeFormat)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / 1e6 // truncated, as the layout's .000 does
	return append(b,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-', byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':', byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// appendUUID appends the canonical text form of id.
func appendUUID(b []byte, id uuid.UUID) []byte {
	const hexDigits = "0123456789abcdef"
	for i, x := range id {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hexDigits[x>>4], hexDigits[x&0x0f])
	}
	return b
}

// jsonSafe[c] tells whether ASCII byte c is written as it is: not a control character, '"',
// '\\', or one of HTML's '<', '>' and '&'.
var jsonSafe = func() (safe [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		safe[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return safe
}()

// appendJSONString appends s as a JSON string exactly as encoding/json does with its default
// HTML escaping: <, > and & as \u003c, \u003e and \u0026, U+2028 and U+2029 escaped, invalid
// UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
