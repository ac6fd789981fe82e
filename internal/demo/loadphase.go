package demo

import (
	"context"

	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/load"
)

// startLoad puts load on every gateway for the whole upgrade, noting when
// the new version answers and what serves after the outcome, then lets
// Prometheus see the stable version's traffic first.
func (r *runner) startLoad(ctx context.Context, rel *release) error {
	var targets []load.Target
	for _, c := range r.clusters {
		targets = append(targets, load.Target{Cluster: c, URL: r.o.State.URLs[local.IngressURLKey(c)]})
	}
	rel.after = load.NewStats()
	loadCtx, cancel := context.WithCancel(ctx)
	rel.cancelLoad = cancel
	rel.loadDone = make(chan error, 1)
	go func() {
		var err error
		rel.stats, err = load.Run(loadCtx, targets, load.Options{Rate: r.o.Rate, Duration: r.o.Timeout, OnResult: func(res load.Result) {
			rel.mu.Lock()
			o := rel.outcome
			if res.Version == rel.next {
				rel.canaryTimes = append(rel.canaryTimes, res.At)
			}
			rel.mu.Unlock()
			if !o.IsZero() && res.At.After(o) {
				rel.after.Add(res)
			}
		}})
		rel.loadDone <- err
	}()
	r.say("load: %.0f requests/s on each gateway", r.o.Rate)
	sleep(ctx, 2*r.o.Params.AnalysisInterval)
	return nil
}
