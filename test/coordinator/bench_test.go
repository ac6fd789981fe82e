package coordinator_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// syncLag is how much later argo-rollout2 gets each release than
// argo-rollout1, as when Argo CD syncs the two clusters' Applications a
// moment apart. Both modes get the same lag.
const syncLag = 1500 * time.Millisecond

// BenchmarkStepSkew compares, on the same fleet, how far apart in time the
// two clusters reach each canary weight: "independent" is the guide's
// Rollout with timed pauses (each cluster on its own clock), "lockstep" is
// the same canary with indefinite pauses (and a leading pause as a start
// barrier) driven by the coordinator. It prints p50/p99/max over all
// weight changes of a few releases.
//
//	go test -run '^$' -bench StepSkew -benchtime 1x ./test/coordinator/
func BenchmarkStepSkew(b *testing.B) {
	setup(b)
	stopLogs(b)
	const releases = 3
	const hold = 3 * time.Second

	results := map[string][]time.Duration{}
	for _, mode := range []string{"independent", "lockstep"} {
		a := newApp("bench-" + mode)
		if mode == "lockstep" {
			// A leading pause is the start barrier: without it a cluster
			// that syncs first shifts 20 % of its traffic before the other
			// has even seen the release, and no coordinator can undo the
			// sync lag there.
			a.steps = append([]any{map[string]any{"pause": map[string]any{}}}, defaultSteps()...)
		}
		if mode == "independent" {
			a.steps = defaultSteps()
			for i := range a.steps {
				if _, ok := a.steps[i].(map[string]any)["pause"]; ok {
					a.steps[i] = map[string]any{"pause": map[string]any{"duration": hold.String()}}
				}
			}
		}
		cleanupApp(b, a)
		deploy(b, a, imageV1, workloads...)
		waitHealthy(b, a, imageV1, 90*time.Second, workloads...)
		var run *coordinatorRun
		if mode == "lockstep" {
			fr := newFleetRollout("bench", a)
			fr.Spec.Hold.Default = &metav1.Duration{Duration: hold}
			createFleetRollout(b, fr)
			run = startCoordinator(b)
		}
		img := imageV1
		for i := range releases {
			if img == imageV1 {
				img = imageV2
			} else {
				img = imageV1
			}
			rec := record(b, a)
			setImage(b, a, img, workloads[0])
			time.Sleep(syncLag)
			setImage(b, a, img, workloads[1])
			waitHealthy(b, a, img, 120*time.Second, workloads...)
			skews := weightSkews(rec.snapshot())
			rec.cancel()
			for _, w := range []int32{20, 50, 80} {
				d, ok := skews[w]
				if !ok {
					b.Fatalf("%s release %d: weight %d%% not seen in both clusters\n%s", mode, i, w, rec.timeline())
				}
				results[mode] = append(results[mode], d)
			}
		}
		if run != nil {
			run.stop(b)
		}
	}

	var tbl strings.Builder
	fmt.Fprintf(&tbl, "step skew between argo-rollout1 and argo-rollout2 (%d releases, sync lag %s, hold %s):\n", releases, syncLag, hold)
	fmt.Fprintf(&tbl, "%-12s %6s %10s %10s %10s\n", "mode", "n", "p50", "p99", "max")
	for _, mode := range []string{"independent", "lockstep"} {
		d := slices.Clone(results[mode])
		slices.Sort(d)
		fmt.Fprintf(&tbl, "%-12s %6d %10s %10s %10s\n", mode, len(d),
			pct(d, 50).Round(time.Millisecond), pct(d, 99).Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
	}
	b.Log("\n" + tbl.String())
	fmt.Print(tbl.String())
	lock := slices.Clone(results["lockstep"])
	slices.Sort(lock)
	b.ReportMetric(float64(pct(lock, 99).Milliseconds()), "lockstep-p99-ms")
}

// pct is the nearest-rank percentile of sorted durations.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted) + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))]
}
