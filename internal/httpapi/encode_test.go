package httpapi

import (
	"bytes"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/messaging"
)

// TestAppendLatestMatchesEncodingJSON holds the hand-written latest page to what encoding/json
// writes for the wire types of package api, for both versions and awkward content.
func TestAppendLatestMatchesEncodingJSON(t *testing.T) {
	conv := messaging.Conversation{
		ID:                    uuid.MustParse("0196a2f4-1111-7000-8000-000000000001"),
		Reservation:           messaging.Reservation{ID: "R-1.x_2", AccommodationID: 6819547, GuestName: "Zoë \"Z\" <O'Neil> & co"},
		GuestParticipantID:    uuid.MustParse("0196a2f4-2222-7000-8000-000000000002"),
		PropertyParticipantID: uuid.MustParse("0196a2f4-3333-7000-8000-000000000003"),
	}
	unnamed := conv
	unnamed.Reservation.GuestName = ""
	unnamed.AccommodationName = "Sea View Rooms"
	at := time.Date(2025, 5, 8, 8, 49, 15, 123456789, time.FixedZone("CEST", 2*3600))
	contents := []string{
		"plain", "", "quote \" backslash \\ slash /", "tab\tnewline\nreturn\rbell\afeed\fback\b\x00\x1f\x7f",
		"<script>&amp;</script>", "line\u2028para\u2029end", "emoji 😀 and ü and 中文", "bad \xff\xfe utf8",
	}
	var page []messaging.Delivery
	for i, content := range contents {
		c, sender := conv, messaging.Guest
		if i%2 == 1 {
			c, sender = unnamed, messaging.Property
		}
		if i == 3 {
			sender = messaging.Guest // a guest without a name: "name" is left out
		}
		m := messaging.Message{ID: uuid.New(), ConversationID: c.ID, Sender: sender, Content: content,
			Attachments: []uuid.UUID{}, CreatedAt: at.Add(time.Duration(i) * time.Millisecond)}
		if i == 2 {
			m.Attachments = []uuid.UUID{uuid.New(), uuid.New()}
		}
		page = append(page, messaging.Delivery{Message: m, Conversation: c})
	}
	for _, tc := range []struct {
		name string
		page []messaging.Delivery
	}{{"page", page}, {"empty", []messaging.Delivery{}}} {
		for _, v := range []version{v31, v32} {
			got := appendLatest(nil, v, `req "id" <1>`, tc.page)
			want := encodeLatestReference(t, v, `req "id" <1>`, tc.page)
			if !bytes.Equal(got, want) {
				t.Errorf("%s v%d:\nappendLatest = %s\nencoding/json = %s", tc.name, v, got, want)
			}
		}
	}
}

// encodeLatestReference is the latest answer through the wire types and encoding/json.
func encodeLatestReference(t *testing.T, v version, requestID string, page []messaging.Delivery) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	var err error
	if v == v32 {
		items := make([]api.LatestMessage32, len(page))
		for i, d := range page {
			s := d.Message.Sender
			items[i] = api.LatestMessage32{ID: d.ID.String(), Conversation: conversationRef(d.Conversation), Content: d.Content,
				Sender:      api.Sender32{Participant: d.Conversation.ParticipantID(s).String(), Metadata: metadata(d.Conversation, s)},
				Attachments: uuidStrings(d.Attachments), Timestamp: formatTime(d.CreatedAt)}
		}
		err = enc.Encode(api.Response[api.LatestData[api.LatestMessage32]]{RequestID: requestID, Data: api.LatestData[api.LatestMessage32]{Messages: items}})
	} else {
		items := make([]api.LatestMessage31, len(page))
		for i, d := range page {
			s := d.Message.Sender
			items[i] = api.LatestMessage31{MessageID: d.ID.String(), Conversation: conversationRef(d.Conversation), Content: d.Content,
				Sender:      api.Sender31{ParticipantID: d.Conversation.ParticipantID(s).String(), Metadata: metadata(d.Conversation, s)},
				Attachments: uuidStrings(d.Attachments), Timestamp: formatTime(d.CreatedAt)}
		}
		err = enc.Encode(api.Response[api.LatestData[api.LatestMessage31]]{RequestID: requestID, Data: api.LatestData[api.LatestMessage31]{Messages: items}})
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestAppendConversationMatchesEncodingJSON holds the hand-written conversation to what
// encoding/json writes for the wire types of package api, for both versions, both states, and
// awkward content and names.
func TestAppendConversationMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2025, 5, 8, 8, 49, 15, 123456789, time.FixedZone("CEST", 2*3600))
	view := messaging.ConversationView{
		Conversation: messaging.Conversation{
			ID:                    uuid.MustParse("0196a2f4-1111-7000-8000-000000000001"),
			Reservation:           messaging.Reservation{ID: "R-1.x_2 \"<&>\"", AccommodationID: 6819547, GuestName: "Zoë \"Z\" <O'Neil> & co"},
			AccommodationName:     "Sea View \u2028 Rooms",
			GuestParticipantID:    uuid.MustParse("0196a2f4-2222-7000-8000-000000000002"),
			PropertyParticipantID: uuid.MustParse("0196a2f4-3333-7000-8000-000000000003"),
		},
		Side: messaging.Guest, SendAllowedUntil: at.Add(66 * 24 * time.Hour), ReadableUntil: at.Add(365 * 24 * time.Hour), Open: true,
	}
	for i, content := range []string{
		"plain", "", "quote \" backslash \\ slash /", "tab\tnewline\nreturn\rbell\afeed\fback\b\x00\x1f\x7f",
		"<script>&amp;</script>", "line\u2028para\u2029end", "emoji 😀 and ü and 中文", "bad \xff\xfe utf8",
	} {
		m := messaging.Message{ID: uuid.New(), ConversationID: view.ID, Sender: messaging.Guest, Content: content,
			Attachments: []uuid.UUID{}, CreatedAt: at.Add(time.Duration(i) * time.Millisecond)}
		if i%2 == 1 {
			m.Sender = messaging.Property
		}
		if i == 2 {
			m.Attachments = []uuid.UUID{uuid.New(), uuid.New()}
		}
		view.Messages = append(view.Messages, m)
	}
	closed := view
	closed.Open, closed.Messages, closed.Side = false, []messaging.Message{}, messaging.Property
	closed.Reservation.GuestName, closed.AccommodationName = "", "" // no guest name; the property is named by its id
	for _, tc := range []struct {
		name string
		view messaging.ConversationView
	}{{"open", view}, {"read-only and empty", closed}} {
		for _, v := range []version{v31, v32} {
			got := appendConversation(nil, v, `req "id" <1>`, tc.view)
			want := encodeConversationReference(t, v, `req "id" <1>`, tc.view)
			if !bytes.Equal(got, want) {
				t.Errorf("%s v%d:\nappendConversation = %s\nencoding/json      = %s", tc.name, v, got, want)
			}
		}
	}
}

