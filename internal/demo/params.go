package demo

import (
	"context"
	"errors"

	"lockstep.dev/lockstep/gitops"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/render"
)

// commitParams renders the GitOps tree with the lab's parameters
// (timings, mode) and commits it, unless already there. Both Rollout files
// keep the pod template that runs (version and fault): the demo upgrades
// from it, and switching modes must not start a rollout by itself.
func (r *runner) commitParams(ctx context.Context, rel *release) error {
	p := r.o.Params
	p.RepoURL, p.ThanosURL = r.o.State.URLs["git"], r.o.State.URLs["thanos-query"]
	files, err := render.Tree(gitops.Tree, p)
	if err != nil {
		return err
	}
	if p.Mode == "" {
		p.Mode = render.ModeIndependent
	}
	r.mode = p.Mode
	if rel.cur, rel.liveRate, rel.newest, err = r.liveVersion(ctx); err != nil {
		return err
	}
	rel.paramsRev, err = local.Commit(r.repo, "lockstep demo: lab parameters ("+p.Mode+" mode)", func(wt string) error {
		for _, mode := range []string{render.ModeIndependent, render.ModeLockstep} {
			f := RolloutFile(mode)
			files[f] = []byte(setErrorRate(setVersion(string(files[f]), "v1", rel.cur), rel.liveRate))
		}
		return local.WriteFiles(wt, files)
	})
	if errors.Is(err, local.ErrNothingToCommit) {
		rel.paramsRev, err = local.RepoHead(r.repo)
	}
	rel.files = files
	return err
}
