package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/guestmsg/messaging/api"
)

func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.db.Get(&n, query, args...); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestIdempotencyKey(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	h := authHeaders(th.guest)
	h["Idempotency-Key"] = "order-42"
	first := e.raw(http.MethodPost, "/messages/send", h, `{"accommodation":"`+th.accommodation+`","reservation":"`+th.reservation+`","content":"Hello"}`)
	if first.status != 200 {
		t.Fatalf("first send = %d %s", first.status, first.body)
	}
	id := first.json(t)["data"].(map[string]any)["message"]
	// Same parameters, other white space, field order and id types: the first answer again.
	again := e.raw(http.MethodPost, "/messages/send", h, "{ \"content\" : \"Hello\",\n \"reservation\": "+th.reservation+", \"accommodation\": "+th.accommodation+" }")
	if again.status != 200 || again.json(t)["data"].(map[string]any)["message"] != id {
		t.Fatalf("repeat send = %d %s, want message %v", again.status, again.body, id)
	}
	// No attachments is no attachments, however it is written.
	for _, attachments := range []string{`[]`, `null`} {
		body := `{"accommodation":"` + th.accommodation + `","reservation":"` + th.reservation + `","content":"Hello","attachments":` + attachments + `}`
		if a := e.raw(http.MethodPost, "/messages/send", h, body); a.status != 200 || a.json(t)["data"].(map[string]any)["message"] != id {
			t.Errorf("repeat send with attachments %s = %d %s, want message %v", attachments, a.status, a.body, id)
		}
	}
	if n := e.count(`SELECT count(*) FROM messages`); n != 1 {
		t.Errorf("messages stored = %d, want 1", n)
	}
	// Different parameters with the same key.
	other := e.raw(http.MethodPost, "/messages/send", h, `{"accommodation":"`+th.accommodation+`","reservation":"`+th.reservation+`","content":"Hello!"}`)
	if other.status != 409 || other.errorID(t) != "idempotency_key_reused" {
		t.Errorf("send with reused key = %d %s, want 409 idempotency_key_reused", other.status, other.body)
	}
	// The nil conversation names none: beside the same reservation it is another request.
	withNil := e.raw(http.MethodPost, "/messages/send", h, `{"accommodation":"`+th.accommodation+
		`","conversation":"00000000-0000-0000-0000-000000000000","reservation":"`+th.reservation+`","content":"Hello"}`)
	if withNil.status != 409 || withNil.errorID(t) != "idempotency_key_reused" {
		t.Errorf("send adding the nil conversation with the key = %d %s, want 409 idempotency_key_reused", withNil.status, withNil.body)
	}
	// Another reservation, or the same message with an attachment, is another request too: the
	// first answer would drop the message. (Found by review: only a golden hash held these.)
	otherRes, _ := e.reservation(th.accommodation, th.guest)
	photo := th.upload(t, th.guest, "photo.png", "image/png", fileOf("image/png", 100))
	for name, body := range map[string]string{
		"another reservation": `{"accommodation":"` + th.accommodation + `","reservation":"` + otherRes + `","content":"Hello"}`,
		"an attachment":       `{"accommodation":"` + th.accommodation + `","reservation":"` + th.reservation + `","content":"Hello","attachments":["` + photo + `"]}`,
	} {
		if a := e.raw(http.MethodPost, "/messages/send", h, body); a.status != 409 || a.errorID(t) != "idempotency_key_reused" {
			t.Errorf("send with the key and %s = %d %s, want 409 idempotency_key_reused", name, a.status, a.body)
		}
	}
	// Keys are scoped to the partner: the property may use the same key.
	hp := authHeaders(th.property)
	hp["Idempotency-Key"] = "order-42"
	if a := e.raw(http.MethodPost, "/messages/send", hp, `{"accommodation":"`+th.accommodation+`","reservation":"`+th.reservation+`","content":"Hi"}`); a.status != 200 {
		t.Errorf("property send with the guest's key = %d %s", a.status, a.body)
	}
	// Malformed keys.
	for _, key := range []string{strings.Repeat("k", 256), "tab\there", "ünïcode"} {
		h["Idempotency-Key"] = key
		if a := e.raw(http.MethodPost, "/messages/send", h, `{"accommodation":"`+th.accommodation+`","reservation":"`+th.reservation+`","content":"x"}`); a.status != 400 || a.errorID(t) != "invalid_parameter" {
			t.Errorf("send with key %q = %d %s, want 400 invalid_parameter", key, a.status, a.body)
		}
	}
	// A key given on two lines is one value of two, "a, b" (RFC 9110 §5.3), which a proxy may
	// join into one line: neither key is taken, so a retry through another path cannot count as
	// another request.
	req, _ := http.NewRequest(http.MethodPost, e.url+"/messages/send",
		strings.NewReader(`{"accommodation":"`+th.accommodation+`","reservation":"`+th.reservation+`","content":"two keys"}`))
	for k, v := range authHeaders(th.guest) {
		req.Header.Set(k, v)
	}
	req.Header["Idempotency-Key"] = []string{"order-43", "order-44"}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if a := (answer{status: resp.StatusCode, header: resp.Header, body: body}); a.status != 400 || a.errorID(t) != "invalid_parameter" ||
		!strings.Contains(string(body), "Idempotency-Key") {
		t.Errorf("send with Idempotency-Key on two lines = %d %s, want 400 invalid_parameter naming Idempotency-Key", a.status, a.body)
	}
	if n := e.count(`SELECT count(*) FROM messages WHERE content = 'two keys'`); n != 0 {
		t.Errorf("send with Idempotency-Key on two lines stored %d messages", n)
	}
}

