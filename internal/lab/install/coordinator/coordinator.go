// Package coordinator installs the Lockstep coordinator on the hub: the
// FleetRollout CRD and the roles that controller-gen generates from the
// code's markers (package config), a ServiceAccount, and a Deployment that
// runs `lockstep coordinator` with leader election against the hub's Thanos
// Query. In each workload it binds the coordinator's workload role to the
// ServiceAccount whose token Argo CD's cluster Secret carries, since the
// coordinator reaches workloads through those Secrets.
//
// It may import internal/lab/install, its argocd and monitoring siblings'
// names, config and internal/kube.
package coordinator

import (
	"fmt"
	"io/fs"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"lockstep.dev/lockstep/config"
	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/install/argocd"
	"lockstep.dev/lockstep/internal/lab/install/monitoring"
)

// Names of what the installer creates on the hub.
const (
	Namespace   = "lockstep-system"
	Name        = "lockstep-coordinator"
	MetricsPort = 8080
)

// ThanosURL is where the coordinator reaches Thanos Query on the hub: the
// monitoring installer's Query, named in one place.
var ThanosURL = monitoring.QueryURL

// Actions returns the coordinator action.
func Actions() []install.Action { return []install.Action{action{}} }

type action struct{}

func (action) Name() string        { return "lockstep-coordinator" }
func (action) Description() string { return "Lockstep coordinator on the hub (CRD, RBAC, Deployment)" }

func (action) Execute(c *install.Context) error {
	hub, err := HubObjects(c.Settings.CoordinatorImage)
	if err != nil {
		return err
	}
	if err := c.Apply(c.Hub, hub...); err != nil {
		return err
	}
	wl, err := WorkloadObjects()
	if err != nil {
		return err
	}
	for _, w := range c.Workloads {
		if err := c.Apply(w, wl...); err != nil {
			return err
		}
	}
	return c.WaitDeployments(c.Hub, Namespace, Name)
}

func read(fsys fs.FS, path string) ([]*unstructured.Unstructured, error) {
	b, err := fs.ReadFile(fsys, path)
	if err != nil {
		return nil, err
	}
	objs, err := kube.DecodeYAML(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return objs, nil
}

// HubObjects are the hub's manifests: the CRD, the generated ClusterRole
// and argocd Role with their bindings, the ServiceAccount and the
// Deployment.
func HubObjects(image string) ([]*unstructured.Unstructured, error) {
	crd, err := read(config.CRDs, config.FleetRolloutCRD)
	if err != nil {
		return nil, err
	}
	roles, err := read(config.RBAC, config.HubRole)
	if err != nil {
		return nil, err
	}
	sa := map[string]any{"kind": "ServiceAccount", "name": Name, "namespace": Namespace}
	out := append(crd, install.Namespace(Namespace, nil), obj("v1", "ServiceAccount", Namespace, Name, nil))
	for _, r := range roles {
		out = append(out, r)
		bind := map[string]any{
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": r.GetKind(), "name": r.GetName()},
			"subjects": []any{sa},
		}
		switch r.GetKind() {
		case "ClusterRole":
			out = append(out, obj("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", r.GetName(), bind))
		case "Role":
			out = append(out, obj("rbac.authorization.k8s.io/v1", "RoleBinding", r.GetNamespace(), r.GetName(), bind))
		}
	}
	// Leader election takes a Lease in the coordinator's namespace.
	out = append(out, obj("rbac.authorization.k8s.io/v1", "Role", Namespace, Name+"-leader-election", map[string]any{
		"rules": []any{map[string]any{"apiGroups": []any{"coordination.k8s.io"}, "resources": []any{"leases"},
			"verbs": []any{"get", "list", "watch", "create", "update", "patch"}}},
	}), obj("rbac.authorization.k8s.io/v1", "RoleBinding", Namespace, Name+"-leader-election", map[string]any{
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": Name + "-leader-election"},
		"subjects": []any{sa},
	}))
	labels := map[string]any{"app.kubernetes.io/name": Name}
	nonRoot := true
	out = append(out, obj("apps/v1", "Deployment", Namespace, Name, map[string]any{"spec": map[string]any{
		"replicas": int64(2),
		"selector": map[string]any{"matchLabels": labels},
		"template": map[string]any{
			"metadata": map[string]any{"labels": labels},
			"spec": map[string]any{
				"serviceAccountName": Name,
				"securityContext":    map[string]any{"runAsNonRoot": nonRoot, "seccompProfile": map[string]any{"type": "RuntimeDefault"}},
				"containers": []any{map[string]any{
					"name": "coordinator", "image": image,
					"args": []any{"coordinator", "--thanos-url=" + ThanosURL, "--leader-elect",
						fmt.Sprintf("--metrics-addr=:%d", MetricsPort), "--argocd-namespace=" + argocd.Namespace, "--log-format=json"},
					"ports": []any{map[string]any{"name": "metrics", "containerPort": int64(MetricsPort)}},
					"securityContext": map[string]any{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
						"capabilities": map[string]any{"drop": []any{"ALL"}}},
					"resources": map[string]any{"requests": map[string]any{"cpu": "50m", "memory": "64Mi"},
						"limits": map[string]any{"memory": "256Mi"}},
				}},
			},
		},
	}}))
	return out, nil
}

// WorkloadObjects are the workload role and its binding to Argo CD's
// manager ServiceAccount.
func WorkloadObjects() ([]*unstructured.Unstructured, error) {
	roles, err := read(config.RBAC, config.WorkloadRole)
	if err != nil {
		return nil, err
	}
	out := roles
	for _, r := range roles {
		out = append(out, obj("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", r.GetName(), map[string]any{
			"roleRef": map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": r.GetName()},
			"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": argocd.ManagerName,
				"namespace": argocd.ManagerNamespace}},
		}))
	}
	return out, nil
}

// obj is install.Object with the part-of label of everything the
// coordinator's installer writes.
func obj(apiVersion, kind, namespace, name string, fields map[string]any) *unstructured.Unstructured {
	return install.Object(apiVersion, kind, namespace, name, fields, func(u *unstructured.Unstructured) {
		u.SetLabels(map[string]string{"app.kubernetes.io/managed-by": "lockstep", "app.kubernetes.io/part-of": "lockstep"})
	})
}
