package postgres

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"github.com/guestmsg/messaging/internal/messaging"
)

type partnerRow struct {
	AffiliateID int64     `db:"affiliate_id"`
	Kind        string    `db:"kind"`
	Name        string    `db:"name"`
	CreatedAt   time.Time `db:"created_at"`
}

func (r partnerRow) domain() messaging.Partner {
	return messaging.Partner{AffiliateID: r.AffiliateID, Kind: messaging.Side(r.Kind), Name: r.Name, CreatedAt: r.CreatedAt.UTC()}
}

const partnerByKeyHashSQL = `
SELECT p.affiliate_id, p.kind, p.name, p.created_at
FROM api_keys k
JOIN partners p ON p.affiliate_id = k.affiliate_id
WHERE k.secret_hash = $1 AND k.revoked_at IS NULL`

// PartnerByKeyHash returns the partner holding the unrevoked key with this secret hash.
// Errors: messaging.ErrNotFound, messaging.ErrUnavailable.
func (s *Store) PartnerByKeyHash(ctx context.Context, hash []byte) (messaging.Partner, error) {
	var r partnerRow
	if err := s.q(ctx, partnerByKeyHashSQL).QueryRowxContext(ctx, hash).StructScan(&r); err != nil {
		return messaging.Partner{}, translate(err)
	}
	return r.domain(), nil
}

const partnerSQL = `
SELECT affiliate_id, kind, name, created_at FROM partners WHERE affiliate_id = $1`

// Partner returns a partner. Errors: messaging.ErrNotFound, messaging.ErrUnavailable.
func (s *Store) Partner(ctx context.Context, affiliateID int64) (messaging.Partner, error) {
	var r partnerRow
	if err := s.db.GetContext(ctx, &r, partnerSQL, affiliateID); err != nil {
		return messaging.Partner{}, translate(err)
	}
	return r.domain(), nil
}

const insertPartnerSQL = `
INSERT INTO partners (affiliate_id, kind, name, created_at)
VALUES ($1, $2, $3, $4)
RETURNING affiliate_id, kind, name, created_at`

// insertAssignedPartnerSQL takes the next free id of the sequence, skipping ids that operators
// chose themselves: a taken id inserts nothing and the caller draws again.
const insertAssignedPartnerSQL = `
INSERT INTO partners (affiliate_id, kind, name, created_at)
VALUES (nextval('partner_affiliate_ids'), $1, $2, $3)
ON CONFLICT (affiliate_id) DO NOTHING
RETURNING affiliate_id, kind, name, created_at`

// CreatePartner inserts a partner; an AffiliateID of 0 is assigned from a sequence.
// Errors: messaging.ErrConflict (the id is taken), messaging.ErrUnavailable.
func (s *Store) CreatePartner(ctx context.Context, p messaging.Partner) (messaging.Partner, error) {
	var r partnerRow
	if p.AffiliateID != 0 {
		err := s.db.GetContext(ctx, &r, insertPartnerSQL, p.AffiliateID, string(p.Kind), p.Name, p.CreatedAt)
		return r.domain(), translate(err)
	}
	for {
		err := s.db.GetContext(ctx, &r, insertAssignedPartnerSQL, string(p.Kind), p.Name, p.CreatedAt)
		if !errors.Is(err, sql.ErrNoRows) {
			return r.domain(), translate(err)
		}
	}
}

const insertKeySQL = `
INSERT INTO api_keys (id, affiliate_id, name, secret_hash, created_at)
VALUES ($1, $2, $3, $4, $5)`

// CreateKey stores a key by the hash of its secret. Errors: messaging.ErrUnavailable.
func (s *Store) CreateKey(ctx context.Context, k messaging.APIKey, hash []byte) error {
	_, err := s.db.ExecContext(ctx, insertKeySQL, k.ID, k.AffiliateID, k.Name, hash, k.CreatedAt)
	return translate(err)
}

type keyRow struct {
	ID          uuid.UUID    `db:"id"`
	AffiliateID int64        `db:"affiliate_id"`
	Name        string       `db:"name"`
	CreatedAt   time.Time    `db:"created_at"`
	RevokedAt   sql.NullTime `db:"revoked_at"`
}

