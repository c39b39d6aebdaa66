package httpapi_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/guestmsg/messaging/api"
	"github.com/guestmsg/messaging/internal/messaging"
)

// TestRevokedKeyStopsAtOnce: the service remembers a key once it has worked, and every
// endpoint must still refuse it the moment it is revoked, whatever path the request takes
// (the one-statement send, an Idempotency-Key replay, the step-by-step send with attachments,
// an empty or full poll, a confirm), with nothing written.
func TestRevokedKeyStopsAtOnce(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	ctx := context.Background()
	k, err := e.admin.CreateKey(ctx, th.guest.AffiliateID, "to revoke")
	if err != nil {
		t.Fatal(err)
	}
	guest := &api.Client{BaseURL: e.url, AffiliateID: th.guest.AffiliateID, APIKey: k.APIKey}
	send := api.SendRequest{Accommodation: th.accommodation, Reservation: th.reservation, Content: "hello"}
	if _, err := guest.Send(ctx, send, "key-1"); err != nil {
		t.Fatal(err)
	}
	photo := th.upload(t, guest, "photo.png", "image/png", fileOf("image/png", 100))
	th.send(t, th.property, "an answer for the guest's queue")
	page, err := guest.Latest(ctx)
	if err != nil || len(page) == 0 {
		t.Fatalf("Latest before the revocation = %d messages, %v", len(page), err)
	}
	if _, err := e.admin.RevokeKey(ctx, k.KeyID); err != nil {
		t.Fatal(err)
	}

	sendBody := `{"accommodation":` + th.accommodation + `,"reservation":"` + th.reservation + `","content":"hello"}`
	ref := `"accommodation":` + th.accommodation + `,"conversation":"` + th.conversation + `"`
	tests := []struct {
		name, path, body, idempotencyKey string
	}{
		{"send", "/messages/send", sendBody, ""},
		{"send replaying an Idempotency-Key", "/messages/send", sendBody, "key-1"},
		{"send with a new Idempotency-Key", "/messages/send", sendBody, "key-2"},
		{"send with an attachment", "/messages/send", `{` + ref + `,"content":"see","attachments":["` + photo + `"]}`, ""},
		{"latest", "/messages/latest", `{}`, ""},
		{"latest (3.2)", "/3.2/messages/latest", `{}`, ""},
		{"confirm", "/messages/latest/confirm", `{"messages":["` + page[0].MessageID + `"]}`, ""},
		{"conversation", "/messages/conversations", `{` + ref + `}`, ""},
		{"upload", "/messages/attachments/upload", `{` + ref + `,"file_name":"a.png","file_type":"image/png","file_size":100,"file_content":"` +
			base64.StdEncoding.EncodeToString(fileOf("image/png", 100)) + `"}`, ""},
		{"metadata", "/messages/attachments/metadata", `{` + ref + `,"attachment":"` + photo + `"}`, ""},
		{"download", "/messages/attachments/download", `{` + ref + `,"attachment":"` + photo + `"}`, ""},
	}
	before := e.snapshot()
	for _, tt := range tests {
		h := authHeaders(guest)
		if tt.idempotencyKey != "" {
			h["Idempotency-Key"] = tt.idempotencyKey
		}
		a := e.raw(http.MethodPost, tt.path, h, tt.body)
		if a.status != http.StatusUnauthorized || a.errorID(t) != api.ErrUnauthorized {
			t.Errorf("%s with a revoked key = %d %s, want 401 unauthorized", tt.name, a.status, a.body)
		}
	}
	if after := e.snapshot(); !mapsEqual(before, after) {
		t.Error("requests with a revoked key wrote to the database")
	}
}

// hookStore runs a function once, right after the next Conversations call: a change that
// lands between a send's steps and its statement.
type hookStore struct {
	messaging.Store
	after func()
}

func (h *hookStore) Conversations(ctx context.Context, keyHash []byte, ref messaging.ConversationRef) ([]messaging.Conversation, error) {
	out, err := h.Store.Conversations(ctx, keyHash, ref)
	if f := h.after; f != nil {
		h.after = nil
		f()
	}
	return out, err
}

