package e2e

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"lockstep.dev/lockstep/internal/demo"
	"lockstep.dev/lockstep/internal/lab/local"
)

// BenchmarkLabUp measures a warm `lab up` from an empty fleet directory (the
// component cache is warm, the fleet's data is not) and the fleet's total
// RSS once Ready. Run: make bench (or go test -run '^$' -bench LabUp
// -benchtime 1x ./test/e2e/).
func BenchmarkLabUp(b *testing.B) {
	needFleet(b)
	for i := 0; i < b.N; i++ {
		dir := filepath.Join(b.TempDir(), "bench")
		start := time.Now()
		if _, errOut, err := lockstep(context.Background(), "lab", "up", "--dir", dir); err != nil {
			b.Fatalf("lab up: %v: %s", err, errOut)
		}
		up := time.Since(start)
		// Let the controllers settle before reading memory.
		time.Sleep(5 * time.Second)
		st, err := local.Status(dir)
		if err != nil {
			b.Fatal(err)
		}
		if _, errOut, err := lockstep(context.Background(), "lab", "down", "--dir", dir); err != nil {
			b.Fatalf("lab down: %v: %s", err, errOut)
		}
		b.ReportMetric(up.Seconds(), "up-s")
		b.ReportMetric(float64(st.TotalRSS)/(1<<20), "fleet-RSS-MiB")
		b.ReportMetric(float64(len(st.Components)), "processes")
		b.Logf("warm lab up: %s, fleet RSS: %d MiB over %d processes (targets: 60 s, 4096 MiB)", up.Round(100*time.Millisecond), st.TotalRSS>>20, len(st.Components))
	}
}

