package coordinator_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	clicoordinator "lockstep.dev/lockstep/internal/cli/coordinator"
	"lockstep.dev/lockstep/internal/cli/streams"
	"lockstep.dev/lockstep/internal/lab/install/argocd"
	"lockstep.dev/lockstep/internal/lab/install/coordinator"
	"lockstep.dev/lockstep/internal/lab/install/monitoring"
)

const image = "ghcr.io/lockstep-dev/lockstep:test"

func hubObjects(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	objs, err := coordinator.HubObjects(image)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// grant is one rule of a role, in the namespace the binding gives it ("" is
// every namespace).
type grant struct {
	namespace                string
	groups, resources, verbs []string
}

// grants returns what the bindings among objs give to the ServiceAccount
// namespace/name, failing the test for a binding to a role not in objs.
func grants(t *testing.T, objs []*unstructured.Unstructured, namespace, name string) []grant {
	t.Helper()
	roles := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		if o.GetKind() == "Role" || o.GetKind() == "ClusterRole" {
			roles[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = o
		}
	}
	var out []grant
	for _, b := range objs {
		if b.GetKind() != "RoleBinding" && b.GetKind() != "ClusterRoleBinding" {
			continue
		}
		if !bindsServiceAccount(b, namespace, name) {
			continue
		}
		refKind, _, _ := unstructured.NestedString(b.Object, "roleRef", "kind")
		refName, _, _ := unstructured.NestedString(b.Object, "roleRef", "name")
		refNS := ""
		if refKind == "Role" {
			refNS = b.GetNamespace()
		}
		r := roles[refKind+"/"+refNS+"/"+refName]
		if r == nil {
			t.Errorf("%s %s/%s refers to %s %s, which is not installed", b.GetKind(), b.GetNamespace(), b.GetName(), refKind, refName)
			continue
		}
		rules, _, _ := unstructured.NestedSlice(r.Object, "rules")
		for _, rule := range rules {
			m := rule.(map[string]any)
			out = append(out, grant{b.GetNamespace(), strs(m["apiGroups"]), strs(m["resources"]), strs(m["verbs"])})
		}
	}
	return out
}

func bindsServiceAccount(b *unstructured.Unstructured, namespace, name string) bool {
	subs, _, _ := unstructured.NestedSlice(b.Object, "subjects")
	for _, s := range subs {
		m := s.(map[string]any)
		if m["kind"] == "ServiceAccount" && m["name"] == name && m["namespace"] == namespace {
			return true
		}
	}
	return false
}

func allowed(gs []grant, namespace, group, resource, verb string) bool {
	for _, g := range gs {
		if (g.namespace == "" || g.namespace == namespace) && slices.Contains(g.groups, group) &&
			slices.Contains(g.resources, resource) && slices.Contains(g.verbs, verb) {
			return true
		}
	}
	return false
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, s := range l {
		out = append(out, fmt.Sprint(s))
	}
	return out
}

func TestEveryHubRoleIsBoundToTheCoordinator(t *testing.T) {
	t.Parallel()
	objs := hubObjects(t)
	var roles int
	for _, r := range objs {
		kind := r.GetKind()
		if kind != "Role" && kind != "ClusterRole" {
			continue
		}
		roles++
		found := false
		for _, b := range objs {
			if b.GetKind() != kind+"Binding" || (kind == "Role" && b.GetNamespace() != r.GetNamespace()) {
				continue
			}
			refKind, _, _ := unstructured.NestedString(b.Object, "roleRef", "kind")
			refName, _, _ := unstructured.NestedString(b.Object, "roleRef", "name")
			if refKind == kind && refName == r.GetName() && bindsServiceAccount(b, coordinator.Namespace, coordinator.Name) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s %s/%s is not bound to ServiceAccount %s/%s", kind, r.GetNamespace(), r.GetName(), coordinator.Namespace, coordinator.Name)
		}
	}
	if roles < 2 {
		t.Errorf("HubObjects holds %d roles, want the generated ClusterRole and the lockstep-system Role", roles)
	}
	var sa bool
	for _, o := range objs {
		if o.GetKind() == "ServiceAccount" && o.GetName() == coordinator.Name && o.GetNamespace() == coordinator.Namespace {
			sa = true
		}
	}
	if !sa {
		t.Errorf("HubObjects has no ServiceAccount %s/%s", coordinator.Namespace, coordinator.Name)
	}
}

func deployment(t *testing.T, objs []*unstructured.Unstructured) (spec map[string]any, container map[string]any) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() != "Deployment" || o.GetName() != coordinator.Name {
			continue
		}
		if o.GetNamespace() != coordinator.Namespace {
			t.Errorf("Deployment in %q, want %s", o.GetNamespace(), coordinator.Namespace)
		}
		spec, _, _ = unstructured.NestedMap(o.Object, "spec", "template", "spec")
		cs, _, _ := unstructured.NestedSlice(spec, "containers")
		if len(cs) != 1 {
			t.Fatalf("Deployment has %d containers, want 1", len(cs))
		}
		return spec, cs[0].(map[string]any)
	}
	t.Fatalf("HubObjects has no Deployment %s", coordinator.Name)
	return nil, nil
}

