// Package argocd installs Argo CD on the hub from its pinned upstream
// manifests and registers the workload clusters the way `argocd cluster add`
// does, without the argocd CLI: a dedicated ServiceAccount with a
// least-privilege ClusterRole in each workload, its token, and an Argo CD
// cluster Secret on the hub. Nobody logs in and no password is printed.
//
// It may import internal/lab/install, internal/lab/sources, config,
// internal/fleet (the cluster Secret's layout), internal/kube and client-go.
package argocd

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"lockstep.dev/lockstep/internal/fleet"
	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/sources"
)

// Names the installer gives things.
const (
	Namespace = "argocd"
	// ManagerName is the ServiceAccount, ClusterRole and binding Argo CD
	// (and the Lockstep coordinator, through Argo CD's cluster Secrets)
	// uses in each workload cluster.
	ManagerName      = "lockstep-argocd-manager"
	ManagerNamespace = "kube-system"
	managerToken     = ManagerName + "-token"
	// Labels and annotation of the cluster Secrets (the ApplicationSets
	// select lockstep.dev/role=workload; the coordinator reads the
	// reporting-cluster annotation to know the cluster's Thanos label).
	RoleLabel           = "lockstep.dev/role"
	ClusterLabel        = "lockstep.dev/cluster"
	ReportingAnnotation = "lockstep.dev/reporting-cluster"
	// Deployments of the upstream install.
	InstallPath = "manifests/install.yaml"
)

// Deployments of Argo CD's install.yaml the installer waits for (the
// application-controller is a StatefulSet).
var Deployments = []string{"argocd-server", "argocd-repo-server", "argocd-redis", "argocd-applicationset-controller"}

// Actions returns the Argo CD actions, in order.
func Actions() []install.Action { return []install.Action{installAction{}, clustersAction{}} }

// ReportingCluster is the Prometheus external label of the i-th (1-based)
// workload cluster, as the guide names them.
func ReportingCluster(i int) string { return fmt.Sprintf("data-producer-%d", i) }

// SecretName is the Argo CD cluster Secret of a workload.
func SecretName(cluster string) string { return "cluster-" + cluster }

type installAction struct{}

func (installAction) Name() string { return "argocd" }
func (installAction) Description() string {
	return "Argo CD on the hub (" + sources.ArgoCD.Version + ", upstream install.yaml)"
}

func (installAction) Execute(c *install.Context) error {
	objs, err := c.Manifests(sources.ArgoCD, InstallPath)
	if err != nil {
		return err
	}
	if err := Customize(objs, c.Hub.Namespaced); err != nil {
		return err
	}
	if err := c.Apply(c.Hub, append([]*unstructured.Unstructured{install.Namespace(Namespace, nil)}, objs...)...); err != nil {
		return err
	}
	return c.WaitDeployments(c.Hub, Namespace, Deployments...)
}

// Customize moves install.yaml into the argocd namespace and sets the one
// option Lockstep needs in argocd-cm: resource.respectRBAC, so Argo CD
// caches only what its least-privilege ServiceAccount in each workload may
// list instead of failing on the rest.
func Customize(objs []*unstructured.Unstructured, namespaced func(*unstructured.Unstructured) bool) error {
	install.SetNamespace(objs, Namespace, Namespace, namespaced)
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && o.GetName() == "argocd-cm" {
			return unstructured.SetNestedField(o.Object, "normal", "data", "resource.respectRBAC")
		}
	}
	return fmt.Errorf("%s: no argocd-cm ConfigMap", InstallPath)
}

type clustersAction struct{}

func (clustersAction) Name() string { return "argocd-clusters" }
func (clustersAction) Description() string {
	return "workload clusters registered in Argo CD (ServiceAccount, least-privilege role, cluster Secret)"
}

func (clustersAction) Execute(c *install.Context) error {
	for i, w := range c.Workloads {
		if err := c.Apply(w, ManagerObjects()...); err != nil {
			return err
		}
		tok, ca, err := Token(c, w, ManagerNamespace, managerToken)
		if err != nil {
			return err
		}
		sec, err := ClusterSecret(w.Name, Server(w), ReportingCluster(i+1), tok, ca)
		if err != nil {
			return err
		}
		if err := c.Apply(c.Hub, install.Namespace(Namespace, nil), sec); err != nil {
			return err
		}
	}
	return nil
}