// TestSendWhenTheConversationChangesMidway: a send with attachments checks its rules step by
// step and then stores in one statement that checks them again. When the key is revoked or the
// reservation moves in between, the statement stores nothing and the send answers as a send
// made after the change would: 401, 409 window_closed, or 404 once the caller may no longer
// read the conversation.
func TestSendWhenTheConversationChangesMidway(t *testing.T) {
	hook := &hookStore{}
	e := newEnvOpts(t, envOptions{windows: messaging.DefaultWindows, wrapStore: func(s messaging.Store) messaging.Store {
		hook.Store = s
		return hook
	}})
	th := e.thread()
	ctx := context.Background()
	k, err := e.admin.CreateKey(ctx, th.guest.AffiliateID, "midway")
	if err != nil {
		t.Fatal(err)
	}
	revocable := &api.Client{BaseURL: e.url, AffiliateID: th.guest.AffiliateID, APIKey: k.APIKey}
	guestPhoto := th.upload(t, th.guest, "photo.png", "image/png", fileOf("image/png", 100))
	propertyPhoto := th.upload(t, th.property, "photo.png", "image/png", fileOf("image/png", 100))
	moveStay := func(checkin, checkout string) func() {
		return func() {
			_, err := e.admin.PutReservation(ctx, th.reservation, api.ReservationRequest{Accommodation: th.accommodation,
				GuestPartner: &th.guest.AffiliateID, GuestName: "Ada", Checkin: checkin, Checkout: checkout})
			if err != nil {
				t.Error(err)
			}
		}
	}
	tests := []struct {
		name   string
		from   *api.Client
		photo  string
		change func()
		status int
		id     string
	}{
		{"the key is revoked", revocable, guestPhoto, func() {
			if _, err := e.admin.RevokeKey(ctx, k.KeyID); err != nil {
				t.Error(err)
			}
		}, http.StatusUnauthorized, api.ErrUnauthorized},
		{"the property's send window closes", th.property, propertyPhoto, moveStay("2026-05-01", "2026-05-05"),
			http.StatusConflict, api.ErrWindowClosed},
		{"the stay leaves the guest's read window", th.guest, guestPhoto, moveStay("2025-05-01", "2025-05-05"),
			http.StatusNotFound, api.ErrNotFound},
	}
	for _, tt := range tests {
		var before map[string]string
		hook.after = func() {
			tt.change()
			before = e.snapshot()
		}
		body := `{"accommodation":` + th.accommodation + `,"conversation":"` + th.conversation + `","content":"see","attachments":["` + tt.photo + `"]}`
		a := e.raw(http.MethodPost, "/messages/send", authHeaders(tt.from), body)
		if a.status != tt.status || a.errorID(t) != tt.id {
			t.Errorf("%s while a send was on its way: %d %s, want %d %s", tt.name, a.status, a.body, tt.status, tt.id)
		}
		if before == nil {
			t.Fatalf("%s: the change was not made", tt.name)
		}
		if after := e.snapshot(); !mapsEqual(before, after) {
			t.Errorf("%s while a send was on its way: the send wrote to the database", tt.name)
		}
	}
}

// TestRevokedKeyWithABadBodyIsUnauthorized: a request whose body is refused never reaches the
// store, whose statements check the key; a key the process cached must still answer 401 once
// revoked, as an unknown key does, and never the body's 400 or 415, which would tell the two
// apart (§1: authentication comes first).
func TestRevokedKeyWithABadBodyIsUnauthorized(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	guest := e.revokedAfterUse(th.guest)
	for _, tt := range []struct{ name, path, contentType, body string }{
		{"send without content", "/messages/send", "application/json", `{}`},
		{"confirm of a malformed id", "/messages/latest/confirm", "application/json", `{"messages":["x"]}`},
		{"conversation, not a JSON object", "/messages/conversations", "application/json", `[]`},
		{"upload as text/plain", "/messages/attachments/upload", "text/plain", `{}`},
		{"metadata without ids", "/messages/attachments/metadata", "application/json", `{}`},
	} {
		h := authHeaders(guest)
		h["Content-Type"] = tt.contentType
		if a := e.raw(http.MethodPost, tt.path, h, tt.body); a.status != http.StatusUnauthorized || a.errorID(t) != api.ErrUnauthorized {
			t.Errorf("%s with a revoked key = %d %s, want 401 unauthorized (as with an unknown key)", tt.name, a.status, a.body)
		}
	}
	// The partner's other key is unaffected, and a bad body from it is still its 400.
	if a := e.as(th.guest, "/messages/send", `{}`); a.status != http.StatusBadRequest {
		t.Errorf("send without content with a valid key = %d %s, want 400", a.status, a.body)
	}
}

// TestRevokedKeyCannotSpendThePartnersBudget: a leaked key, revoked, that only sends bodies
// refused before the store must not keep taking the partner's rate-limit tokens.
func TestRevokedKeyCannotSpendThePartnersBudget(t *testing.T) {
	e := newRateLimitedEnv(t, 5)
	th := e.thread()
	leaked := e.revokedAfterUse(th.guest)
	for range 10 {
		e.as(leaked, "/messages/send", `{}`)
	}
	if a := e.as(th.guest, "/messages/latest", ""); a.status != http.StatusOK {
		t.Errorf("the partner's valid key after its revoked key was used = %d %s, want 200", a.status, a.body)
	}
}

