// Package all is the installers' order: Istio first (the guide's first
// step, and its verification sample), then Argo CD and the cluster
// registrations, Argo Rollouts, monitoring, and last the Lockstep
// coordinator, which needs all of them. It imports the installer packages
// and nothing else of Lockstep's.
package all

import (
	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/install/argocd"
	"lockstep.dev/lockstep/internal/lab/install/coordinator"
	"lockstep.dev/lockstep/internal/lab/install/istio"
	"lockstep.dev/lockstep/internal/lab/install/monitoring"
	"lockstep.dev/lockstep/internal/lab/install/rollouts"
)

// Actions returns every installer action in the order they run.
func Actions() []install.Action {
	var out []install.Action
	for _, group := range [][]install.Action{
		istio.Actions(),
		argocd.Actions(),
		rollouts.Actions(),
		monitoring.Actions(),
		coordinator.Actions(),
	} {
		out = append(out, group...)
	}
	return out
}