func TestConcurrentSendsWithOneIdempotencyKeyCreateOneMessage(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	const n = 24
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := th.guest.Send(context.Background(), api.SendRequest{Accommodation: th.accommodation, Reservation: th.reservation, Content: "once"}, "same-key")
			ids[i], errs[i] = d.Message, err
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Send #%d = %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("Send #%d = %s, want %s like the first", i, ids[i], ids[0])
		}
	}
	if got := e.count(`SELECT count(*) FROM messages`); got != 1 {
		t.Errorf("messages stored = %d, want 1", got)
	}
	if got := e.count(`SELECT count(*) FROM deliveries`); got != 2 {
		t.Errorf("queue entries = %d, want 2 (property and guest)", got)
	}
}

func TestConcurrentSendsAreAllDeliveredOnce(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	const workers, each = 8, 25
	var mu sync.Mutex
	sent := map[string]bool{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				from := th.guest
				if i%2 == 0 {
					from = th.property
				}
				d, err := from.Send(context.Background(), api.SendRequest{Accommodation: th.accommodation, Reservation: th.reservation, Content: fmt.Sprintf("w%d m%d", w, i)}, "")
				if err != nil {
					t.Errorf("Send = %v", err)
					return
				}
				mu.Lock()
				sent[d.Message] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Two pollers of one partner drain the queue concurrently; every message is confirmed once
	// and never shows twice in one page.
	var dmu sync.Mutex
	delivered := map[string]int{}
	var pw sync.WaitGroup
	for range 2 {
		pw.Add(1)
		go func() {
			defer pw.Done()
			for {
				page, err := th.property.Latest(context.Background())
				if err != nil {
					t.Errorf("Latest = %v", err)
					return
				}
				if len(page) == 0 {
					return
				}
				seen := map[string]bool{}
				ids := make([]string, 0, len(page))
				for _, m := range page {
					if seen[m.MessageID] {
						t.Errorf("message %s twice in one page", m.MessageID)
					}
					seen[m.MessageID] = true
					ids = append(ids, m.MessageID)
				}
				confirmed, err := th.property.Confirm(context.Background(), ids)
				if err != nil {
					t.Errorf("Confirm = %v", err)
					return
				}
				dmu.Lock()
				for _, id := range confirmed {
					delivered[id]++
				}
				dmu.Unlock()
			}
		}()
	}
	pw.Wait()
	if len(delivered) != len(sent) || len(sent) != workers*each {
		t.Fatalf("delivered %d distinct of %d sent (want %d)", len(delivered), len(sent), workers*each)
	}
	for id := range sent {
		if delivered[id] == 0 {
			t.Errorf("message %s never confirmed", id)
		}
	}
}

func TestConcurrentRegistrationMakesOneConversation(t *testing.T) {
	e := newEnv(t)
	property, guest := e.partner("property"), e.partner("guest")
	acc := e.accommodation(property, "")
	const n = 16
	convs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gp := guest.AffiliateID
			r, err := e.admin.PutReservation(context.Background(), "R-777", api.ReservationRequest{Accommodation: acc, GuestPartner: &gp, Checkin: "2026-07-01", Checkout: "2026-07-04"})
			if err != nil {
				t.Errorf("PutReservation = %v", err)
			}
			convs[i] = r.Conversation
		}()
	}
	wg.Wait()
	for i := range n {
		if convs[i] != convs[0] {
			t.Fatalf("PutReservation #%d conversation = %s, want %s", i, convs[i], convs[0])
		}
	}
	if got := e.count(`SELECT count(*) FROM conversations WHERE reservation_id = 'R-777'`); got != 1 {
		t.Errorf("conversations = %d, want 1", got)
	}
	// Concurrent first sends on the new reservation all land in that one conversation.
	var sw sync.WaitGroup
	for i := range n {
		sw.Add(1)
		go func() {
			defer sw.Done()
			from := guest
			if i%2 == 0 {
				from = property
			}
			if _, err := from.Send(context.Background(), api.SendRequest{Accommodation: acc, Reservation: "R-777", Content: "first " + strconv.Itoa(i)}, ""); err != nil {
				t.Errorf("Send = %v", err)
			}
		}()
	}
	sw.Wait()
	if got := e.count(`SELECT count(DISTINCT conversation_id) FROM messages`); got != 1 {
		t.Errorf("conversations with messages = %d, want 1", got)
	}
}
