package main

import (
	"bytes"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestGrowthRatios(t *testing.T) {
	res := []scenarioResult{{Name: "small1/latest", P50ms: 20}, {Name: "small1/drain/confirm", P50ms: 30}, {Name: "small1/send", P50ms: 5}}
	p50 := map[string]float64{}
	rows := p50s(res, "small1/", p50)
	if !slices.Equal(rows, []string{"latest", "drain/confirm", "send"}) || p50["drain/confirm"] != 30 {
		t.Fatalf("p50s = %q, %v", rows, p50)
	}
	// No ratio for a row the large side did not measure, nor for a p50 of 0 (no answer succeeded).
	large := map[string]float64{"latest": 22, "drain/confirm": 0, "send": 4, "conversation": 9}
	if got, want := ratios(p50, large), map[string]float64{"latest": 1.1, "send": 0.8}; !maps.Equal(got, want) {
		t.Errorf("ratios = %v, want %v", got, want)
	}
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{1.3}, 1.3}, {[]float64{1.4, 0.9, 1.1}, 1.1}, {[]float64{1.4, 0.9, 1.1, 1.0}, 1.05}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}

	g := &growthReport{SmallMessages: 100000, LargeMessages: 10000000, Rows: []string{"latest", "send"}, CPURows: []string{"latest"},
		Rounds: []growthRound{
			{Round: 1, First: "small", SmallStored: 100000, LargeStored: 10000000, P50Ratio: map[string]float64{"latest": 1.1, "send": 0.8},
				GeneratorCPURatio: map[string]float64{"latest": 0.95}},
			{Round: 2, First: "large", SmallStored: 250000, LargeStored: 10150000, P50Ratio: map[string]float64{"latest": 1.3},
				GeneratorCPURatio: map[string]float64{"latest": 1.25}},
		},
		MedianRatio: map[string]float64{"latest": 1.2, "send": 0.8}}
	var out bytes.Buffer
	g.print(&out)
	// Compared with runs of spaces as one, as the table's columns pad them.
	got := strings.Join(strings.Fields(out.String()), " ")
	for _, want := range []string{"(10000000 messages seeded) divided by the small one's (100000)",
		"row round 1 round 2 median latest 1.10× 1.30× 1.20× send 0.80× 0.80× latest: generator CPU 0.95× 1.25×",
		"small stored 100000 250000 large stored 10000000 10150000 first small large"} {
		if !strings.Contains(got, want) {
			t.Errorf("print: want %q in:\n%s", want, out.String())
		}
	}
}

func TestParseGrowthOptions(t *testing.T) {
	getenv := func(string) string { return "" }
	o, err := parseOptions([]string{"-growth", "10000000", "-growth-rounds", "5"}, getenv, io.Discard)
	if err != nil || o.growth != 10_000_000 || o.growthRounds != 5 {
		t.Errorf("parseOptions(-growth 10000000 -growth-rounds 5) = %d, %d, %v", o.growth, o.growthRounds, err)
	}
	for _, args := range [][]string{
		{"-growth", "100000"}, // no larger than -messages
		{"-growth", "10000001"},
		{"-growth", "1000000", "-growth-rounds", "0"},
		{"-growth", "1000000", "-url", "http://127.0.0.1:8080", "-dsn", "postgres://x/y"},
		{"-growth", "1000000", "-peer", "ejabberd"},
		{"-growth", "1000000", "-baseline", "base.json"},
	} {
		if _, err := parseOptions(args, getenv, io.Discard); err == nil {
			t.Errorf("parseOptions(%s) = nil error, want one", strings.Join(args, " "))
		}
	}
}
