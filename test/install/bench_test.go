package install_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"lockstep.dev/lockstep/test/fleettest"
)

// BenchmarkInstall measures the installers on a fresh bare fleet of its own:
// the first run (everything created), a second run (nothing to change,
// every object still applied and compared) and their ratio.
//
//	go test -run '^$' -bench Install -benchtime 1x -timeout 30m ./test/install/
func BenchmarkInstall(b *testing.B) {
	fleettest.Need(b)
	for i := 0; i < b.N; i++ {
		dir := filepath.Join(b.TempDir(), "fleet")
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		t0 := time.Now()
		if _, errOut, err := fleettest.F.Run(ctx, "lab", "up", "--bare", "--dir", dir); err != nil {
			cancel()
			b.Fatalf("lab up --bare: %v: %s", err, errOut)
		}
		upTime := time.Since(t0)
		run := func() (time.Duration, [3]int) {
			t := time.Now()
			out, errOut, err := fleettest.F.Run(ctx, "lab", "up", "--provider", "existing", "--kubeconfig", filepath.Join(dir, "kubeconfig"),
				"--hub-context", "argo-hub", "--workload-contexts", "argo-rollout1,argo-rollout2", "--provider-dir", b.TempDir())
			if err != nil {
				b.Fatalf("install: %v: %s\n%s", err, fleettest.FirstLine(errOut), out)
			}
			var sum [3]int
			for _, c := range actionCounts(out) {
				for k := range sum {
					sum[k] += c[k]
				}
			}
			return time.Since(t), sum
		}
		first, c1 := run()
		second, c2 := run()
		_, _, _ = fleettest.F.Run(context.Background(), "lab", "down", "--dir", dir)
		cancel()
		if c2[0]+c2[1] != 0 {
			b.Fatalf("second run created %d and changed %d objects", c2[0], c2[1])
		}
		b.ReportMetric(upTime.Seconds(), "bare-up-s")
		b.ReportMetric(first.Seconds(), "first-install-s")
		b.ReportMetric(second.Seconds(), "noop-install-s")
		b.ReportMetric(float64(c1[0]), "objects-created")
		b.ReportMetric(second.Seconds()/first.Seconds(), "noop/first")
		b.Logf("bare fleet up %s; first install %s (%d created, %d changed); second %s (%d unchanged)",
			upTime.Round(100*time.Millisecond), first.Round(100*time.Millisecond), c1[0], c1[1],
			second.Round(100*time.Millisecond), c2[2])
	}
}
