package coordinator

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/decide"
)

// persist writes the decision into the status (members, waves, verdicts
// and evidence, the fleet's memory, phase, conditions, the release's
// record, history) and saves it before anything is sent: a crash after the
// write re-derives the same patches; a crash before it sends none.
func (r *Reconciler) persist(ctx context.Context, p *pass) *ended {
	fr, st, dec := p.fr, &p.fr.Status, p.dec
	r.setMembers(st, p.obs)
	if len(p.waves) > 0 {
		states, names := decide.WaveStates(p.snap, dec.Next), waveOf(p.waves)
		for i := range st.Members {
			st.Members[i].Wave, st.Members[i].WaveState = names[st.Members[i].Name], states[st.Members[i].Name]
		}
	}
	recordAnalysis(fr, p.orig, p.plan, p.analysisIn, p.judged, p.evaluated, p.revision)
	st.Fleet = fleetToStatus(dec.Next)
	st.Phase = phaseOf(dec.Action)
	st.Reason, st.Message = string(dec.Reason), truncate(dec.Message, 1024)
	st.CurrentStep = currentStep(p.obs, p.revision)
	r.setConditions(fr, p.obs, dec)
	r.setNotificationsCondition(ctx, fr)
	r.approvalEvents(fr, p.orig, dec.Next)
	st.Releases = recordRelease(st.Releases, p.revision, dec.Next, latestEvidence(st, p.revision), p.now, releaseLimit(fr))
	markAbortedBy(st.Releases, fr)
	if dec.Next.InconclusivePaused && !p.orig.Fleet.InconclusivePaused {
		r.event(fr, "Warning", string(decide.ReasonInconclusivePaused), "Pause", "%s", truncate(dec.Message, 512))
	}
	addHistory(st, p.now, string(dec.Action), string(dec.Reason), dec.Step, p.revision, dec.Message)
	st.ObservedGeneration = fr.Generation

	p.log = p.log.WithValues("revision", p.revision)
	p.log.V(1).Info("Decision", "action", dec.Action, "reason", dec.Reason, "step", dec.Step, "patches", len(dec.Patches), "message", dec.Message)
	r.recordMetrics(fr, p.obs, dec, p.revision, p.now)

	if err := r.writeStatus(ctx, fr, p.orig); err != nil {
		if apierrors.IsConflict(err) {
			p.log.V(1).Info("Status write conflicted, retrying with fresh state")
			return endWith(ctrl.Result{Requeue: true}, nil)
		}
		return endWith(ctrl.Result{}, fmt.Errorf("persist decision: %w", err))
	}
	return nil
}

// refuse records why the FleetRollout cannot be coordinated and touches
// no member.
func (r *Reconciler) refuse(ctx context.Context, log logr.Logger, fr *v1alpha1.FleetRollout, orig *v1alpha1.FleetRolloutStatus, now time.Time, reason, msg string) (ctrl.Result, error) {
	st := &fr.Status
	gen := fr.Generation
	st.Phase, st.Reason, st.Message = v1alpha1.PhaseRefused, reason, truncate(msg, 1024)
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionValid, Status: metav1.ConditionFalse, Reason: reason, Message: truncate(msg, 1024), ObservedGeneration: gen})
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason, Message: truncate(msg, 1024), ObservedGeneration: gen})
	addHistory(st, now, string(decide.ActionRefuse), reason, decide.NoStep, st.Fleet.Revision, msg)
	st.ObservedGeneration = gen
	log.Info("FleetRollout refused", "reason", reason, "message", msg)
	return r.persistOnly(ctx, log, fr, orig, r.resync())
}

func (r *Reconciler) persistOnly(ctx context.Context, log logr.Logger, fr *v1alpha1.FleetRollout, orig *v1alpha1.FleetRolloutStatus, after time.Duration) (ctrl.Result, error) {
	if err := r.writeStatus(ctx, fr, orig); err != nil {
		if apierrors.IsConflict(err) {
			log.V(1).Info("Status write conflicted, retrying with fresh state")
			return ctrl.Result{Requeue: true}, nil
		}
		return ctrl.Result{}, fmt.Errorf("write status: %w", err)
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// writeStatus updates the status if it changed. Update (not patch) carries
// the resourceVersion read at the start, so a coordinator acting on stale
// state (a second instance, or this one before a restart) loses with a
// conflict instead of overwriting a newer decision.
func (r *Reconciler) writeStatus(ctx context.Context, fr *v1alpha1.FleetRollout, orig *v1alpha1.FleetRolloutStatus) error {
	if equality.Semantic.DeepEqual(orig, &fr.Status) {
		return nil
	}
	return r.Client.Status().Update(ctx, fr)
}

func (r *Reconciler) setMembers(st *v1alpha1.FleetRolloutStatus, obs []memberObservation) {
	st.Members = make([]v1alpha1.MemberStatus, len(obs))
	for i, o := range obs {
		st.Members[i] = o.status
	}
}

func currentStep(obs []memberObservation, revision string) *int32 {
	var lo *int32
	for _, o := range obs {
		ro := o.member.Rollout
		if !o.member.Reachable || ro == nil || ro.Revision != revision || ro.CurrentStepIndex == nil {
			continue
		}
		if lo == nil || *ro.CurrentStepIndex < *lo {
			v := *ro.CurrentStepIndex
			lo = &v
		}
	}
	return lo
}

func phaseOf(a decide.Action) v1alpha1.Phase {
	switch a {
	case decide.ActionHold:
		return v1alpha1.PhaseHolding
	case decide.ActionPromote:
		return v1alpha1.PhasePromoting
	case decide.ActionAbort:
		return v1alpha1.PhaseAborted
	case decide.ActionRefuse:
		return v1alpha1.PhaseRefused
	case decide.ActionComplete:
		return v1alpha1.PhaseCompleted
	}
	return v1alpha1.PhaseWaiting
}

// addHistory appends an entry when the decision differs from the last one
// recorded, keeping the newest MaxHistory entries.
func addHistory(st *v1alpha1.FleetRolloutStatus, now time.Time, action, reason string, step int32, revision, msg string) {
	var stepPtr *int32
	if step != decide.NoStep {
		stepPtr = &step
	}
	if n := len(st.History); n > 0 {
		last := st.History[n-1]
		if last.Action == action && last.Reason == reason && last.Revision == revision && equality.Semantic.DeepEqual(last.Step, stepPtr) {
			return
		}
	}
	st.History = append(st.History, v1alpha1.HistoryEntry{
		Time: metav1.NewTime(now), Action: action, Reason: reason, Step: stepPtr, Revision: revision, Message: truncate(msg, 1024),
	})
	if extra := len(st.History) - v1alpha1.MaxHistory; extra > 0 {
		st.History = slices.Clone(st.History[extra:])
	}
}
