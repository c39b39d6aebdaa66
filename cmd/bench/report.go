package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// report is everything one run measured; it is what -json writes.
type report struct {
	Time            string            `json:"time"`
	Machine         machine           `json:"machine"`
	Database        string            `json:"database"`
	Options         map[string]string `json:"options"`
	Seed            seedReport        `json:"seed"`
	Scenarios       []scenarioResult  `json:"scenarios"`
	References      []reference       `json:"references"`
	ServerPeakRSSMB float64           `json:"server_peak_rss_mb"`
	Baseline        string            `json:"baseline,omitempty"`
	Growth          *growthReport     `json:"growth,omitempty"`
}

type machine struct {
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpu_model"`
	MemoryGiB float64 `json:"memory_gib"`
	LoadAvg   string  `json:"load_avg_at_start"`
	GoVersion string  `json:"go_version"`
}

type seedReport struct {
	Messages          int     `json:"messages"`
	Conversations     int     `json:"conversations"`
	Partners          int     `json:"partners"`
	PendingDeliveries int     `json:"pending_deliveries"`
	Seconds           float64 `json:"seconds"`
}

// scenarioResult is one row of the table.
type scenarioResult struct {
	Name              string  `json:"name"`
	Clients           int     `json:"clients"`
	Seconds           float64 `json:"seconds"`
	Requests          int     `json:"requests"`
	RPS               float64 `json:"requests_per_second"`
	P50ms             float64 `json:"p50_ms"`
	P90ms             float64 `json:"p90_ms"`
	P99ms             float64 `json:"p99_ms"`
	MaxMs             float64 `json:"max_ms"`
	Errors            int     `json:"errors"`
	FirstError        string  `json:"first_error,omitempty"`
	ServerCPUPerReqUs float64 `json:"server_cpu_per_request_us,omitempty"`
	// CPU of the cluster's processes and of the load generator per request, over the scenario.
	PostgresCPUPerReqUs float64 `json:"postgres_cpu_per_request_us,omitempty"`
	BenchCPUPerReqUs    float64 `json:"bench_cpu_per_request_us,omitempty"`
	ServerPeakRSSMB     float64 `json:"server_peak_rss_mb,omitempty"`
	MachineBusyPct      float64 `json:"machine_busy_pct,omitempty"`
	DeliveredPerSec     float64 `json:"delivered_per_second,omitempty"`
	Reference           string  `json:"reference,omitempty"`
	ReferenceRatio      float64 `json:"reference_ratio,omitempty"`
	BaselineP50Ratio    float64 `json:"baseline_p50_ratio,omitempty"`
	Checks              []check `json:"checks,omitempty"`
}

// check is one correctness check of a scenario.
type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

func machineInfo() machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %f kB", &kb); err == nil {
			m.MemoryGiB = kb / (1 << 20)
		}
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(data))
		if len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return m
}

func reportOptions(o options) map[string]string {
	return map[string]string{
		"messages": fmt.Sprint(o.messages), "pending": fmt.Sprint(o.pending), "history": fmt.Sprint(o.history), "active": fmt.Sprint(o.active),
		"c": fmt.Sprint(o.concurrency), "c_low": fmt.Sprint(o.lowConc), "duration": o.duration.String(),
		"warmup":        o.warmup.String(),
		"drain_pollers": fmt.Sprint(o.drainPollers), "db_max_conns": fmt.Sprint(o.dbMaxConns),
		"gogc": o.gogc, "gomaxprocs": o.gomaxprocs, "gomemlimit": o.gomemlimit, "fast_pg": fmt.Sprint(o.fastPG), "url": o.url, "peer": strings.Join(o.peers, ","),
		"growth": fmt.Sprint(o.growth), "growth_rounds": fmt.Sprint(o.growthRounds),
	}
}

// finish sets the reference ratio of every row: writes against the INSERT reference, reads
// against the SELECT reference, each at the row's concurrency (referenceKind).
func (r *report) finish() {
	r.Time = time.Now().UTC().Format(time.RFC3339)
	for i := range r.Scenarios {
		s := &r.Scenarios[i]
		kind := referenceKind(s.Name)
		for _, ref := range r.References {
			if ref.Kind == kind && ref.Clients == s.Clients && ref.TPS > 0 {
				s.Reference, s.ReferenceRatio = ref.Name, s.RPS/ref.TPS
			}
		}
	}
}

