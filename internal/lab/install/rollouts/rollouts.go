// Package rollouts installs Argo Rollouts in every workload cluster from its
// pinned upstream install.yaml. It may import internal/lab/install and
// internal/lab/sources.
package rollouts

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/sources"
)

// Namespace and Deployment of the controller.
const (
	Namespace   = "argo-rollouts"
	Deployment  = "argo-rollouts"
	InstallPath = "manifests/install.yaml"
)

// Actions returns the Argo Rollouts action.
func Actions() []install.Action { return []install.Action{action{}} }

type action struct{}

func (action) Name() string { return "argo-rollouts" }
func (action) Description() string {
	return "Argo Rollouts in the workload clusters (" + sources.ArgoRollouts.Version + ", upstream install.yaml)"
}

func (action) Execute(c *install.Context) error {
	for _, w := range c.Workloads {
		objs, err := c.Manifests(sources.ArgoRollouts, InstallPath)
		if err != nil {
			return err
		}
		install.SetNamespace(objs, Namespace, Namespace, w.Namespaced)
		if err := c.Apply(w, append([]*unstructured.Unstructured{install.Namespace(Namespace, nil)}, objs...)...); err != nil {
			return err
		}
	}
	for _, w := range c.Workloads {
		if err := c.WaitDeployments(w, Namespace, Deployment); err != nil {
			return err
		}
	}
	return nil
}