// BenchmarkVerdicts measures how fast and at what cost each mode stops a
// bad release, and whether it leaves good ones alone, on one fleet, one
// load (20 req/s per gateway), in one run:
//
//   - guide:    the guide's independent Rollouts and AnalysisTemplate with
//     its own timings (pause 20 s, initialDelay 60 s, interval 20 s);
//   - short:    the same with the demo's shortened timings (pause 5 s,
//     initialDelay 12 s, interval 5 s);
//   - lockstep: the coordinator's sequential judge, holds of 5 s.
//
// Scenarios: (a) 50 % failures everywhere, (b) 15 % failures in
// argo-rollout2's pods only (the global rate stays above 90 %), (c) +200 ms
// latency in argo-rollout1's pods only, (d) good releases on a fleet whose
// every pod fails 3 % and (e) good releases through a shared incident
// (every pod, stable and canary, fails 20 % more for 30 s from the 50 %
// step) (LOCKSTEP_BENCH_GOOD of them in lockstep mode, default 20; at
// most 3 in each seed-style mode, which take minutes each).
// Figures: time from the canary's first request to the verdict, verdict ->
// every cluster at weight 0, failed requests, canary requests before the
// verdict (and, lockstep, in the judge's evidence), false aborts.
// A bad release that was promoted (a mode that cannot see it) is followed
// by a clean release, so the next run's stable version is healthy.
// Run: go test -v -run '^$' -bench Verdicts -benchtime 1x -timeout 150m ./test/e2e/
// (-v: without it the testing package cuts a benchmark's log to 10 lines).
func BenchmarkVerdicts(b *testing.B) {
	needFleet(b)
	good := 20
	if v, err := strconv.Atoi(os.Getenv("LOCKSTEP_BENCH_GOOD")); err == nil && v > 0 {
		good = v
	}
	modes := []struct {
		name string
		args []string
	}{
		{"guide", []string{"--pause", "20s", "--analysis-delay", "60s", "--analysis-interval", "20s"}},
		{"short", []string{"--pause", "5s", "--analysis-delay", "12s", "--analysis-interval", "5s"}},
		{"lockstep", []string{"--pause", "5s", "--analysis-delay", "12s", "--analysis-interval", "5s", "--lockstep"}},
	}
	// p0 and p1 are the rates an oracle that knew them would tell apart
	// (stable's and the bad canary's failure, or slow, share).
	scenarios := []struct {
		name   string
		args   []string
		good   bool
		p0, p1 float64
	}{
		{"(a) 50% everywhere", []string{"--bad-release", "--error-rate", "0.5"}, false, 0.001, 0.5},
		{"(b) 15% in argo-rollout2", []string{"--bad-release", "--error-rate", "0.15", "--fault-cluster", "argo-rollout2"}, false, 0.001, 0.15},
		{"(c) +200ms in argo-rollout1", []string{"--bad-release", "--latency", "200ms", "--fault-cluster", "argo-rollout1"}, false, 0.1, 1},
		{"(d) good, 3% baseline", []string{"--baseline-error-rate", "0.03"}, true, 0, 0},
		{"(e) good, shared incident", []string{"--incident-error-rate", "0.2", "--incident-for", "30s"}, true, 0, 0},
	}
	// oracle is Wald's approximation of the canary requests a test that
	// knew both rates needs at one test's share of the judge's budget on
	// the local fleet (falseAbortRate 0.01 over 7 tests).
	oracle := func(p0, p1 float64) string {
		if p1 == 0 {
			return "-"
		}
		p1 = math.Min(p1, 0.999)
		kl := p1*math.Log(p1/p0) + (1-p1)*math.Log((1-p1)/(1-p0))
		return strconv.FormatFloat(math.Log(7/0.01)/kl, 'f', 1, 64)
	}
	type row struct {
		scenario, mode, oracle             string
		runs, aborted, errors              int
		failed, canaryReqs, judgeReqs      int
		toVerdict, toZero, commitToVerdict []time.Duration
		reasons                            []string
	}
	var rows []*row
	// LOCKSTEP_BENCH_SCENARIOS (e.g. "c,d") and LOCKSTEP_BENCH_MODES
	// (e.g. "lockstep") run a part of the table.
	picked := func(env, name string) bool {
		v := os.Getenv(env)
		if v == "" {
			return true
		}
		for _, p := range strings.Split(v, ",") {
			if p != "" && (strings.HasPrefix(name, "("+p+")") || name == p) {
				return true
			}
		}
		return false
	}
	for i := 0; i < b.N; i++ {
		for _, sc := range scenarios {
			if !picked("LOCKSTEP_BENCH_SCENARIOS", sc.name) {
				continue
			}
			for _, m := range modes {
				if !picked("LOCKSTEP_BENCH_MODES", m.name) {
					continue
				}
				r := &row{scenario: sc.name, mode: m.name, oracle: oracle(sc.p0, sc.p1)}
				rows = append(rows, r)
				n := 1
				if sc.good {
					n = good
					if m.name != "lockstep" {
						n = min(good, 3)
					}
				}
				for range n {
					args := append([]string{"demo", "--dir", env.Dir, "--scale-down-delay", "3s", "-o", "json"}, m.args...)
					args = append(args, sc.args...)
					out, errOut, err := lockstep(context.Background(), args...)
					var s demo.Summary
					if err == nil {
						err = json.Unmarshal([]byte(out), &s)
					}
					if err != nil {
						// One broken run must not lose the others' figures.
						r.errors++
						b.Errorf("%s %s: %v\n%s", sc.name, m.name, err, lastLines(errOut, 30))
						continue
					}
					r.runs++
					for _, c := range s.Requests {
						r.failed += c.Errors
					}
					if s.Outcome != "Aborted" {
						if !sc.good {
							// The faulty release is now stable, and would be
							// the next run's baseline: one clean release
							// first, not counted.
							reset := []string{"demo", "--dir", env.Dir, "--scale-down-delay", "3s", "-o", "json", "--pause", "2s", "--analysis-delay", "5s", "--analysis-interval", "5s"}
							if _, errOut, err := lockstep(context.Background(), reset...); err != nil {
								b.Errorf("reset release after %s %s: %v\n%s", sc.name, m.name, err, lastLines(errOut, 30))
							}
						}
						continue
					}
					r.aborted++
					r.canaryReqs += s.CanaryRequestsToVerdict
					r.judgeReqs += int(s.JudgeRequests)
					if s.Verdict > 0 {
						r.commitToVerdict = append(r.commitToVerdict, s.Verdict)
						r.toVerdict = append(r.toVerdict, s.Verdict-s.FirstCanaryRequest)
					}
					if s.AllWeightZero > 0 && s.Verdict > 0 {
						r.toZero = append(r.toZero, s.AllWeightZero-s.Verdict)
					}
					if s.AbortReason != "" {
						r.reasons = append(r.reasons, s.AbortReason)
					}
				}
				b.Logf("%s %s: %d/%d aborted, %d failed requests, first request -> verdict %v, verdict -> weight 0 %v",
					sc.name, m.name, r.aborted, r.runs, r.failed, r.toVerdict, r.toZero)
			}
		}
	}
	mean := func(ds []time.Duration) string {
		if len(ds) == 0 {
			return "-"
		}
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		return (sum / time.Duration(len(ds))).Round(100 * time.Millisecond).String()
	}
	b.Logf("\n| scenario | mode | runs (errors) | aborted | first canary request -> verdict | verdict -> all at weight 0 | failed requests | canary requests before verdict | judge's evidence | oracle |\n|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		per := func(n int) string {
			if r.aborted == 0 {
				return "-"
			}
			return strconv.Itoa(n / r.aborted)
		}
		judgeReqs := "-"
		if r.mode == "lockstep" {
			judgeReqs = per(r.judgeReqs)
		}
		b.Logf("| %s | %s | %d (%d) | %d | %s | %s | %d | %s | %s | %s |", r.scenario, r.mode, r.runs, r.errors, r.aborted, mean(r.toVerdict), mean(r.toZero), r.failed, per(r.canaryReqs), judgeReqs, r.oracle)
	}
	for _, r := range rows {
		for _, reason := range r.reasons {
			b.Logf("%s %s: %s", r.scenario, r.mode, reason)
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
