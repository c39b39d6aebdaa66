package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/guestmsg/messaging/api"
)

// The fuzz targets send arbitrary requests through the real server to a real database. The
// property: the answer is a success, or a 4xx in the error envelope that wrote nothing; never a
// 5xx, a panic or a broken connection. Run one with
//
//	go test ./internal/httpapi -run '^$' -fuzz '^FuzzSend$' -fuzztime 30s
//
// (`make fuzz` runs each for FUZZTIME). Inputs that fail are written to testdata/fuzz and
// replayed by every plain `go test` from then on.

// fuzzEnv is the environment of one fuzz target, reused across its inputs: a thread with a
// message, and a second thread that is not the caller's.
type fuzzEnv struct {
	*env
	th, other thread
	message   string
	tables    []string
	client    *http.Client
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	e := newEnv(f)
	fe := &fuzzEnv{env: e, th: e.thread(), other: e.thread(), client: &http.Client{}}
	d, err := fe.th.property.Send(context.Background(), api.SendRequest{Accommodation: fe.th.accommodation, Reservation: fe.th.reservation, Content: "Welcome!"}, "")
	if err != nil {
		f.Fatal(err)
	}
	fe.message = d.Message
	fe.tables = tables(f, e.db)
	return fe
}

// expand replaces the placeholders @ACC, @RES, @CONV, @MSG (the caller's thread and one of its
// messages) and @FOREIGN (another partner's conversation) so that inputs can name real rows.
func (fe *fuzzEnv) expand(body []byte) []byte {
	return []byte(strings.NewReplacer(
		"@ACC", fe.th.accommodation, "@RES", fe.th.reservation, "@CONV", fe.th.conversation,
		"@MSG", fe.message, "@FOREIGN", fe.other.conversation,
	).Replace(string(body)))
}

var knownErrorIDs = []string{
	api.ErrInvalidRequest, api.ErrMissingParameter, api.ErrInvalidParameter, api.ErrConflictingParameters,
	api.ErrUnauthorized, api.ErrForbidden, api.ErrNotFound, api.ErrMethodNotAllowed, api.ErrConflict,
	api.ErrWindowClosed, api.ErrIdempotencyKeyReused, api.ErrIdempotencyKeyInProgress,
	api.ErrPayloadTooLarge, api.ErrUnsupportedMediaType, api.ErrRateLimited,
}

// headerValue reports whether v can be sent as a header value as it is; the client refuses
// others, so such inputs say nothing about the server.
func headerValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if (v[i] < 0x20 && v[i] != '\t') || v[i] == 0x7f {
			return false
		}
	}
	return true
}

