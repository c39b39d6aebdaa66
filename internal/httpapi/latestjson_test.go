package httpapi

import (
	"bytes"
	"encoding/json"
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
