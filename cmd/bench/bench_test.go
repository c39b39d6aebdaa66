package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/messaging"
)

func TestValuesOf(t *testing.T) {
	body := []byte(`{"request_id":"r","data":{"messages":[{"message_id":"0196a2f4-1111-7000-8000-000000000001","content":"say \"message_id\":\"x\"","timestamp":"2025-05-08T08:49:15.001Z"},{"message_id":"0196a2f4-1111-7000-8000-000000000002","timestamp":"2025-05-08T08:49:15.000Z"}]}}`)
	got := valuesOf(body, `"message_id":"`, 36)
	want := []string{"0196a2f4-1111-7000-8000-000000000001", "0196a2f4-1111-7000-8000-000000000002"}
	if !slices.Equal(got, want) {
		t.Errorf("valuesOf(message_id) = %v, want %v", got, want)
	}
	if got := valuesOf(body, `"timestamp":"`, 24); len(got) != 2 || got[0] != "2025-05-08T08:49:15.001Z" {
		t.Errorf("valuesOf(timestamp) = %v, want the two timestamps", got)
	}
	if got := valuesOf([]byte(`{"message_id":"short"}`), `"message_id":"`, 36); len(got) != 0 {
		t.Errorf("valuesOf on a truncated value = %v, want none", got)
	}
}

func TestSentID(t *testing.T) {
	id := "0196a2f4-1111-7000-8000-000000000001"
	body, _ := json.Marshal(api.Response[api.SendData]{RequestID: "r", Data: api.SendData{Message: id}})
	if got, err := sentID(body); got != id || err != nil {
		t.Errorf("sentID(%s) = %q, %v; want %q", body, got, err, id)
	}
	if got, err := sentID([]byte(`{"request_id":"r","data":{"conversation":"` + id + `"}}`)); err == nil {
		t.Errorf("sentID of an answer without a message = %q, want an error", got)
	}
}

func TestLatestIDs(t *testing.T) {
	page := func(stamps ...string) []byte {
		var msgs []string
		for i, st := range stamps {
			msgs = append(msgs, fmt.Sprintf(`{"message_id":"0196a2f4-1111-7000-8000-%012d","content":"say \"timestamp\":\"2099-01-01T00:00:00.000Z\" {\"message_id\":\"x\"","timestamp":"%s"}`, i, st))
		}
		return []byte(`{"request_id":"r","data":{"messages":[` + strings.Join(msgs, ",") + "]}}\n")
	}
	ids, err := latestIDs(page("2025-05-08T08:49:15.002Z", "2025-05-08T08:49:15.001Z", "2025-05-08T08:49:15.001Z"), true)
	if err != nil || !slices.Equal(ids, []string{"0196a2f4-1111-7000-8000-000000000000", "0196a2f4-1111-7000-8000-000000000001", "0196a2f4-1111-7000-8000-000000000002"}) {
		t.Errorf("latestIDs = %v, %v; want the three ids", ids, err)
	}
	if _, err := latestIDs(page("2025-05-08T08:49:15.001Z", "2025-05-08T08:49:15.002Z"), true); err == nil {
		t.Error("latestIDs of a page oldest first = nil error, want one")
	}
	if _, err := latestIDs(page("2025-05-08T08:49:15.001Z", "2025-05-08T08:49:15.002Z"), false); err != nil {
		t.Errorf("latestIDs of sent messages out of timestamp order = %v, want nil", err)
	}
	twice := bytes.Replace(page("2025-05-08T08:49:15.002Z", "2025-05-08T08:49:15.001Z"), []byte("000000000001"), []byte("000000000000"), 1)
	if _, err := latestIDs(twice, true); err == nil {
		t.Error("latestIDs of a page with a message twice = nil error, want one")
	}
	if _, err := latestIDs([]byte(`{"request_id":"r","data":{"messages":[{"message_id":"short"}]}}`), true); err == nil {
		t.Error("latestIDs of a truncated message = nil error, want one")
	}
	if ids, err := latestIDs([]byte(`{"request_id":"r","data":{"messages":[]}}`), true); err != nil || len(ids) != 0 {
		t.Errorf("latestIDs of an empty page = %v, %v; want none", ids, err)
	}
}