// TestDeploymentArgsParse parses the Deployment's args with the real
// command: a renamed or removed flag fails here instead of in a crash loop.
func TestDeploymentArgsParse(t *testing.T) {
	t.Parallel()
	objs := hubObjects(t)
	spec, c := deployment(t, objs)
	if c["image"] != image {
		t.Errorf("image = %v, want %s", c["image"], image)
	}
	if spec["serviceAccountName"] != coordinator.Name {
		t.Errorf("serviceAccountName = %v, want %s", spec["serviceAccountName"], coordinator.Name)
	}
	args := strs(c["args"])
	if len(args) == 0 || args[0] != "coordinator" {
		t.Fatalf("args = %v, want the coordinator subcommand first", args)
	}
	var out bytes.Buffer
	cmd := clicoordinator.NewCommand(streams.IO{In: strings.NewReader(""), Out: &out, ErrOut: &out})
	if err := cmd.ParseFlags(args[1:]); err != nil {
		t.Fatalf("lockstep coordinator refuses the Deployment's args %v: %v", args[1:], err)
	}
	if rest := cmd.Flags().Args(); len(rest) > 0 {
		t.Errorf("args %v are not flags; the command takes no arguments", rest)
	}
	get := func(name string) string {
		t.Helper()
		f := cmd.Flags().Lookup(name)
		if f == nil {
			t.Fatalf("lockstep coordinator has no --%s", name)
		}
		if !f.Changed {
			t.Errorf("the Deployment does not set --%s", name)
		}
		return f.Value.String()
	}
	if got := get("thanos-url"); got != monitoring.QueryURL {
		t.Errorf("--thanos-url = %q, want Thanos Query's %q", got, monitoring.QueryURL)
	}
	if got := get("leader-elect"); got != "true" {
		t.Errorf("--leader-elect = %s, want true: the Deployment runs 2 replicas", got)
	}
	if got, want := get("metrics-addr"), fmt.Sprintf(":%d", coordinator.MetricsPort); got != want {
		t.Errorf("--metrics-addr = %q, want %q", got, want)
	}
	if got := get("secrets-namespace"); got != coordinator.Namespace {
		t.Errorf("--secrets-namespace = %q, want %q", got, coordinator.Namespace)
	}
	if got, want := get("health-addr"), fmt.Sprintf(":%d", coordinator.HealthPort); got != want {
		t.Errorf("--health-addr = %q, want %q", got, want)
	}
	ports, _ := c["ports"].([]any)
	if len(ports) != 2 || ports[0].(map[string]any)["containerPort"] != int64(coordinator.MetricsPort) ||
		ports[1].(map[string]any)["containerPort"] != int64(coordinator.HealthPort) {
		t.Errorf("ports = %v, want the metrics port %d and the health port %d", ports, coordinator.MetricsPort, coordinator.HealthPort)
	}
	for _, p := range []string{"livenessProbe", "readinessProbe"} {
		if port, _, _ := unstructured.NestedString(c, p, "httpGet", "port"); port != "health" {
			t.Errorf("%s port = %q, want the health port", p, port)
		}
	}

	// What those flags make the coordinator do, its ServiceAccount may do.
	gs := grants(t, objs, coordinator.Namespace, coordinator.Name)
	for _, need := range []struct{ namespace, group, resource, verb string }{
		{coordinator.Namespace, "", "secrets", "list"},
		{coordinator.Namespace, "", "secrets", "watch"},
		{coordinator.Namespace, "coordination.k8s.io", "leases", "create"},
		{coordinator.Namespace, "coordination.k8s.io", "leases", "update"},
		{"lockstep", "lockstep.dev", "fleetrollouts", "watch"},
		{"lockstep", "lockstep.dev", "fleetrollouts/status", "patch"},
	} {
		if !allowed(gs, need.namespace, need.group, need.resource, need.verb) {
			t.Errorf("the coordinator may not %s %s.%s in %s", need.verb, need.resource, need.group, need.namespace)
		}
	}
	// What it must not do: read Argo CD's Secrets (argocd-secret, Argo
	// CD's cluster tokens) or any other namespace's, or take a Lease
	// outside its namespace.
	for _, deny := range []struct{ namespace, group, resource, verb string }{
		{argocd.Namespace, "", "secrets", "get"},
		{argocd.Namespace, "", "secrets", "list"},
		{"kube-system", "", "secrets", "list"},
		{"kube-system", "coordination.k8s.io", "leases", "update"},
		{"kube-node-lease", "coordination.k8s.io", "leases", "create"},
		{"lockstep", "lockstep.dev", "fleetrollouts", "update"},
	} {
		if allowed(gs, deny.namespace, deny.group, deny.resource, deny.verb) {
			t.Errorf("the coordinator may %s %s.%s in %s", deny.verb, deny.resource, deny.group, deny.namespace)
		}
	}
}

