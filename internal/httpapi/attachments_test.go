package httpapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/messaging"
)

// tinyPNG is a real 1×1 PNG image.
var tinyPNG = mustBase64("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")

func mustBase64(s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// fileOf returns size bytes that content sniffing takes for mediaType: its signature, then
// random bytes.
func fileOf(mediaType string, size int) []byte {
	sig := map[string]string{
		"image/png":       "\x89PNG\r\n\x1a\n",
		"image/jpeg":      "\xff\xd8\xff\xe0",
		"image/gif":       "GIF89a",
		"application/pdf": "%PDF-1.7\n",
	}[mediaType]
	b := make([]byte, size)
	_, _ = rand.Read(b)
	copy(b, sig)
	return b
}

// upload uploads data to th's conversation as from and returns the attachment id.
func (th thread) upload(t testing.TB, from *api.Client, name, mediaType string, data []byte) string {
	t.Helper()
	id, err := from.Upload(context.Background(), api.UploadRequest{
		Conversation: th.conversation, Accommodation: th.accommodation, FileName: name, FileType: mediaType,
		FileSize: int64(len(data)), FileContent: base64.StdEncoding.EncodeToString(data),
	})
	if err != nil {
		t.Fatalf("Upload(%s) = %v", name, err)
	}
	return id
}

func (th thread) attachmentRequest(id string) api.AttachmentRequest {
	return api.AttachmentRequest{Conversation: th.conversation, Accommodation: th.accommodation, Attachment: id}
}

// errorMessages returns the messages of an error envelope.
func (a answer) errorMessages(t *testing.T) []string {
	t.Helper()
	var got []string
	for _, it := range a.json(t)["errors"].([]any) {
		got = append(got, it.(map[string]any)["message"].(string))
	}
	return got
}

func TestAttachmentRoundTrip(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	ctx := context.Background()
	big := fileOf("image/jpeg", 1<<20) // the largest allowed

	small := th.upload(t, th.guest, "C:\\Users\\ada\\photo of door.png", "image/png", tinyPNG)
	large := th.upload(t, th.guest, "hall.jpg", "image/jpeg", big)

	for _, tc := range []struct {
		id, name, mediaType string
		data                []byte
	}{{small, "photo of door.png", "image/png", tinyPNG}, {large, "hall.jpg", "image/jpeg", big}} {
		md, err := th.guest.AttachmentMetadata(ctx, th.attachmentRequest(tc.id))
		if want := (api.AttachmentMetadata{FileName: tc.name, FileType: tc.mediaType, FileSize: int64(len(tc.data))}); err != nil || md != want {
			t.Errorf("AttachmentMetadata(%s) = %+v, %v; want %+v", tc.name, md, err, want)
		}
		got, err := th.guest.Download(ctx, th.attachmentRequest(tc.id))
		if err != nil || !bytes.Equal(got, tc.data) {
			t.Errorf("Download(%s) = %d bytes, %v; want the %d bytes uploaded", tc.name, len(got), err, len(tc.data))
		}
		sum := sha256.Sum256(tc.data)
		if n := e.count(`SELECT count(*) FROM attachments WHERE id = $1 AND sha256 = $2 AND length(content) = $3`, tc.id, sum[:], len(tc.data)); n != 1 {
			t.Errorf("stored %s: no row with its SHA-256 and length", tc.name)
		}
	}
	// metadata's file_size is a JSON integer.
	raw := e.as(th.guest, "/messages/attachments/metadata", `{"conversation":"`+th.conversation+`","accommodation":`+th.accommodation+`,"attachment":"`+small+`"}`)
	if !strings.Contains(string(raw.body), `"file_size":`+strconv.Itoa(len(tinyPNG))+`}`) {
		t.Errorf("metadata answer = %s, want an integer file_size", raw.body)
	}

	// Unsent, the uploads are the guest's alone.
	if _, err := th.property.AttachmentMetadata(ctx, th.attachmentRequest(small)); apiErrorID(t, err) != "not_found" {
		t.Errorf("property AttachmentMetadata(unsent) = %v, want not_found", err)
	}

	d, err := th.guest.Send(ctx, api.SendRequest{Accommodation: th.accommodation, Conversation: th.conversation,
		Content: "Photos of the door", Attachments: []string{large, small}}, "")
	if err != nil {
		t.Fatalf("Send(with attachments) = %v", err)
	}
	// Sent, they are the conversation's; ids show in latest and conversations, both versions.
	got, err := th.property.Download(ctx, th.attachmentRequest(small))
	if err != nil || !bytes.Equal(got, tinyPNG) {
		t.Errorf("property Download(sent) = %d bytes, %v", len(got), err)
	}
	latest, err := th.property.Latest(ctx)
	if err != nil || len(latest) != 1 || latest[0].MessageID != d.Message || !slices.Equal(latest[0].Attachments, []string{large, small}) {
		t.Errorf("Latest() = %+v, %v; want one message with attachments [%s %s]", latest, err, large, small)
	}
	for _, path := range []string{"/messages/latest", "/3.2/messages/latest"} {
		items := e.as(th.guest, path, "").json(t)["data"].(map[string]any)["messages"].([]any)
		if a := items[0].(map[string]any)["attachments"]; len(items) != 1 || !equalIDs(a, large, small) {
			t.Errorf("%s attachments = %v", path, a)
		}
	}
	ref := `{"accommodation":"` + th.accommodation + `","conversation":"` + th.conversation + `"}`
	for _, tc := range []struct{ path, key string }{{"/messages/conversations", "conversations"}, {"/3.2/messages/conversations", "conversation"}} {
		conv := e.as(th.property, tc.path, ref).json(t)["data"].(map[string]any)[tc.key].(map[string]any)
		if a := conv["messages"].([]any)[0].(map[string]any)["attachments"]; !equalIDs(a, large, small) {
			t.Errorf("%s attachments = %v", tc.path, a)
		}
	}
}

func equalIDs(v any, want ...string) bool {
	list, ok := v.([]any)
	if !ok || len(list) != len(want) {
		return false
	}
	for i := range list {
		if list[i] != want[i] {
			return false
		}
	}
	return true
}

func TestAttachmentVersionShapes(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	upload := func(prefix string) string {
		body, _ := json.Marshal(api.UploadRequest{Conversation: th.conversation, Accommodation: th.accommodation,
			FileName: "a.png", FileType: "image/png", FileSize: int64(len(tinyPNG)), FileContent: base64.StdEncoding.EncodeToString(tinyPNG)})
		a := e.as(th.guest, prefix+"/attachments/upload", string(body))
		id, _ := a.json(t)["data"].(map[string]any)["attachment"].(string)
		if a.status != 200 || len(id) != 36 {
			t.Fatalf("%s upload = %d %s", prefix, a.status, a.body)
		}
		return id
	}
	for _, prefix := range []string{"/messages", "/3.1/messages", "/3.2/messages"} {
		id := upload(prefix)
		req := `{"conversation":"` + th.conversation + `","accommodation":"` + th.accommodation + `","attachment":"` + id + `"}`

		md := e.as(th.guest, prefix+"/attachments/metadata", req)
		var mdResp api.Response[api.MetadataData]
		if err := json.Unmarshal(md.body, &mdResp); err != nil || md.status != 200 || mdResp.RequestID != md.header.Get("X-Request-Id") ||
			mdResp.Data.Metadata != (api.AttachmentMetadata{FileName: "a.png", FileType: "image/png", FileSize: int64(len(tinyPNG))}) {
			t.Errorf("%s metadata = %d %s", prefix, md.status, md.body)
		}

		dl := e.as(th.guest, prefix+"/attachments/download", req)
		data := dl.json(t)["data"].(map[string]any)
		want := map[string]any{"conversation": th.conversation, "file_content": base64.StdEncoding.EncodeToString(tinyPNG)}
		if prefix == "/3.2/messages" {
			want["attachment"] = id
		}
		if dl.status != 200 || len(data) != len(want) || dl.header.Get("Content-Type") != "application/json" ||
			dl.json(t)["request_id"] != dl.header.Get("X-Request-Id") {
			t.Errorf("%s download = %d %s %s", prefix, dl.status, dl.header, dl.body)
		}
		for k, v := range want {
			if data[k] != v {
				t.Errorf("%s download data.%s = %v, want %v", prefix, k, data[k], v)
			}
		}
	}
}

func TestUploadRejections(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	b64 := base64.StdEncoding.EncodeToString
	body := func(fields map[string]any) string {
		m := map[string]any{
			"conversation": th.conversation, "accommodation": th.accommodation, "file_name": "a.png",
			"file_type": "image/png", "file_size": len(tinyPNG), "file_content": b64(tinyPNG),
		}
		for k, v := range fields {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	tooBig := fileOf("image/png", 1<<20+1)
	jpeg := fileOf("image/jpeg", 100)
	cases := []struct {
		name   string
		body   string
		status int
		want   []string // error messages, in order
	}{
		{"type lie", body(map[string]any{"file_type": "image/png", "file_size": len(jpeg), "file_content": b64(jpeg)}), 400, []string{"Parameter 'file_type' is invalid."}},
		{"type not allowed", body(map[string]any{"file_type": "image/gif", "file_size": 50, "file_content": b64(fileOf("image/gif", 50))}), 400, []string{"Parameter 'file_type' is invalid."}},
		{"type not a media type", body(map[string]any{"file_type": "png"}), 400, []string{"Parameter 'file_type' is invalid."}},
		{"text is not an image", body(map[string]any{"file_size": 5, "file_content": b64([]byte("hello"))}), 400, []string{"Parameter 'file_type' is invalid."}},
		{"size lie", body(map[string]any{"file_size": len(tinyPNG) + 1}), 400, []string{"Parameter 'file_size' is invalid."}},
		{"size zero", body(map[string]any{"file_size": 0}), 400, []string{"Parameter 'file_size' is invalid."}},
		{"size negative", body(map[string]any{"file_size": -1}), 400, []string{"Parameter 'file_size' is invalid."}},
		{"size a string", body(map[string]any{"file_size": strconv.Itoa(len(tinyPNG))}), 400, []string{"Parameter 'file_size' is invalid."}},
		{"size a fraction", strings.Replace(body(nil), `"file_size":`+strconv.Itoa(len(tinyPNG)), `"file_size":70.5`, 1), 400, []string{"Parameter 'file_size' is invalid."}},
		{"too large", body(map[string]any{"file_size": len(tooBig), "file_content": b64(tooBig)}), 400, []string{"Parameter 'file_size' is invalid.", "Parameter 'file_content' is invalid."}},
		{"too large, size understated", body(map[string]any{"file_size": 1 << 20, "file_content": b64(tooBig)}), 400, []string{"Parameter 'file_content' is invalid."}},
		{"bad base64", body(map[string]any{"file_content": "iVBORw0KGgo*AAA"}), 400, []string{"Parameter 'file_content' is invalid."}},
		{"unpadded base64", body(map[string]any{"file_content": strings.TrimRight(b64(tinyPNG), "=")}), 400, []string{"Parameter 'file_content' is invalid."}},
		// Padding that ends the decoder's read of 1,024 characters: read in chunks, 769 bytes;
		// decoded by PostgreSQL, 767 (and a 500 from the table's check on file_size, before).
		{"padding inside the base64", body(map[string]any{"file_size": 769, "file_content": b64(fileOf("image/png", 765)) + "AA==AAAA"}), 400, []string{"Parameter 'file_content' is invalid."}},
		{"line breaks in the base64", body(map[string]any{"file_content": b64(tinyPNG)[:4] + "\r\n" + b64(tinyPNG)[4:]}), 400, []string{"Parameter 'file_content' is invalid."}},
		// Line breaks that keep the length a multiple of four: the length check alone passes them.
		{"line breaks in whole quanta", body(map[string]any{"file_content": b64(tinyPNG)[:4] + "\r\n\r\n" + b64(tinyPNG)[4:]}), 400, []string{"Parameter 'file_content' is invalid."}},
		{"LF line breaks in whole quanta", body(map[string]any{"file_content": b64(tinyPNG)[:4] + "\n\n\n\n" + b64(tinyPNG)[4:]}), 400, []string{"Parameter 'file_content' is invalid."}},
		{"content not a string", body(map[string]any{"file_content": 12}), 400, []string{"Parameter 'file_content' is invalid."}},
		{"name not a string", body(map[string]any{"file_name": 12}), 400, []string{"Parameter 'file_name' is invalid."}},
		{"name with NUL", body(map[string]any{"file_name": "a\x00.png"}), 400, []string{"Parameter 'file_name' is invalid."}},
		{"name with newline", body(map[string]any{"file_name": "a\n.png"}), 400, []string{"Parameter 'file_name' is invalid."}},
		{"name with bidi override", body(map[string]any{"file_name": "photo\u202egnp.exe"}), 400, []string{"Parameter 'file_name' is invalid."}},
		{"name only a path", body(map[string]any{"file_name": "../"}), 400, []string{"Parameter 'file_name' is invalid."}},
		{"name dot-dot", body(map[string]any{"file_name": "x/.."}), 400, []string{"Parameter 'file_name' is invalid."}},
		{"name too long", body(map[string]any{"file_name": strings.Repeat("é", 252) + ".png"}), 400, []string{"Parameter 'file_name' is invalid."}},
		{"conversation malformed", body(map[string]any{"conversation": "nope"}), 400, []string{"Parameter 'conversation' is invalid."}},
		{"all missing", `{}`, 400, []string{"Parameter 'accommodation' is missing.", "Parameter 'conversation' is missing.",
			"Parameter 'file_name' is missing.", "Parameter 'file_type' is missing.", "Parameter 'file_size' is missing.", "Parameter 'file_content' is missing."}},
		{"null and empty", body(map[string]any{"file_name": "", "file_type": "", "file_content": ""}), 400, []string{"Parameter 'file_name' is missing.",
			"Parameter 'file_type' is missing.", "Parameter 'file_content' is missing."}},
		{"blank name", body(map[string]any{"file_name": "  "}), 400, []string{"Parameter 'file_name' is missing."}},
		{"body over the limit", body(map[string]any{"file_content": strings.Repeat("AAAA", 2<<20/4+1)}), 413, nil},
		{"unknown conversation", body(map[string]any{"conversation": "0190a1b2-0000-7000-8000-000000000000"}), 404, nil},
		{"wrong accommodation", body(map[string]any{"accommodation": "999999"}), 404, nil},
	}
	for _, tc := range cases {
		a := e.as(th.guest, "/messages/attachments/upload", tc.body)
		if a.status != tc.status {
			t.Errorf("%s: %d %.300s, want %d", tc.name, a.status, a.body, tc.status)
			continue
		}
		a.errorID(t)
		if got := a.errorMessages(t); tc.want != nil && !slices.Equal(got, tc.want) {
			t.Errorf("%s: errors %q, want %q", tc.name, got, tc.want)
		}
	}
	if n := e.count(`SELECT count(*) FROM attachments`); n != 0 {
		t.Errorf("attachments stored after bad uploads = %d, want 0", n)
	}

	// What is accepted: a name is kept without its path, escapes in the base64 string are fine,
	// and a declared type is compared without its case or parameters.
	ok := body(map[string]any{"file_name": "../../etc/passwd.png", "file_type": "IMAGE/PNG; x=y"})
	ok = strings.Replace(ok, "/", `\/`, -1) // JSON may escape every slash, base64's too
	a := e.as(th.guest, "/messages/attachments/upload", ok)
	if a.status != 200 {
		t.Fatalf("upload with escapes = %d %s", a.status, a.body)
	}
	id := a.json(t)["data"].(map[string]any)["attachment"].(string)
	md, err := th.guest.AttachmentMetadata(context.Background(), th.attachmentRequest(id))
	if err != nil || md.FileName != "passwd.png" || md.FileType != "image/png" {
		t.Errorf("AttachmentMetadata() = %+v, %v; want passwd.png, image/png", md, err)
	}
}

func TestUploadFollowsTheSendWindow(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	// The stay ends 2026-07-06; the property may send until 7 days later.
	e.clock.Set(time.Date(2026, 7, 13, 0, 0, 0, 0, time.UTC))
	_, err := th.property.Upload(context.Background(), api.UploadRequest{Conversation: th.conversation, Accommodation: th.accommodation,
		FileName: "a.png", FileType: "image/png", FileSize: int64(len(tinyPNG)), FileContent: base64.StdEncoding.EncodeToString(tinyPNG)})
	if apiErr, ok := err.(*api.Error); !ok || apiErr.Status != 409 || apiErr.ID() != "window_closed" ||
		!strings.Contains(apiErr.Errors[0].Message, "2026-07-13T00:00:00.000Z") {
		t.Errorf("Upload() after the send window = %v, want 409 window_closed at 2026-07-13T00:00:00.000Z", err)
	}
	th.upload(t, th.guest, "a.png", "image/png", tinyPNG) // the guest's window is open still
}

func TestConfiguredAttachmentPolicy(t *testing.T) {
	e := newEnvWith(t, messaging.DefaultWindows, messaging.WithAttachmentPolicy(messaging.AttachmentPolicy{
		Types: []string{"application/pdf"}, MaxBytes: 1000,
	}))
	th := e.thread()
	pdf := fileOf("application/pdf", 1000)
	id := th.upload(t, th.guest, "terms.pdf", "application/pdf", pdf)
	if got, err := th.guest.Download(context.Background(), th.attachmentRequest(id)); err != nil || !bytes.Equal(got, pdf) {
		t.Errorf("Download(pdf) = %d bytes, %v", len(got), err)
	}
	for _, tc := range []struct {
		name, mediaType string
		data            []byte
		field           string
	}{
		{"png no longer allowed", "image/png", tinyPNG, "file_type"},
		{"over the configured size", "application/pdf", fileOf("application/pdf", 1001), "file_content"},
	} {
		_, err := th.guest.Upload(context.Background(), api.UploadRequest{Conversation: th.conversation, Accommodation: th.accommodation,
			FileName: "x", FileType: tc.mediaType, FileSize: int64(len(tc.data)), FileContent: base64.StdEncoding.EncodeToString(tc.data)})
		apiErr, ok := err.(*api.Error)
		if !ok || apiErr.ID() != "invalid_parameter" || !slices.ContainsFunc(apiErr.Errors, func(it api.ErrorItem) bool {
			return it.Message == "Parameter '"+tc.field+"' is invalid."
		}) {
			t.Errorf("%s: Upload() = %v, want invalid_parameter %s", tc.name, err, tc.field)
		}
	}
}

func TestSendChecksAttachmentReferences(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	_, otherConv := e.reservation(th.accommodation, th.guest) // the same partners' other stay
	other := th
	other.conversation = otherConv

	mine := th.upload(t, th.guest, "mine.png", "image/png", tinyPNG)
	mine2 := th.upload(t, th.guest, "mine2.png", "image/png", tinyPNG)
	elsewhere := other.upload(t, th.guest, "elsewhere.png", "image/png", tinyPNG)
	propertys := th.upload(t, th.property, "property.png", "image/png", tinyPNG) // unsent, the property's
	unknown := "0190a1b2-0000-7000-8000-000000000000"
	foreignThread := e.thread()
	foreign := foreignThread.upload(t, foreignThread.guest, "foreign.png", "image/png", tinyPNG)

	send := func(from *api.Client, ids ...string) answer {
		b, _ := json.Marshal(api.SendRequest{Accommodation: th.accommodation, Conversation: th.conversation, Content: "see attached", Attachments: ids})
		return e.as(from, "/messages/send", string(b))
	}
	cases := []struct {
		name string
		ids  []string
		want []string
	}{
		{"another conversation's", []string{elsewhere}, []string{"attachments[0]"}},
		{"another partner's conversation's", []string{mine, foreign}, []string{"attachments[1]"}},
		{"the other side's unsent upload", []string{propertys}, []string{"attachments[0]"}},
		{"unknown", []string{unknown}, []string{"attachments[0]"}},
		{"every bad position", []string{mine, unknown, mine2, elsewhere, foreign}, []string{"attachments[1]", "attachments[3]", "attachments[4]"}},
		{"twice", []string{mine, mine}, []string{"attachments[1]"}},
	}
	for _, tc := range cases {
		a := send(th.guest, tc.ids...)
		var want []string
		for _, f := range tc.want {
			want = append(want, "Parameter '"+f+"' is invalid.")
		}
		if a.status != 400 || a.errorID(t) != "invalid_parameter" || !slices.Equal(a.errorMessages(t), want) {
			t.Errorf("%s: send = %d %s, want 400 %v", tc.name, a.status, a.body, want)
		}
	}
	var eleven []string
	for range 11 {
		eleven = append(eleven, mine)
	}
	if a := send(th.guest, eleven...); a.status != 400 || !slices.Equal(a.errorMessages(t), []string{"Parameter 'attachments' is invalid."}) {
		t.Errorf("send with 11 attachments = %d %s", a.status, a.body)
	}
	if n := e.count(`SELECT count(*) FROM messages`); n != 0 {
		t.Fatalf("messages stored after rejected sends = %d, want 0", n)
	}
	if n := e.count(`SELECT count(*) FROM attachments WHERE referenced_at IS NOT NULL`); n != 0 {
		t.Fatalf("attachments marked referenced after rejected sends = %d, want 0", n)
	}

	// Once a message references it, an attachment is the conversation's: the other side may
	// read it and reference it too.
	if a := send(th.guest, mine); a.status != 200 {
		t.Fatalf("send(mine) = %d %s", a.status, a.body)
	}
	if a := send(th.property, mine, propertys); a.status != 200 {
		t.Errorf("property send(guest's sent, own unsent) = %d %s", a.status, a.body)
	}
	if n := e.count(`SELECT count(*) FROM attachments WHERE referenced_at IS NOT NULL`); n != 2 {
		t.Errorf("attachments referenced = %d, want 2", n)
	}
	// An idempotent send with attachments marks them too.
	h := authHeaders(th.guest)
	h["Idempotency-Key"] = "with-attachment"
	b, _ := json.Marshal(api.SendRequest{Accommodation: th.accommodation, Conversation: th.conversation, Content: "again", Attachments: []string{mine2}})
	if a := e.raw(http.MethodPost, "/messages/send", h, string(b)); a.status != 200 {
		t.Fatalf("idempotent send = %d %s", a.status, a.body)
	}
	if n := e.count(`SELECT count(*) FROM attachments WHERE referenced_at IS NOT NULL`); n != 3 {
		t.Errorf("attachments referenced after the idempotent send = %d, want 3", n)
	}
}

func TestAttachmentAccess(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	ctx := context.Background()
	_, otherConv := e.reservation(th.accommodation, th.guest)
	other := th
	other.conversation = otherConv
	stranger := e.partner("guest")
	foreign := e.thread()

	sent := th.upload(t, th.guest, "sent.png", "image/png", tinyPNG)
	elsewhere := other.upload(t, th.guest, "elsewhere.png", "image/png", tinyPNG)
	th.send(t, th.guest, "x") // a message, so the conversation is not empty
	if _, err := th.guest.Send(ctx, api.SendRequest{Accommodation: th.accommodation, Conversation: th.conversation, Content: "x", Attachments: []string{sent}}, ""); err != nil {
		t.Fatal(err)
	}

	notFound := []struct {
		name string
		c    *api.Client
		req  api.AttachmentRequest
	}{
		{"another conversation's attachment", th.guest, th.attachmentRequest(elsewhere)},
		{"named with its conversation but the wrong accommodation", th.guest, api.AttachmentRequest{Conversation: th.conversation, Accommodation: foreign.accommodation, Attachment: sent}},
		{"unknown attachment", th.guest, th.attachmentRequest("0190a1b2-0000-7000-8000-000000000000")},
		{"unattached guest partner", stranger, th.attachmentRequest(sent)},
		{"another thread's property", foreign.property, th.attachmentRequest(sent)},
		{"another thread's guest, own conversation", foreign.guest, api.AttachmentRequest{Conversation: foreign.conversation, Accommodation: foreign.accommodation, Attachment: sent}},
	}
	for _, tc := range notFound {
		if _, err := tc.c.AttachmentMetadata(ctx, tc.req); apiErrorID(t, err) != "not_found" {
			t.Errorf("%s: AttachmentMetadata() = %v, want not_found", tc.name, err)
		}
		if _, err := tc.c.Download(ctx, tc.req); apiErrorID(t, err) != "not_found" {
			t.Errorf("%s: Download() = %v, want not_found", tc.name, err)
		}
	}
	for _, tc := range []struct{ name, body, want string }{
		{"attachment missing", `{"conversation":"` + th.conversation + `","accommodation":"` + th.accommodation + `"}`, "Parameter 'attachment' is missing."},
		{"attachment malformed", `{"conversation":"` + th.conversation + `","accommodation":"` + th.accommodation + `","attachment":"x"}`, "Parameter 'attachment' is invalid."},
		{"conversation missing", `{"accommodation":"` + th.accommodation + `","attachment":"` + sent + `"}`, "Parameter 'conversation' is missing."},
	} {
		for _, path := range []string{"/messages/attachments/metadata", "/3.2/messages/attachments/download"} {
			if a := e.as(th.guest, path, tc.body); a.status != 400 || !slices.Equal(a.errorMessages(t), []string{tc.want}) {
				t.Errorf("%s %s = %d %s, want 400 %q", path, tc.name, a.status, a.body, tc.want)
			}
		}
	}

	// Past the guest's read window (stay end 2026-07-06 + 66 days) the guest gets 404; the
	// property still reads for a year.
	e.clock.Set(time.Date(2026, 9, 10, 0, 0, 0, 0, time.UTC))
	if _, err := th.guest.Download(ctx, th.attachmentRequest(sent)); apiErrorID(t, err) != "not_found" {
		t.Errorf("guest Download() past its read window = %v, want not_found", err)
	}
	if got, err := th.property.Download(ctx, th.attachmentRequest(sent)); err != nil || !bytes.Equal(got, tinyPNG) {
		t.Errorf("property Download() in its read window = %d bytes, %v", len(got), err)
	}
}

func TestOrphanAttachmentsArePurged(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	ctx := context.Background()
	purge := func() int {
		t.Helper()
		return e.purge().OrphanAttachments
	}

	kept := th.upload(t, th.guest, "kept.png", "image/png", tinyPNG)
	orphan := th.upload(t, th.guest, "orphan.png", "image/png", tinyPNG)
	e.clock.Set(start.Add(23 * time.Hour))
	if _, err := th.guest.Send(ctx, api.SendRequest{Accommodation: th.accommodation, Conversation: th.conversation, Content: "x", Attachments: []string{kept}}, ""); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	if n := purge(); n != 0 {
		t.Errorf("purge at 23h = %d, want 0", n)
	}
	if _, err := th.guest.Download(ctx, th.attachmentRequest(orphan)); err != nil {
		t.Errorf("Download(orphan) at 23h = %v", err)
	}

	// After 24 hours an unreferenced upload is gone for every purpose, ...
	e.clock.Set(start.Add(24 * time.Hour))
	if _, err := th.guest.Download(ctx, th.attachmentRequest(orphan)); apiErrorID(t, err) != "not_found" {
		t.Errorf("Download(orphan) at 24h = %v, want not_found", err)
	}
	_, err := th.guest.Send(ctx, api.SendRequest{Accommodation: th.accommodation, Conversation: th.conversation, Content: "x", Attachments: []string{orphan}}, "")
	if apiErrorID(t, err) != "invalid_parameter" {
		t.Errorf("Send(orphan) at 24h = %v, want invalid_parameter", err)
	}
	// ... and its row is deleted once the grace for sends in flight has passed too.
	if n := purge(); n != 0 {
		t.Errorf("purge at 24h = %d, want 0 (grace)", n)
	}
	for range 150 { // more than one batch of orphans
		th.upload(t, th.guest, "more.png", "image/png", tinyPNG)
	}
	e.clock.Set(start.Add(49 * time.Hour))
	if n := purge(); n != 151 {
		t.Errorf("purge at 49h = %d, want 151", n)
	}
	if n := e.count(`SELECT count(*) FROM attachments`); n != 1 {
		t.Errorf("attachments left = %d, want 1 (the referenced one)", n)
	}
	if got, err := th.property.Download(ctx, th.attachmentRequest(kept)); err != nil || !bytes.Equal(got, tinyPNG) {
		t.Errorf("Download(referenced) after the purge = %d bytes, %v", len(got), err)
	}
}

func TestAttachmentsArePurgedWithTheirConversation(t *testing.T) {
	e := newEnv(t)
	th, other := e.thread(), e.thread()
	th.upload(t, th.guest, "a.png", "image/png", tinyPNG)
	kept := other.upload(t, other.guest, "b.png", "image/png", tinyPNG)
	a := th.upload(t, th.guest, "c.png", "image/png", tinyPNG)
	if _, err := th.guest.Send(context.Background(), api.SendRequest{Accommodation: th.accommodation, Conversation: th.conversation, Content: "x", Attachments: []string{a}}, ""); err != nil {
		t.Fatal(err)
	}
	// th's stay ends (by cancellation) more than RETENTION_DAYS ago; other's is recent.
	e.putReservation(th.reservation, api.ReservationRequest{Accommodation: th.accommodation, Checkin: "2026-07-01",
		Checkout: "2026-07-05", Status: "cancelled", CancelledAt: "2025-06-01T00:00:00Z"}, th.guest)
	if r := e.purge(); r.Conversations != 1 || r.Attachments != 2 {
		t.Errorf("purge = %+v, want 1 conversation and its 2 attachments", r)
	}
	if n := e.count(`SELECT count(*) FROM attachments WHERE conversation_id = $1`, th.conversation); n != 0 {
		t.Errorf("attachments of the purged conversation = %d, want 0", n)
	}
	if n := e.count(`SELECT count(*) FROM attachments WHERE id = $1`, kept); n != 1 {
		t.Errorf("attachments of the other conversation = %d, want 1", n)
	}
}

// TestSlowUploadBodyDoesNotSpendTheDatabaseDeadline: REQUEST_TIMEOUT is the "deadline of each
// request's database work" and READ_TIMEOUT the "time a client has to send a whole request,
// body included" (README). An upload whose body takes longer than REQUEST_TIMEOUT to arrive,
// but well within READ_TIMEOUT, is stored: the database is healthy and its work takes
// milliseconds. (Found by review: the deadline ran from the request's start, and the upload
// answered 503 unavailable.) A body so slow that WRITE_TIMEOUT would cut the answer off gets
// its 503 while it can still be written.
func TestSlowUploadBodyDoesNotSpendTheDatabaseDeadline(t *testing.T) {
	const dbTimeout = 300 * time.Millisecond
	for _, tc := range []struct {
		answerBy time.Duration // WRITE_TIMEOUT
		want     int
	}{
		{0, http.StatusOK},
		{10 * time.Second, http.StatusOK},
		// The body ends after WRITE_TIMEOUT less AnswerMargin (1 s): 503 while it can be written.
		{1600 * time.Millisecond, http.StatusServiceUnavailable},
	} {
		e := newEnvOpts(t, envOptions{windows: messaging.DefaultWindows, dbTimeout: dbTimeout, answerBy: tc.answerBy})
		th := e.thread()
		body, _ := json.Marshal(api.UploadRequest{Conversation: th.conversation, Accommodation: th.accommodation,
			FileName: "door.png", FileType: "image/png", FileSize: int64(len(tinyPNG)),
			FileContent: base64.StdEncoding.EncodeToString(tinyPNG)})

		// The body arrives in two parts, 3 × REQUEST_TIMEOUT apart (a slow uplink; a 1 MiB upload
		// is 1.4 MB of JSON, more than 10 s at 1 Mbit/s).
		pr, pw := io.Pipe()
		go func() {
			_, _ = pw.Write(body[:len(body)/2])
			time.Sleep(3 * dbTimeout)
			_, _ = pw.Write(body[len(body)/2:])
			_ = pw.Close()
		}()
		req, err := http.NewRequest(http.MethodPost, e.url+"/messages/attachments/upload", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(len(body))
		for k, v := range authHeaders(th.guest) {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("upload whose body took %v to arrive (REQUEST_TIMEOUT %v, WRITE_TIMEOUT %v) = %d %s, want %d",
				3*dbTimeout, dbTimeout, tc.answerBy, resp.StatusCode, got, tc.want)
		}
	}
}

// TestUploadEmptyFileSizeIsMissing: §2 answers 400 missing_parameter for "a required field
// [that] is absent or empty", and "" is empty for file_size as for the upload's other fields.
// (Found by review: it answered invalid_parameter.)
func TestUploadEmptyFileSizeIsMissing(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	body, _ := json.Marshal(map[string]any{
		"conversation": th.conversation, "accommodation": th.accommodation, "file_name": "a.png",
		"file_type": "image/png", "file_size": "", "file_content": base64.StdEncoding.EncodeToString(tinyPNG),
	})
	a := e.as(th.guest, "/messages/attachments/upload", string(body))
	want := []string{"Parameter 'file_size' is missing."}
	if a.status != http.StatusBadRequest || a.errorID(t) != "missing_parameter" || !slices.Equal(a.errorMessages(t), want) {
		t.Errorf(`upload with "file_size": "" = %d %s, want 400 missing_parameter %q`, a.status, a.body, want)
	}
}

// TestUploadFileNameWithReplacementCharacter: U+FFFD REPLACEMENT CHARACTER is an ordinary,
// printable code point (category So), not a control or bidirectional control. openapi.yaml and
// the README list what makes a file name invalid: control characters, Unicode bidirectional
// controls, more than 255 code points, or nothing, "." or ".." once cleaned. A name holding
// U+FFFD (say one a client mis-decoded once) is none of these. (Found by review: the check for
// invalid UTF-8 compared each rune with utf8.RuneError, which is U+FFFD itself.)
func TestUploadFileNameWithReplacementCharacter(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	const name = "re\uFFFDsum\u00e9 scan.png"
	body, _ := json.Marshal(api.UploadRequest{Conversation: th.conversation, Accommodation: th.accommodation,
		FileName: name, FileType: "image/png", FileSize: int64(len(tinyPNG)),
		FileContent: base64.StdEncoding.EncodeToString(tinyPNG)})
	a := e.as(th.guest, "/messages/attachments/upload", string(body))
	if a.status != http.StatusOK {
		t.Fatalf("upload named %q = %d %s, want 200", name, a.status, a.body)
	}
	id := a.json(t)["data"].(map[string]any)["attachment"].(string)
	md, err := th.guest.AttachmentMetadata(context.Background(), th.attachmentRequest(id))
	if err != nil || md.FileName != name {
		t.Errorf("AttachmentMetadata() = %+v, %v; want file_name %q", md, err, name)
	}
}
