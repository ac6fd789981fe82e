package argocd_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"lockstep.dev/lockstep/gitops"
	"lockstep.dev/lockstep/internal/fleet"
	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/install/argocd"
	"lockstep.dev/lockstep/internal/lab/sources"
	"lockstep.dev/lockstep/internal/render"
)

// installYAML decodes the pinned install.yaml from disk. A unit test never
// downloads: without the module on disk it skips, and says how to get it.
func installYAML(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	r := sources.DefaultResolver()
	r.Offline, r.Out = true, nil
	b, err := r.ReadFile(context.Background(), sources.ArgoCD, argocd.InstallPath)
	if errors.Is(err, sources.ErrOffline) {
		t.Skipf("%s is not on disk: run `go mod download %s`", sources.ArgoCD, sources.ArgoCD)
	}
	if err != nil {
		t.Fatal(err)
	}
	objs, err := kube.DecodeYAML(b)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// namespaced tells the kinds of install.yaml apart without an API server.
func namespaced(o *unstructured.Unstructured) bool {
	switch o.GetKind() {
	case "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Namespace":
		return false
	}
	return true
}

func TestCustomize(t *testing.T) {
	t.Parallel()
	objs := installYAML(t)
	if err := argocd.Customize(objs, namespaced); err != nil {
		t.Fatal(err)
	}
	var cm *unstructured.Unstructured
	deployments := map[string]bool{}
	for _, o := range objs {
		id := o.GetKind() + "/" + o.GetName()
		if namespaced(o) && o.GetNamespace() != argocd.Namespace {
			t.Errorf("%s is in namespace %q, want %s", id, o.GetNamespace(), argocd.Namespace)
		}
		if !namespaced(o) && o.GetNamespace() != "" {
			t.Errorf("cluster-scoped %s got namespace %q", id, o.GetNamespace())
		}
		switch o.GetKind() {
		case "ConfigMap":
			if o.GetName() == "argocd-cm" {
				cm = o
			}
		case "Deployment":
			deployments[o.GetName()] = true
		case "ClusterRoleBinding", "RoleBinding":
			subs, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			for _, s := range subs {
				if m := s.(map[string]any); m["kind"] == "ServiceAccount" && m["namespace"] != argocd.Namespace {
					t.Errorf("%s binds ServiceAccount %v in namespace %v", id, m["name"], m["namespace"])
				}
			}
		}
	}
	if cm == nil {
		t.Fatal("no argocd-cm after Customize")
	}
	if v, _, _ := unstructured.NestedString(cm.Object, "data", "resource.respectRBAC"); v != "normal" {
		t.Errorf("argocd-cm resource.respectRBAC = %q, want normal", v)
	}
	// The installer waits for these: a rename upstream must fail here, not
	// as a five-minute timeout.
	for _, d := range argocd.Deployments {
		if !deployments[d] {
			t.Errorf("install.yaml has no Deployment %s (has %v)", d, deployments)
		}
	}
}

func TestCustomizeWithoutArgoCDCM(t *testing.T) {
	t.Parallel()
	cm := &unstructured.Unstructured{}
	cm.SetAPIVersion("v1")
	cm.SetKind("ConfigMap")
	cm.SetName("argocd-rbac-cm")
	err := argocd.Customize([]*unstructured.Unstructured{cm}, namespaced)
	if err == nil || !strings.Contains(err.Error(), "argocd-cm") {
		t.Errorf("err = %v, want it to name the missing argocd-cm", err)
	}
}

func TestClusterSecretIsDeterministic(t *testing.T) {
	t.Parallel()
	a, err := argocd.ClusterSecret("argo-rollout1", "https://10.0.0.1:6443", "data-producer-1", []byte("tok"), []byte("ca"))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		b, err := argocd.ClusterSecret("argo-rollout1", "https://10.0.0.1:6443", "data-producer-1", []byte("tok"), []byte("ca"))
		if err != nil {
			t.Fatal(err)
		}
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if string(ja) != string(jb) {
			t.Fatalf("two ClusterSecrets of the same arguments differ:\n%s\n%s", ja, jb)
		}
	}
	if a.GetNamespace() != argocd.Namespace || a.GetName() != argocd.SecretName("argo-rollout1") {
		t.Errorf("ClusterSecret is %s/%s", a.GetNamespace(), a.GetName())
	}
	c, _ := argocd.ClusterSecret("argo-rollout1", "https://10.0.0.1:6443", "data-producer-1", []byte("other"), []byte("ca"))
	if reflect.DeepEqual(a.Object, c.Object) {
		t.Error("a different token gave the same Secret")
	}
}

