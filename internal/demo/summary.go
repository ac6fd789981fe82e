package demo

import (
	"context"
	"time"

	"lockstep.dev/lockstep/internal/render"
)

// summarize completes the summary: the verdict's timings, the release's
// notification, each cluster's canary weights, what served after the
// outcome (a few more seconds of load), the canary requests answered
// before the verdict, and the success rates Thanos reports.
func (r *runner) summarize(ctx context.Context, rel *release) error {
	sum := rel.sum
	if sum.Outcome == "Aborted" {
		r.verdictTimings(ctx, rel)
	}
	rel.mu.Lock()
	rel.outcome = time.Now()
	rel.mu.Unlock()
	r.say("outcome: %s in every cluster after %s", sum.Outcome, sum.Duration.Round(100*time.Millisecond))
	trigger := "on-release-completed"
	if sum.Outcome == "Aborted" {
		trigger = "on-release-aborted"
	}
	sum.Notification = r.notification(ctx, trigger, rel.start, 10*time.Second)
	for c, cs := range sum.Clusters {
		cs.Weights = canaryWeights(sum.Timeline[c])
		sum.Clusters[c] = cs
		sum.AnalysisRuns[c] = cs.Final.Analysis
	}
	sleep(ctx, 3*time.Second)
	rel.stopLoad()
	if err := <-rel.loadDone; err != nil {
		return err
	}
	rel.mu.Lock()
	if len(rel.canaryTimes) > 0 {
		sum.FirstCanaryRequest = rel.canaryTimes[0].Sub(rel.start)
	}
	for _, t := range rel.canaryTimes {
		if sum.Verdict > 0 && !t.After(rel.start.Add(sum.Verdict)) {
			sum.CanaryRequestsToVerdict++
		}
	}
	rel.mu.Unlock()
	sum.Requests = rel.stats.Snapshot()
	sum.AfterOutcome = rel.after.Snapshot()
	sum.SuccessRate = r.successRates(ctx, time.Since(rel.start))
	return nil
}

// verdictTimings sets when the abort was decided (lockstep: the
// coordinator's status.fleet.abortedAt, with its reason and the judge's
// canary requests; independent: the first Rollout seen aborted) and when
// every cluster's canary weight was back at 0, as offsets from the commit.
func (r *runner) verdictTimings(ctx context.Context, rel *release) {
	sum := rel.sum
	verdict := rel.firstAbort
	if r.mode == render.ModeLockstep {
		if at, msg, n, ok := r.fleetAbort(ctx); ok {
			verdict, sum.AbortReason, sum.JudgeRequests = at, msg, n
		}
	}
	var last time.Time
	for _, t := range rel.zeroAt {
		if t.After(last) {
			last = t
		}
	}
	if !verdict.IsZero() {
		sum.Verdict = verdict.Sub(rel.start)
		if !last.IsZero() {
			sum.AllWeightZero = last.Sub(rel.start)
		}
	}
}
