package api_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/guestmsg/messaging/api"
)

// An id in an admin path goes as one escaped segment, whatever it holds. Pasted in as it was,
// "r1#2" became PUT /admin/reservations/r1 (the rest a fragment, never sent), which wrote the
// existing reservation r1 instead of being refused as an invalid id.
func TestAdminClientSendsIDsAsOnePathSegment(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Method + " " + r.URL.EscapedPath()
		if r.URL.RawQuery != "" {
			got += "?" + r.URL.RawQuery
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"request_id":"x","data":{}}`)
	}))
	defer srv.Close()
	admin := &api.AdminClient{BaseURL: srv.URL, Token: "t"}
	ctx := context.Background()

	for _, tc := range []struct {
		call func() error
		want string
	}{
		{func() error { _, err := admin.PutReservation(ctx, "r1#2", api.ReservationRequest{}); return err }, "PUT /admin/reservations/r1%232"},
		{func() error { _, err := admin.PutReservation(ctx, "r1?x=1", api.ReservationRequest{}); return err }, "PUT /admin/reservations/r1%3Fx=1"},
		{func() error { _, err := admin.PutReservation(ctx, "r1/../r2", api.ReservationRequest{}); return err }, "PUT /admin/reservations/r1%2F..%2Fr2"},
		{func() error { _, err := admin.PutReservation(ctx, "R-1.a_b", api.ReservationRequest{}); return err }, "PUT /admin/reservations/R-1.a_b"},
		{func() error { _, err := admin.PutAccommodation(ctx, "7001#2", api.AccommodationRequest{}); return err }, "PUT /admin/accommodations/7001%232"},
		{func() error { _, err := admin.RevokeKey(ctx, "k 1?"); return err }, "DELETE /admin/keys/k%201%3F"},
	} {
		got = ""
		if err := tc.call(); err != nil {
			t.Fatalf("%s: %v", tc.want, err)
		}
		if got != tc.want {
			t.Errorf("request %q; want %q", got, tc.want)
		}
	}
}

// An answer announcing more bytes than it holds gives an error, without allocating what it
// announced: sized from Content-Length alone, 2^50 bytes made Do panic (makeslice), and a few
// GiB would have been allocated as announced.
func TestRawAnswerAnnouncingAHugeLengthIsAnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const body = `{"request_id":"x","data":{"messages":[]}}`
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_, _ = conn.Read(make([]byte, 4096)) // the request, small
				fmt.Fprintf(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", int64(1)<<50, body)
			}()
		}
	}()
	c := &api.Client{BaseURL: "http://" + ln.Addr().String(), AffiliateID: 1, APIKey: "k"}

	var raw []byte
	err = c.Do(context.Background(), http.MethodPost, "/messages/latest", nil, &raw, nil)
	if err == nil {
		t.Fatalf("Do = nil error with %d bytes; want an error for the short body", len(raw))
	}
	if cap(raw) > 8<<20 {
		t.Errorf("buffer of %d bytes for a %d-byte body", cap(raw), len(body))
	}
}