func TestPct(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    int
		want float64
	}{{50, 50}, {90, 90}, {99, 99}, {100, 100}} {
		if got := pct(lat, tc.p); got != tc.want {
			t.Errorf("pct(1..100 ms, %d) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := pct(nil, 50); got != 0 {
		t.Errorf("pct(nil, 50) = %v, want 0", got)
	}
}

func TestProcReadings(t *testing.T) {
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Errorf("procCPU(self) = %v", err)
	}
	if rss, err := procPeakRSS(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("procPeakRSS(self) = %d, %v; want a positive size", rss, err)
	}
	if busy, total := machineCPU(); total <= 0 || busy > total {
		t.Errorf("machineCPU() = %d, %d; want 0 <= busy <= total, total > 0", busy, total)
	}
}

func TestParseOptions(t *testing.T) {
	getenv := func(string) string { return "" }
	o, err := parseOptions([]string{"-quick", "-messages", "5000", "-pending", "9000"}, getenv, io.Discard)
	if err != nil {
		t.Fatalf("parseOptions: %v", err)
	}
	if o.duration != 3*time.Second || o.warmup != time.Second || o.pending != 5000 || !slices.Equal(o.scenarios, allScenarios) {
		t.Errorf("parseOptions(-quick ...) = duration %v warm-up %v pending %d scenarios %v", o.duration, o.warmup, o.pending, o.scenarios)
	}
	if _, err := parseOptions([]string{"-dsn", "postgresql://u@127.0.0.1:5432/x?sslmode=disable"}, getenv, io.Discard); err != nil {
		t.Errorf("parseOptions(-dsn postgresql://...) = %v, want nil", err)
	}
	if o, err := parseOptions([]string{"-warmup", "0"}, getenv, io.Discard); err != nil || o.warmup != 0 || o.duration != 20*time.Second {
		t.Errorf("parseOptions(-warmup 0) = warm-up %v duration %v, %v; want 0, 20s, nil", o.warmup, o.duration, err)
	}
	if o, err := parseOptions([]string{"-peer", "ejabberd"}, getenv, io.Discard); err != nil || !slices.Equal(o.peers, []string{"ejabberd"}) {
		t.Errorf("parseOptions(-peer ejabberd) = peers %q, %v; want [ejabberd], nil", o.peers, err)
	}
	if o, err := parseOptions([]string{"-peer", "prosody, ejabberd"}, getenv, io.Discard); err != nil || !slices.Equal(o.peers, []string{"prosody", "ejabberd"}) {
		t.Errorf("parseOptions(-peer prosody, ejabberd) = peers %q, %v; want [prosody ejabberd], nil", o.peers, err)
	}
	for _, args := range [][]string{
		{"-messages", "10000001"},
		{"-scenarios", "send,nope"},
		{"-scenarios", "drain,latest"},                                // latest reads full pages, which the drain leaves none of
		{"-url", "http://127.0.0.1:8080"},                             // needs -dsn
		{"-url", "http://example.com:8080", "-dsn", "postgres://x/y"}, // not loopback
		{"-c", "1"},
		{"-dsn", "host=127.0.0.1 dbname=x"}, // not a URL: no database of its own could be named
		{"-warmup", "-1s"},
		{"-peer", "rabbitmq"},
		{"-peer", "ejabberd,rabbitmq"},
		{"-peer", "prosody,prosody"},
	} {
		if _, err := parseOptions(args, getenv, io.Discard); err == nil {
			t.Errorf("parseOptions(%s) = nil error, want one", strings.Join(args, " "))
		}
	}
}

