package httpapi_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/guestmsg/messaging/api"
)

// The contract's limits at their edges, on the side that passes, and rules that only a repeat
// across partners shows (found by review, by mutation: no test held these).

// TestIdempotencyReplayIsScopedToThePartner: an Idempotency-Key is "scoped to the partner"
// (§5.1): when two partners use the same key, each one's repeat returns its own first answer.
func TestIdempotencyReplayIsScopedToThePartner(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	ctx := context.Background()
	first := map[string]string{}
	for _, p := range []struct {
		name    string
		c       *api.Client
		content string
	}{{"guest", th.guest, "Hello from the guest"}, {"property", th.property, "Hello from the property"}, {"guest", th.guest, "Hello from the guest"}, {"property", th.property, "Hello from the property"}} {
		d, err := p.c.Send(ctx, api.SendRequest{Accommodation: th.accommodation, Reservation: th.reservation, Content: p.content}, "shared-key")
		if err != nil {
			t.Errorf("%s send with the key both partners use = %v, want 200", p.name, err)
			continue
		}
		if want, ok := first[p.name]; !ok {
			first[p.name] = d.Message
		} else if d.Message != want {
			t.Errorf("%s repeat with its key = message %s, want its first message %s", p.name, d.Message, want)
		}
	}
	if n := e.count(`SELECT count(*) FROM messages`); n != 2 {
		t.Errorf("messages stored = %d, want 2 (one per partner)", n)
	}
}

// TestConfirmTakesUpTo1000IDs: confirm takes "1 to 1000 UUIDs" (§5.3); 1000 is within.
func TestConfirmTakesUpTo1000IDs(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = `"` + uuid.NewString() + `"`
	}
	if a := e.as(th.guest, "/messages/latest/confirm", `{"messages":[`+strings.Join(ids, ",")+`]}`); a.status != http.StatusOK {
		t.Errorf("confirm of 1000 ids = %d %.300s, want 200", a.status, a.body)
	}
	ids = append(ids, `"`+uuid.NewString()+`"`)
	if a := e.as(th.guest, "/messages/latest/confirm", `{"messages":[`+strings.Join(ids, ",")+`]}`); a.status != http.StatusBadRequest || a.errorID(t) != api.ErrInvalidParameter {
		t.Errorf("confirm of 1001 ids = %d %.300s, want 400 invalid_parameter", a.status, a.body)
	}
}

// TestContentOf65535CodePointsIsSent: content of "more than 65,535 characters" is invalid
// (§4), counted in code points (§2); 65,535 of them, two bytes each, is a valid message.
func TestContentOf65535CodePointsIsSent(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	content := strings.Repeat("é", 65535)
	if a := e.as(th.guest, "/messages/send", `{"accommodation":"`+th.accommodation+`","reservation":"`+th.reservation+`","content":"`+content+`"}`); a.status != http.StatusOK {
		t.Errorf("send of 65,535 code points = %d %.300s, want 200", a.status, a.body)
	}
}

// TestIdempotencyKeyOf255Characters: a key is "1 to 255 printable ASCII characters" (§5.1).
func TestIdempotencyKeyOf255Characters(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	h := authHeaders(th.guest)
	h["Idempotency-Key"] = strings.Repeat("k", 255)
	body := `{"accommodation":"` + th.accommodation + `","reservation":"` + th.reservation + `","content":"hi"}`
	first := e.raw(http.MethodPost, "/messages/send", h, body)
	if first.status != http.StatusOK {
		t.Fatalf("send with a key of 255 characters = %d %s, want 200", first.status, first.body)
	}
	if again := e.raw(http.MethodPost, "/messages/send", h, body); again.status != http.StatusOK ||
		again.json(t)["data"].(map[string]any)["message"] != first.json(t)["data"].(map[string]any)["message"] {
		t.Errorf("repeat with the key of 255 characters = %d %s, want the first answer %s", again.status, again.body, first.body)
	}
}

// TestRequestIDOf128CharactersIsReused: "A client-sent X-Request-Id of up to 128 printable ASCII
// characters is reused" (§2).
func TestRequestIDOf128CharactersIsReused(t *testing.T) {
	e := newEnv(t)
	id := strings.Repeat("r", 127) + "~"
	for _, path := range []string{"/healthz", "/messages/latest"} {
		method := http.MethodGet
		if path != "/healthz" {
			method = http.MethodPost
		}
		a := e.raw(method, path, map[string]string{"X-Request-Id": id}, "")
		if got := a.header.Get("X-Request-Id"); got != id || a.json(t)["request_id"] != id {
			t.Errorf("%s with an X-Request-Id of 128 characters answered X-Request-Id %q, body %.200s; want it reused", path, got, a.body)
		}
	}
}

// TestBodyOfExactlyTheLimitIsAccepted: a body "over the limit (default 2 MiB)" is 413 (§2); one
// of exactly 2 MiB is not over it.
func TestBodyOfExactlyTheLimitIsAccepted(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	prefix := `{"accommodation":"` + th.accommodation + `","reservation":"` + th.reservation + `","content":"hi","padding":"`
	body := prefix + strings.Repeat("x", 2<<20-len(prefix)-2) + `"}`
	if len(body) != 2<<20 {
		t.Fatalf("body of %d bytes, want %d", len(body), 2<<20)
	}
	if a := e.as(th.guest, "/messages/send", body); a.status != http.StatusOK {
		t.Errorf("send with a body of exactly 2 MiB = %d %.200s, want 200", a.status, a.body)
	}
	if a := e.as(th.guest, "/messages/send", body+" "); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("send with a body of 2 MiB + 1 byte = %d %.200s, want 413", a.status, a.body)
	}
}

// TestAccommodationZeroIsInvalid: accommodation must be positive (§2); 0 is given, so it is
// invalid_parameter, not missing_parameter ("a required field is absent or empty").
func TestAccommodationZeroIsInvalid(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	for _, acc := range []string{`0`, `"0"`, `"000"`} {
		for _, tt := range []struct{ path, body string }{
			{"/messages/send", `{"accommodation":` + acc + `,"reservation":"` + th.reservation + `","content":"hi"}`},
			{"/messages/conversations", `{"accommodation":` + acc + `,"reservation":"` + th.reservation + `"}`},
			{"/messages/attachments/upload", `{"accommodation":` + acc + `,"conversation":"` + th.conversation +
				`","file_name":"a.png","file_type":"image/png","file_size":100,"file_content":"` +
				base64.StdEncoding.EncodeToString(fileOf("image/png", 100)) + `"}`},
		} {
			a := e.as(th.guest, tt.path, tt.body)
			if a.status != http.StatusBadRequest || a.errorID(t) != api.ErrInvalidParameter ||
				!slices.Contains(a.errorMessages(t), "Parameter 'accommodation' is invalid.") {
				t.Errorf("%s with accommodation %s = %d %.200s, want 400 invalid_parameter naming accommodation", tt.path, acc, a.status, a.body)
			}
		}
	}
}
