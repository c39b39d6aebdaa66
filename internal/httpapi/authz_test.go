package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/messaging"
)

// target is a conversation as the requests of the matrix name it.
type target struct {
	name                       string
	accommodation, reservation string
	conversation               string
}

// ref is one way of naming a target in a request body.
type ref struct {
	name   string
	fields func(target) string // the body's naming fields, without braces
}

var refs = []ref{
	{"by conversation", func(c target) string {
		return fmt.Sprintf(`"accommodation": %q, "conversation": %q`, c.accommodation, c.conversation)
	}},
	{"by reservation", func(c target) string {
		return fmt.Sprintf(`"accommodation": %q, "reservation": %q`, c.accommodation, c.reservation)
	}},
	{"by both", func(c target) string {
		return fmt.Sprintf(`"accommodation": %q, "conversation": %q, "reservation": %q`, c.accommodation, c.conversation, c.reservation)
	}},
}

// conversationEndpoints are the partner endpoints that act on one named conversation: a row
// each. body returns the request body for a target named by fields.
var conversationEndpoints = []struct {
	path string // under the version prefix
	body func(fields string) string
}{
	{"/send", func(f string) string { return `{` + f + `, "content": "matrix"}` }},
	{"/conversations", func(f string) string { return `{` + f + `}` }},
}

var mounts = []string{"/messages", "/3.1/messages", "/3.2/messages"}

// recordingStore records the store methods the service calls, so that two requests can be
// shown to do the same work. Store methods added later pass through unrecorded until they get a
// method here.
type recordingStore struct {
	messaging.Store
	mu    sync.Mutex
	calls []string
}

func (r *recordingStore) record(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, name)
}

// take returns the calls recorded since the last take.
func (r *recordingStore) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	calls := r.calls
	r.calls = nil
	return calls
}

func (r *recordingStore) PartnerByKeyHash(ctx context.Context, hash []byte) (messaging.Partner, error) {
	r.record("PartnerByKeyHash")
	return r.Store.PartnerByKeyHash(ctx, hash)
}

func (r *recordingStore) Partner(ctx context.Context, affiliateID int64) (messaging.Partner, error) {
	r.record("Partner")
	return r.Store.Partner(ctx, affiliateID)
}

func (r *recordingStore) Conversations(ctx context.Context, ref messaging.ConversationRef) ([]messaging.Conversation, error) {
	r.record("Conversations")
	return r.Store.Conversations(ctx, ref)
}

func (r *recordingStore) Messages(ctx context.Context, id uuid.UUID) ([]messaging.Message, error) {
	r.record("Messages")
	return r.Store.Messages(ctx, id)
}

func (r *recordingStore) InsertMessage(ctx context.Context, m messaging.Message, recipients []int64, idem *messaging.IdempotencyRecord) (bool, error) {
	r.record("InsertMessage")
	return r.Store.InsertMessage(ctx, m, recipients, idem)
}

func (r *recordingStore) IdempotencyRecord(ctx context.Context, partnerID int64, key string) (messaging.IdempotencyRecord, error) {
	r.record("IdempotencyRecord")
	return r.Store.IdempotencyRecord(ctx, partnerID, key)
}

func (r *recordingStore) Pending(ctx context.Context, partnerID int64, readableAfter time.Time, limit int) ([]messaging.Delivery, error) {
	r.record("Pending")
	return r.Store.Pending(ctx, partnerID, readableAfter, limit)
}

func (r *recordingStore) Confirm(ctx context.Context, partnerID int64, readableAfter time.Time, ids []uuid.UUID) ([]uuid.UUID, error) {
	r.record("Confirm")
	return r.Store.Confirm(ctx, partnerID, readableAfter, ids)
}

// snapshot is a digest of every table's content: equal snapshots mean nothing was written.
func (e *env) snapshot() map[string]string {
	e.t.Helper()
	return digest(e.t, e.db, tables(e.t, e.db))
}

// tables lists the service's tables.
func tables(t testing.TB, db *sqlx.DB) []string {
	t.Helper()
	var names []string
	if err := db.Select(&names, `
SELECT table_name FROM information_schema.tables
WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'
ORDER BY table_name`); err != nil {
		t.Fatal(err)
	}
	return names
}

// digest returns each table's row count and a hash of its rows, in one query.
func digest(t testing.TB, db *sqlx.DB, tables []string) map[string]string {
	t.Helper()
	parts := make([]string, len(tables))
	for i, name := range tables {
		parts[i] = `SELECT ` + pq.QuoteLiteral(name) + ` AS name, count(*) || ':' || COALESCE(md5(string_agg(t::text, ',' ORDER BY t::text)), '') AS digest FROM ` + pq.QuoteIdentifier(name) + ` t`
	}
	var rows []struct{ Name, Digest string }
	if err := db.Select(&rows, strings.Join(parts, " UNION ALL ")); err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.Name] = r.Digest
	}
	return out
}

