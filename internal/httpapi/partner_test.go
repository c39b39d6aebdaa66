package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guestmsg/messaging/api"
)

var timestampRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestSendLatestConfirmRoundTrip(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	ctx := context.Background()

	q := th.send(t, th.guest, "Is early check-in possible?")
	e.clock.Set(start.Add(time.Minute))
	a := th.send(t, th.property, "Yes, from 11:00.")

	for _, c := range []*api.Client{th.property, th.guest} {
		got, err := c.Latest(ctx)
		if err != nil {
			t.Fatalf("Latest() = %v", err)
		}
		ids := []string{}
		for _, m := range got {
			ids = append(ids, m.MessageID)
		}
		if want := []string{a, q}; !slices.Equal(ids, want) {
			t.Fatalf("Latest() ids = %v, want %v (newest first)", ids, want)
		}
		m := got[1]
		if m.Content != "Is early check-in possible?" || m.Conversation.ID != th.conversation ||
			m.Conversation.Accommodation != th.accommodation || m.Conversation.Reservation != th.reservation ||
			m.Sender.Metadata.Type != "guest" || m.Sender.Metadata.Name != "Ada" || m.ReplyTo != nil ||
			m.Timestamp != "2026-07-03T12:00:00.000Z" || m.Attachments == nil {
			t.Errorf("Latest()[1] = %+v", m)
		}
		if got[0].Sender.Metadata.Type != "property" || got[0].Sender.Metadata.Name != "Sea View Rooms" {
			t.Errorf("Latest()[0].Sender = %+v", got[0].Sender)
		}
		confirmed, err := c.Confirm(ctx, []string{q, a, q})
		if err != nil || !slices.Equal(confirmed, []string{q, a}) {
			t.Fatalf("Confirm() = %v, %v; want [%s %s]", confirmed, err, q, a)
		}
		if got, _ := c.Latest(ctx); len(got) != 0 {
			t.Errorf("Latest() after confirm = %d messages, want 0", len(got))
		}
		// Confirming again is idempotent and still lists them.
		confirmed, err = c.Confirm(ctx, []string{a, q})
		if err != nil || !slices.Equal(confirmed, []string{a, q}) {
			t.Errorf("Confirm() again = %v, %v; want [%s %s]", confirmed, err, a, q)
		}
	}

	conv, err := th.guest.Conversation(ctx, api.ConversationRequest{Accommodation: th.accommodation, Reservation: th.reservation})
	if err != nil {
		t.Fatalf("Conversation() = %v", err)
	}
	if len(conv.Messages) != 2 || conv.Messages[0].ID != q || conv.Messages[1].ID != a {
		t.Fatalf("Conversation().Messages = %+v, want [%s %s]", conv.Messages, q, a)
	}
	if conv.State != "open" || !timestampRE.MatchString(conv.SendAllowedUntil) || !timestampRE.MatchString(conv.ReadableUntil) {
		t.Errorf("Conversation() windows = %q %q %q", conv.State, conv.SendAllowedUntil, conv.ReadableUntil)
	}
}

func TestLatestDrainsOldestFirstInPagesOf100(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	ctx := context.Background()
	var sent []string
	for i := range 250 {
		e.clock.Set(start.Add(time.Duration(i) * time.Millisecond))
		from := th.guest
		if i%3 == 0 {
			from = th.property
		}
		sent = append(sent, th.send(t, from, fmt.Sprintf("message %d", i)))
	}
	for page, want := range [][]string{sent[:100], sent[100:200], sent[200:]} {
		got, err := th.property.Latest(ctx)
		if err != nil {
			t.Fatalf("Latest() page %d = %v", page, err)
		}
		ids := make([]string, len(got))
		for i, m := range got {
			ids[len(got)-1-i] = m.MessageID // the page is newest first
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("Latest() page %d = %d ids, want the %d oldest pending in order", page, len(ids), len(want))
		}
		// Without a confirm, the same page comes back: at least once delivery.
		again, _ := th.property.Latest(ctx)
		if len(again) != len(got) || again[0].MessageID != got[0].MessageID {
			t.Fatalf("Latest() repeated page %d differs", page)
		}
		if confirmed, err := th.property.Confirm(ctx, ids); err != nil || len(confirmed) != len(ids) {
			t.Fatalf("Confirm(page %d) = %d, %v", page, len(confirmed), err)
		}
	}
	if got, _ := th.property.Latest(ctx); len(got) != 0 {
		t.Errorf("Latest() after draining = %d, want 0", len(got))
	}
	// The guest's queue is independent and still holds everything.
	if got, _ := th.guest.Latest(ctx); len(got) != 100 || got[99].MessageID != sent[0] {
		t.Errorf("guest Latest() = %d messages, want the 100 oldest", len(got))
	}
}