const revokeKeySQL = `
UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2)
WHERE id = $1
RETURNING id, affiliate_id, name, created_at, revoked_at`

// RevokeKey marks a key revoked at at, or keeps its earlier revocation.
// Errors: messaging.ErrNotFound, messaging.ErrUnavailable.
func (s *Store) RevokeKey(ctx context.Context, id uuid.UUID, at time.Time) (messaging.APIKey, error) {
	var r keyRow
	if err := s.db.GetContext(ctx, &r, revokeKeySQL, id, at); err != nil {
		return messaging.APIKey{}, translate(err)
	}
	revoked := r.RevokedAt.Time.UTC()
	return messaging.APIKey{ID: r.ID, AffiliateID: r.AffiliateID, Name: r.Name, CreatedAt: r.CreatedAt.UTC(), RevokedAt: &revoked}, nil
}

type accommodationRow struct {
	ID        int64  `db:"id"`
	PartnerID int64  `db:"partner_id"`
	Name      string `db:"name"`
}

const accommodationSQL = `
SELECT id, partner_id, COALESCE(name, '') AS name FROM accommodations WHERE id = $1`

// Accommodation returns an accommodation. Errors: messaging.ErrNotFound, messaging.ErrUnavailable.
func (s *Store) Accommodation(ctx context.Context, id int64) (messaging.Accommodation, error) {
	var r accommodationRow
	if err := s.db.GetContext(ctx, &r, accommodationSQL, id); err != nil {
		return messaging.Accommodation{}, translate(err)
	}
	return messaging.Accommodation{ID: r.ID, PartnerID: r.PartnerID, Name: r.Name}, nil
}

const lockAccommodationSQL = `
SELECT partner_id, COALESCE(name, '') AS name FROM accommodations WHERE id = $1 FOR UPDATE`

const insertAccommodationSQL = `
INSERT INTO accommodations (id, partner_id, name, created_at, updated_at)
VALUES ($1, $2, NULLIF($3, ''), $4, $4)
ON CONFLICT (id) DO NOTHING
RETURNING id`

const updateAccommodationSQL = `
UPDATE accommodations SET partner_id = $2, name = NULLIF($3, ''), updated_at = $4 WHERE id = $1`

// renameConversationsSQL keeps property_name equal to the accommodation's name.
const renameConversationsSQL = `
UPDATE conversations SET property_name = NULLIF($2, '') WHERE accommodation_id = $1`

// PutAccommodation creates or replaces an accommodation. A change of owner moves the
// accommodation's queue entries from the old owner's queue to the new one's (dequeueSQL), in the
// same transaction, and the foreign key's ON UPDATE CASCADE makes it the property partner of
// every conversation of the accommodation in the same statement. A change of name is written to
// every conversation of the accommodation in the same transaction; the row lock taken first
// (lockOrInsert) holds off PutReservation (FOR KEY SHARE) meanwhile, so a conversation created
// concurrently has one name or the other, and it is the final one.
// Errors: messaging.ErrUnavailable.
func (s *Store) PutAccommodation(ctx context.Context, a messaging.Accommodation, now time.Time) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var old accommodationRow
		created, err := lockOrInsert(
			func() error { return tx.GetContext(ctx, &old, lockAccommodationSQL, a.ID) },
			func() error {
				return tx.GetContext(ctx, new(int64), insertAccommodationSQL, a.ID, a.PartnerID, a.Name, now)
			})
		if err != nil || created {
			return err
		}
		if _, err := tx.ExecContext(ctx, updateAccommodationSQL, a.ID, a.PartnerID, a.Name, now); err != nil {
			return err
		}
		if old.Name != a.Name {
			if _, err := tx.ExecContext(ctx, renameConversationsSQL, a.ID, a.Name); err != nil {
				return err
			}
		}
		if old.PartnerID == a.PartnerID {
			return nil
		}
		if _, err := tx.ExecContext(ctx, dequeueAccommodationSQL, a.ID, old.PartnerID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, enqueueAccommodationSQL, a.ID, a.PartnerID)
		return err
	})
}
