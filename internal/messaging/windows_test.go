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