// encodeConversationReference is the conversations answer through the wire types and
// encoding/json.
func encodeConversationReference(t *testing.T, v version, requestID string, view messaging.ConversationView) []byte {
	t.Helper()
	msgs := make([]api.ConversationMessage32, len(view.Messages))
	for i, m := range view.Messages {
		msgs[i] = api.ConversationMessage32{ID: m.ID.String(), Sender: view.ParticipantID(m.Sender).String(),
			Content: m.Content, Attachments: uuidStrings(m.Attachments), Timestamp: formatTime(m.CreatedAt)}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	var err error
	if v == v32 {
		err = enc.Encode(api.Response[api.ConversationData32]{RequestID: requestID,
			Data: api.ConversationData32{Conversation: conversationBody(view, msgs)}})
	} else {
		msgs31 := make([]api.ConversationMessage31, len(msgs))
		for i, m := range msgs {
			msgs31[i] = api.ConversationMessage31{ConversationMessage32: m}
		}
		err = enc.Encode(api.Response[api.ConversationData31]{RequestID: requestID,
			Data: api.ConversationData31{Conversations: conversationBody(view, msgs31)}})
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func conversationBody[M any](view messaging.ConversationView, msgs []M) api.Conversation[M] {
	state := api.StateReadOnly
	if view.Open {
		state = api.StateOpen
	}
	return api.Conversation[M]{
		ID:            view.ID.String(),
		Accommodation: strconv.FormatInt(view.Reservation.AccommodationID, 10),
		Reservation:   view.Reservation.ID,
		Messages:      msgs,
		Participants: []api.Participant{
			{ID: view.GuestParticipantID.String(), Metadata: metadata(view.Conversation, messaging.Guest)},
			{ID: view.PropertyParticipantID.String(), Metadata: metadata(view.Conversation, messaging.Property)},
		},
		State:            state,
		SendAllowedUntil: formatTime(view.SendAllowedUntil),
		ReadableUntil:    formatTime(view.ReadableUntil),
	}
}

func uuidStrings(ids []uuid.UUID) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.String()
	}
	return out
}

func conversationRef(c messaging.Conversation) api.ConversationRef {
	return api.ConversationRef{ID: c.ID.String(), Accommodation: strconv.FormatInt(c.Reservation.AccommodationID, 10), Reservation: c.Reservation.ID}
}

func metadata(c messaging.Conversation, s messaging.Side) api.ParticipantMetadata {
	return api.ParticipantMetadata{Type: string(s), Name: c.ParticipantName(s)}
}

// TestAppendConfirmMatchesEncodingJSON holds the hand-written confirm answer to what
// encoding/json writes for the wire types of package api, for both versions, with no ids (nil
// and empty) and with several.
func TestAppendConfirmMatchesEncodingJSON(t *testing.T) {
	for _, ids := range [][]uuid.UUID{nil, {}, {uuid.New()}, {uuid.New(), uuid.New(), uuid.New()}} {
		for _, v := range []version{v31, v32} {
			var buf bytes.Buffer
			out := uuidStrings(ids)
			var err error
			if v == v32 {
				err = json.NewEncoder(&buf).Encode(api.ConfirmResponse32{RequestID: `req "id" <1>`, ConfirmedMessages: out})
			} else {
				err = json.NewEncoder(&buf).Encode(api.Response[api.ConfirmData31]{RequestID: `req "id" <1>`, Data: api.ConfirmData31{ConfirmedMessages: out}})
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := appendConfirm(nil, v, `req "id" <1>`, ids, nil); !bytes.Equal(got, buf.Bytes()) {
				t.Errorf("%d ids v%d:\nappendConfirm = %s\nencoding/json = %s", len(ids), v, got, buf.Bytes())
			}
		}
	}
}

// TestAppendTimeMatchesAppendFormat holds appendTime to the layout it replaces, at the edges
// of every field, outside the years it writes itself, and at random instants.
func TestAppendTimeMatchesAppendFormat(t *testing.T) {
	times := []time.Time{
		{}, time.Unix(0, 0), time.Date(2025, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2024, 2, 29, 0, 0, 0, 1_000_000, time.FixedZone("", -11*3600)),
		time.Date(2026, 1, 1, 0, 59, 59, 999_999, time.FixedZone("", 14*3600)),
		time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 15, 12, 30, 0, 0, time.UTC), time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 5, 8, 8, 49, 15, 123456789, time.FixedZone("CEST", 2*3600)),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		times = append(times, time.Unix(rng.Int64N(400*365*86400)-100*365*86400, rng.Int64N(1e9)))
	}
	for _, tm := range times {
		if got, want := appendTime(nil, tm), tm.UTC().AppendFormat(nil, api.TimeFormat); !bytes.Equal(got, want) {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

// BenchmarkAppendLatest measures the hand-written encoder on a full page (go test -bench).
func BenchmarkAppendLatest(b *testing.B) {
	page := benchPage()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = appendLatest(buf[:0], v31, "0123456789abcdef0123456789abcdef", page)
	}
}

// BenchmarkEncodingJSONLatest measures the same page through the wire types and encoding/json.
func BenchmarkEncodingJSONLatest(b *testing.B) {
	page := benchPage()
	t := &testing.T{}
	b.ReportAllocs()
	for b.Loop() {
		encodeLatestReference(t, v31, "0123456789abcdef0123456789abcdef", page)
	}
}

func benchPage() []messaging.Delivery {
	conv := messaging.Conversation{ID: uuid.New(), Reservation: messaging.Reservation{ID: "4338284887", AccommodationID: 6819547, GuestName: "Ada Guest"},
		AccommodationName: "Sea View Rooms", GuestParticipantID: uuid.New(), PropertyParticipantID: uuid.New()}
	page := make([]messaging.Delivery, messaging.LatestPageSize)
	for i := range page {
		page[i] = messaging.Delivery{Message: messaging.Message{ID: uuid.New(), ConversationID: conv.ID, Sender: messaging.Guest,
			Content: "Hello! We arrive around 18:00 with two children. Is late check-in possible?", Attachments: []uuid.UUID{},
			CreatedAt: time.Now()}, Conversation: conv}
	}
	return page
}

// TestSpellings: a list of ids as the service writes them needs no map, whatever its spacing; any
// other spelling maps each id to the first way the request wrote it.
func TestSpellings(t *testing.T) {
	a, b := uuid.MustParse("01a1ffdb-d4dc-7be7-992e-34103c14887a"), uuid.MustParse("01a1ffdb-d4e0-729b-8ce9-7675fb1fd881")
	for _, raw := range []string{`["` + a.String() + `"]`, ` [ "` + a.String() + `", "` + b.String() + `" ] `, `[]`} {
		if got := spellings(json.RawMessage(raw)); got != nil {
			t.Errorf("spellings(%s) = %v, want nil", raw, got)
		}
	}
	upper := strings.ToUpper(a.String())
	escaped := `\u0030` + b.String()[1:] // "0" escaped
	for raw, want := range map[string]map[uuid.UUID]string{
		`["` + upper + `","` + a.String() + `"]`:                       {a: upper},
		"[\n\"" + a.String() + "\",\n\"" + upper + "\"\n]":             {a: a.String()},
		`["` + escaped + `"]`:                                          {b: b.String()},
		`["` + a.String() + `","` + strings.ToUpper(b.String()) + `"]`: {a: a.String(), b: strings.ToUpper(b.String())},
	} {
		if got := spellings(json.RawMessage(raw)); !maps.Equal(got, want) {
			t.Errorf("spellings(%s) = %v, want %v", raw, got, want)
		}
	}
}
