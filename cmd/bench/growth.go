package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
)

// growthReport is the side-by-side growth check (-growth): the same scenarios on a small and a
// large database of one cluster, each run on the two back to back, each p50 of the large one
// divided by the small one's of the same round. Two runs one after the other would also
// compare two stretches of the shared machine's time, whose speed drifts by more than the
// target allows.
type growthReport struct {
	SmallMessages int                `json:"small_messages"` // seeded at the start
	LargeMessages int                `json:"large_messages"`
	LargeSeedSecs float64            `json:"large_seed_seconds"`
	Rows          []string           `json:"rows"`     // the rows with a ratio in some round, in the order of the scenarios
	CPURows       []string           `json:"cpu_rows"` // the scenarios with a generator CPU ratio in some round
	Rounds        []growthRound      `json:"rounds"`
	MedianRatio   map[string]float64 `json:"median_p50_ratio"` // over the rounds, by row
}

type growthRound struct {
	Round       int                `json:"round"`
	First       string             `json:"first"`                 // "small" or "large": which ran the round's first scenario first
	SmallStored int64              `json:"small_stored_messages"` // when its scenarios began
	LargeStored int64              `json:"large_stored_messages"`
	P50Ratio    map[string]float64 `json:"p50_ratio"` // large over small, by row
	// The load generator's CPU per request, large over small, by scenario: its work does not
	// depend on the data, so a ratio away from 1 says that the machine's speed changed between
	// the two measurements, and by how much.
	GeneratorCPURatio map[string]float64 `json:"generator_cpu_ratio"`
}

// growthSide is one of the two databases with its service, the seed and load of its current
// round, and that round's p50 by row.
type growthSide struct {
	name string
	b    *bench
	sd   *seedData
	lg   *load
	p50  map[string]float64
	cpu  map[string]float64 // this round's load generator CPU per request, by scenario
}

// runGrowth is the run of -growth. b seeds and serves the small database as in a plain run;
// a second bench creates the large one on b's cluster and starts its own service, from the
// same binary. Each round runs every scenario on the two databases back to back, so that the
// two measurements of a row are seconds apart rather than a whole round, and alternates which
// goes first from one scenario to the next (small first at the start of odd rounds, large at
// the start of even ones), so that neither is always measured in the later, or the earlier,
// seconds. Before every round but the first, each database is seeded again with -messages
// messages and their queue entries for new partners, because the drain of the round before
// emptied the queues that latest pages are read from. Both therefore grow by the same amount
// (and by what the sends store), and the report gives each side's stored messages per round.
func (b *bench) runGrowth(ctx context.Context) error {
	sd, rep, err := b.prepare(ctx)
	if err != nil {
		return err
	}
	lo := b.opt
	lo.messages, lo.dsn = b.opt.growth, b.serverDSN
	if lo.serverBin == "" {
		lo.serverBin = filepath.Join(b.tmp, "messaging") // built by b's startServer
	}
	large := &bench{opt: lo, out: b.out, log: b.log, started: b.started, postmaster: b.postmaster}
	defer large.cleanup()
	lsd, lrep, err := large.prepare(ctx)
	if err != nil {
		return fmt.Errorf("large database: %w", err)
	}
	g := &growthReport{SmallMessages: b.opt.messages, LargeMessages: lo.messages, LargeSeedSecs: lrep.Seed.Seconds, MedianRatio: map[string]float64{}}
	small, big := &growthSide{name: "small", b: b, sd: sd}, &growthSide{name: "large", b: large, sd: lsd}
	var peakRSS float64
	var rows []string // the small side's rows, in order: the same in every round
	for r := 1; r <= b.opt.growthRounds; r++ {
		round := growthRound{Round: r, First: "small"}
		order := []*growthSide{small, big}
		if r%2 == 0 {
			round.First, order = "large", []*growthSide{big, small}
		}
		for _, s := range order {
			if r > 1 {
				if s.sd, err = seed(ctx, s.b.db, b.opt, s.b.logf); err != nil {
					return fmt.Errorf("seed %s database again: %w", s.name, err)
				}
				s.b.logf("seeded the %s database with %d more messages (%d pending)", s.name, b.opt.messages, s.sd.pendingMessages)
			}
			var stored int64
			if err := s.b.db.GetContext(ctx, &stored, `SELECT count(*) FROM messages`); err != nil {
				return err
			}
			if s == small {
				round.SmallStored = stored
			} else {
				round.LargeStored = stored
			}
			s.lg, s.p50, s.cpu = newLoad(s.b, s.sd), map[string]float64{}, map[string]float64{}
			if err := s.b.warmUp(ctx, s.lg, nil); err != nil {
				return err
			}
		}
		for _, name := range b.opt.scenarios {
			for _, s := range order {
				prefix := fmt.Sprintf("%s%d/", s.name, r)
				res, err := s.b.scenario(ctx, s.lg, nil, prefix, name)
				if err != nil {
					return err
				}
				rep.Scenarios = append(rep.Scenarios, res...)
				if got := p50s(res, prefix, s.p50); s == small && r == 1 {
					rows = append(rows, got...)
				}
				s.cpu[name] = res[0].BenchCPUPerReqUs
			}
			order[0], order[1] = order[1], order[0]
		}
		for _, s := range order {
			peakRSS = max(peakRSS, s.lg.peakRSSMB())
		}
		round.P50Ratio, round.GeneratorCPURatio = ratios(small.p50, big.p50), ratios(small.cpu, big.cpu)
		g.Rounds = append(g.Rounds, round)
	}
	for _, row := range rows {
		var rs []float64
		for _, round := range g.Rounds {
			if v, ok := round.P50Ratio[row]; ok {
				rs = append(rs, v)
			}
		}
		if len(rs) > 0 {
			g.Rows, g.MedianRatio[row] = append(g.Rows, row), median(rs)
		}
	}
	for _, name := range b.opt.scenarios {
		for _, round := range g.Rounds {
			if _, ok := round.GeneratorCPURatio[name]; ok {
				g.CPURows = append(g.CPURows, name)
				break
			}
		}
	}
	rep.Growth, rep.ServerPeakRSSMB = g, peakRSS
	return b.finish(ctx, rep)
}

