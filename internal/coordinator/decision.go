package coordinator

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"

	"lockstep.dev/lockstep/internal/decide"
)

// decide evaluates the analysis, reads the approvals, and asks
// decide.Decide what to do with the snapshot gathered.
func (r *Reconciler) decide(ctx context.Context, p *pass) *ended {
	p.analysisIn, p.judged, p.evaluated = r.analysis(ctx, p.log, p.fr, p.plan, p.obs, p.members, p.revision, p.now)
	approvals, err := r.approvals(ctx, p.fr)
	if err != nil {
		return endWith(ctrl.Result{}, err)
	}
	p.snap = decide.Snapshot{
		Revision:   p.revision,
		Members:    make([]decide.Member, len(p.obs)),
		Analysis:   p.analysisIn,
		Fleet:      fleetFromStatus(p.fr.Status.Fleet),
		Policy:     p.policy,
		RetryToken: p.fr.Spec.RetryToken,
		Waves:      p.waves,
		Approvals:  approvals,
	}
	for i, o := range p.obs {
		p.snap.Members[i] = o.member
	}
	p.dec = decide.Decide(p.snap, p.now)
	return nil
}
