package httpapi_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"testing"
)

// TestDuplicateUploadMemberCountsWithItsLastValue: openapi.yaml (Requests) and the README say
// that of a member given twice only the last value counts. An earlier file_content that escapes
// half a surrogate pair alone must not matter when the last file_content is the file. (Found by
// review: it was 400 invalid_parameter naming file_content, where the raw fields of the same
// body, content or accommodation, followed the rule.)
func TestDuplicateUploadMemberCountsWithItsLastValue(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	body := fmt.Sprintf(`{"conversation":%q,"accommodation":%q,"file_name":"a.png","file_type":"image/png",`+
		`"file_size":%d,"file_content":"\ud800","file_content":%q}`,
		th.conversation, th.accommodation, len(tinyPNG), base64.StdEncoding.EncodeToString(tinyPNG))
	for _, path := range []string{"/messages/attachments/upload", "/3.2/messages/attachments/upload"} {
		if a := e.as(th.guest, path, body); a.status != http.StatusOK {
			t.Errorf("%s with file_content given twice, the last one the file = %d %s, want 200 (the last value counts)",
				path, a.status, a.body)
		}
	}
	// The same rule on a raw field of the same API holds already: the last content counts.
	send := fmt.Sprintf(`{"accommodation":%q,"reservation":%q,"content":"\ud800","content":"fine"}`, th.accommodation, th.reservation)
	if a := e.as(th.guest, "/messages/send", send); a.status != http.StatusOK {
		t.Fatalf("send with content given twice = %d %s, want 200", a.status, a.body)
	}
}

// TestDuplicateAdminMemberCountsWithItsLastValue: the admin API has "the same
// envelopes" and the README's rule that a name given twice counts with its last value; an
// earlier value of the wrong JSON type, or with a lone surrogate escape, must not refuse a body
// whose last value is valid.
func TestDuplicateAdminMemberCountsWithItsLastValue(t *testing.T) {
	e := newEnv(t)
	admin := map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "application/json"}
	for i, body := range []string{
		`{"kind":"guest","name":"x","affiliate_id":"7","affiliate_id":%d}`,
		`{"kind":"guest","name":"\ud800","name":"Trip App","affiliate_id":%d}`,
		`{"kind":5,"kind":"guest","name":"Trip App","affiliate_id":%d}`,
	} {
		id := e.nextID() + int64(i)*1000
		b := fmt.Sprintf(body, id)
		if a := e.raw(http.MethodPost, "/admin/partners", admin, b); a.status != http.StatusCreated {
			t.Errorf("POST /admin/partners %s = %d %s, want 201 (the last value counts)", b, a.status, a.body)
		}
	}
	th := e.thread()
	b := fmt.Sprintf(`{"accommodation":%q,"checkin":20260701,"checkin":"2026-07-01","checkout":"2026-07-05"}`, th.accommodation)
	if a := e.raw(http.MethodPut, "/admin/reservations/"+strconv.FormatInt(e.nextID(), 10), admin, b); a.status != http.StatusOK {
		t.Errorf("PUT /admin/reservations %s = %d %s, want 200 (the last value counts)", b, a.status, a.body)
	}
}
