package ratelimit_test

import (
	"testing"
	"time"

	"github.com/guestmsg/messaging/internal/ratelimit"
)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func TestBudgetBurstAndRefill(t *testing.T) {
	c := &clock{now: time.Date(2026, 7, 3, 12, 0, 0, 0, time.UTC)}
	l := ratelimit.New(60, 0, c.Now) // one token a second, bursts of 60
	for i := range 60 {
		if ok, _ := l.Allow(1); !ok {
			t.Fatalf("Allow #%d = false, want true within the burst", i+1)
		}
	}
	if ok, retry := l.Allow(1); ok || retry != 1 {
		t.Fatalf("Allow after the burst = %t, %d; want false, 1", ok, retry)
	}
	if ok, _ := l.Allow(2); !ok {
		t.Fatal("another key is limited by the first key's budget")
	}
	c.now = c.now.Add(500 * time.Millisecond)
	if ok, retry := l.Allow(1); ok || retry != 1 {
		t.Fatalf("Allow after half a token = %t, %d; want false, 1", ok, retry)
	}
	c.now = c.now.Add(500 * time.Millisecond)
	if ok, _ := l.Allow(1); !ok {
		t.Fatal("Allow after a second = false, want true")
	}
	if ok, _ := l.Allow(1); ok {
		t.Fatal("Allow right after = true, want false")
	}
	c.now = c.now.Add(time.Hour)
	for i := range 60 {
		if ok, _ := l.Allow(1); !ok {
			t.Fatalf("Allow #%d after an hour = false; the bucket should be full again", i+1)
		}
	}
	if ok, _ := l.Allow(1); ok {
		t.Fatal("the bucket holds more than its capacity after a long pause")
	}
}

func TestRetryAfterIsWholeSecondsUntilTheNextToken(t *testing.T) {
	c := &clock{now: time.Date(2026, 7, 3, 12, 0, 0, 0, time.UTC)}
	l := ratelimit.New(2, 0, c.Now) // a token every 30 s
	l.Allow(7)
	l.Allow(7)
	if ok, retry := l.Allow(7); ok || retry != 30 {
		t.Fatalf("Allow = %t, %d; want false, 30", ok, retry)
	}
	c.now = c.now.Add(29*time.Second + 100*time.Millisecond)
	if ok, retry := l.Allow(7); ok || retry != 1 {
		t.Fatalf("Allow 0.9 s before the token = %t, %d; want false, 1", ok, retry)
	}
}

func TestZeroDisables(t *testing.T) {
	l := ratelimit.New(0, 0, time.Now)
	for range 10_000 {
		if ok, _ := l.Allow(1); !ok {
			t.Fatal("a disabled limiter refused")
		}
	}
	if l.Len() != 0 {
		t.Errorf("a disabled limiter holds %d buckets", l.Len())
	}
}

func TestMemoryIsBounded(t *testing.T) {
	c := &clock{now: time.Date(2026, 7, 3, 12, 0, 0, 0, time.UTC)}
	l := ratelimit.New(10, 100, c.Now)
	for k := range int64(10_000) {
		l.Allow(k)
		if n := l.Len(); n > 100 {
			t.Fatalf("after %d keys the limiter holds %d buckets, bound 100", k+1, n)
		}
	}
}

func TestFullBucketsAreDroppedFirst(t *testing.T) {
	c := &clock{now: time.Date(2026, 7, 3, 12, 0, 0, 0, time.UTC)}
	l := ratelimit.New(10, 100, c.Now) // a token every 6 s
	for k := range int64(99) {
		l.Allow(k)
	}
	c.now = c.now.Add(10 * time.Second) // keys 0 to 98 are full again
	for range 10 {
		l.Allow(-1)
	}
	if ok, _ := l.Allow(-1); ok {
		t.Fatal("Allow(-1) after its budget = true")
	}
	l.Allow(1000) // at the bound: makes room
	if n := l.Len(); n != 2 {
		t.Errorf("after making room the limiter holds %d buckets, want 2 (the empty one and the new one)", n)
	}
	if ok, _ := l.Allow(-1); ok {
		t.Error("making room reset a bucket that was not full")
	}
}