// referenceKind is the pgbench reference a row compares with: "insert" for sends and confirms
// (and the windows scenario, which is sends), "select" for reads, and none for the
// attachments scenario's uploads and downloads, whose files are nothing like a table row.
func referenceKind(name string) string {
	op := name[strings.LastIndex(name, "/")+1:]
	switch {
	case strings.HasPrefix(op, "send") || op == "confirm" || op == "windows":
		return "insert"
	case op == "attachments" || op == "upload" || op == "download":
		return ""
	}
	return "select"
}

// compare sets each row's p50 as a ratio to the same row of an earlier run.
func (r *report) compare(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("-baseline: %w", err)
	}
	var base report
	if err := json.Unmarshal(data, &base); err != nil {
		return fmt.Errorf("-baseline %s: %w", path, err)
	}
	r.Baseline = fmt.Sprintf("%s (%d messages)", path, base.Seed.Messages)
	for i := range r.Scenarios {
		for _, b := range base.Scenarios {
			if b.Name == r.Scenarios[i].Name && b.P50ms > 0 {
				r.Scenarios[i].BaselineP50Ratio = r.Scenarios[i].P50ms / b.P50ms
			}
		}
	}
	return nil
}

func (r *report) failedChecks() []string {
	var out []string
	for _, s := range r.Scenarios {
		for _, c := range s.Checks {
			if !c.OK {
				out = append(out, s.Name+": "+c.Name+" ("+c.Detail+")")
			}
		}
	}
	return out
}

func (r *report) write(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func (r *report) print(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "\nmachine: %d CPUs (%s), %.1f GiB, load average at start %s; %s; %s\n", m.CPUs, m.CPUModel, m.MemoryGiB, m.LoadAvg, r.Database, m.GoVersion)
	fmt.Fprintf(w, "seed: %d messages in %d conversations, %d partners, %d queue entries, %.1f s\n\n",
		r.Seed.Messages, r.Seed.Conversations, r.Seed.Partners, r.Seed.PendingDeliveries, r.Seed.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "scenario\tc\treq/s\tp50 ms\tp90 ms\tp99 ms\terrors\tCPU µs/req\tpg µs/req\tbench µs/req\tRSS MB\tbusy %\tvs ref\tdelivered/s\t"
	if r.Baseline != "" {
		header += "p50 vs base\t"
	}
	fmt.Fprintln(tw, header)
	for _, s := range r.Scenarios {
		line := fmt.Sprintf("%s\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t", s.Name, s.Clients, s.RPS, s.P50ms, s.P90ms, s.P99ms, s.Errors,
			blank(s.ServerCPUPerReqUs, "%.0f"), blank(s.PostgresCPUPerReqUs, "%.0f"), blank(s.BenchCPUPerReqUs, "%.0f"), blank(s.ServerPeakRSSMB, "%.0f"), blank(s.MachineBusyPct, "%.0f"),
			blank(s.ReferenceRatio, "%.2f×"), blank(s.DeliveredPerSec, "%.0f"))
		if r.Baseline != "" {
			line += blank(s.BaselineP50Ratio, "%.2f×") + "\t"
		}
		fmt.Fprintln(tw, line)
	}
	for _, ref := range r.References {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t\t\t\t\t%s\t\t\t\n", ref.Name, ref.Clients, ref.TPS, ref.P50ms, ref.P90ms, ref.P99ms, ref.Errors, blank(ref.MachineBusyPct, "%.0f"))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nserver peak RSS over the run: %.0f MB\n", r.ServerPeakRSSMB)
	if r.Baseline != "" {
		fmt.Fprintf(w, "p50 vs base: this run's p50 divided by the same row's in %s\n", r.Baseline)
	}
	if r.Growth != nil {
		r.Growth.print(w)
	}
	for _, p := range r.Scenarios {
		peer, name, ok := strings.Cut(p.Name, "/")
		if !ok || !contains(knownPeers, peer) || p.RPS == 0 {
			continue
		}
		for _, s := range r.Scenarios {
			if s.Name == name {
				fmt.Fprintf(w, "%s: the service made %.2f× %s's requests/s (%.0f against %.0f); p99 %.2f against %.2f ms\n",
					name, s.RPS/p.RPS, peer, s.RPS, p.RPS, s.P99ms, p.P99ms)
			}
		}
	}
	for _, line := range ceilingLines(r.Scenarios, r.References) {
		fmt.Fprintln(w, line)
	}
	for _, s := range r.Scenarios {
		if s.Errors > 0 {
			fmt.Fprintf(w, "%s: %d errors, the first: %s\n", s.Name, s.Errors, s.FirstError)
		}
		for _, c := range s.Checks {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(w, "%s %s: %s: %s\n", mark, s.Name, c.Name, c.Detail)
		}
	}
}

func blank(v float64, format string) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf(format, v)
}