// TestClusterSecretReadByCoordinator feeds what the installer writes to
// the coordinator's own reader: the two must agree on every field.
func TestClusterSecretReadByCoordinator(t *testing.T) {
	t.Parallel()
	token, ca := []byte("eyJhbGciOi.token"), []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	type cluster struct{ name, server, reporting string }
	clusters := []cluster{
		{"argo-rollout1", "https://172.18.0.3:6443", argocd.ReportingCluster(1)},
		{"argo-rollout2", "https://172.18.0.4:6443", argocd.ReportingCluster(2)},
	}
	var objs []*corev1.Secret
	for _, c := range clusters {
		u, err := argocd.ClusterSecret(c.name, c.server, c.reporting, token, ca)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, toSecret(t, u))
	}
	// A Secret of another kind in the namespace is not a member.
	objs = append(objs, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "argocd-secret", Namespace: argocd.Namespace,
		Labels: map[string]string{argocd.RoleLabel: "workload"}}, Data: map[string][]byte{"name": []byte("nope")}})
	cb := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme)
	for _, s := range objs {
		cb = cb.WithObjects(s)
	}
	r := cb.Build()

	for _, tc := range []struct {
		name     string
		selector *metav1.LabelSelector
		names    []string
		want     []cluster
	}{
		// The ApplicationSets' and the lab FleetRollout's selector.
		{"selector", &metav1.LabelSelector{MatchLabels: map[string]string{argocd.RoleLabel: "workload"}}, nil, clusters},
		{"one cluster label", &metav1.LabelSelector{MatchLabels: map[string]string{argocd.ClusterLabel: "argo-rollout2"}}, nil, clusters[1:]},
		{"names", nil, []string{"argo-rollout2", "argo-rollout1"}, []cluster{clusters[1], clusters[0]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ms, err := fleet.MembersFromSecrets(t.Context(), r, fleet.ArgoCDSecrets(argocd.Namespace), tc.selector, tc.names)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) != len(tc.want) {
				t.Fatalf("got %d members, want %d: %+v", len(ms), len(tc.want), ms)
			}
			for i, m := range ms {
				w := tc.want[i]
				if m.Name != w.name || m.Reporting != w.reporting || m.Config.Host != w.server {
					t.Errorf("member %d = %s reporting %q at %s, want %s reporting %q at %s", i, m.Name, m.Reporting, m.Config.Host, w.name, w.reporting, w.server)
				}
				if m.Config.BearerToken != string(token) {
					t.Errorf("member %s token = %q, want %q", m.Name, m.Config.BearerToken, token)
				}
				if string(m.Config.CAData) != string(ca) || m.Config.Insecure {
					t.Errorf("member %s CA = %q (insecure %v), want %q verified", m.Name, m.Config.CAData, m.Config.Insecure, ca)
				}
			}
		})
	}
}

// toSecret decodes an object the way the API server would store it.
func toSecret(t *testing.T, u *unstructured.Unstructured) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReportingCluster(t *testing.T) {
	t.Parallel()
	if got := argocd.ReportingCluster(2); got != "data-producer-2" {
		t.Errorf("ReportingCluster(2) = %q", got)
	}
}

func TestManagerObjects(t *testing.T) {
	t.Parallel()
	byKind := map[string]*unstructured.Unstructured{}
	for _, o := range argocd.ManagerObjects() {
		byKind[o.GetKind()] = o
	}
	sa, crb, sec := byKind["ServiceAccount"], byKind["ClusterRoleBinding"], byKind["Secret"]
	if sa == nil || crb == nil || sec == nil || byKind["ClusterRole"] == nil {
		t.Fatalf("ManagerObjects lacks a kind: %v", byKind)
	}
	if sa.GetName() != argocd.ManagerName || sa.GetNamespace() != argocd.ManagerNamespace {
		t.Errorf("ServiceAccount is %s/%s", sa.GetNamespace(), sa.GetName())
	}
	if ref, _, _ := unstructured.NestedString(crb.Object, "roleRef", "name"); ref != byKind["ClusterRole"].GetName() {
		t.Errorf("binding refers to %q, want the ClusterRole %q", ref, byKind["ClusterRole"].GetName())
	}
	subs, _, _ := unstructured.NestedSlice(crb.Object, "subjects")
	want := []any{map[string]any{"kind": "ServiceAccount", "name": argocd.ManagerName, "namespace": argocd.ManagerNamespace}}
	if !reflect.DeepEqual(subs, want) {
		t.Errorf("binding subjects = %v, want %v", subs, want)
	}
	if typ, _, _ := unstructured.NestedString(sec.Object, "type"); typ != string(corev1.SecretTypeServiceAccountToken) ||
		sec.GetAnnotations()[corev1.ServiceAccountNameKey] != argocd.ManagerName || sec.GetNamespace() != argocd.ManagerNamespace {
		t.Errorf("token Secret = %v, want a token of %s in %s", sec.Object, argocd.ManagerName, argocd.ManagerNamespace)
	}
}