func TestReferenceKinds(t *testing.T) {
	r := &report{
		Scenarios: []scenarioResult{{Name: "send", Clients: 64, RPS: 100}, {Name: "send-low", Clients: 8, RPS: 100},
			{Name: "ejabberd/send-low", Clients: 8, RPS: 50}, {Name: "mixed/confirm", Clients: 64, RPS: 10},
			{Name: "latest", Clients: 64, RPS: 20}, {Name: "ejabberd/conversation", Clients: 64, RPS: 40},
			{Name: "windows", Clients: 64, RPS: 30}, {Name: "windows/send-closed", Clients: 64, RPS: 10},
			{Name: "attachments", Clients: 64, RPS: 30}, {Name: "attachments/upload", Clients: 64, RPS: 10},
			{Name: "attachments/send", Clients: 64, RPS: 10}, {Name: "attachments/download", Clients: 64, RPS: 10}},
		References: []reference{{Name: "insert", Kind: "insert", Clients: 64, TPS: 1000}, {Name: "insert", Kind: "insert", Clients: 8, TPS: 1000},
			{Name: "select", Kind: "select", Clients: 64, TPS: 200}},
	}
	r.finish()
	want := map[string]string{"send": "insert", "send-low": "insert", "ejabberd/send-low": "insert", "mixed/confirm": "insert",
		"latest": "select", "ejabberd/conversation": "select", "windows": "insert", "windows/send-closed": "insert",
		"attachments": "", "attachments/upload": "", "attachments/send": "insert", "attachments/download": ""}
	for _, s := range r.Scenarios {
		if s.Reference != want[s.Name] {
			t.Errorf("%s: reference %q, want %q", s.Name, s.Reference, want[s.Name])
		}
	}
	var out bytes.Buffer
	r.print(&out)
	if !strings.Contains(out.String(), "send-low: the service made 2.00× ejabberd's requests/s") {
		t.Errorf("print: want the comparison with ejabberd, got:\n%s", out.String())
	}
}

func TestPeerSendChecks(t *testing.T) {
	answered := map[string]bool{"a": true, "b": true}
	for _, tc := range []struct {
		name   string
		times  map[string]int
		queued int
		failed int
		want   []bool // archived for both ends, queued, nothing beyond
	}{
		{"all stored", map[string]int{"a": 2, "b": 2}, 2, 0, []bool{true, true, true}},
		{"one archived once", map[string]int{"a": 2, "b": 1}, 2, 0, []bool{false, true, true}},
		{"one missing", map[string]int{"a": 2}, 2, 0, []bool{false, true, true}},
		{"one not queued", map[string]int{"a": 2, "b": 2}, 1, 0, []bool{true, false, true}},
		{"a failed send stored", map[string]int{"a": 2, "b": 2, "c": 2}, 3, 1, []bool{true, true, true}},
		{"stored without an acknowledgment", map[string]int{"a": 2, "b": 2, "c": 2}, 3, 0, []bool{true, false, false}},
	} {
		checks := sendChecks(answered, tc.failed, tc.times, tc.queued)
		for i, c := range checks {
			if c.OK != tc.want[i] {
				t.Errorf("%s: check %q = %v (%s), want %v", tc.name, c.Name, c.OK, c.Detail, tc.want[i])
			}
		}
	}
}

func TestUploadFiles(t *testing.T) {
	const size = 1000
	f := uploadFile(3, 0, size)
	if got := http.DetectContentType(f); got != "image/png" {
		t.Errorf("DetectContentType(uploadFile) = %q, want image/png", got)
	}
	// A worker rewrites the first 32 characters of its file's base64 per upload.
	enc := base64.StdEncoding.AppendEncode(nil, f)
	head := f[:24:24]
	stampFile(head, 3, 7)
	base64.StdEncoding.Encode(enc[:32], head)
	want := uploadFile(3, 7, size)
	if string(enc) != base64.StdEncoding.EncodeToString(want) {
		t.Error("the restamped base64 is not the base64 of the restamped file")
	}
	if bytes.Equal(uploadFile(3, 7, size), uploadFile(4, 7, size)) || bytes.Equal(want, uploadFile(3, 8, size)) {
		t.Error("two uploads have the same bytes")
	}
}

func TestWindowSets(t *testing.T) {
	for _, now := range []time.Time{
		time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 1, 23, 59, 59, 999_000_000, time.UTC),
	} {
		today := now.Truncate(24 * time.Hour)
		for _, s := range windowSets(today) {
			conv := messaging.Conversation{StayEnd: s.stayEnd, LastGuestMessageAt: s.lastGuest}
			open := now.Before(messaging.DefaultWindows.SendAllowedUntil(conv, s.set.sender))
			readable := now.Before(messaging.DefaultWindows.ReadableUntil(conv, s.set.sender))
			if open != (s.set.status == http.StatusOK) || !readable || !s.stayEnd.Before(today) {
				t.Errorf("%s at %s: open %v, readable %v, stay end %s; want open only when %d is 200, readable, ended",
					s.set.name, now, open, readable, s.stayEnd, s.set.status)
			}
		}
	}
}
