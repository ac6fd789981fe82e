package coordinator

import (
	"context"
	"fmt"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/decide"
)

// approvals are the FleetApprovals of fr (in its namespace, naming it), as
// decide reads them. The apiserver's admission policy has already held
// each one's approver to the user who created it.
func (r *Reconciler) approvals(ctx context.Context, fr *v1alpha1.FleetRollout) ([]decide.Approval, error) {
	if !needsApproval(&fr.Spec) {
		return nil, nil
	}
	var list v1alpha1.FleetApprovalList
	if err := r.Client.List(ctx, &list, client.InNamespace(fr.Namespace)); err != nil {
		return nil, fmt.Errorf("list FleetApprovals: %w", err)
	}
	// Oldest first: the first approval given is the one recorded.
	slices.SortStableFunc(list.Items, func(x, y v1alpha1.FleetApproval) int {
		return x.CreationTimestamp.Compare(y.CreationTimestamp.Time)
	})
	var out []decide.Approval
	for _, a := range list.Items {
		if a.Spec.FleetRollout != fr.Name || !a.DeletionTimestamp.IsZero() {
			continue
		}
		out = append(out, decide.Approval{Wave: a.Spec.Wave, Barrier: a.Spec.Barrier, Revision: a.Spec.Revision, Approver: a.Spec.Approver, Name: a.Name})
	}
	return out, nil
}

// approvedFleetRollout maps a FleetApproval to the FleetRollout it names.
func approvedFleetRollout(_ context.Context, o client.Object) []reconcile.Request {
	a, ok := o.(*v1alpha1.FleetApproval)
	if !ok || a.Spec.FleetRollout == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: a.Namespace, Name: a.Spec.FleetRollout}}}
}

// approvalEvents says, once, who approved which wave of which revision.
func (r *Reconciler) approvalEvents(fr *v1alpha1.FleetRollout, orig *v1alpha1.FleetRolloutStatus, next decide.FleetStatus) {
	for _, a := range next.Approvals {
		seen := orig.Fleet.Revision == next.Revision && slices.ContainsFunc(orig.Fleet.Approvals, func(o v1alpha1.WaveApproval) bool { return o.Wave == a.Wave && o.Barrier == a.Barrier })
		if seen {
			continue
		}
		what := "wave " + a.Wave
		if a.Barrier != "" {
			what = "barrier " + a.Barrier
		}
		r.event(fr, "Normal", "Approved", "Approve", "%s of revision %s approved by %s (FleetApproval %s)", what, next.Revision, a.Approver, a.Name)
	}
}

// needsApproval says whether some wave or barrier of spec waits for a
// person.
func needsApproval(spec *v1alpha1.FleetRolloutSpec) bool {
	return slices.ContainsFunc(spec.Waves, func(w v1alpha1.Wave) bool { return w.Approval == "Required" }) ||
		slices.ContainsFunc(spec.Hold.Steps, func(s v1alpha1.StepHold) bool { return s.Approval == "Required" })
}