func TestConfirmIgnoresForeignAndUnknownIDs(t *testing.T) {
	e := newEnv(t)
	mine, other := e.thread(), e.thread()
	ctx := context.Background()
	m := mine.send(t, mine.guest, "hello")
	foreign := other.send(t, other.guest, "not yours")
	unknown := "0190a1b2-0000-7000-8000-000000000000"
	got, err := mine.property.Confirm(ctx, []string{foreign, unknown, m})
	if err != nil || !slices.Equal(got, []string{m}) {
		t.Fatalf("Confirm() = %v, %v; want [%s]", got, err, m)
	}
	// The other property still has its message pending.
	if pending, _ := other.property.Latest(ctx); len(pending) != 1 || pending[0].MessageID != foreign {
		t.Errorf("other Latest() = %+v, want [%s]", pending, foreign)
	}
}

// TestConfirmAnswersTheIDsAsTheRequestWroteThem: ids are read in either case, and the answer
// lists "the ids of the request" (§5.3) as the request wrote them, so that a client checking the
// answer against what it sent finds them; the first spelling of an id given twice.
func TestConfirmAnswersTheIDsAsTheRequestWroteThem(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	m, n := th.send(t, th.guest, "one"), th.send(t, th.guest, "two")
	upper, mixed := strings.ToUpper(m), strings.ToUpper(n[:8])+n[8:]
	for _, path := range []string{"/messages/latest/confirm", "/3.2/messages/latest/confirm"} {
		a := e.as(th.property, path, `{"messages":["`+upper+`","`+m+`","`+mixed+`"]}`)
		var resp struct {
			Data struct {
				Confirmed []string `json:"confirmed_messages"`
			} `json:"data"`
			Confirmed []string `json:"confirmedMessages"`
		}
		if err := json.Unmarshal(a.body, &resp); a.status != 200 || err != nil {
			t.Fatalf("%s = %d %s", path, a.status, a.body)
		}
		got := append(resp.Data.Confirmed, resp.Confirmed...)
		if want := []string{upper, mixed}; !slices.Equal(got, want) {
			t.Errorf("%s confirmed %v, want %v", path, got, want)
		}
	}
	if got := ids(latest(t, th.property)); len(got) != 0 {
		t.Errorf("Latest after the confirm = %v, want none", got)
	}
}

