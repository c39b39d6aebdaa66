package messaging

import (
	"encoding/binary"
	"testing"
)

func TestKeyCacheIsBounded(t *testing.T) {
	c := newKeyCache()
	hash := func(i int) []byte {
		h := make([]byte, 32)
		binary.BigEndian.PutUint64(h, uint64(i))
		return h
	}
	for i := 0; i <= maxCachedKeys; i++ {
		c.put(hash(i), Partner{AffiliateID: int64(i + 1)})
	}
	if n := len(c.m); n > maxCachedKeys {
		t.Errorf("%d keys cached, want at most %d", n, maxCachedKeys)
	}
	if p, ok := c.get(hash(maxCachedKeys)); !ok || p.AffiliateID != maxCachedKeys+1 {
		t.Errorf("the newest key = %+v, %t; want it cached", p, ok)
	}
	c.forget(hash(maxCachedKeys))
	if _, ok := c.get(hash(maxCachedKeys)); ok {
		t.Error("a forgotten key is still cached")
	}
}