// hubOnly are the kinds of the GitOps tree that Argo CD keeps on the hub,
// never in a workload.
var hubOnly = map[string]bool{"Application": true, "ApplicationSet": true, "FleetRollout": true}

// TestManagerRulesCoverGitOpsTree fails when a kind is added to the
// workloads' part of the GitOps tree without the RBAC that lets Argo CD
// sync it there.
func TestManagerRulesCoverGitOpsTree(t *testing.T) {
	t.Parallel()
	type rule struct{ groups, resources, verbs []string }
	var rules []rule
	for _, r := range argocd.ManagerRules() {
		m := r.(map[string]any)
		rules = append(rules, rule{strs(t, m["apiGroups"]), strs(t, m["resources"]), strs(t, m["verbs"])})
	}
	allowed := func(group, resource, verb string) bool {
		for _, r := range rules {
			if slices.Contains(r.groups, group) && slices.Contains(r.resources, resource) && slices.Contains(r.verbs, verb) {
				return true
			}
		}
		return false
	}
	for _, r := range rules {
		for _, v := range [][]string{r.groups, r.resources, r.verbs} {
			if slices.Contains(v, "*") {
				t.Errorf("rule %+v grants *: the manager role is least privilege", r)
			}
		}
	}

	files := renderedTree(t)
	checked := map[string]bool{}
	var workloadPaths []string
	for _, p := range sortedKeys(files) {
		if path.Ext(p) != ".yaml" {
			continue
		}
		objs, err := kube.DecodeYAML(files[p])
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, o := range objs {
			gvk := o.GroupVersionKind()
			if hubOnly[gvk.Kind] {
				if gvk.Kind == "ApplicationSet" {
					if sp, _, _ := unstructured.NestedString(o.Object, "spec", "template", "spec", "source", "path"); sp != "" {
						workloadPaths = append(workloadPaths, sp)
					}
				}
				continue
			}
			res := plural(gvk.Kind)
			for _, verb := range []string{"get", "list", "watch", "create", "patch", "delete"} {
				if !allowed(gvk.Group, res, verb) {
					t.Errorf("%s: %s %s (group %q, resource %q) is deployed to workloads but the manager may not %s it",
						p, gvk.Kind, o.GetName(), gvk.Group, res, verb)
				}
			}
			checked[gvk.GroupKind().String()] = true
		}
	}
	// The walk must have seen what the ApplicationSets deploy, or it
	// proves nothing.
	if len(workloadPaths) == 0 {
		t.Fatal("no ApplicationSet source path in the GitOps tree")
	}
	for _, wp := range workloadPaths {
		found := false
		for p := range files {
			if strings.HasPrefix(p, wp+"/") && path.Ext(p) == ".yaml" {
				found = true
			}
		}
		if !found {
			t.Errorf("an ApplicationSet deploys %s, which holds no manifest in the tree", wp)
		}
	}
	for _, gk := range []string{"Rollout.argoproj.io", "VirtualService.networking.istio.io", "Service", "Namespace"} {
		if !checked[gk] {
			t.Errorf("walked %v, missing %s: the tree was not read", sortedKeys(checked), gk)
		}
	}
}

// renderedTree renders the GitOps tree in both rollout modes, so both
// Rollout folders and every ApplicationSet path are concrete.
func renderedTree(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, mode := range []string{render.ModeIndependent, render.ModeLockstep} {
		p := render.Guide()
		p.RepoURL, p.ThanosURL, p.Mode = "https://git.example/lab.git", "http://thanos-query.monitoring.svc:9090", mode
		files, err := render.Tree(gitops.Tree, p)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range files {
			// The rollout ApplicationSet's path differs by mode: keep both.
			if _, ok := out[k]; ok && string(out[k]) != string(v) {
				k = fmt.Sprintf("%s.%s.yaml", strings.TrimSuffix(k, ".yaml"), mode)
			}
			out[k] = v
		}
	}
	return out
}

// plural is the resource of a kind, as the API server names CRDs' and
// built-in kinds' resources (apimachinery's guess turns Gateway into
// "gatewaies").
func plural(kind string) string {
	k := strings.ToLower(kind)
	switch {
	case strings.HasSuffix(k, "s"), strings.HasSuffix(k, "x"):
		return k + "es"
	case strings.HasSuffix(k, "y") && !strings.ContainsAny(k[len(k)-2:len(k)-1], "aeiou"):
		return k[:len(k)-1] + "ies"
	}
	return k + "s"
}

func strs(t *testing.T, v any) []string {
	t.Helper()
	l, ok := v.([]any)
	if !ok {
		t.Fatalf("%v is not a list", v)
	}
	out := make([]string, 0, len(l))
	for _, s := range l {
		out = append(out, s.(string))
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