// check sends one request and holds the property.
func (fe *fuzzEnv) check(t *testing.T, method, path string, header map[string]string, body []byte) {
	for _, v := range header {
		if !headerValue(v) {
			t.Skip("not a valid header value")
		}
	}
	req, err := http.NewRequest(method, fe.url+path, bytes.NewReader(fe.expand(body)))
	if err != nil {
		t.Skip("not a valid request:", err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	before := digest(t, fe.db, fe.tables)
	resp, err := fe.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", method, path, err)
	}
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		var ok struct {
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal(got, &ok); err != nil || ok.RequestID == "" {
			t.Fatalf("%s %s = %d with a body that is not a response envelope: %.300s", method, path, resp.StatusCode, got)
		}
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		var env api.ErrorResponse
		if err := json.Unmarshal(got, &env); err != nil || env.RequestID == "" || len(env.Errors) == 0 ||
			env.RequestID != resp.Header.Get("X-Request-Id") {
			t.Fatalf("%s %s = %d outside the error envelope: %.300s", method, path, resp.StatusCode, got)
		}
		for _, it := range env.Errors {
			if !slices.Contains(knownErrorIDs, it.ID) || it.Message == "" {
				t.Fatalf("%s %s = %d with error item %+v", method, path, resp.StatusCode, it)
			}
		}
		if after := digest(t, fe.db, fe.tables); !mapsEqual(before, after) {
			t.Fatalf("%s %s = %d %s but wrote to the database:\nbefore %v\nafter  %v", method, path, resp.StatusCode, got, before, after)
		}
	default:
		t.Fatalf("%s %s = %d %.300s, want a 2xx or a 4xx", method, path, resp.StatusCode, got)
	}
}

// partnerHeaders are the caller's credentials with the given Content-Type ("" leaves it out).
func (fe *fuzzEnv) partnerHeaders(contentType string) map[string]string {
	h := authHeaders(fe.th.guest)
	if contentType == "" {
		delete(h, "Content-Type")
	} else {
		h["Content-Type"] = contentType
	}
	return h
}

func mount(n uint8) string { return mounts[int(n)%len(mounts)] }

// Seeds shared by the targets: malformed bodies every decoder must refuse with a 4xx.
var malformed = []string{
	``, ` `, `null`, `[]`, `[1]`, `"x"`, `1`, `true`, `{`, `{"a":`, `{} {}`, `{"a":1}x`,
	"{\"content\":\"\xff\xfe\"}", `{"content":"\ud800"}`, `{"a":` + strings.Repeat(`[`, 20000) + `}`,
	`{"accommodation":{}}`, `{"accommodation":[]}`, `{"accommodation":1e3}`, `{"accommodation":-0}`,
	`{"accommodation":"00"}`, `{"accommodation":"9223372036854775808"}`, `{"accommodation":9223372036854775807}`,
	`{"accommodation":"@ACC","accommodation":"1"}`,
}

var contentTypes = []string{"application/json", "", "text/plain", "application/vnd.x+json; charset=utf-8", `application/json; charset="`, "*/*", "application/json;;"}

func FuzzSend(f *testing.F) {
	fe := newFuzzEnv(f)
	for _, body := range append([]string{
		`{"accommodation":"@ACC","reservation":"@RES","content":"Hello"}`,
		`{"accommodation":@ACC,"conversation":"@CONV","content":"Hello","attachments":[]}`,
		`{"accommodation":"@ACC","conversation":"@CONV","reservation":"@RES","content":"Hello"}`,
		`{"accommodation":"@ACC","conversation":"@FOREIGN","reservation":"@RES","content":"x"}`,
		`{"accommodation":"@ACC","conversation":"@FOREIGN","content":"x"}`,
		`{"accommodation":"@ACC","reservation":@RES,"content":"  "}`,
		`{"accommodation":"@ACC","reservation":"@RES","content":"a\u0000b"}`,
		`{"accommodation":"@ACC","reservation":"@RES","content":"x","attachments":["@MSG"]}`,
		`{"accommodation":"@ACC","reservation":"@RES","content":"x","attachments":[1,"x",null]}`,
		`{"accommodation":"@ACC","reservation":"a b","content":7,"conversation":"nope"}`,
		`{"accommodation":"1","reservation":"1","content":"x","unknown":{"deep":[1,2,3]}}`,
	}, malformed...) {
		for i, key := range []string{"", "key-1", strings.Repeat("k", 256), "é"} {
			f.Add(uint8(i), contentTypes[i%len(contentTypes)], key, []byte(body))
		}
	}
	f.Fuzz(func(t *testing.T, m uint8, contentType, idempotencyKey string, body []byte) {
		h := fe.partnerHeaders(contentType)
		if idempotencyKey != "" {
			h["Idempotency-Key"] = idempotencyKey
		}
		fe.check(t, http.MethodPost, mount(m)+"/send", h, body)
	})
}

func FuzzConversations(f *testing.F) {
	fe := newFuzzEnv(f)
	for i, body := range append([]string{
		`{"accommodation":"@ACC","reservation":"@RES"}`,
		`{"accommodation":@ACC,"conversation":"@CONV"}`,
		`{"accommodation":"@ACC","conversation":"@CONV","reservation":"@RES"}`,
		`{"accommodation":"@ACC","conversation":"@FOREIGN","reservation":"@RES"}`,
		`{"accommodation":"@ACC","conversation":"@FOREIGN"}`,
		`{"accommodation":"@ACC","conversation":"@CONV","reservation":"other"}`,
		`{"accommodation":"@ACC","conversation":"@CONV0"}`,
		`{"accommodation":"@ACC","reservation":"` + strings.Repeat("r", 65) + `"}`,
		`{"accommodation":"@ACC","reservation":12345678901234567890123}`,
		`{"accommodation":"@ACC"}`, `{}`,
	}, malformed...) {
		f.Add(uint8(i), contentTypes[i%len(contentTypes)], []byte(body))
	}
	f.Fuzz(func(t *testing.T, m uint8, contentType string, body []byte) {
		fe.check(t, http.MethodPost, mount(m)+"/conversations", fe.partnerHeaders(contentType), body)
	})
}

func FuzzConfirm(f *testing.F) {
	fe := newFuzzEnv(f)
	ids := make([]string, 1001)
	for i := range ids {
		ids[i] = `"` + uuid.NewString() + `"`
	}
	for i, body := range append([]string{
		`{"messages":["@MSG"]}`,
		`{"messages":["@MSG","@MSG","@CONV"]}`,
		`{"messages":["` + uuid.NewString() + `"]}`,
		`{"messages":[]}`, `{"messages":null}`, `{"messages":{}}`, `{"messages":"@MSG"}`,
		`{"messages":["@MSG",7,"x",null,""]}`,
		`{"messages":["{@MSG}"]}`, `{"messages":["urn:uuid:@MSG"]}`,
		`{"messages":[` + strings.Join(ids[:1000], ",") + `]}`,
		`{"messages":[` + strings.Join(ids, ",") + `]}`,
	}, malformed...) {
		f.Add(uint8(i), contentTypes[i%len(contentTypes)], []byte(body))
	}
	f.Fuzz(func(t *testing.T, m uint8, contentType string, body []byte) {
		fe.check(t, http.MethodPost, mount(m)+"/latest/confirm", fe.partnerHeaders(contentType), body)
	})
}

// FuzzLatest: the body of /messages/latest is never parsed, so whatever it is the answer is 200.
func FuzzLatest(f *testing.F) {
	fe := newFuzzEnv(f)
	for i, body := range malformed {
		f.Add(uint8(i), contentTypes[i%len(contentTypes)], []byte(body))
	}
	f.Fuzz(func(t *testing.T, m uint8, contentType string, body []byte) {
		fe.check(t, http.MethodPost, mount(m)+"/latest", fe.partnerHeaders(contentType), body)
	})
}

// FuzzAdmin covers the decoding of the admin API's bodies and path ids.
func FuzzAdmin(f *testing.F) {
	fe := newFuzzEnv(f)
	routes := []struct{ method, path string }{
		{http.MethodPost, "/admin/partners"},
		{http.MethodPost, "/admin/partners/{}/keys"},
		{http.MethodDelete, "/admin/keys/{}"},
		{http.MethodPut, "/admin/accommodations/{}"},
		{http.MethodPut, "/admin/reservations/{}"},
	}
	seeds := []struct {
		route    uint8
		id, body string
	}{
		{0, "", `{"kind":"guest","name":"G"}`},
		{0, "", `{"kind":"property","name":"P","affiliate_id":42}`},
		{0, "", `{"kind":"robot","name":"","affiliate_id":-1}`},
		{0, "", `{"kind":"guest","name":"G","affiliate_id":1e30}`},
		{1, "1001", `{"name":"k"}`},
		{1, "-1", `{}`},
		{1, "99999999999999999999", ``},
		{2, "0190a1b2-0000-7000-8000-000000000000", ``},
		{2, "not-a-uuid", ``},
		{3, "@ACC", `{"partner":1001,"name":"Renamed"}`},
		{3, "77", `{"partner":"x"}`},
		{3, "78", `{"partner":1003}`},
		{4, "@RES", `{"accommodation":"@ACC","checkin":"2026-07-01","checkout":"2026-07-05"}`},
		{4, "new-1", `{"accommodation":"@ACC","checkin":"2026-07-05","checkout":"2026-07-01"}`},
		{4, "new-2", `{"accommodation":"@ACC","checkin":"2026-02-30","checkout":"2026-07-01","status":"cancelled"}`},
		{4, "new-3", `{"accommodation":"@ACC","guest_partner":1001,"checkin":"2026-07-01","checkout":"2026-07-02","status":"cancelled","cancelled_at":"yesterday"}`},
		{4, "a b", `{}`},
	}
	for i, s := range seeds {
		f.Add(s.route, s.id, contentTypes[i%2], []byte(s.body))
	}
	for i, body := range malformed {
		f.Add(uint8(i), "1", "application/json", []byte(body))
	}
	f.Fuzz(func(t *testing.T, route uint8, id, contentType string, body []byte) {
		r := routes[int(route)%len(routes)]
		path := strings.Replace(r.path, "{}", url.PathEscape(string(fe.expand([]byte(id)))), 1)
		h := map[string]string{"Authorization": "Bearer " + adminToken}
		if contentType != "" {
			h["Content-Type"] = contentType
		}
		fe.check(t, r.method, path, h, body)
	})
}