func TestVersion32Shapes(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	m := th.send(t, th.guest, "hi")

	latest := e.as(th.property, "/3.2/messages/latest", "")
	body := latest.json(t)
	item := body["data"].(map[string]any)["messages"].([]any)[0].(map[string]any)
	sender := item["sender"].(map[string]any)
	if item["id"] != m || item["message_id"] != nil || sender["participant"] == nil || sender["participant_id"] != nil {
		t.Errorf("3.2 latest item = %v", item)
	}
	if _, ok := item["reply_to"]; ok {
		t.Errorf("3.2 latest item has reply_to: %v", item)
	}

	confirm := e.as(th.property, "/3.2/messages/latest/confirm", `{"messages":["`+m+`"]}`).json(t)
	if _, ok := confirm["data"]; ok || fmt.Sprint(confirm["confirmedMessages"]) != "["+m+"]" || confirm["request_id"] == "" {
		t.Errorf("3.2 confirm = %v", confirm)
	}

	ref := `{"accommodation":"` + th.accommodation + `","reservation":"` + th.reservation + `"}`
	conv := e.as(th.guest, "/3.2/messages/conversations", ref).json(t)["data"].(map[string]any)
	c, ok := conv["conversation"].(map[string]any)
	if !ok || conv["conversations"] != nil {
		t.Fatalf("3.2 conversations data = %v", conv)
	}
	if msg := c["messages"].([]any)[0].(map[string]any); msg["reply_to"] != nil || msg["id"] != m {
		t.Errorf("3.2 conversation message = %v", msg)
	}
	if _, has := c["messages"].([]any)[0].(map[string]any)["reply_to"]; has {
		t.Errorf("3.2 conversation message has reply_to")
	}

	for _, prefix := range []string{"/messages", "/3.1/messages"} {
		d := e.as(th.guest, prefix+"/conversations", ref).json(t)["data"].(map[string]any)
		c31, ok := d["conversations"].(map[string]any)
		if !ok {
			t.Fatalf("%s conversations data = %v", prefix, d)
		}
		msg := c31["messages"].([]any)[0].(map[string]any)
		if v, has := msg["reply_to"]; !has || v != nil {
			t.Errorf("%s conversation message reply_to = %v, %v; want null", prefix, v, has)
		}
		parts := c31["participants"].([]any)
		if len(parts) != 2 {
			t.Errorf("%s participants = %v", prefix, parts)
		}
	}
}

func TestIntegerIDsAreAcceptedAndWrittenAsStrings(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	body := `{"accommodation":` + th.accommodation + `,"reservation":` + th.reservation + `,"content":"numeric ids"}`
	if a := e.as(th.guest, "/messages/send", body); a.status != 200 {
		t.Fatalf("send with integer ids = %d %s", a.status, a.body)
	}
	got, err := th.property.Latest(context.Background())
	if err != nil || len(got) != 1 || got[0].Conversation.Accommodation != th.accommodation || got[0].Conversation.Reservation != th.reservation {
		t.Fatalf("Latest() = %+v, %v", got, err)
	}
}

func TestForeignConversationsAnswerNotFound(t *testing.T) {
	e := newEnv(t)
	mine, other := e.thread(), e.thread()
	ctx := context.Background()
	stranger := e.partner("guest") // a guest partner attached to nothing
	cases := []struct {
		name string
		c    *api.Client
		th   thread
	}{
		{"other property", other.property, mine},
		{"other guest", other.guest, mine},
		{"unattached guest", stranger, mine},
	}
	for _, tc := range cases {
		_, err := tc.c.Send(ctx, api.SendRequest{Accommodation: tc.th.accommodation, Reservation: tc.th.reservation, Content: "x"}, "")
		if id := apiErrorID(t, err); id != "not_found" {
			t.Errorf("%s: Send() = %v, want not_found", tc.name, err)
		}
		_, err = tc.c.Conversation(ctx, api.ConversationRequest{Accommodation: tc.th.accommodation, Conversation: tc.th.conversation})
		if id := apiErrorID(t, err); id != "not_found" {
			t.Errorf("%s: Conversation() = %v, want not_found", tc.name, err)
		}
	}
	// A real reservation named with another accommodation is not found either.
	_, err := mine.guest.Send(ctx, api.SendRequest{Accommodation: other.accommodation, Reservation: mine.reservation, Content: "x"}, "")
	if id := apiErrorID(t, err); id != "not_found" {
		t.Errorf("Send(wrong accommodation) = %v, want not_found", err)
	}
	// A foreign conversation id next to one's own reservation is not found, not conflicting.
	_, err = mine.guest.Send(ctx, api.SendRequest{Accommodation: mine.accommodation, Reservation: mine.reservation, Conversation: other.conversation, Content: "x"}, "")
	if id := apiErrorID(t, err); id != "not_found" {
		t.Errorf("Send(foreign conversation id) = %v, want not_found", err)
	}
	// Nothing of mine shows in the others' queues.
	mine.send(t, mine.guest, "private")
	for _, c := range []*api.Client{other.property, other.guest, stranger} {
		if got, _ := c.Latest(ctx); len(got) != 0 {
			t.Errorf("foreign Latest() = %d messages, want 0", len(got))
		}
	}
}

