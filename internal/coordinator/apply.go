package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/dynamic"
	ctrl "sigs.k8s.io/controller-runtime"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/rollouts"
)

// applyDecision says the milestones the persisted status reached, sends
// the decision's patches, and schedules the next pass: when the decision
// asks, at the analysis interval while a release runs, and at the
// resync at the latest.
func (r *Reconciler) applyDecision(ctx context.Context, p *pass) (ctrl.Result, error) {
	r.emitMilestones(p.fr, p.orig)
	err := r.apply(ctx, p.log, p.fr, p.obs, p.dec, p.revision)
	after := p.dec.RequeueAfter
	if p.plan != nil && !p.dec.Next.Aborted && !p.dec.Next.Completed {
		after = minPositive(after, p.plan.interval)
	}
	after = minPositive(after, r.resync())
	return ctrl.Result{RequeueAfter: after}, err
}

// apply sends the decision's patches to all members at once, so members
// move within milliseconds of each other, and records an Event per member.
func (r *Reconciler) apply(ctx context.Context, log logr.Logger, fr *v1alpha1.FleetRollout, obs []memberObservation, dec decide.Decision, revision string) error {
	if len(dec.Patches) == 0 {
		return nil
	}
	clients := map[string]dynamic.Interface{}
	for _, o := range obs {
		clients[o.member.Name] = o.client
	}
	ref := fr.Spec.Rollout
	errs := make([]error, len(dec.Patches))
	var wg sync.WaitGroup
	for i, p := range dec.Patches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			plog := log.WithValues("cluster", p.Member, "kind", p.Kind)
			dyn := clients[p.Member]
			if dyn == nil {
				var err error
				if dyn, err = r.Clusters.Client(ctx, p.Member); err != nil {
					// Unreachable: the decision is persisted and will be
					// re-issued once the member answers.
					plog.Info("Patch deferred, member not connected", "err", err)
					return
				}
			}
			start := time.Now()
			err := rollouts.Apply(ctx, dyn, ref.Namespace, ref.Name, p)
			if r.Metrics != nil {
				r.Metrics.patchDuration.WithLabelValues(p.Member, string(p.Kind)).Observe(time.Since(start).Seconds())
			}
			why, problem := denial(err)
			switch {
			case errors.Is(err, rollouts.ErrPreconditionFailed):
				plog.V(1).Info("Patch skipped, member already moved", "err", err)
			case why != "":
				// The role or token is wrong: say so by name; retrying is
				// left to the backoff, the fix to a person.
				plog.Error(err, "Patch refused", "reason", why)
				r.event(fr, "Warning", string(why), string(p.Kind), "%s %s on %s refused (%s): %s", p.Kind, ref.Name, p.Member, why, problem)
				errs[i] = fmt.Errorf("%s %s/%s in %s: %s: %w", strings.ToLower(string(p.Kind)), ref.Namespace, ref.Name, p.Member, why, err)
			case err != nil:
				plog.Error(err, "Patch failed")
				r.event(fr, "Warning", "PatchFailed", string(p.Kind), "%s %s on %s failed: %v", p.Kind, ref.Name, p.Member, err)
				errs[i] = fmt.Errorf("%s %s/%s in %s: %w", strings.ToLower(string(p.Kind)), ref.Namespace, ref.Name, p.Member, err)
			default:
				plog.Info("Patch applied", "step", dec.Step, "reason", dec.Reason, "latency", time.Since(start).String())
				r.patchEvent(fr, p, dec, revision)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *Reconciler) patchEvent(fr *v1alpha1.FleetRollout, p decide.Patch, dec decide.Decision, revision string) {
	switch p.Kind {
	case decide.PatchPromote:
		if r.Metrics != nil {
			r.Metrics.promotions.WithLabelValues(fr.Namespace, fr.Name, p.Member).Inc()
		}
		r.event(fr, "Normal", "Promoted", "Promote", "promoted %s past step %d of revision %s (%s)", p.Member, dec.Step, revision, dec.Reason)
	case decide.PatchAbort:
		if r.Metrics != nil {
			r.Metrics.aborts.WithLabelValues(fr.Namespace, fr.Name, p.Member, string(dec.Next.AbortReason)).Inc()
		}
		r.event(fr, "Warning", "Aborted", "Abort", "aborted %s at revision %s: %s: %s", p.Member, revision, dec.Next.AbortReason, truncate(dec.Next.AbortMessage, 512))
	case decide.PatchRetry:
		r.event(fr, "Normal", "Retried", "Retry", "retried %s at revision %s", p.Member, revision)
	}
}

func (r *Reconciler) event(fr *v1alpha1.FleetRollout, typ, reason, _ string, note string, args ...any) {
	if r.Recorder == nil {
		return
	}
	r.Recorder.Eventf(fr, typ, reason, note, args...)
}

func (r *Reconciler) recordMetrics(fr *v1alpha1.FleetRollout, obs []memberObservation, dec decide.Decision, revision string, now time.Time) {
	m := r.Metrics
	if m == nil {
		return
	}
	ns, name := fr.Namespace, fr.Name
	lo, hi := int32(-1), int32(-1)
	for _, o := range obs {
		ro := o.member.Rollout
		if !o.member.Reachable || ro == nil || ro.Revision != revision || ro.CurrentStepIndex == nil {
			continue
		}
		i := *ro.CurrentStepIndex
		m.memberStep.WithLabelValues(ns, name, o.member.Name).Set(float64(i))
		if lo < 0 || i < lo {
			lo = i
		}
		hi = max(hi, i)
	}
	if lo >= 0 {
		m.currentStep.WithLabelValues(ns, name).Set(float64(lo))
		m.stepSkew.WithLabelValues(ns, name).Set(float64(hi - lo))
	}
	m.aborted.DeletePartialMatch(map[string]string{"namespace": ns, "fleetrollout": name})
	if dec.Next.Aborted {
		m.aborted.WithLabelValues(ns, name, string(dec.Next.AbortReason)).Set(1)
	}
	if g := fr.Status.Analysis; g != nil {
		m.setVerdict(ns, name, "global", g.Global.Verdict)
	}
	for _, ms := range fr.Status.Members {
		if ms.Verdict != nil {
			m.setVerdict(ns, name, ms.Name, ms.Verdict.Verdict)
		}
	}
	if dec.Action == decide.ActionPromote && dec.Reason == decide.ReasonBarrierPassed && !dec.Next.StepEnteredAt.IsZero() {
		m.stepDuration.WithLabelValues(ns, name).Observe(now.Sub(dec.Next.StepEnteredAt).Seconds())
	}
}
