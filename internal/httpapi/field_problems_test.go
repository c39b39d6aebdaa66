package httpapi_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/guestmsg/messaging/api"
)

// A value that escapes half a surrogate pair alone is one field problem like any other (400
// invalid_parameter): it does not hide the problems of the fields before it (openapi.yaml,
// Envelopes: errors "list every problem found in reading the body's fields, in field order";
// spec §2: at least the first), and in a list it is named by its position, as every other
// malformed element is ("a malformed id → invalid_parameter naming messages[i]", §5.3). (Found
// by review: decoding stopped at the first lone surrogate and named only its field, the
// whole list for an element.) Each case has a control of the wrong JSON type.
func TestLoneSurrogateIsOneFieldProblem(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	m := th.send(t, th.guest, "to confirm")
	ref := `"accommodation":"` + th.accommodation + `","reservation":"` + th.reservation + `"`
	both := []string{"Parameter 'accommodation' is invalid.", "Parameter 'content' is invalid."}
	cases := []struct {
		name string
		from *api.Client
		path string
		body string
		want []string
	}{
		{"send: bad accommodation, then content with a lone surrogate", th.guest, "/messages/send",
			`{"accommodation":"x","reservation":"` + th.reservation + `","content":"\ud800"}`, both},
		{"send: bad accommodation, then content of the wrong type", th.guest, "/messages/send",
			`{"accommodation":"x","reservation":"` + th.reservation + `","content":5}`, both},
		{"upload: bad accommodation, then file_name with a lone surrogate", th.guest, "/messages/attachments/upload",
			`{"accommodation":"x","conversation":"` + th.conversation + `","file_name":"\udc00.png",` +
				`"file_type":"image/png","file_size":1,"file_content":"AA=="}`,
			[]string{"Parameter 'accommodation' is invalid.", "Parameter 'file_name' is invalid."}},
		{"confirm, 3.1", th.property, "/messages/latest/confirm", `{"messages":["` + m + `","\ud800"]}`,
			[]string{"Parameter 'messages[1]' is invalid."}},
		{"confirm, 3.2", th.property, "/3.2/messages/latest/confirm", `{"messages":["` + m + `","\udfff"]}`,
			[]string{"Parameter 'messages[1]' is invalid."}},
		{"confirm, a number", th.property, "/messages/latest/confirm", `{"messages":["` + m + `",7]}`,
			[]string{"Parameter 'messages[1]' is invalid."}},
		{"send: attachments", th.guest, "/messages/send", `{` + ref + `,"content":"x","attachments":["\ud83d"]}`,
			[]string{"Parameter 'attachments[0]' is invalid."}},
	}
	for _, tc := range cases {
		a := e.as(tc.from, tc.path, tc.body)
		if a.status != http.StatusBadRequest || a.errorID(t) != api.ErrInvalidParameter {
			t.Errorf("%s: %d %s, want 400 invalid_parameter", tc.name, a.status, a.body)
			continue
		}
		if got := a.errorMessages(t); !slices.Equal(got, tc.want) {
			t.Errorf("%s: errors %q, want %q", tc.name, got, tc.want)
		}
	}
	if n := e.count(`SELECT count(*) FROM messages`); n != 1 {
		t.Errorf("messages stored = %d, want only the one sent before the bad requests", n)
	}
	if got := e.latestIDs(th.property); !slices.Contains(got, m) {
		t.Errorf("a refused confirm confirmed %s", m)
	}
}

// TestEmptyStringForARequiredFieldIsMissing: §2 answers 400 missing_parameter for "a required
// field [that] is absent or empty", and the service reads "" as empty for its required fields
// whatever their JSON type: accommodation (a string or an integer) and file_size (an integer,
// TestUploadEmptyFileSizeIsMissing) answer missing_parameter for "". The required messages of a
// confirm (§5.3: "missing or empty → missing_parameter") and the required partner of
// PUT /admin/accommodations (openapi.yaml: absent or null → missing_parameter) are empty the
// same way. (Found by review: both answer invalid_parameter.)
func TestEmptyStringForARequiredFieldIsMissing(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	m := th.send(t, th.guest, "to confirm")
	for _, path := range []string{"/messages/latest/confirm", "/3.2/messages/latest/confirm"} {
		a := e.as(th.property, path, `{"messages":""}`)
		want := []string{"Parameter 'messages' is missing."}
		if a.status != http.StatusBadRequest || a.errorID(t) != api.ErrMissingParameter || !slices.Equal(a.errorMessages(t), want) {
			t.Errorf(`%s with "messages": "" = %d %s, want 400 missing_parameter %q`, path, a.status, a.body, want)
		}
	}
	if got := e.latestIDs(th.property); !slices.Contains(got, m) {
		t.Errorf("a refused confirm confirmed %s", m)
	}

	h := map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "application/json"}
	a := e.raw(http.MethodPut, "/admin/accommodations/"+th.accommodation, h, `{"partner":"","name":"Renamed"}`)
	want := []string{"Parameter 'partner' is missing."}
	if a.status != http.StatusBadRequest || a.errorID(t) != api.ErrMissingParameter || !slices.Equal(a.errorMessages(t), want) {
		t.Errorf(`PUT /admin/accommodations with "partner": "" = %d %s, want 400 missing_parameter %q`, a.status, a.body, want)
	}
	// The control: "" for the required accommodation of a send is missing already.
	a = e.as(th.guest, "/messages/send", `{"accommodation":"","reservation":"`+th.reservation+`","content":"x"}`)
	if a.status != http.StatusBadRequest || a.errorID(t) != api.ErrMissingParameter {
		t.Errorf(`send with "accommodation": "" = %d %s, want 400 missing_parameter`, a.status, a.body)
	}
}