// TestRevokedKeyOverBudgetIsUnauthorized: a refusal for the partner's budget comes before any
// store call too; a revoked key must get 401 there as well, not the 429 that an unknown key
// would never get.
func TestRevokedKeyOverBudgetIsUnauthorized(t *testing.T) {
	e := newRateLimitedEnv(t, 5)
	th := e.thread()
	leaked := e.revokedAfterUse(th.guest) // one token spent
	for range 4 {
		if a := e.as(th.guest, "/messages/latest", ""); a.status != http.StatusOK {
			t.Fatalf("latest within the budget = %d %s", a.status, a.body)
		}
	}
	if a := e.as(th.guest, "/messages/latest", ""); a.status != http.StatusTooManyRequests {
		t.Fatalf("latest over the budget = %d %s, want 429", a.status, a.body)
	}
	if a := e.as(leaked, "/messages/latest", ""); a.status != http.StatusUnauthorized || a.errorID(t) != api.ErrUnauthorized {
		t.Errorf("revoked key while its partner is over budget = %d %s, want 401 unauthorized (as an unknown key)", a.status, a.body)
	}
}

// revokedAfterUse gives p's partner a second key, uses it once (so the process caches it), and
// revokes it.
func (e *env) revokedAfterUse(p *api.Client) *api.Client {
	e.t.Helper()
	ctx := context.Background()
	k, err := e.admin.CreateKey(ctx, p.AffiliateID, "to revoke")
	if err != nil {
		e.t.Fatal(err)
	}
	c := &api.Client{BaseURL: e.url, AffiliateID: p.AffiliateID, APIKey: k.APIKey}
	if _, err := c.Latest(ctx); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.admin.RevokeKey(ctx, k.KeyID); err != nil {
		e.t.Fatal(err)
	}
	return c
}

// TestRevokedCachedKeyIsRefusedByTheFirstRequestOfEachEndpoint: "a revoked key stops working at
// once" (§1). TestRevokedKeyStopsAtOnce sends its requests in a row with one revoked key, and
// its first request (a send) makes the service forget the key, so every later row is refused
// by authentication against the store and never reaches the endpoint's own statement. Here each
// endpoint gets a key of its own that the process has cached, and is the first to use it after
// its revocation: the endpoint's own statements must refuse it, and write nothing.
func TestRevokedCachedKeyIsRefusedByTheFirstRequestOfEachEndpoint(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	photo := th.upload(t, th.guest, "photo.png", "image/png", fileOf("image/png", 100))
	if _, err := th.guest.Send(context.Background(), api.SendRequest{Accommodation: th.accommodation,
		Conversation: th.conversation, Content: "see", Attachments: []string{photo}}, ""); err != nil {
		t.Fatal(err)
	}
	queued := th.send(t, th.property, "an answer in the guest's queue")
	ref := `"accommodation":` + th.accommodation + `,"conversation":"` + th.conversation + `"`
	for _, tt := range []struct{ name, path, body string }{
		{"latest with a full queue", "/messages/latest", ``},
		{"latest (3.2) with a full queue", "/3.2/messages/latest", ``},
		{"confirm of a queued message", "/messages/latest/confirm", `{"messages":["` + queued + `"]}`},
		{"conversation", "/messages/conversations", `{` + ref + `}`},
		{"conversation (3.2)", "/3.2/messages/conversations", `{` + ref + `}`},
		{"metadata", "/messages/attachments/metadata", `{` + ref + `,"attachment":"` + photo + `"}`},
		{"download", "/messages/attachments/download", `{` + ref + `,"attachment":"` + photo + `"}`},
	} {
		revoked := e.revokedAfterUse(th.guest)
		before := e.snapshot()
		a := e.as(revoked, tt.path, tt.body)
		if a.status != http.StatusUnauthorized || a.errorID(t) != api.ErrUnauthorized {
			t.Errorf("%s, first request with a cached key after its revocation = %d %.200s, want 401 unauthorized", tt.name, a.status, a.body)
		}
		if after := e.snapshot(); !mapsEqual(before, after) {
			t.Errorf("%s with a revoked key wrote to the database", tt.name)
		}
	}
	if ids := e.latestIDs(th.guest); !slices.Contains(ids, queued) {
		t.Errorf("the guest's queue through its valid key = %v, want it to still hold %s", ids, queued)
	}
}

// TestCachedKeyPresentedForAnotherPartnerIsForbidden: "X-Affiliate-Id is a valid integer but not
// the key's partner → 403 forbidden" (§1), also once the process has cached the key.
func TestCachedKeyPresentedForAnotherPartnerIsForbidden(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	if _, err := th.guest.Latest(context.Background()); err != nil { // the key is cached now
		t.Fatal(err)
	}
	for _, other := range []int64{th.property.AffiliateID, 999_999} {
		h := authHeaders(th.guest)
		h["X-Affiliate-Id"] = strconv.FormatInt(other, 10)
		for _, path := range []string{"/messages/latest", "/messages/conversations"} {
			body := `{"accommodation":"` + th.accommodation + `","reservation":"` + th.reservation + `"}`
			if a := e.raw(http.MethodPost, path, h, body); a.status != http.StatusForbidden || a.errorID(t) != api.ErrForbidden {
				t.Errorf("%s with the guest's cached key and X-Affiliate-Id %d = %d %.200s, want 403 forbidden", path, other, a.status, a.body)
			}
		}
	}
}