func TestThanosURLIsMonitoringQueryURL(t *testing.T) {
	t.Parallel()
	if coordinator.ThanosURL != monitoring.QueryURL {
		t.Errorf("coordinator.ThanosURL = %q, monitoring.QueryURL = %q", coordinator.ThanosURL, monitoring.QueryURL)
	}
}

// TestWorkloadObjectsBindTheCoordinatorOnly: in a member the workload role
// is bound to the coordinator's own ServiceAccount, and to nobody else
// (not Argo CD's manager, whose token the coordinator never uses).
func TestWorkloadObjectsBindTheCoordinatorOnly(t *testing.T) {
	t.Parallel()
	objs, err := coordinator.WorkloadObjects()
	if err != nil {
		t.Fatal(err)
	}
	if gs := grants(t, objs, argocd.ManagerNamespace, argocd.ManagerName); len(gs) > 0 {
		t.Errorf("WorkloadObjects grant Argo CD's manager %v", gs)
	}
	gs := grants(t, objs, coordinator.Namespace, coordinator.Name)
	if len(gs) == 0 {
		t.Fatalf("no role of WorkloadObjects is bound to %s/%s", coordinator.Namespace, coordinator.Name)
	}
	var token bool
	for _, o := range objs {
		if o.GetKind() == "Secret" && o.GetNamespace() == coordinator.Namespace && o.GetAnnotations()["kubernetes.io/service-account.name"] == coordinator.Name {
			token = true
		}
	}
	if !token {
		t.Error("WorkloadObjects have no token Secret for the coordinator's ServiceAccount")
	}
	for _, deny := range []struct{ resource, verb string }{{"rollouts", "patch"}, {"rollouts", "update"}, {"rollouts", "create"}, {"rollouts/status", "update"}} {
		if allowed(gs, "helloworld", "argoproj.io", deny.resource, deny.verb) {
			t.Errorf("the workload role may %s %s", deny.verb, deny.resource)
		}
	}
	for _, o := range objs {
		if (o.GetKind() == "Role" || o.GetKind() == "ClusterRole") && !slices.ContainsFunc(objs, func(b *unstructured.Unstructured) bool {
			ref, _, _ := unstructured.NestedString(b.Object, "roleRef", "name")
			refKind, _, _ := unstructured.NestedString(b.Object, "roleRef", "kind")
			return strings.HasSuffix(b.GetKind(), "Binding") && ref == o.GetName() && refKind == o.GetKind() &&
				bindsServiceAccount(b, coordinator.Namespace, coordinator.Name)
		}) {
			t.Errorf("%s %s is not bound to %s/%s", o.GetKind(), o.GetName(), coordinator.Namespace, coordinator.Name)
		}
	}
	// The coordinator promotes and aborts through the Rollout's status.
	if !allowed(gs, "helloworld", "argoproj.io", "rollouts/status", "patch") {
		t.Error("the workload role may not patch rollouts/status")
	}
}
