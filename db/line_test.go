package db

import "testing"

// A failed migration's error names the line PostgreSQL's error position points into.
func TestLineAt(t *testing.T) {
	const query = "CREATE TABLE a ();\n-- é\nCREATE TABLE b (x nope);\n"
	for _, c := range []struct {
		position string
		want     uint
	}{
		{"", 0}, {"x", 0}, {"0", 0}, {"1", 1}, {"18", 1}, {"19", 1}, {"20", 2}, {"25", 3}, {"42", 3}, {"1000", 4},
	} {
		if got := lineAt(query, c.position); got != c.want {
			t.Errorf("lineAt(position %q) = %d, want %d", c.position, got, c.want)
		}
	}
}
