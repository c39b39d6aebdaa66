package httpapi_test

import (
	"context"
	"encoding/base64"
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

func (r *recordingStore) Conversations(ctx context.Context, keyHash []byte, ref messaging.ConversationRef) ([]messaging.Conversation, error) {
	r.record("Conversations")
	return r.Store.Conversations(ctx, keyHash, ref)
}

func (r *recordingStore) Messages(ctx context.Context, id uuid.UUID) ([]messaging.Message, error) {
	r.record("Messages")
	return r.Store.Messages(ctx, id)
}

func (r *recordingStore) InsertMessage(ctx context.Context, caller messaging.Caller, ref messaging.ConversationRef, open messaging.SendOpen, m messaging.Message, idem *messaging.IdempotencyRecord) (bool, error) {
	r.record("InsertMessage")
	return r.Store.InsertMessage(ctx, caller, ref, open, m, idem)
}

func (r *recordingStore) IdempotencyRecord(ctx context.Context, partnerID int64, key string) (messaging.IdempotencyRecord, error) {
	r.record("IdempotencyRecord")
	return r.Store.IdempotencyRecord(ctx, partnerID, key)
}

func (r *recordingStore) Pending(ctx context.Context, caller messaging.Caller, readableAfter time.Time, limit int) ([]messaging.Delivery, error) {
	r.record("Pending")
	return r.Store.Pending(ctx, caller, readableAfter, limit)
}

func (r *recordingStore) Confirm(ctx context.Context, caller messaging.Caller, readableAfter time.Time, ids []uuid.UUID) ([]uuid.UUID, error) {
	r.record("Confirm")
	return r.Store.Confirm(ctx, caller, readableAfter, ids)
}

func (r *recordingStore) InsertAttachment(ctx context.Context, a messaging.Attachment, base64 []byte) error {
	r.record("InsertAttachment")
	return r.Store.InsertAttachment(ctx, a, base64)
}

func (r *recordingStore) Attachments(ctx context.Context, convID uuid.UUID, ids []uuid.UUID) ([]messaging.Attachment, error) {
	r.record("Attachments")
	return r.Store.Attachments(ctx, convID, ids)
}

func (r *recordingStore) AttachmentContent(ctx context.Context, convID, id uuid.UUID) (messaging.Attachment, []byte, error) {
	r.record("AttachmentContent")
	return r.Store.AttachmentContent(ctx, convID, id)
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

// caller is one kind of caller of the matrices: a partner's client and its credentials, or
// credentials of no partner (client nil).
type caller struct {
	name   string
	client *api.Client
	header map[string]string
}

// outcome is what a caller observes of an answer (shape) and the store calls it cost.
type outcome struct {
	shape string
	calls []string
}

// matrix is the world of the authorization matrices: three conversations of two property and
// two guest partners, conversations that do not exist, and every kind of caller. callers are,
// in order: p1, p2, g1, g2, a revoked key of p1, and the admin token presented as p1's key.
type matrix struct {
	e       *env
	rec     *recordingStore
	targets []target
	allowed map[string][]*api.Client // by target name: the partners that may act on it
	missing []target
	callers []caller
}

func newMatrix(t *testing.T) *matrix {
	t.Helper()
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
	m := &matrix{e: e, rec: rec, targets: []target{
		conv("p1's with g1", a1, g1),
		conv("p2's with g2", a2, g2),
		conv("p1's without guest", a1, nil),
	}}
	m.allowed = map[string][]*api.Client{
		m.targets[0].name: {p1, g1},
		m.targets[1].name: {p2, g2},
		m.targets[2].name: {p1},
	}
	m.missing = []target{
		{name: "unknown at a known accommodation", accommodation: a1, reservation: "missing-1", conversation: uuid.NewString()},
		{name: "unknown accommodation", accommodation: "999999", reservation: "missing-2", conversation: uuid.NewString()},
		{name: "a known one at another accommodation", accommodation: a2, reservation: m.targets[0].reservation, conversation: m.targets[0].conversation},
	}

	// The revoked key worked once before its revocation, so the service knows it: every
	// endpoint must still refuse it at once (the key is checked again in each statement).
	revoked, err := e.admin.CreateKey(ctx, p1.AffiliateID, "revoked")
	if err != nil {
		t.Fatal(err)
	}
	id1 := strconv.FormatInt(p1.AffiliateID, 10)
	revokedHeader := map[string]string{"Authorization": "Bearer " + revoked.APIKey, "X-Affiliate-Id": id1, "Content-Type": "application/json"}
	if a, _ := m.do(revokedHeader, "/messages/latest", "{}"); a.status != http.StatusOK {
		t.Fatalf("the key to revoke before its revocation: %d %s", a.status, a.body)
	}
	if _, err := e.admin.RevokeKey(ctx, revoked.KeyID); err != nil {
		t.Fatal(err)
	}
	m.callers = []caller{
		{"owning property", p1, authHeaders(p1)},
		{"other property", p2, authHeaders(p2)},
		{"attached guest", g1, authHeaders(g1)},
		{"other guest", g2, authHeaders(g2)},
		{"revoked key", nil, revokedHeader},
		{"admin token as key", nil, map[string]string{"Authorization": "Bearer " + adminToken, "X-Affiliate-Id": id1, "Content-Type": "application/json"}},
	}
	// The service remembers a key's partner after its first use; the first request of a caller
	// therefore makes one store call more than the rest. Make it here, so that every request
	// compared below is a later one.
	for _, cl := range m.callers {
		m.do(cl.header, "/messages/latest", "{}")
	}
	return m
}

// may reports whether cl may act on conversation c.
func (m *matrix) may(cl caller, c target) bool {
	return slices.Contains(m.allowed[c.name], cl.client)
}

// do sends a POST with exactly header and body and returns the answer and the store calls it
// cost.
func (m *matrix) do(header map[string]string, path, body string) (answer, []string) {
	m.rec.take()
	a := m.e.raw(http.MethodPost, path, header, body)
	return a, m.rec.take()
}

// whenMissing returns what a conversation that does not exist looks like to cl at path, body
// naming it: 404 to a partner, 401 to credentials of none, alike for every way of being missing,
// and nothing written.
func (m *matrix) whenMissing(t *testing.T, cl caller, path string, body func(target) string) outcome {
	t.Helper()
	var want *outcome
	for _, c := range m.missing {
		before := m.e.snapshot()
		a, calls := m.do(cl.header, path, body(c))
		got := outcome{shape(t, a), calls}
		if cl.client != nil && a.status != http.StatusNotFound {
			t.Fatalf("%s: POST %s for %s = %d %s, want 404", cl.name, path, c.name, a.status, a.body)
		}
		if cl.client == nil && a.status != http.StatusUnauthorized {
			t.Fatalf("%s: POST %s for %s = %d %s, want 401", cl.name, path, c.name, a.status, a.body)
		}
		if want == nil {
			want = &got
		} else if got.shape != want.shape {
			t.Errorf("%s: POST %s: missing conversations answer differently:\n%s\n%s", cl.name, path, got.shape, want.shape)
		}
		if after := m.e.snapshot(); !mapsEqual(before, after) {
			t.Errorf("%s: POST %s for %s wrote to the database", cl.name, path, c.name)
		}
	}
	return *want
}

// refused checks that cl's request for what is not cl's answers exactly as want, the answer
// to something that does not exist: the same status, body and headers, the same store calls,
// and nothing written.
func (m *matrix) refused(t *testing.T, cl caller, path, body, what string, want outcome) {
	t.Helper()
	before := m.e.snapshot()
	a, calls := m.do(cl.header, path, body)
	got := outcome{shape(t, a), calls}
	if got.shape != want.shape {
		t.Errorf("%s: POST %s for %s answers\n  %s\nbut what does not exist\n  %s", cl.name, path, what, got.shape, want.shape)
	}
	if !slices.Equal(got.calls, want.calls) {
		t.Errorf("%s: POST %s for %s does %v, what does not exist %v", cl.name, path, what, got.calls, want.calls)
	}
	if after := m.e.snapshot(); !mapsEqual(before, after) {
		t.Errorf("%s: POST %s for %s was refused but wrote to the database", cl.name, path, what)
	}
}

// TestAuthorizationMatrix runs every partner endpoint of every version for every kind of caller
// against every conversation: access is what §1 allows, and every refusal is indistinguishable
// from a conversation that does not exist: same status, body and headers, the same store
// calls, and nothing written. TestAttachmentAuthorizationMatrix does the same for attachments.
func TestAuthorizationMatrix(t *testing.T) {
	m := newMatrix(t)
	ctx := context.Background()
	for _, ep := range conversationEndpoints {
		for _, mount := range mounts {
			path := mount + ep.path
			for _, cl := range m.callers {
				for _, r := range refs {
					body := func(c target) string { return ep.body(r.fields(c)) }
					want := m.whenMissing(t, cl, path, body)
					for _, c := range m.targets {
						if !m.may(cl, c) {
							m.refused(t, cl, path, body(c), c.name+" "+r.name, want)
							continue
						}
						if a, _ := m.do(cl.header, path, body(c)); a.status != http.StatusOK {
							t.Errorf("%s, %s: POST %s for %s = %d %s, want 200", cl.name, r.name, path, c.name, a.status, a.body)
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
	if err := m.e.db.Select(&all, `SELECT id::text FROM messages ORDER BY seq`); err != nil {
		t.Fatal(err)
	}
	for _, c := range m.targets {
		var ids []string
		if err := m.e.db.Select(&ids, `SELECT id::text FROM messages WHERE conversation_id = $1 ORDER BY seq`, c.conversation); err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			t.Fatalf("no messages in %s", c.name)
		}
		byConversation[c.conversation] = ids
	}
	for _, cl := range m.callers {
		var wantConvs []string
		for _, c := range m.targets {
			if m.may(cl, c) {
				wantConvs = append(wantConvs, c.conversation)
			}
		}
		for _, mount := range mounts {
			a, _ := m.do(cl.header, mount+"/latest", "")
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
			for _, msg := range got.Data.Messages {
				if !slices.Contains(convs, msg.Conversation.ID) {
					convs = append(convs, msg.Conversation.ID)
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
		for _, cl := range m.callers {
			path := mount + "/latest/confirm"
			a, calls := m.do(cl.header, path, fmt.Sprintf(`{"messages": [%q]}`, uuid.NewString()))
			want := outcome{shape(t, a), calls}
			for _, c := range m.targets {
				if !m.may(cl, c) {
					m.refused(t, cl, path, fmt.Sprintf(`{"messages": [%q]}`, byConversation[c.conversation][0]), "a message of "+c.name, want)
				}
			}
		}
	}
	for _, cl := range m.callers[:4] {
		var own []string
		for _, c := range m.targets {
			if m.may(cl, c) {
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

// matrixAttachment is an attachment of the attachment matrix and the partners that may read it.
type matrixAttachment struct {
	name    string
	target  target
	id      string
	readers []*api.Client
}

// attach uploads tinyPNG to c as uploader and, when sent, sends a message that references it.
// An unsent upload is its uploader's alone; a sent one is the conversation's.
func (m *matrix) attach(t *testing.T, c target, uploader caller, sent bool) matrixAttachment {
	t.Helper()
	ctx := context.Background()
	id, err := uploader.client.Upload(ctx, api.UploadRequest{Conversation: c.conversation, Accommodation: c.accommodation,
		FileName: "matrix.png", FileType: "image/png", FileSize: int64(len(tinyPNG)), FileContent: base64.StdEncoding.EncodeToString(tinyPNG)})
	if err != nil {
		t.Fatalf("%s: Upload(%s) = %v", uploader.name, c.name, err)
	}
	a := matrixAttachment{name: uploader.name + "'s unsent upload to " + c.name, target: c, id: id, readers: []*api.Client{uploader.client}}
	if sent {
		req := api.SendRequest{Accommodation: c.accommodation, Conversation: c.conversation, Content: "attached", Attachments: []string{id}}
		if _, err := uploader.client.Send(ctx, req, ""); err != nil {
			t.Fatalf("%s: Send(%s, with an attachment) = %v", uploader.name, c.name, err)
		}
		a.name, a.readers = uploader.name+"'s sent attachment in "+c.name, m.allowed[c.name]
	}
	return a
}

// TestAttachmentAuthorizationMatrix runs the attachment endpoints of every version for every
// kind of caller against every conversation and every attachment, named with every
// conversation: access is what §1 and §5.5 allow (an unsent upload is its uploader's, a sent
// one is readable by both sides of its conversation), and every refusal is indistinguishable
// from an attachment or conversation that does not exist: same status, body and headers, the
// same store calls, and nothing written.
func TestAttachmentAuthorizationMatrix(t *testing.T) {
	m := newMatrix(t)
	p1, p2, g1, g2 := m.callers[0], m.callers[1], m.callers[2], m.callers[3]
	attachments := []matrixAttachment{
		m.attach(t, m.targets[0], g1, true),
		m.attach(t, m.targets[0], p1, false),
		m.attach(t, m.targets[1], p2, true),
		m.attach(t, m.targets[1], g2, false),
		m.attach(t, m.targets[2], p1, true),
		m.attach(t, m.targets[2], p1, false),
	}
	b64 := base64.StdEncoding.EncodeToString(tinyPNG)

	for _, mount := range mounts {
		path := mount + "/attachments/upload"
		for _, cl := range m.callers {
			body := func(c target) string {
				return fmt.Sprintf(`{"accommodation": %q, "conversation": %q, "file_name": "u.png", "file_type": "image/png", "file_size": %d, "file_content": %q}`,
					c.accommodation, c.conversation, len(tinyPNG), b64)
			}
			want := m.whenMissing(t, cl, path, body)
			for _, c := range m.targets {
				if !m.may(cl, c) {
					m.refused(t, cl, path, body(c), c.name, want)
					continue
				}
				a, _ := m.do(cl.header, path, body(c))
				id, _ := a.json(t)["data"].(map[string]any)["attachment"].(string)
				if a.status != http.StatusOK || m.e.count(`SELECT count(*) FROM attachments WHERE id::text = $1 AND conversation_id = $2 AND uploader_id = $3`,
					id, c.conversation, cl.client.AffiliateID) != 1 {
					t.Errorf("%s: POST %s for %s = %d %s, want 200 and the upload stored as the caller's", cl.name, path, c.name, a.status, a.body)
				}
			}
		}
	}

	for _, ep := range []string{"/attachments/metadata", "/attachments/download"} {
		for _, mount := range mounts {
			path := mount + ep
			for _, cl := range m.callers {
				body := func(c target, id string) string {
					return fmt.Sprintf(`{"accommodation": %q, "conversation": %q, "attachment": %q}`, c.accommodation, c.conversation, id)
				}
				missingConversation := m.whenMissing(t, cl, path, func(c target) string { return body(c, attachments[0].id) })
				// What an unknown attachment looks like in each conversation the caller may
				// read: the same answer as a missing conversation, after one more store call.
				unknown := map[string]outcome{}
				for _, c := range m.targets {
					if m.may(cl, c) {
						a, calls := m.do(cl.header, path, body(c, uuid.NewString()))
						unknown[c.name] = outcome{shape(t, a), calls}
						if unknown[c.name].shape != missingConversation.shape {
							t.Errorf("%s: POST %s for an unknown attachment of %s answers\n  %s\nbut a missing conversation\n  %s",
								cl.name, path, c.name, unknown[c.name].shape, missingConversation.shape)
						}
					}
				}
				for _, c := range m.targets {
					for _, att := range attachments {
						what := att.name + ", named in " + c.name
						if att.target == c && slices.Contains(att.readers, cl.client) {
							m.readable(t, cl, path, body(c, att.id), what)
							continue
						}
						want, ok := unknown[c.name]
						if !ok {
							want = missingConversation
						}
						m.refused(t, cl, path, body(c, att.id), what, want)
					}
				}
			}
		}
	}
}

// readable checks that cl reads tinyPNG's metadata or content at path, writing nothing.
func (m *matrix) readable(t *testing.T, cl caller, path, body, what string) {
	t.Helper()
	before := m.e.snapshot()
	a, _ := m.do(cl.header, path, body)
	if a.status != http.StatusOK {
		t.Errorf("%s: POST %s for %s = %d %s, want 200", cl.name, path, what, a.status, a.body)
		return
	}
	data, _ := a.json(t)["data"].(map[string]any)
	if strings.HasSuffix(path, "/metadata") {
		md, _ := data["metadata"].(map[string]any)
		if md["file_size"] != float64(len(tinyPNG)) || md["file_type"] != "image/png" {
			t.Errorf("%s: POST %s for %s = %s, want the metadata of the upload", cl.name, path, what, a.body)
		}
	} else if data["file_content"] != base64.StdEncoding.EncodeToString(tinyPNG) {
		t.Errorf("%s: POST %s for %s = %.300s, want the upload's content", cl.name, path, what, a.body)
	}
	if after := m.e.snapshot(); !mapsEqual(before, after) {
		t.Errorf("%s: POST %s for %s wrote to the database", cl.name, path, what)
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

// TestHotPathStatements pins the store calls of the hot paths, each of which is one statement,
// for a partner whose key the service knows: a send is one statement that authenticates,
// resolves, checks the window and stores; a poll and a confirm are one each; a conversation
// is two. The first request of a key makes one call more (the service learns the key), and so
// do answers that find nothing (they tell a revoked key from an empty result).
func TestHotPathStatements(t *testing.T) {
	rec := &recordingStore{}
	e := newEnvOpts(t, envOptions{windows: messaging.DefaultWindows, wrapStore: func(s messaging.Store) messaging.Store {
		rec.Store = s
		return rec
	}})
	th := e.thread()
	do := func(from *api.Client, path, body string) []string {
		t.Helper()
		rec.take()
		if a := e.raw(http.MethodPost, path, authHeaders(from), body); a.status != http.StatusOK {
			t.Fatalf("POST %s = %d %s", path, a.status, a.body)
		}
		return rec.take()
	}
	send := `{"accommodation":` + th.accommodation + `,"reservation":"` + th.reservation + `","content":"hello"}`
	if got, want := do(th.guest, "/messages/send", send), []string{"PartnerByKeyHash", "InsertMessage"}; !slices.Equal(got, want) {
		t.Errorf("first send of a key: %v, want %v", got, want)
	}
	tests := []struct {
		name       string
		from       *api.Client
		path, body string
		want       []string
	}{
		{"send", th.guest, "/messages/send", send, []string{"InsertMessage"}},
		{"send by conversation id (3.2)", th.property, "/3.2/messages/send",
			`{"accommodation":` + th.accommodation + `,"conversation":"` + th.conversation + `","content":"hi"}`, []string{"PartnerByKeyHash", "InsertMessage"}},
		{"send again", th.property, "/messages/send", send, []string{"InsertMessage"}},
		{"send naming both", th.guest, "/messages/send", `{"accommodation":` + th.accommodation + `,"conversation":"` + th.conversation +
			`","reservation":"` + th.reservation + `","content":"both"}`, []string{"InsertMessage"}},
		{"latest", th.property, "/messages/latest", "{}", []string{"Pending"}},
		{"conversation", th.property, "/messages/conversations",
			`{"accommodation":` + th.accommodation + `,"reservation":"` + th.reservation + `"}`, []string{"Conversations", "Messages"}},
	}
	for _, tt := range tests {
		if got := do(tt.from, tt.path, tt.body); !slices.Equal(got, tt.want) {
			t.Errorf("%s: store calls %v, want %v", tt.name, got, tt.want)
		}
	}
	ids, err := th.property.Latest(context.Background())
	if err != nil || len(ids) == 0 {
		t.Fatalf("Latest = %d messages, %v", len(ids), err)
	}
	confirm := `{"messages":["` + ids[0].MessageID + `"]}`
	if got, want := do(th.property, "/messages/latest/confirm", confirm), []string{"Confirm"}; !slices.Equal(got, want) {
		t.Errorf("confirm: store calls %v, want %v", got, want)
	}
}
