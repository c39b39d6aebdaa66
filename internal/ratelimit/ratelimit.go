// Package ratelimit is a per-key token bucket limiter with bounded memory, for request budgets
// of authenticated partners. It counts within one process only: N processes behind a load
// balancer allow up to N times the budget.
package ratelimit

import (
	"math"
	"sync"
	"time"
)

// DefaultMaxKeys bounds the number of buckets a limiter keeps.
const DefaultMaxKeys = 10_000

// Limiter gives every key a bucket of perMinute tokens that refills at perMinute per minute;
// each request takes one token. A key with a full bucket needs no memory, so buckets that have
// refilled are dropped when the limiter reaches its size bound; if that is not enough, arbitrary
// buckets are dropped (those keys start again with a full budget). A nil *Limiter allows
// everything.
type Limiter struct {
	mu      sync.Mutex
	burst   float64 // bucket capacity
	rate    float64 // tokens per second
	maxKeys int
	now     func() time.Time
	buckets map[int64]bucket
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was computed
}

// New returns a limiter allowing perMinute requests per key and minute, with bursts of up to
// perMinute, tracking at most maxKeys keys (DefaultMaxKeys when maxKeys <= 0). It returns nil,
// which allows everything, when perMinute <= 0.
func New(perMinute, maxKeys int, now func() time.Time) *Limiter {
	if perMinute <= 0 {
		return nil
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Limiter{
		burst: float64(perMinute), rate: float64(perMinute) / 60, maxKeys: maxKeys, now: now,
		buckets: make(map[int64]bucket),
	}
}

// Allow takes a token from key's bucket. When the bucket is empty it takes nothing, reports
// false, and says in how many whole seconds (at least 1) a token will be there.
func (l *Limiter) Allow(key int64) (ok bool, retryAfterSeconds int) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[key]
	if !found {
		l.makeRoom(now)
		b = bucket{tokens: l.burst, at: now}
	}
	b.tokens = l.level(b, now)
	if now.After(b.at) {
		// Never back: a request that read the clock before another took the lock first would
		// otherwise have the refill since its reading counted twice (found by review).
		b.at = now
	}
	if b.tokens < 1 {
		l.buckets[key] = b
		wait := (1 - b.tokens) / l.rate
		return false, max(1, int(math.Ceil(wait)))
	}
	b.tokens--
	l.buckets[key] = b
	return true, 0
}

// level is the bucket's token count at now.
func (l *Limiter) level(b bucket, now time.Time) float64 {
	elapsed := now.Sub(b.at).Seconds()
	if elapsed < 0 { // the clock went back
		elapsed = 0
	}
	return min(l.burst, b.tokens+elapsed*l.rate)
}

// makeRoom keeps the map below maxKeys before a new key is added: it drops full buckets and,
// if that frees too little, arbitrary ones, down to nine tenths of the bound so that the sweep
// does not run on every new key.
func (l *Limiter) makeRoom(now time.Time) {
	if len(l.buckets) < l.maxKeys {
		return
	}
	for k, b := range l.buckets {
		if l.level(b, now) >= l.burst {
			delete(l.buckets, k)
		}
	}
	target := l.maxKeys * 9 / 10
	for k := range l.buckets {
		if len(l.buckets) <= target {
			break
		}
		delete(l.buckets, k)
	}
}

// Len is the number of buckets held.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
