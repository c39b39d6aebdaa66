package httpapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
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
// message and attachments, and a second thread that is not the caller's (the thread's guest).
type fuzzEnv struct {
	*env
	th, other thread
	message   string
	sent      string // an attachment of th that a message references
	mine      string // the caller's unsent upload to th
	unsent    string // the property's unsent upload to th, which the caller cannot see
	foreign   string // an attachment of the other thread
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
	fe.sent = fe.th.upload(f, fe.th.guest, "sent.png", "image/png", tinyPNG)
	if _, err := fe.th.guest.Send(context.Background(), api.SendRequest{Accommodation: fe.th.accommodation, Conversation: fe.th.conversation,
		Content: "Attached", Attachments: []string{fe.sent}}, ""); err != nil {
		f.Fatal(err)
	}
	fe.mine = fe.th.upload(f, fe.th.guest, "mine.png", "image/png", tinyPNG)
	fe.unsent = fe.th.upload(f, fe.th.property, "unsent.png", "image/png", tinyPNG)
	fe.foreign = fe.other.upload(f, fe.other.guest, "foreign.png", "image/png", tinyPNG)
	fe.tables = tables(f, e.db)
	return fe
}

// expand replaces the placeholders @ACC, @RES, @CONV, @MSG (the caller's thread and one of its
// messages), @FOREIGN (another partner's conversation), and the attachments @ATT (sent), @MINE
// (the caller's unsent upload), @UNSENT (the other side's unsent upload) and @XATT (of the
// other conversation), so that inputs can name real rows.
func (fe *fuzzEnv) expand(body []byte) []byte {
	return []byte(strings.NewReplacer(
		"@ACC", fe.th.accommodation, "@RES", fe.th.reservation, "@CONV", fe.th.conversation,
		"@MSG", fe.message, "@FOREIGN", fe.other.conversation,
		"@ATT", fe.sent, "@MINE", fe.mine, "@UNSENT", fe.unsent, "@XATT", fe.foreign,
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
		`{"accommodation":"@ACC","conversation":"@CONV","content":"x","attachments":["@ATT","@MINE"]}`,
		`{"accommodation":"@ACC","conversation":"@CONV","content":"x","attachments":["@UNSENT","@XATT","@ATT","@ATT"]}`,
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

// addBodySeeds adds each body as JSON, in every mount in turn, so that each reaches the
// endpoint's decoding, and the first body with every content type.
func addBodySeeds(f *testing.F, bodies []string) {
	for i, body := range bodies {
		f.Add(uint8(i), "application/json", []byte(body))
	}
	for i, contentType := range contentTypes {
		f.Add(uint8(i), contentType, []byte(bodies[0]))
	}
}

// uploadBody is an upload to the caller's conversation with the given file fields, JSON
// values as they stand in the body.
func uploadBody(name, fileType, size, content string) string {
	return `{"accommodation":"@ACC","conversation":"@CONV","file_name":` + name + `,"file_type":` + fileType +
		`,"file_size":` + size + `,"file_content":` + content + `}`
}

func FuzzUpload(f *testing.F) {
	fe := newFuzzEnv(f)
	b64 := base64.StdEncoding.EncodeToString
	png := strconv.Quote(b64(tinyPNG))
	pngSize := strconv.Itoa(len(tinyPNG))
	jpeg := append([]byte("\xff\xd8\xff\xe0"), make([]byte, 96)...)
	tooLarge := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 1<<20-7)...) // 1 MiB + 1
	seeds := []string{
		uploadBody(`"a.png"`, `"image/png"`, pngSize, png),
		`{"accommodation":@ACC,"conversation":"@CONV","file_name":"a.png","file_type":"image/png","file_size":` + pngSize + `,"file_content":` + png + `}`,
		uploadBody(`"b.jpg"`, `"image/jpeg"`, "100", strconv.Quote(b64(jpeg))),
		uploadBody(`"a.png"`, `"IMAGE/PNG; x=y"`, pngSize, strings.ReplaceAll(png, "/", `\/`)),
		uploadBody(`"C:\\Users\\ada\\door.png"`, `"image/png"`, pngSize, png),
		// Sizes that are not the file's, and numbers too large for any field.
		uploadBody(`"a.png"`, `"image/png"`, strconv.Itoa(len(tinyPNG)+1), png),
		uploadBody(`"a.png"`, `"image/png"`, strconv.Itoa(len(tinyPNG)-1), png),
		uploadBody(`"a.png"`, `"image/png"`, "0", png),
		uploadBody(`"a.png"`, `"image/png"`, "-70", png),
		uploadBody(`"a.png"`, `"image/png"`, "1048577", png),
		uploadBody(`"a.png"`, `"image/png"`, "9223372036854775807", png),
		uploadBody(`"a.png"`, `"image/png"`, "9223372036854775808", png),
		uploadBody(`"a.png"`, `"image/png"`, "99999999999999999999999999999999999999", png),
		uploadBody(`"a.png"`, `"image/png"`, "1e400", png),
		uploadBody(`"a.png"`, `"image/png"`, "7e1", png),
		uploadBody(`"a.png"`, `"image/png"`, "70.0", png),
		uploadBody(`"a.png"`, `"image/png"`, "-0", png),
		uploadBody(`"a.png"`, `"image/png"`, "1048577", strconv.Quote(b64(tooLarge))),
		uploadBody(`"a.png"`, `"image/png"`, "1048576", strconv.Quote(b64(tooLarge))),
		// Base64 that is not.
		uploadBody(`"a.png"`, `"image/png"`, pngSize, `"iVBORw0KGgo*AAA"`),
		uploadBody(`"a.png"`, `"image/png"`, pngSize, strconv.Quote(strings.TrimRight(b64(tinyPNG), "="))),
		uploadBody(`"a.png"`, `"image/png"`, pngSize, strconv.Quote(base64.URLEncoding.EncodeToString(tinyPNG))),
		uploadBody(`"a.png"`, `"image/png"`, pngSize, strconv.Quote(b64(tinyPNG)[:20]+"\n"+b64(tinyPNG)[20:])),
		uploadBody(`"a.png"`, `"image/png"`, pngSize, `"\u0069VBORw0KGgo="`),
		uploadBody(`"a.png"`, `"image/png"`, "1", `"===="`),
		uploadBody(`"a.png"`, `"image/png"`, "1", `"A"`),
		uploadBody(`"a.png"`, `"image/png"`, "1", `"\ud800"`),
		// Types that lie, or are not allowed.
		uploadBody(`"a.png"`, `"image/jpeg"`, pngSize, png),
		uploadBody(`"b.jpg"`, `"image/png"`, "100", strconv.Quote(b64(jpeg))),
		uploadBody(`"a.gif"`, `"image/gif"`, "6", strconv.Quote(b64([]byte("GIF89a")))),
		uploadBody(`"a.txt"`, `"text/plain"`, "5", strconv.Quote(b64([]byte("hello")))),
		uploadBody(`"a.png"`, `"image/png"`, "5", strconv.Quote(b64([]byte("hello")))),
		uploadBody(`"a.png"`, `"image/png; charset=\""`, pngSize, png),
		uploadBody(`"a.png"`, `"png"`, pngSize, png),
		// Names to distrust.
		uploadBody(`"../../etc/passwd.png"`, `"image/png"`, pngSize, png),
		uploadBody(`"a\u0000.png"`, `"image/png"`, pngSize, png),
		uploadBody(`"photo\u202egnp.exe"`, `"image/png"`, pngSize, png),
		uploadBody(`".."`, `"image/png"`, pngSize, png),
		uploadBody(strconv.Quote(strings.Repeat("é", 256)), `"image/png"`, pngSize, png),
		// Wrong JSON types, nulls and empties.
		uploadBody(`"a.png"`, `"image/png"`, strconv.Quote(pngSize), png),
		uploadBody(`"a.png"`, `"image/png"`, "true", png),
		uploadBody(`"a.png"`, `"image/png"`, "null", png),
		uploadBody(`"a.png"`, `"image/png"`, pngSize, "12"),
		uploadBody(`"a.png"`, `"image/png"`, pngSize, "["+png+"]"),
		uploadBody(`"a.png"`, `"image/png"`, pngSize, "{}"),
		uploadBody(`"a.png"`, `"image/png"`, pngSize, `""`),
		uploadBody(`12`, `["image/png"]`, pngSize, png),
		uploadBody(`null`, `null`, "null", "null"),
		`{"accommodation":"@ACC","conversation":7,"file_name":"a.png","file_type":"image/png","file_size":` + pngSize + `,"file_content":` + png + `}`,
		// Conversations that are not the caller's, or not of the accommodation.
		`{"accommodation":"@ACC","conversation":"@FOREIGN","file_name":"a.png","file_type":"image/png","file_size":` + pngSize + `,"file_content":` + png + `}`,
		`{"accommodation":"1","conversation":"@CONV","file_name":"a.png","file_type":"image/png","file_size":` + pngSize + `,"file_content":` + png + `}`,
		`{"accommodation":"@ACC","conversation":"@ATT","file_name":"a.png","file_type":"image/png","file_size":` + pngSize + `,"file_content":` + png + `}`,
		`{}`,
	}
	addBodySeeds(f, append(seeds, malformed...))
	f.Fuzz(func(t *testing.T, m uint8, contentType string, body []byte) {
		fe.check(t, http.MethodPost, mount(m)+"/attachments/upload", fe.partnerHeaders(contentType), body)
	})
}

// attachmentSeeds are bodies of metadata and download: the caller's attachments, others', and
// ids that are not.
var attachmentSeeds = []string{
	`{"accommodation":"@ACC","conversation":"@CONV","attachment":"@ATT"}`,
	`{"accommodation":@ACC,"conversation":"@CONV","attachment":"@MINE"}`,
	`{"accommodation":"@ACC","conversation":"@CONV","attachment":"@UNSENT"}`,
	`{"accommodation":"@ACC","conversation":"@CONV","attachment":"@XATT"}`,
	`{"accommodation":"@ACC","conversation":"@FOREIGN","attachment":"@XATT"}`,
	`{"accommodation":"@ACC","conversation":"@CONV","attachment":"@MSG"}`,
	`{"accommodation":"@ACC","conversation":"@ATT","attachment":"@CONV"}`,
	`{"accommodation":"1","conversation":"@CONV","attachment":"@ATT"}`,
	`{"accommodation":"@ACC","conversation":"@CONV","attachment":"00000000-0000-0000-0000-000000000000"}`,
	`{"accommodation":"@ACC","conversation":"@CONV","attachment":"{@ATT}"}`,
	`{"accommodation":"@ACC","conversation":"@CONV","attachment":"urn:uuid:@ATT"}`,
	`{"accommodation":"@ACC","conversation":"@CONV","attachment":"x"}`,
	`{"accommodation":"@ACC","conversation":"@CONV","attachment":7}`,
	`{"accommodation":"@ACC","conversation":"@CONV","attachment":["@ATT"]}`,
	`{"accommodation":"@ACC","conversation":"@CONV","attachment":null}`,
	`{"accommodation":"@ACC","conversation":"@CONV","attachment":""}`,
	`{"accommodation":"@ACC","attachment":"@ATT"}`,
	`{"conversation":"@CONV","attachment":"@ATT"}`,
	`{"accommodation":"@ACC","conversation":"@CONV","reservation":"@RES","attachment":"@ATT","file_content":"x"}`,
	`{}`,
}

func FuzzAttachmentMetadata(f *testing.F) {
	fuzzAttachmentRead(f, "/attachments/metadata")
}

func FuzzDownload(f *testing.F) {
	fuzzAttachmentRead(f, "/attachments/download")
}

// fuzzAttachmentRead fuzzes metadata or download: their bodies are alike.
func fuzzAttachmentRead(f *testing.F, path string) {
	fe := newFuzzEnv(f)
	addBodySeeds(f, append(slices.Clone(attachmentSeeds), malformed...))
	f.Fuzz(func(t *testing.T, m uint8, contentType string, body []byte) {
		fe.check(t, http.MethodPost, mount(m)+path, fe.partnerHeaders(contentType), body)
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
		// PostgreSQL's text cannot hold NUL: each name is checked before it is stored.
		{0, "", `{"kind":"guest","name":"a\u0000b"}`},
		{1, "1001", `{"name":"\u0000"}`},
		{3, "@ACC", `{"partner":1001,"name":"a\u0000"}`},
		{4, "@RES", `{"accommodation":"@ACC","guest_name":"\u0000b","checkin":"2026-07-01","checkout":"2026-07-05"}`},
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
