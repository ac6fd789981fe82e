package rollouts_test

import (
	"context"
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/install/rollouts"
	"lockstep.dev/lockstep/internal/lab/sources"
)

// namespaced tells the kinds of install.yaml apart without an API server
// (the action uses the cluster's REST mapping).
func namespaced(o *unstructured.Unstructured) bool {
	switch o.GetKind() {
	case "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace":
		return false
	}
	return true
}

func TestInstallYAMLMovedToNamespace(t *testing.T) {
	t.Parallel()
	r := sources.DefaultResolver()
	r.Offline, r.Out = true, nil // a unit test never downloads
	b, err := r.ReadFile(context.Background(), sources.ArgoRollouts, rollouts.InstallPath)
	if errors.Is(err, sources.ErrOffline) {
		t.Skipf("%s is not on disk: run `go mod download %s`", sources.ArgoRollouts, sources.ArgoRollouts)
	}
	if err != nil {
		t.Fatal(err)
	}
	objs, err := kube.DecodeYAML(b)
	if err != nil {
		t.Fatal(err)
	}
	install.SetNamespace(objs, rollouts.Namespace, rollouts.Namespace, namespaced)

	var deployment, crds int
	for _, o := range objs {
		id := o.GetKind() + "/" + o.GetName()
		if namespaced(o) && o.GetNamespace() != rollouts.Namespace {
			t.Errorf("%s is in namespace %q, want %s", id, o.GetNamespace(), rollouts.Namespace)
		}
		if !namespaced(o) && o.GetNamespace() != "" {
			t.Errorf("cluster-scoped %s got namespace %q", id, o.GetNamespace())
		}
		switch o.GetKind() {
		case "Deployment":
			if o.GetName() == rollouts.Deployment {
				deployment++
			}
		case "CustomResourceDefinition":
			crds++
		case "ClusterRoleBinding", "RoleBinding":
			subs, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			for _, s := range subs {
				if m := s.(map[string]any); m["kind"] == "ServiceAccount" && m["namespace"] != rollouts.Namespace {
					t.Errorf("%s binds ServiceAccount %v in %v, want %s", id, m["name"], m["namespace"], rollouts.Namespace)
				}
			}
		}
	}
	// The action waits for this Deployment: a rename upstream must fail
	// here, not as a timeout.
	if deployment != 1 {
		t.Errorf("install.yaml has %d Deployments %s, want 1", deployment, rollouts.Deployment)
	}
	if crds == 0 {
		t.Error("install.yaml has no CRD: the Rollout kind would be unknown")
	}
}
