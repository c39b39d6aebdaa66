package httpapi_test

import (
	"net/http"
	"testing"
	"time"
)

// TestIdempotencyKeyInFlightIsNotTakenByALaterRequest: "A request that arrives while another
// with the same key is still in flight either waits and returns that request's response, or
// gets 409 idempotency_key_in_progress; one message at most is ever created" (§5.1). Here the
// first request A is in flight, waiting for its conversation's row, which an operator's change
// holds (README: a rename or a new owner holds the accommodation's conversations for seconds),
// when B arrives with the same Idempotency-Key and other parameters (the guest's other
// reservation). B must not store a message of its own: it waits for A (and is then a reuse
// with other parameters, 409 idempotency_key_reused) or is 409 idempotency_key_in_progress;
// and A, which nothing preceded, is stored and answered 200. (Found by review: B stored its
// message and A was answered 409 idempotency_key_reused.)
func TestIdempotencyKeyInFlightIsNotTakenByALaterRequest(t *testing.T) {
	e := newEnv(t)
	th := e.thread()
	otherRes, _ := e.reservation(th.accommodation, th.guest)
	h := authHeaders(th.guest)
	h["Idempotency-Key"] = "in-flight-key"

	// The operator's change: it holds A's conversation row until it commits.
	change, err := e.db.Beginx()
	if err != nil {
		t.Fatal(err)
	}
	defer change.Rollback()
	if _, err := change.Exec(`SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE`, th.conversation); err != nil {
		t.Fatal(err)
	}

	first := make(chan answer, 1)
	go func() {
		first <- e.raw(http.MethodPost, "/messages/send", h,
			`{"accommodation":"`+th.accommodation+`","reservation":"`+th.reservation+`","content":"first"}`)
	}()
	// A is in flight once its statement waits for the row (on a lane, then on the pool). The
	// statement's text, as pg_stat_activity keeps it (its first 1,024 bytes), starts so.
	deadline := time.Now().Add(5 * time.Second)
	for {
		waiting := e.count(`SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%unnest($1::int8[], $2::uuid[]%'`)
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("request A never waited for the held conversation")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // past the lanes' lock_timeout: A now waits on the pool

	second := make(chan answer, 1)
	go func() {
		second <- e.raw(http.MethodPost, "/messages/send", h,
			`{"accommodation":"`+th.accommodation+`","reservation":"`+otherRes+`","content":"second"}`)
	}()
	var b answer
	select {
	case b = <-second: // answered while A is still in flight
	case <-time.After(2 * time.Second): // B waits for A, as the contract allows
	}
	if err := change.Rollback(); err != nil {
		t.Fatal(err)
	}
	a := <-first
	if b.status == 0 {
		b = <-second
	}

	if a.status != http.StatusOK {
		t.Errorf("first request A, in flight when B came = %d %s, want 200: nothing used the key before it", a.status, a.body)
	}
	if b.status != http.StatusConflict || (b.errorID(t) != "idempotency_key_reused" && b.errorID(t) != "idempotency_key_in_progress") {
		t.Errorf("request B, same Idempotency-Key while A was in flight = %d %s, "+
			"want 409 idempotency_key_reused (after waiting for A) or idempotency_key_in_progress", b.status, b.body)
	}
	var contents []string
	if err := e.db.Select(&contents, `SELECT content FROM messages ORDER BY seq`); err != nil {
		t.Fatal(err)
	}
	if len(contents) != 1 || contents[0] != "first" {
		t.Errorf("messages stored = %q, want only A's [\"first\"]", contents)
	}
}
