package messaging

import (
	"testing"
	"time"
)

func TestStayEnd(t *testing.T) {
	checkout := time.Date(2026, 7, 5, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		r    Reservation
		want time.Time
	}{
		{"confirmed: 00:00 UTC the day after checkout", Reservation{Status: StatusConfirmed, Checkout: checkout},
			time.Date(2026, 7, 6, 0, 0, 0, 0, time.UTC)},
		{"checkout at the end of a month", Reservation{Status: StatusConfirmed, Checkout: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)},
			time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"cancelled: the cancellation instant, in whole milliseconds, in UTC", Reservation{Status: StatusCancelled, Checkout: checkout,
			CancelledAt: time.Date(2026, 6, 20, 12, 30, 0, 250_999_999, time.FixedZone("CEST", 2*3600))},
			time.Date(2026, 6, 20, 10, 30, 0, 250_000_000, time.UTC)},
	}
	for _, tt := range tests {
		if got := StayEnd(tt.r); !got.Equal(tt.want) || got.Location() != time.UTC {
			t.Errorf("%s: StayEnd() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestWindows(t *testing.T) {
	end := time.Date(2026, 7, 6, 0, 0, 0, 0, time.UTC)
	w := DefaultWindows
	tests := []struct {
		name      string
		w         Windows
		lastGuest time.Time
		side      Side
		send      time.Time
		read      time.Time
	}{
		{"guest", w, time.Time{}, Guest, end.AddDate(0, 0, 66), end.AddDate(0, 0, 66)},
		{"property without guest messages", w, time.Time{}, Property, end.AddDate(0, 0, 7), end.AddDate(0, 0, 365)},
		{"property, guest wrote early", w, end.AddDate(0, 0, -10), Property, end.AddDate(0, 0, 7), end.AddDate(0, 0, 365)},
		{"property, guest wrote late", w, end.AddDate(0, 0, 30), Property, end.AddDate(0, 0, 44), end.AddDate(0, 0, 365)},
		{"extension cut at the read window", Windows{66, 7, 14, 70}, end.AddDate(0, 0, 66), Property, end.AddDate(0, 0, 70), end.AddDate(0, 0, 70)},
		{"both property send durations 0", Windows{66, 0, 0, 365}, end.Add(-time.Hour), Property, end, end.AddDate(0, 0, 365)},
		{"guest window cut at retention", Windows{66, 7, 14, 30}, time.Time{}, Guest, end.AddDate(0, 0, 30), end.AddDate(0, 0, 30)},
	}
	for _, tt := range tests {
		c := Conversation{StayEnd: end, LastGuestMessageAt: tt.lastGuest}
		if got := tt.w.SendAllowedUntil(c, tt.side); !got.Equal(tt.send) {
			t.Errorf("%s: SendAllowedUntil() = %v, want %v", tt.name, got, tt.send)
		}
		if got := tt.w.ReadableUntil(c, tt.side); !got.Equal(tt.read) {
			t.Errorf("%s: ReadableUntil() = %v, want %v", tt.name, got, tt.read)
		}
		// The filter the queries apply agrees with ReadableUntil on both sides of its edge.
		after := tt.w.ReadableStayEndAfter(tt.side, tt.read.Add(-time.Millisecond))
		if !end.After(after) || end.After(tt.w.ReadableStayEndAfter(tt.side, tt.read)) {
			t.Errorf("%s: ReadableStayEndAfter disagrees with ReadableUntil %v", tt.name, tt.read)
		}
	}
}

func TestRetentionCutoffIsThePropertyReadWindow(t *testing.T) {
	end := time.Date(2026, 7, 6, 0, 0, 0, 0, time.UTC)
	w := DefaultWindows
	gone := w.ReadableUntil(Conversation{StayEnd: end}, Property)
	if cut := w.RetentionCutoff(gone.Add(-time.Millisecond)); !end.After(cut) {
		t.Errorf("1 ms before the property's read window closes, stay end %v is at or before the cutoff %v", end, cut)
	}
	if cut := w.RetentionCutoff(gone); end.After(cut) {
		t.Errorf("when the property's read window closes, stay end %v is after the cutoff %v", end, cut)
	}
}

func TestIdempotencyCutoff(t *testing.T) {
	created := time.Date(2026, 7, 3, 12, 0, 0, 0, time.UTC)
	if cut := IdempotencyCutoff(created.Add(24 * time.Hour)); created.Before(cut) {
		t.Errorf("a record exactly 24 hours old is before the cutoff %v", cut)
	}
	if cut := IdempotencyCutoff(created.Add(24*time.Hour + time.Millisecond)); !created.Before(cut) {
		t.Errorf("a record 24 hours and 1 ms old is not before the cutoff %v", cut)
	}
}

// SendOpen is what the one-statement send applies in SQL; it must agree with SendAllowedUntil
// at every instant, and in particular one millisecond on either side of every edge.
func TestSendOpenAgreesWithSendAllowedUntil(t *testing.T) {
	end := time.Date(2026, 7, 6, 0, 0, 0, 0, time.UTC)
	windows := []Windows{DefaultWindows, {66, 7, 14, 70}, {66, 0, 0, 365}, {66, 7, 14, 30}, {0, 0, 0, 0}, {10, 30, 5, 20}}
	lastGuest := []time.Time{{}, end.AddDate(0, 0, -10), end, end.AddDate(0, 0, 3), end.AddDate(0, 0, 30), end.AddDate(0, 0, 66), end.AddDate(0, 0, 400)}
	for _, w := range windows {
		for _, lg := range lastGuest {
			c := Conversation{StayEnd: end, LastGuestMessageAt: lg}
			for _, side := range []Side{Guest, Property} {
				until := w.SendAllowedUntil(c, side)
				edges := []time.Time{until, end, w.ReadableUntil(c, side), end.AddDate(0, 0, w.PropertySendDays)}
				if !lg.IsZero() {
					edges = append(edges, lg, lg.AddDate(0, 0, w.PropertyReplyDays))
				}
				for _, edge := range edges {
					for _, now := range []time.Time{edge.Add(-time.Millisecond), edge, edge.Add(time.Millisecond), end.AddDate(-1, 0, 0)} {
						if got, want := w.SendOpenAt(side, now).Allows(c), now.Before(until); got != want {
							t.Errorf("%+v, last guest message %v, %s at %v: Allows = %v, SendAllowedUntil %v says %v",
								w, lg, side, now, got, until, want)
						}
					}
				}
			}
		}
	}
}