// shape is what a caller can observe of an answer besides its request id.
func shape(t *testing.T, a answer) string {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(a.body, &body); err != nil {
		t.Fatalf("answer %d is not a JSON object: %s", a.status, a.body)
	}
	delete(body, "request_id")
	b, _ := json.Marshal(body)
	var names []string
	for k := range a.header {
		if k != "Date" && k != "X-Request-Id" {
			names = append(names, k+"="+strings.Join(a.header.Values(k), ","))
		}
	}
	slices.Sort(names)
	return fmt.Sprintf("%d %s %v", a.status, b, names)
}

// TestAuthorizationMatrix runs every partner endpoint of every version for every kind of caller
// against every conversation: access is what §1 allows, and every refusal is indistinguishable
// from a conversation that does not exist: same status, body and headers, the same store
// calls, and nothing written.
func TestAuthorizationMatrix(t *testing.T) {
	rec := &recordingStore{}
	e := newEnvOpts(t, envOptions{windows: messaging.DefaultWindows, wrapStore: func(s messaging.Store) messaging.Store {
		rec.Store = s
		return rec
	}})
	ctx := context.Background()
	p1, p2, g1, g2 := e.partner("property"), e.partner("property"), e.partner("guest"), e.partner("guest")
	a1, a2 := e.accommodation(p1, "One"), e.accommodation(p2, "Two")
	conv := func(name, acc string, guest *api.Client) target {
		res, c := e.reservation(acc, guest)
		return target{name: name, accommodation: acc, reservation: res, conversation: c}
	}
	targets := []target{
		conv("p1's with g1", a1, g1),
		conv("p2's with g2", a2, g2),
		conv("p1's without guest", a1, nil),
	}
	allowed := map[string][]*api.Client{
		targets[0].name: {p1, g1},
		targets[1].name: {p2, g2},
		targets[2].name: {p1},
	}
	missing := []target{
		{name: "unknown at a known accommodation", accommodation: a1, reservation: "missing-1", conversation: uuid.NewString()},
		{name: "unknown accommodation", accommodation: "999999", reservation: "missing-2", conversation: uuid.NewString()},
	}

	revoked, err := e.admin.CreateKey(ctx, p1.AffiliateID, "revoked")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.RevokeKey(ctx, revoked.KeyID); err != nil {
		t.Fatal(err)
	}
	type caller struct {
		name   string
		client *api.Client
		header map[string]string
	}
	id1 := strconv.FormatInt(p1.AffiliateID, 10)
	callers := []caller{
		{"owning property", p1, authHeaders(p1)},
		{"other property", p2, authHeaders(p2)},
		{"attached guest", g1, authHeaders(g1)},
		{"other guest", g2, authHeaders(g2)},
		{"revoked key", nil, map[string]string{"Authorization": "Bearer " + revoked.APIKey, "X-Affiliate-Id": id1, "Content-Type": "application/json"}},
		{"admin token as key", nil, map[string]string{"Authorization": "Bearer " + adminToken, "X-Affiliate-Id": id1, "Content-Type": "application/json"}},
	}

	type outcome struct {
		shape string
		calls []string
	}
	do := func(h map[string]string, path, body string) (answer, []string) {
		rec.take()
		a := e.raw(http.MethodPost, path, h, body)
		return a, rec.take()
	}
	for _, ep := range conversationEndpoints {
		for _, mount := range mounts {
			path := mount + ep.path
			for _, cl := range callers {
				for _, r := range refs {
					// What a conversation that does not exist looks like to this caller.
					var want *outcome
					for _, m := range missing {
						before := e.snapshot()
						a, calls := do(cl.header, path, ep.body(r.fields(m)))
						got := outcome{shape(t, a), calls}
						if cl.client != nil && a.status != http.StatusNotFound {
							t.Fatalf("%s, %s: POST %s for %s = %d %s, want 404", cl.name, r.name, path, m.name, a.status, a.body)
						}
						if cl.client == nil && a.status != http.StatusUnauthorized {
							t.Fatalf("%s, %s: POST %s for %s = %d %s, want 401", cl.name, r.name, path, m.name, a.status, a.body)
						}
						if want == nil {
							want = &got
						} else if got.shape != want.shape {
							t.Errorf("%s: POST %s: missing conversations answer differently:\n%s\n%s", cl.name, path, got.shape, want.shape)
						}
						if after := e.snapshot(); !mapsEqual(before, after) {
							t.Errorf("%s: POST %s for %s wrote to the database", cl.name, path, m.name)
						}
					}
					for _, c := range targets {
						body := ep.body(r.fields(c))
						before := e.snapshot()
						a, calls := do(cl.header, path, body)
						if slices.Contains(allowed[c.name], cl.client) {
							if a.status != http.StatusOK {
								t.Errorf("%s, %s: POST %s for %s = %d %s, want 200", cl.name, r.name, path, c.name, a.status, a.body)
							}
							continue
						}
						got := outcome{shape(t, a), calls}
						if got.shape != want.shape {
							t.Errorf("%s, %s: POST %s for %s answers\n  %s\nbut a missing conversation\n  %s", cl.name, r.name, path, c.name, got.shape, want.shape)
						}
						if !slices.Equal(got.calls, want.calls) {
							t.Errorf("%s, %s: POST %s for %s does %v, a missing conversation %v", cl.name, r.name, path, c.name, got.calls, want.calls)
						}
						if after := e.snapshot(); !mapsEqual(before, after) {
							t.Errorf("%s, %s: POST %s for %s was refused but wrote to the database", cl.name, r.name, path, c.name)
						}
					}
				}
			}
		}
	}

	// The sends above put messages in every conversation. Each caller's queue holds exactly
	// the conversations it may access; revoked and admin credentials get 401.
	var all []string
	byConversation := map[string][]string{}
	if err := e.db.Select(&all, `SELECT id::text FROM messages ORDER BY seq`); err != nil {
		t.Fatal(err)
	}
	for _, c := range targets {
		var ids []string
		if err := e.db.Select(&ids, `SELECT id::text FROM messages WHERE conversation_id = $1 ORDER BY seq`, c.conversation); err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			t.Fatalf("no messages in %s", c.name)
		}
		byConversation[c.conversation] = ids
	}
	for _, cl := range callers {
		var wantConvs []string
		for _, c := range targets {
			if slices.Contains(allowed[c.name], cl.client) {
				wantConvs = append(wantConvs, c.conversation)
			}
		}
		for _, mount := range mounts {
			a, _ := do(cl.header, mount+"/latest", "")
			if cl.client == nil {
				if a.status != http.StatusUnauthorized {
					t.Errorf("%s: POST %s/latest = %d, want 401", cl.name, mount, a.status)
				}
				continue
			}
			var got struct {
				Data struct {
					Messages []struct {
						Conversation struct{ ID string } `json:"conversation"`
					} `json:"messages"`
				} `json:"data"`
			}
			if err := json.Unmarshal(a.body, &got); a.status != http.StatusOK || err != nil {
				t.Fatalf("%s: POST %s/latest = %d %s", cl.name, mount, a.status, a.body)
			}
			var convs []string
			for _, m := range got.Data.Messages {
				if !slices.Contains(convs, m.Conversation.ID) {
					convs = append(convs, m.Conversation.ID)
				}
			}
			slices.Sort(convs)
			slices.Sort(wantConvs)
			if !slices.Equal(convs, wantConvs) {
				t.Errorf("%s: POST %s/latest shows conversations %v, want %v", cl.name, mount, convs, wantConvs)
			}
		}
	}

	// Confirming another's message is confirming an unknown one: the same answer, the same
	// store calls, and nobody's queue changes. Then each caller confirms its own.
	for _, mount := range mounts {
		for _, cl := range callers {
			unknown := fmt.Sprintf(`{"messages": [%q]}`, uuid.NewString())
			a, calls := do(cl.header, mount+"/latest/confirm", unknown)
			want := outcome{shape(t, a), calls}
			for _, c := range targets {
				if slices.Contains(allowed[c.name], cl.client) {
					continue
				}
				before := e.snapshot()
				a, calls := do(cl.header, mount+"/latest/confirm", fmt.Sprintf(`{"messages": [%q]}`, byConversation[c.conversation][0]))
				if got := (outcome{shape(t, a), calls}); got.shape != want.shape || !slices.Equal(got.calls, want.calls) {
					t.Errorf("%s: confirming a message of %s = %s %v; an unknown id %s %v", cl.name, c.name, got.shape, got.calls, want.shape, want.calls)
				}
				if after := e.snapshot(); !mapsEqual(before, after) {
					t.Errorf("%s: confirming a message of %s changed the database", cl.name, c.name)
				}
			}
		}
	}
	for _, cl := range callers[:4] {
		var own []string
		for _, c := range targets {
			if slices.Contains(allowed[c.name], cl.client) {
				own = append(own, byConversation[c.conversation]...)
			}
		}
		got, err := cl.client.Confirm(ctx, all)
		if err != nil {
			t.Fatalf("%s: Confirm(all) = %v", cl.name, err)
		}
		slices.Sort(got)
		slices.Sort(own)
		if !slices.Equal(got, own) {
			t.Errorf("%s: Confirm(every message) = %v, want only its own %v", cl.name, got, own)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