// p50s records the p50 of each row of res in p50, under its name without prefix, and returns
// those names in order.
func p50s(res []scenarioResult, prefix string, p50 map[string]float64) []string {
	rows := make([]string, 0, len(res))
	for _, r := range res {
		name := strings.TrimPrefix(r.Name, prefix)
		rows = append(rows, name)
		p50[name] = r.P50ms
	}
	return rows
}

// ratios divides each value of large by small's of the same row, for the rows where both are
// above zero (a p50 of zero: no request succeeded).
func ratios(small, large map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for row, s := range small {
		if l, ok := large[row]; ok && s > 0 && l > 0 {
			out[row] = l / s
		}
	}
	return out
}

// median is the middle value of v (the mean of the middle two when their number is even).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// print writes the growth table: a column per round and the median, then the load generator's
// CPU ratios (the machine's drift between the two sides), the messages stored, and the order.
func (g *growthReport) print(w io.Writer) {
	fmt.Fprintf(w, "\ngrowth, side by side on one cluster: each p50 of the large database (%d messages seeded) divided by the small one's (%d), round by round\n",
		g.LargeMessages, g.SmallMessages)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "row\t"
	for _, r := range g.Rounds {
		header += fmt.Sprintf("round %d\t", r.Round)
	}
	fmt.Fprintln(tw, header+"median\t")
	for _, row := range g.Rows {
		line := row + "\t"
		for _, r := range g.Rounds {
			line += blank(r.P50Ratio[row], "%.2f×") + "\t"
		}
		fmt.Fprintln(tw, line+blank(g.MedianRatio[row], "%.2f×")+"\t")
	}
	for _, name := range g.CPURows {
		line := name + ": generator CPU\t"
		for _, r := range g.Rounds {
			line += blank(r.GeneratorCPURatio[name], "%.2f×") + "\t"
		}
		fmt.Fprintln(tw, line+"\t")
	}
	smallLine, largeLine := "small stored\t", "large stored\t"
	for _, r := range g.Rounds {
		smallLine += fmt.Sprintf("%d\t", r.SmallStored)
		largeLine += fmt.Sprintf("%d\t", r.LargeStored)
	}
	fmt.Fprintln(tw, smallLine+"\t")
	fmt.Fprintln(tw, largeLine+"\t")
	first := "first\t"
	for _, r := range g.Rounds {
		first += r.First + "\t"
	}
	fmt.Fprintln(tw, first+"\t")
	tw.Flush()
}
