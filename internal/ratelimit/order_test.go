package ratelimit_test

import (
	"sync"
	"testing"
	"time"

	"github.com/guestmsg/messaging/internal/ratelimit"
)

// stallingClock is an injected clock whose next reading, once armed, is taken and then held
// back until the test releases it: the request that read the clock is delayed before it gets
// to its bucket, as a goroutine is that waits for the limiter's mutex or is descheduled.
type stallingClock struct {
	mu    sync.Mutex
	now   time.Time
	read  chan struct{} // closed when the armed reading has been taken
	stall chan struct{} // the armed reading returns once this is closed
}

func (c *stallingClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *stallingClock) arm() (read, release chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read, c.stall = make(chan struct{}), make(chan struct{})
	return c.read, c.stall
}

func (c *stallingClock) Now() time.Time {
	c.mu.Lock()
	t, read, stall := c.now, c.read, c.stall
	c.read, c.stall = nil, nil
	c.mu.Unlock()
	if stall != nil {
		close(read)
		<-stall
	}
	return t
}

// TestConcurrentRequestsDoNotRefillTwice: two requests of one partner, the first of
// which read the clock before the second but reached the bucket after it. A token bucket of 60
// a minute (one a second, bursts of 60) allows at most 60 + 20 requests from a full bucket at T
// up to T+20s, whatever the order in which concurrent requests take the lock. Allow reads the
// clock before it locks; when it set the bucket's time to the older reading, the refill of the
// seconds between the two readings was counted twice (found by review: 90 allowed).
func TestConcurrentRequestsDoNotRefillTwice(t *testing.T) {
	t0 := time.Date(2026, 7, 3, 12, 0, 0, 0, time.UTC)
	c := &stallingClock{now: t0}
	l := ratelimit.New(60, 0, c.Now)
	allowed := 0
	for {
		ok, _ := l.Allow(1)
		if !ok {
			break
		}
		allowed++
	}
	if allowed != 60 {
		t.Fatalf("a full bucket allowed %d requests, want 60", allowed)
	}

	// Request A reads T+10s, then is held back before it reaches the bucket.
	c.set(t0.Add(10 * time.Second))
	read, release := c.arm()
	var okA, okB bool
	doneA, doneB := make(chan struct{}), make(chan struct{})
	go func() { defer close(doneA); okA, _ = l.Allow(1) }()
	<-read
	// Request B reads T+20s and reaches the bucket first.
	c.set(t0.Add(20 * time.Second))
	go func() { defer close(doneB); okB, _ = l.Allow(1) }()
	select {
	case <-doneB:
	case <-time.After(time.Second): // A holds the bucket while it reads the clock: B waits for it
	}
	close(release)
	<-doneA
	<-doneB
	for _, ok := range []bool{okA, okB} {
		if ok {
			allowed++
		}
	}
	// Then, still at T+20s, as many requests as the bucket takes.
	for {
		ok, _ := l.Allow(1)
		if !ok {
			break
		}
		allowed++
	}
	if allowed > 60+20 {
		t.Errorf("from T to T+20s the limiter allowed %d requests, want at most 80 (60 a minute, bursts of 60): "+
			"the out-of-order request moved the bucket's time back, and the refill from T+10s to T+20s counted twice", allowed)
	}
}
