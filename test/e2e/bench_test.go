package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
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

// BenchmarkOneClusterBadRelease ships, in each mode, a release whose pods
// fail 15 % of their requests in argo-rollout2 only. Multi-primary spreads
// the canary's traffic over both clusters' pods, so the global success rate
// (the guide's analysis) stays near 92 %, above its 90 % threshold, while
// argo-rollout2's pods serve 85 %. Reported per mode: outcome, requests
// failed during the release, time from the commit to the verdict, the gap
// between the clusters' aborts, and the largest step skew.
// Run: go test -run '^$' -bench OneClusterBadRelease -benchtime 1x -timeout 30m ./test/e2e/
func BenchmarkOneClusterBadRelease(b *testing.B) {
	needFleet(b)
	type row struct {
		mode, outcome      string
		failed             int
		verdict, abortSkew time.Duration
		stepSkew           int64
	}
	var rows []row
	for i := 0; i < b.N; i++ {
		for _, mode := range []string{"independent", "lockstep"} {
			args := []string{"demo", "--dir", env.Dir, "--pause", "5s", "--analysis-delay", "12s", "--analysis-interval", "5s",
				"--scale-down-delay", "3s", "-o", "json", "--bad-release", "--error-rate", "0.15", "--fault-cluster", "argo-rollout2"}
			if mode == "lockstep" {
				args = append(args, "--lockstep")
			}
			out, errOut, err := lockstep(context.Background(), args...)
			if err != nil {
				b.Fatalf("%s: %v\n%s", mode, err, errOut)
			}
			var s demo.Summary
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				b.Fatal(err)
			}
			r := row{mode: mode, outcome: s.Outcome, stepSkew: s.MaxStepSkew}
			var ends []time.Duration
			for _, c := range s.Requests {
				r.failed += c.Errors
			}
			for _, c := range s.Clusters {
				ends = append(ends, c.Duration)
			}
			if s.Outcome == "Aborted" && len(ends) == 2 {
				r.verdict = min(ends[0], ends[1])
				r.abortSkew = max(ends[0], ends[1]) - r.verdict
			}
			rows = append(rows, r)
			b.ReportMetric(float64(r.failed), mode+"-failed-requests")
			b.ReportMetric(r.verdict.Seconds(), mode+"-verdict-s")
			b.ReportMetric(float64(r.abortSkew.Milliseconds()), mode+"-abort-gap-ms")
		}
	}
	b.Logf("\n| mode | outcome | failed requests | commit -> verdict | abort gap between clusters | max step skew |\n|---|---|---|---|---|---|")
	for _, r := range rows {
		verdict, gap := "never", "-"
		if r.outcome == "Aborted" {
			verdict, gap = r.verdict.Round(100*time.Millisecond).String(), r.abortSkew.Round(time.Millisecond).String()
		}
		b.Logf("| %s | %s | %d | %s | %s | %d |", r.mode, r.outcome, r.failed, verdict, gap, r.stepSkew)
	}
}