func TestConflictingParameters(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	_, conv2 := e.reservation(th.accommodation, th.guest)
	_, err := th.guest.Send(context.Background(), api.SendRequest{Accommodation: th.accommodation, Reservation: th.reservation, Conversation: conv2, Content: "x"}, "")
	if id := apiErrorID(t, err); id != "conflicting_parameters" {
		t.Errorf("Send(two conversations) = %v, want conflicting_parameters", err)
	}
	// Both naming the same conversation is fine.
	if _, err := th.guest.Send(context.Background(), api.SendRequest{Accommodation: th.accommodation, Reservation: th.reservation, Conversation: th.conversation, Content: "x"}, ""); err != nil {
		t.Errorf("Send(matching ids) = %v", err)
	}
}

// TestNilUUIDNamesNothing: the nil UUID written out is a well-formed id that the service never
// issues. Given as a conversation or an attachment it is an unknown id (404), never "not
// given", so it cannot stand aside for the reservation beside it; in a confirm it is ignored
// like any unknown id. A revoked key still gets 401 first.
func TestNilUUIDNamesNothing(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	ctx := context.Background()
	const nilID = "00000000-0000-0000-0000-000000000000"
	m := th.send(t, th.guest, "hello")

	for _, req := range []api.SendRequest{
		{Accommodation: th.accommodation, Conversation: nilID, Reservation: th.reservation, Content: "x"},
		{Accommodation: th.accommodation, Conversation: nilID, Content: "x"},
	} {
		if _, err := th.guest.Send(ctx, req, ""); apiErrorID(t, err) != "not_found" {
			t.Errorf("Send(%+v) = %v, want not_found", req, err)
		}
	}
	if _, err := th.guest.Conversation(ctx, api.ConversationRequest{Accommodation: th.accommodation, Conversation: nilID}); apiErrorID(t, err) != "not_found" {
		t.Errorf("Conversation(nil id) = %v, want not_found", err)
	}
	if pending, err := th.property.Latest(ctx); err != nil || len(pending) != 1 || pending[0].MessageID != m {
		t.Errorf("property Latest() = %+v, %v; want only %s", pending, err, m)
	}
	if got, err := th.property.Confirm(ctx, []string{nilID, m}); err != nil || !slices.Equal(got, []string{m}) {
		t.Errorf("Confirm(nil id, %s) = %v, %v; want [%s]", m, got, err, m)
	}

	photo := th.upload(t, th.guest, "photo.png", "image/png", tinyPNG)
	for name, req := range map[string]api.AttachmentRequest{
		"nil attachment":   th.attachmentRequest(nilID),
		"nil conversation": {Conversation: nilID, Accommodation: th.accommodation, Attachment: photo},
	} {
		if _, err := th.guest.AttachmentMetadata(ctx, req); apiErrorID(t, err) != "not_found" {
			t.Errorf("%s: AttachmentMetadata() = %v, want not_found", name, err)
		}
	}
	_, err := th.guest.Upload(ctx, api.UploadRequest{Conversation: nilID, Accommodation: th.accommodation,
		FileName: "a.png", FileType: "image/png", FileSize: int64(len(tinyPNG)), FileContent: base64.StdEncoding.EncodeToString(tinyPNG)})
	if apiErrorID(t, err) != "not_found" {
		t.Errorf("Upload(nil conversation) = %v, want not_found", err)
	}

	k, err := e.admin.CreateKey(ctx, th.guest.AffiliateID, "to revoke")
	if err != nil {
		t.Fatal(err)
	}
	revoked := &api.Client{BaseURL: e.url, AffiliateID: th.guest.AffiliateID, APIKey: k.APIKey}
	th.send(t, revoked, "known to the service")
	if _, err := e.admin.RevokeKey(ctx, k.KeyID); err != nil {
		t.Fatal(err)
	}
	_, err = revoked.Send(ctx, api.SendRequest{Accommodation: th.accommodation, Conversation: nilID, Content: "x"}, "")
	if apiErrorID(t, err) != "unauthorized" {
		t.Errorf("Send(nil id) with a revoked key = %v, want unauthorized", err)
	}
}
