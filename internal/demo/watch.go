package demo

import (
	"context"
	"fmt"
	"math"
	"time"

	"lockstep.dev/lockstep/internal/render"
)

// watchOutcome watches every cluster (and, in lockstep mode, the
// FleetRollout) until each has promoted or aborted the new version,
// printing every change, keeping each cluster's timeline and the largest
// step skew seen while the canary ran.
func (r *runner) watchOutcome(ctx context.Context, rel *release) error {
	rel.sum = &Summary{Mode: r.mode, From: rel.served, To: rel.next, BadRelease: r.o.BadRelease, FaultCluster: r.o.FaultCluster, Revision: rel.rev,
		Clusters: map[string]ClusterSummary{}, Timeline: map[string][]ClusterView{}, AnalysisRuns: map[string]string{}}
	rel.zeroAt = map[string]time.Time{}
	w := &watcher{wantImage: "docker.io/istio/examples-helloworld-" + rel.next, last: map[string]string{}, done: map[string]time.Time{}}
	for len(w.done) < len(r.clusters) {
		if r.mode == render.ModeLockstep {
			if ph := r.fleetPhase(ctx); ph != w.lastFleet {
				w.lastFleet = ph
				rel.sum.FleetRollout = ph
				r.say("%-14s %s", "FleetRollout", ph)
			}
		}
		if err := r.injectFaults(ctx, w.wantImage); err != nil {
			r.say("fault injection: %v", err)
		}
		steps := map[string]int64{}
		for _, c := range r.clusters {
			if step, ok := r.watchCluster(ctx, rel, w, c); ok {
				steps[c] = step
			}
		}
		if len(steps) == len(r.clusters) && len(w.done) == 0 {
			lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
			for _, st := range steps {
				lo, hi = min(lo, st), max(hi, st)
			}
			rel.sum.MaxStepSkew = max(rel.sum.MaxStepSkew, hi-lo)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no outcome after %s: %w", r.o.Timeout, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	rel.sum.Duration = time.Since(rel.start)
	return nil
}

// watcher is watchOutcome's memory between two looks.
type watcher struct {
	wantImage string
	last      map[string]string    // each cluster's last line
	done      map[string]time.Time // clusters with an outcome
	lastFleet string
}

// watchCluster takes one look at cluster c: it prints a change, notes the
// first abort, the start of a shared incident, the canary's return to
// weight 0 and the cluster's outcome, and returns the cluster's step while
// it runs the new version unaborted.
func (r *runner) watchCluster(ctx context.Context, rel *release, w *watcher, c string) (int64, bool) {
	v := observe(ctx, c, r.dyn[c], Namespace, RolloutName)
	step, running := v.Step, v.Image == w.wantImage && v.Observed && !v.Aborted && v.Err == ""
	if v.Aborted && v.Image == w.wantImage && rel.firstAbort.IsZero() {
		rel.firstAbort = time.Now()
	}
	if r.o.IncidentFor > 0 && r.incidentFrom.IsZero() && v.Image == w.wantImage && !v.Aborted && v.CanaryWeight >= 50 {
		r.incidentFrom = time.Now()
		r.say("%-14s shared incident: every pod, stable and canary, fails %g more for %s", "fleet", r.o.IncidentErrorRate, r.o.IncidentFor)
	}
	if _, ok := rel.zeroAt[c]; !ok && v.Aborted && v.Image == w.wantImage && v.CanaryWeight == 0 {
		rel.zeroAt[c] = time.Now()
	}
	if v.key() != w.last[c] {
		w.last[c] = v.key()
		r.say("%s", v.Line())
		rel.sum.Timeline[c] = append(rel.sum.Timeline[c], v)
	}
	if _, ok := w.done[c]; ok || v.Image != w.wantImage || !v.Observed {
		return step, running
	}
	promoted := v.Phase == "Healthy" && v.Stable == v.Current && v.StableWeight == 100 && v.CanaryWeight == 0
	// Right after a new revision replaces an aborted one the controller
	// reports Progressing with the old abort flag still set: only Degraded
	// is an abort of this revision.
	aborted := v.Aborted && v.Phase == "Degraded" && v.CanaryWeight == 0
	if promoted || aborted {
		w.done[c] = time.Now()
		cs := rel.sum.Clusters[c]
		cs.Final, cs.Duration = v, time.Since(rel.start)
		rel.sum.Clusters[c] = cs
		if aborted {
			rel.sum.Outcome = "Aborted"
		} else if rel.sum.Outcome == "" {
			rel.sum.Outcome = "Promoted"
		}
	}
	return step, running
}
