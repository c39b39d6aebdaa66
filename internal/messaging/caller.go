package messaging

import (
	"context"
	"errors"
	"sync"
)

// Caller is the partner a request acts for and the hash of the key it presented.
//
// A key's partner never changes, so the service remembers it (see keyCache) and authenticates
// a known key without asking the store. What can change is revocation, and a revoked key must
// stop working at once: every use case therefore hands KeyHash to its first store call, whose
// statement checks the key as part of the work it does. A statement that finds the key revoked
// finds nothing; the service then asks which it was (see recheck).
type Caller struct {
	Partner
	KeyHash []byte
	// Recognised tells that the key was recognised from the cache: nothing has checked it
	// against revocation yet, and a request that fails before its first store call must have
	// it checked before it is answered (CheckKey).
	Recognised bool
}

// maxCachedKeys bounds the memory of the key cache: far more keys than partners in practice.
const maxCachedKeys = 10_000

// keyCache maps key hashes to the partner that holds the key. It holds only keys that
// authenticated once; forgetting is always safe.
type keyCache struct {
	mu sync.RWMutex
	m  map[[32]byte]Partner
}

func newKeyCache() *keyCache { return &keyCache{m: make(map[[32]byte]Partner)} }

func (c *keyCache) get(hash []byte) (Partner, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	p, ok := c.m[[32]byte(hash)]
	return p, ok
}

func (c *keyCache) put(hash []byte, p Partner) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedKeys {
		clear(c.m) // rare; the next request of each partner fills it again
	}
	c.m[[32]byte(hash)] = p
}

func (c *keyCache) forget(hash []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, [32]byte(hash))
}

// Authenticate returns the caller whose key secret is, provided it is the partner with
// affiliateID. A key seen before is recognised without the store: the use case's first
// statement checks that it is still unrevoked. Errors: ErrUnauthorized (unknown or revoked key),
// ErrForbidden (the key is another partner's), ErrUnavailable.
func (s *Service) Authenticate(ctx context.Context, secret string, affiliateID int64) (Caller, error) {
	hash := HashSecret(secret)
	if p, ok := s.keys.get(hash); ok && p.AffiliateID == affiliateID {
		return Caller{Partner: p, KeyHash: hash, Recognised: true}, nil
	}
	// Unknown here, or presented for another partner: the store decides between 401 and 403,
	// so that a revoked key is never told apart from an unknown one.
	p, err := s.store.PartnerByKeyHash(ctx, hash)
	if errors.Is(err, ErrNotFound) {
		s.keys.forget(hash)
		return Caller{}, ErrUnauthorized
	}
	if err != nil {
		return Caller{}, err
	}
	if p.AffiliateID != affiliateID {
		return Caller{}, ErrForbidden
	}
	s.keys.put(hash, p)
	return Caller{Partner: p, KeyHash: hash}, nil
}

// CheckKey checks a caller's key against the store, for a request answered without a store
// call (its body refused, say), when the key was recognised from the cache: a revoked key must
// get 401, as an unknown one does, and not an answer that tells the two apart. A key the store
// has just authenticated needs no check. Errors: ErrUnauthorized (revoked), ErrUnavailable.
func (s *Service) CheckKey(ctx context.Context, caller Caller) error {
	if !caller.Recognised {
		return nil // the store has just checked it
	}
	return s.recheck(ctx, caller, nil)
}

// recheck explains why a statement that checks the caller's key found nothing: ErrUnauthorized
// when the key has been revoked since it was cached, notFound otherwise.
func (s *Service) recheck(ctx context.Context, caller Caller, notFound error) error {
	_, err := s.store.PartnerByKeyHash(ctx, caller.KeyHash)
	switch {
	case errors.Is(err, ErrNotFound):
		s.keys.forget(caller.KeyHash)
		return ErrUnauthorized
	case err != nil:
		return err
	}
	return notFound
}