// Server is the workload's API server URL as the hub reaches it.
func Server(w *install.Cluster) string {
	if w.Server != "" {
		return w.Server
	}
	return w.Config.Host
}

// ManagerRules are what Argo CD may do in a workload cluster: read the
// kinds of the lab's GitOps tree and their children, and write only the
// kinds the tree declares. Anything else it cannot see (respectRBAC).
func ManagerRules() []any {
	rw := []any{"get", "list", "watch", "create", "update", "patch", "delete"}
	ro := []any{"get", "list", "watch"}
	rule := func(groups, resources, verbs []any) map[string]any {
		return map[string]any{"apiGroups": groups, "resources": resources, "verbs": verbs}
	}
	return []any{
		rule([]any{""}, []any{"namespaces", "services", "serviceaccounts", "configmaps"}, rw),
		rule([]any{""}, []any{"pods", "endpoints", "events"}, ro),
		rule([]any{"apps"}, []any{"deployments"}, rw),
		rule([]any{"apps"}, []any{"replicasets"}, ro),
		rule([]any{"discovery.k8s.io"}, []any{"endpointslices"}, ro),
		rule([]any{"argoproj.io"}, []any{"rollouts", "analysistemplates", "experiments"}, rw),
		rule([]any{"argoproj.io"}, []any{"analysisruns"}, ro),
		rule([]any{"networking.istio.io"}, []any{"virtualservices", "destinationrules", "gateways", "serviceentries"}, rw),
		rule([]any{"monitoring.coreos.com"}, []any{"podmonitors", "servicemonitors"}, rw),
	}
}

// ManagerObjects are the ServiceAccount, its role, binding and long-lived
// token Secret in a workload cluster.
func ManagerObjects() []*unstructured.Unstructured {
	sa := map[string]any{"kind": "ServiceAccount", "name": ManagerName, "namespace": ManagerNamespace}
	return []*unstructured.Unstructured{
		install.Object("v1", "ServiceAccount", ManagerNamespace, ManagerName, nil),
		install.Object("rbac.authorization.k8s.io/v1", "ClusterRole", "", ManagerName, map[string]any{"rules": ManagerRules()}),
		install.Object("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", ManagerName, map[string]any{
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ManagerName},
			"subjects": []any{sa},
		}),
		install.Object("v1", "Secret", ManagerNamespace, managerToken, map[string]any{"type": string(corev1.SecretTypeServiceAccountToken)},
			func(u *unstructured.Unstructured) {
				u.SetAnnotations(map[string]string{corev1.ServiceAccountNameKey: ManagerName})
			}),
	}
}

// ClusterSecret is an Argo CD cluster Secret for a workload, as
// `argocd cluster add` writes it, plus Lockstep's labels. Its bytes depend
// only on the arguments, so applying it again changes nothing.
func ClusterSecret(name, server, reporting string, token, ca []byte) (*unstructured.Unstructured, error) {
	data, err := fleet.SecretData(name, server, token, ca)
	if err != nil {
		return nil, err
	}
	return install.Object("v1", "Secret", Namespace, SecretName(name), map[string]any{"type": "Opaque", "data": data}, func(u *unstructured.Unstructured) {
		u.SetLabels(map[string]string{"argocd.argoproj.io/secret-type": "cluster", RoleLabel: "workload", ClusterLabel: name})
		u.SetAnnotations(map[string]string{"managed-by": "argocd.argoproj.io", ReportingAnnotation: reporting})
	}), nil
}

// Token waits until the token controller has filled a
// service-account-token Secret and returns its token and CA.
func Token(c *install.Context, cl *install.Cluster, namespace, name string) (token, ca []byte, err error) {
	if c.DryRun {
		// Nothing was created: the token is the one already there, if any,
		// so a dry run over an installed fleet compares like with like.
		s, gerr := cl.Kube.CoreV1().Secrets(namespace).Get(c, name, metav1.GetOptions{})
		if gerr == nil && len(s.Data[corev1.ServiceAccountTokenKey]) > 0 {
			return s.Data[corev1.ServiceAccountTokenKey], s.Data[corev1.ServiceAccountRootCAKey], nil
		}
		return []byte("dry-run"), nil, nil
	}
	token, ca, err = kube.ServiceAccountToken(c, cl.Kube, namespace, name, time.Minute)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cl.Name, err)
	}
	return token, ca, nil
}
