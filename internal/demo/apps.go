package demo

import (
	"context"
	"strings"

	"lockstep.dev/lockstep/internal/lab/local"
)

// applyApps applies the guide's ApplicationSets (and, in lockstep mode,
// the FleetRollout's Application) to the hub, asks Argo CD to look at git
// now, and waits until the parameters' commit is synced.
func (r *runner) applyApps(ctx context.Context, rel *release) error {
	r.say("applying the ApplicationSets to %s", local.HubName)
	if err := r.applyAppSets(ctx, rel.files); err != nil {
		return err
	}
	if err := r.lockstepApp(ctx, rel.files); err != nil {
		return err
	}
	if err := r.refreshApps(ctx, ""); err != nil {
		return err
	}
	return r.waitSynced(ctx, rel.paramsRev)
}

// settle waits until every cluster settled (healthy, or back on stable
// after an abort) and serves one version, and picks the next: versions
// only go up, so after an aborted vN the next release is vN+1, never a
// template identical to the aborted one.
func (r *runner) settle(ctx context.Context, rel *release) error {
	r.say("waiting until %s settle on one version", strings.Join(r.clusters, " and "))
	served, err := r.waitSettled(ctx)
	if err != nil {
		return err
	}
	rel.served = served
	rel.next, err = bump(maxVersion(served, maxVersion(rel.cur, rel.newest)))
	return err
}
