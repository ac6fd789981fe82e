package coordinator

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/fleet"
)

// shadowMode reports whether spec.analysis.mode is Shadow.
func shadowMode(fr *v1alpha1.FleetRollout) bool {
	return fr.Spec.Analysis != nil && fr.Spec.Analysis.Mode == "Shadow"
}

// shadow is the reconcile of a FleetRollout in shadow mode: it observes the
// members, runs the analysis on the revision they run and records what an
// active coordinator would have decided (status.shadow, an Event the first
// time it would have aborted), and sends no member anything. The members'
// strategies are theirs: timed pauses and their own AnalysisRuns are not
// refused.
func (r *Reconciler) shadow(ctx context.Context, log logr.Logger, fr *v1alpha1.FleetRollout, orig *v1alpha1.FleetRolloutStatus, plan *analysisPlan, obs []memberObservation, members []fleet.Member, now time.Time) (ctrl.Result, error) {
	st := &fr.Status
	r.setMembers(st, obs)
	r.setCommonConditions(fr, obs)
	st.ObservedGeneration = fr.Generation
	revision, err := wantedRevision(obs, st.Fleet.Revision, true)
	if err != nil || revision == "" {
		st.Phase, st.Reason, st.Message = v1alpha1.PhaseShadow, v1alpha1.ReasonRevisionUnknown, "no member reports a revision yet"
		if err != nil {
			st.Reason, st.Message = v1alpha1.ReasonRevisionsDiverge, err.Error()
		}
		return r.persistOnly(ctx, log, fr, orig, r.resync())
	}
	snap := decide.Snapshot{Revision: revision, Members: make([]decide.Member, len(obs)), Fleet: fleetFromStatus(st.Fleet), Policy: policyFromSpec(&fr.Spec)}
	for i, o := range obs {
		snap.Members[i] = o.member
	}
	f := decide.ObserveCanary(snap, now)
	st.Fleet = fleetToStatus(f)
	in, judged, evaluated := r.analysis(ctx, log, fr, plan, obs, members, revision, now)
	recordAnalysis(fr, orig, plan, in, judged, evaluated, revision)
	snap.Analysis = in
	verdict, why := decide.ShadowVerdict(snap, f)

	sh := st.Shadow
	if sh == nil || sh.Revision != revision {
		sh = &v1alpha1.ShadowStatus{Revision: revision}
	}
	sh.Verdict = string(verdict)
	var evidence *v1alpha1.Evidence
	if st.Analysis != nil && st.Analysis.Revision == revision {
		evidence = st.Analysis.Global.Evidence
	}
	switch {
	case verdict == decide.VerdictFail && sh.WouldAbortAt == nil:
		t := metav1.NewMicroTime(now)
		sh.WouldAbortAt, sh.WouldAbort, sh.Evidence = &t, truncate(why, 2048), evidence
		r.event(fr, "Warning", "WouldAbort", "Shadow", "shadow: would have aborted revision %s at %s: %s", revision, now.UTC().Format("15:04:05"), truncate(why, 512))
	case verdict == decide.VerdictPass && sh.WouldPassAt == nil:
		t := metav1.NewMicroTime(now)
		sh.WouldPassAt = &t
	}
	if sh.WouldAbortAt == nil && evidence != nil {
		sh.Evidence = evidence
	}
	st.Shadow = sh

	msg := "shadow: " + why
	if sh.WouldAbortAt != nil {
		msg = "shadow: would have aborted at " + sh.WouldAbortAt.UTC().Format("15:04:05") + ": " + sh.WouldAbort
	}
	st.Phase, st.Reason, st.Message = v1alpha1.PhaseShadow, "Shadow"+string(verdict), truncate(msg, 1024)
	st.CurrentStep = currentStep(obs, revision)
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionValid, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonValid,
		Message: "shadow mode: the members' strategies are their own", ObservedGeneration: fr.Generation})
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: st.Reason,
		Message: st.Message, ObservedGeneration: fr.Generation})
	meta.SetStatusCondition(&st.Conditions, budgetCondition(&fr.Spec, fr.Generation))
	addHistory(st, now, "Shadow", st.Reason, decide.NoStep, revision, msg)
	log.V(1).Info("Shadow verdict", "revision", revision, "verdict", verdict, "message", why)
	after := r.resync()
	if plan != nil {
		after = minPositive(plan.interval, after)
	}
	return r.persistOnly(ctx, log, fr, orig, after)
}
