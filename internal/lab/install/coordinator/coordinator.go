// Package coordinator installs the Lockstep coordinator on the hub: the
// FleetRollout CRD and the roles that controller-gen generates from the
// code's markers (package config), a ServiceAccount, and a Deployment that
// runs `lockstep coordinator` with leader election against the hub's Thanos
// Query. In each workload it creates the coordinator's own ServiceAccount
// bound to the generated workload role, and puts its token in a cluster
// Secret in the coordinator's namespace on the hub (package access); Argo
// CD keeps its own ServiceAccount and Secrets, which the coordinator never
// reads.
//
// It may import internal/lab/install, its argocd and monitoring siblings'
// names, config, internal/access and internal/kube.
package coordinator

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"lockstep.dev/lockstep/config"
	"lockstep.dev/lockstep/internal/access"
	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/install/argocd"
	"lockstep.dev/lockstep/internal/lab/install/monitoring"
)

// Names of what the installer creates on the hub.
const (
	Namespace   = access.Namespace
	Name        = access.ServiceAccount
	MetricsPort = 8080
	HealthPort  = 8081
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
	for i, w := range c.Workloads {
		if err := c.Apply(w, wl...); err != nil {
			return err
		}
		tok, ca, err := argocd.Token(c, w, access.Namespace, access.TokenSecret)
		if err != nil {
			return err
		}
		sec, err := access.ClusterSecret(access.Member{
			Name: w.Name, Server: argocd.Server(w), CA: ca, Token: tok, Reporting: argocd.ReportingCluster(i + 1),
			Labels: map[string]string{argocd.RoleLabel: "workload", argocd.ClusterLabel: w.Name},
		})
		if err != nil {
			return err
		}
		if err := c.Apply(c.Hub, sec); err != nil {
			return err
		}
	}
	return c.WaitDeployments(c.Hub, Namespace, Name)
}

// HubObjects are the hub's manifests: the CRDs and the FleetApproval
// admission policy, the coordinator's
// namespace, ServiceAccount and generated roles with their bindings
// (package access), and the Deployment.
func HubObjects(image string) ([]*unstructured.Unstructured, error) {
	crd, err := kube.ReadYAMLs(config.CRDs, config.LockstepCRDs...)
	if err != nil {
		return nil, err
	}
	policy, err := kube.ReadYAML(config.Approval, config.ApprovalPolicy)
	if err != nil {
		return nil, err
	}
	crd = append(crd, policy...)
	roles, err := access.HubRoles()
	if err != nil {
		return nil, err
	}
	out := append(crd, install.Namespace(Namespace, nil), access.Object("v1", "ServiceAccount", Namespace, Name, nil))
	out = append(out, roles...)
	labels := map[string]any{"app.kubernetes.io/name": Name}
	nonRoot := true
	probe := func(path string) map[string]any {
		return map[string]any{"httpGet": map[string]any{"path": path, "port": "health"}, "periodSeconds": int64(10)}
	}
	out = append(out, access.Object("apps/v1", "Deployment", Namespace, Name, map[string]any{"spec": map[string]any{
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
						fmt.Sprintf("--metrics-addr=:%d", MetricsPort), fmt.Sprintf("--health-addr=:%d", HealthPort),
						"--secrets-namespace=" + access.Namespace, "--log-format=json"},
					"ports": []any{
						map[string]any{"name": "metrics", "containerPort": int64(MetricsPort)},
						map[string]any{"name": "health", "containerPort": int64(HealthPort)},
					},
					"livenessProbe":  probe("/healthz"),
					"readinessProbe": probe("/readyz"),
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

// WorkloadObjects are the coordinator's ServiceAccount, token Secret,
// workload role and binding in a member (package access): its own
// identity, not Argo CD's.
func WorkloadObjects() ([]*unstructured.Unstructured, error) { return access.MemberObjects() }
