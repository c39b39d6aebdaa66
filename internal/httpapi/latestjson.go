package httpapi

import (
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/messaging"
)

// The latest page is the largest answer on the hottest read path. It is written by hand into a
// pooled buffer: byte for byte what encoding/json writes for api.Response[api.LatestData[
// api.LatestMessage31 or api.LatestMessage32]] (a test holds the two together), without
// reflection and without building the intermediate structs and strings.

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
	buf := s.buffers.get()
	defer s.buffers.put(buf)
	*buf = appendLatest((*buf)[:0], v, requestID(c), page)
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
		b = append(b, `","metadata":{"type":`...)
		b = appendJSONString(b, string(sender))
		if name := d.Conversation.ParticipantName(sender); name != "" {
			b = append(b, `,"name":`...)
			b = appendJSONString(b, name)
		}
		b = append(b, `}},"attachments":[`...)
		for j, a := range d.Attachments {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = appendUUID(b, a)
			b = append(b, '"')
		}
		b = append(b, `],"timestamp":"`...)
		b = d.CreatedAt.UTC().AppendFormat(b, api.TimeFormat)
		b = append(b, `"}`...)
	}
	return append(b, "]}}\n"...)
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

// appendJSONString appends s as a JSON string exactly as encoding/json does with its default
// HTML escaping: <, > and & as \u003c, \u003e and \u0026, U+2028 and U+2029 escaped, invalid
// UTF-8 as U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
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
