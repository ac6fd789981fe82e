package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"lockstep.dev/lockstep/internal/lab/local"
)

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

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
