package pgtest_test

import (
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/guestmsg/messaging/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestDatabasesAreFreshMigratedAndSeparate(t *testing.T) {
	a, b := pgtest.DB(t), pgtest.DB(t)
	if pgtest.DSN(t) == pgtest.DSN(t) {
		t.Fatal("two calls to DSN returned the same database")
	}

	for name, db := range map[string]*sqlx.DB{"a": a, "b": b} {
		var n int
		if err := db.Get(&n, "SELECT count(*) FROM partners"); err != nil {
			t.Fatalf("database %s: count partners: %v", name, err)
		}
		if n != 0 {
			t.Errorf("database %s: %d partners, want none", name, n)
		}
	}

	a.MustExec("INSERT INTO partners (affiliate_id, kind, name, created_at) VALUES (1, 'guest', 'g', now())")
	var n int
	if err := b.Get(&n, "SELECT count(*) FROM partners"); err != nil {
		t.Fatalf("count partners in b: %v", err)
	}
	if n != 0 {
		t.Errorf("a row inserted in a shows in b: %d partners in b", n)
	}
	if err := a.Get(&n, "SELECT count(*) FROM partners"); err != nil {
		t.Fatalf("count partners in a: %v", err)
	}
	if n != 1 {
		t.Errorf("%d partners in a after one insert, want 1", n)
	}
}
