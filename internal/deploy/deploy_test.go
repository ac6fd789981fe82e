package deploy

import (
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"lockstep.dev/lockstep/config"
	"lockstep.dev/lockstep/internal/kube"
)

const (
	kustomizeDir = "../../config/default"
	chartDir     = "../../charts/lockstep"
	hubRoleFile  = config.HubRole
)

// rendering is one install method's output for one namespace.
type rendering struct {
	name      string
	namespace string
	objs      []*unstructured.Unstructured
}

// renderings renders the kustomize base and the chart (default values)
// into namespace ("" for the default).
func renderings(t *testing.T, namespace string) []rendering {
	t.Helper()
	k, err := Kustomize(kustomizeDir, namespace)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Helm(chartDir, HelmOptions{Namespace: namespace})
	if err != nil {
		t.Fatal(err)
	}
	ns := namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	return []rendering{{"kustomize", ns, k}, {"helm", ns, h}}
}

func find(objs []*unstructured.Unstructured, kind, namespace, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetNamespace() == namespace && o.GetName() == name {
			return o
		}
	}
	return nil
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func typed[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &v, true); err != nil {
		t.Fatalf("%s: %v", Key(o), err)
	}
	return &v
}

// generated reads a generated manifest of config/, as the binary embeds it.
func generated(t *testing.T, fsys fs.FS, path string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := kube.ReadYAML(fsys, path)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// apiVersions are the kinds an install may contain, with the version each
// must be written in; namespaced says which need the install namespace.
var apiVersions = map[string]struct {
	apiVersion string
	namespaced bool
}{
	"Namespace":                {"v1", false},
	"CustomResourceDefinition": {"apiextensions.k8s.io/v1", false},
	"ClusterRole":              {"rbac.authorization.k8s.io/v1", false},
	"ClusterRoleBinding":       {"rbac.authorization.k8s.io/v1", false},
	"Role":                     {"rbac.authorization.k8s.io/v1", true},
	"RoleBinding":              {"rbac.authorization.k8s.io/v1", true},
	"ServiceAccount":           {"v1", true},
	"Deployment":               {"apps/v1", true},
	"Service":                  {"v1", true},
	"PodDisruptionBudget":      {"policy/v1", true},
	"NetworkPolicy":            {"networking.k8s.io/v1", true},
	// The FleetApproval admission policy (config/approval).
	"ValidatingAdmissionPolicy":        {"admissionregistration.k8s.io/v1", false},
	"ValidatingAdmissionPolicyBinding": {"admissionregistration.k8s.io/v1", false},
}

func TestKindsAndNamespaces(t *testing.T) {
	t.Parallel()
	for _, ns := range []string{"", "team-canary"} {
		for _, r := range renderings(t, ns) {
			t.Run(r.name+"/"+r.namespace, func(t *testing.T) {
				for _, o := range r.objs {
					want, ok := apiVersions[o.GetKind()]
					switch {
					case o.GetKind() == "":
						t.Errorf("an object without a kind: %s", o.GetName())
					case !ok:
						t.Errorf("%s: unexpected kind", Key(o))
					case o.GetAPIVersion() != want.apiVersion:
						t.Errorf("%s: apiVersion %s, want %s", Key(o), o.GetAPIVersion(), want.apiVersion)
					case want.namespaced && o.GetNamespace() != r.namespace:
						t.Errorf("%s: namespace %q, want %q", Key(o), o.GetNamespace(), r.namespace)
					case !want.namespaced && o.GetNamespace() != "":
						t.Errorf("%s: cluster-scoped, has namespace %q", Key(o), o.GetNamespace())
					}
					if o.GetName() == "" {
						t.Errorf("a %s without a name", o.GetKind())
					}
				}
				// Every kind but the Namespace is in both (helm install
				// --create-namespace makes the namespace).
				for kind := range apiVersions {
					if n := len(ofKind(r.objs, kind)); n == 0 && !(kind == "Namespace" && r.name == "helm") {
						t.Errorf("no %s", kind)
					}
				}
				if r.name == "kustomize" {
					if find(r.objs, "Namespace", "", r.namespace) == nil {
						t.Errorf("no Namespace %s", r.namespace)
					}
				}
			})
		}
	}
}

// TestSameObjects holds the two install methods to the same objects, the
// kustomize base's Namespace aside (Helm's --create-namespace makes it).
func TestSameObjects(t *testing.T) {
	t.Parallel()
	for _, ns := range []string{"", "team-canary"} {
		rs := renderings(t, ns)
		var k []string
		for _, key := range Keys(rs[0].objs) {
			if key != "Namespace "+rs[0].namespace {
				k = append(k, key)
			}
		}
		if h := Keys(rs[1].objs); !slices.Equal(k, h) {
			t.Errorf("namespace %q: kustomize and helm differ:\nkustomize %q\nhelm      %q", ns, k, h)
		}
	}
}

func TestDeploymentHardened(t *testing.T) {
	t.Parallel()
	for _, r := range renderings(t, "") {
		t.Run(r.name, func(t *testing.T) {
			ds := ofKind(r.objs, "Deployment")
			if len(ds) != 1 {
				t.Fatalf("%d Deployments, want 1", len(ds))
			}
			d := typed[appsv1.Deployment](t, ds[0])
			if d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
				t.Errorf("replicas %v, want 2", d.Spec.Replicas)
			}
			pod := d.Spec.Template.Spec
			if pod.ServiceAccountName != "lockstep-coordinator" || find(r.objs, "ServiceAccount", r.namespace, pod.ServiceAccountName) == nil {
				t.Errorf("serviceAccountName %q: want the rendered lockstep-coordinator", pod.ServiceAccountName)
			}
			psc := pod.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
				t.Error("pod securityContext.runAsNonRoot is not true")
			}
			if psc == nil || psc.RunAsUser == nil || *psc.RunAsUser != 65532 {
				t.Error("pod securityContext.runAsUser is not 65532 (the image's nonroot user)")
			}
			if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Error("pod seccompProfile is not RuntimeDefault")
			}
			if len(pod.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(pod.Containers))
			}
			c := pod.Containers[0]
			if len(c.Args) == 0 || c.Args[0] != "coordinator" {
				t.Errorf("args %q do not run `lockstep coordinator`", c.Args)
			}
			for _, want := range []string{"--leader-elect", "--secrets-namespace=$(POD_NAMESPACE)", "--metrics-addr=:8080", "--health-addr=:8081"} {
				if !slices.Contains(c.Args, want) {
					t.Errorf("args %q lack %s", c.Args, want)
				}
			}
			if i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "POD_NAMESPACE" }); i < 0 ||
				c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef == nil || c.Env[i].ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
				t.Error("POD_NAMESPACE is not the pod's namespace (downward API)")
			}
			sc := c.SecurityContext
			switch {
			case sc == nil:
				t.Fatal("no container securityContext")
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Error("readOnlyRootFilesystem is not true")
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Error("allowPrivilegeEscalation is not false")
			case sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
				t.Errorf("capabilities %+v, want drop [ALL] and no add", sc.Capabilities)
			case sc.Privileged != nil && *sc.Privileged:
				t.Error("privileged")
			}
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
				if p == nil || p.HTTPGet == nil {
					t.Errorf("no HTTP %s probe", name)
					continue
				}
				if _, ok := ports[p.HTTPGet.Port.String()]; !ok || p.HTTPGet.Port.String() != "health" {
					t.Errorf("%s probe on port %s, want the container's health port", name, p.HTTPGet.Port.String())
				}
			}
			if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path != "/healthz" {
				t.Errorf("liveness probe path %s, want /healthz", c.LivenessProbe.HTTPGet.Path)
			}
			if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("readiness probe path %s, want /readyz", c.ReadinessProbe.HTTPGet.Path)
			}
			if ports["metrics"] != 8080 || ports["health"] != 8081 {
				t.Errorf("ports %v, want metrics 8080 and health 8081", ports)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("resources %+v: want CPU and memory requests and a memory limit", c.Resources)
			}
		})
	}
}

// TestRBACIsGenerated holds both renderings to config/rbac/hub/role.yaml:
// every generated role is there with the generated rules, bound to the
// coordinator's ServiceAccount, and no other role exists.
func TestRBACIsGenerated(t *testing.T) {
	t.Parallel()
	gen := generated(t, config.RBAC, hubRoleFile)
	if len(gen) == 0 {
		t.Fatalf("%s has no roles", hubRoleFile)
	}
	for _, ns := range []string{"", "team-canary"} {
		for _, r := range renderings(t, ns) {
			t.Run(r.name+"/"+r.namespace, func(t *testing.T) {
				var wantRoles []string
				for _, g := range gen {
					var roleNS, bindingKind string
					switch g.GetKind() {
					case "ClusterRole":
						bindingKind = "ClusterRoleBinding"
					case "Role":
						// Both methods move the Roles to the install namespace:
						// the coordinator's own, where its Secrets and Lease are.
						roleNS, bindingKind = r.namespace, "RoleBinding"
					default:
						t.Fatalf("%s: unexpected %s", hubRoleFile, g.GetKind())
					}
					wantRoles = append(wantRoles, fmt.Sprintf("%s %s/%s", g.GetKind(), roleNS, g.GetName()))
					role := find(r.objs, g.GetKind(), roleNS, g.GetName())
					if role == nil {
						t.Errorf("no %s %s/%s (generated)", g.GetKind(), roleNS, g.GetName())
						continue
					}
					if !reflect.DeepEqual(role.Object["rules"], g.Object["rules"]) {
						t.Errorf("%s: rules differ from %s:\ngot  %v\nwant %v", Key(role), hubRoleFile, role.Object["rules"], g.Object["rules"])
					}
					bound := false
					for _, b := range ofKind(r.objs, bindingKind) {
						ref, _, _ := unstructured.NestedStringMap(b.Object, "roleRef")
						if b.GetNamespace() != roleNS || ref["kind"] != g.GetKind() || ref["name"] != g.GetName() || ref["apiGroup"] != "rbac.authorization.k8s.io" {
							continue
						}
						subjects, _, _ := unstructured.NestedSlice(b.Object, "subjects")
						want := map[string]any{"kind": "ServiceAccount", "name": "lockstep-coordinator", "namespace": r.namespace}
						if len(subjects) == 1 && reflect.DeepEqual(subjects[0], want) {
							bound = true
						} else {
							t.Errorf("%s: subjects %v, want only %v", Key(b), subjects, want)
						}
					}
					if !bound {
						t.Errorf("%s is not bound to the coordinator's ServiceAccount", Key(role))
					}
				}
				var gotRoles []string
				for _, o := range r.objs {
					if o.GetKind() == "Role" || o.GetKind() == "ClusterRole" {
						gotRoles = append(gotRoles, fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName()))
					}
				}
				slices.Sort(wantRoles)
				slices.Sort(gotRoles)
				if !slices.Equal(gotRoles, wantRoles) {
					t.Errorf("roles %q, want exactly the generated %q", gotRoles, wantRoles)
				}
			})
		}
	}
}

// TestCRDIsGenerated holds both renderings' CRDs to config/crd.
func TestCRDIsGenerated(t *testing.T) {
	t.Parallel()
	// Every CRD controller-gen wrote (config.CRDs embeds exactly those).
	files, err := fs.Glob(config.CRDs, "crd/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var gen []*unstructured.Unstructured
	for _, f := range files {
		gen = append(gen, generated(t, config.CRDs, f)...)
	}
	if len(gen) == 0 {
		t.Fatal("no CRDs in config/crd")
	}
	for _, r := range renderings(t, "") {
		got := ofKind(r.objs, "CustomResourceDefinition")
		if len(got) != len(gen) {
			t.Errorf("%s: %d CRDs, want the %d generated", r.name, len(got), len(gen))
		}
		for _, g := range gen {
			crd := find(got, g.GetKind(), "", g.GetName())
			if crd == nil {
				t.Errorf("%s: no CRD %s", r.name, g.GetName())
				continue
			}
			if !reflect.DeepEqual(crd.Object["spec"], g.Object["spec"]) {
				t.Errorf("%s: CRD %s: spec differs from the generated one", r.name, g.GetName())
			}
		}
	}
}

func TestNetworkPolicy(t *testing.T) {
	t.Parallel()
	for _, r := range renderings(t, "") {
		t.Run(r.name, func(t *testing.T) {
			nps := ofKind(r.objs, "NetworkPolicy")
			if len(nps) != 1 {
				t.Fatalf("%d NetworkPolicies, want 1", len(nps))
			}
			np := typed[networkingv1.NetworkPolicy](t, nps[0])
			d := typed[appsv1.Deployment](t, ofKind(r.objs, "Deployment")[0])
			if !reflect.DeepEqual(np.Spec.PodSelector.MatchLabels, d.Spec.Selector.MatchLabels) {
				t.Errorf("podSelector %v, want the Deployment's %v", np.Spec.PodSelector.MatchLabels, d.Spec.Selector.MatchLabels)
			}
			if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
				t.Errorf("policyTypes %v, want Ingress and Egress", np.Spec.PolicyTypes)
			}
			if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].Ports) != 1 || np.Spec.Ingress[0].Ports[0].Port.IntValue() != 8080 {
				t.Errorf("ingress %+v, want the metrics port 8080 only", np.Spec.Ingress)
			}
			egress := map[string]bool{}
			for _, rule := range np.Spec.Egress {
				if len(rule.To) > 0 {
					t.Errorf("egress rule %+v names destinations; the policy restricts ports only", rule)
				}
				for _, p := range rule.Ports {
					egress[fmt.Sprintf("%s/%s", *p.Protocol, p.Port.String())] = true
				}
			}
			for _, want := range []string{"UDP/53", "TCP/53", "TCP/443", "TCP/6443", "TCP/9090", "TCP/10902"} {
				if !egress[want] {
					t.Errorf("egress does not allow %s (have %v)", want, egress)
				}
			}
		})
	}
}

func TestServiceAndPDB(t *testing.T) {
	t.Parallel()
	for _, r := range renderings(t, "") {
		t.Run(r.name, func(t *testing.T) {
			d := typed[appsv1.Deployment](t, ofKind(r.objs, "Deployment")[0])
			svc := find(r.objs, "Service", r.namespace, "lockstep-coordinator-metrics")
			if svc == nil {
				t.Fatal("no metrics Service")
			}
			s := typed[corev1.Service](t, svc)
			if !reflect.DeepEqual(s.Spec.Selector, d.Spec.Selector.MatchLabels) {
				t.Errorf("Service selector %v, want the Deployment's %v", s.Spec.Selector, d.Spec.Selector.MatchLabels)
			}
			if len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Port != 8080 || s.Spec.Ports[0].TargetPort.String() != "metrics" {
				t.Errorf("Service ports %+v, want 8080 → metrics", s.Spec.Ports)
			}
			pdb := find(r.objs, "PodDisruptionBudget", r.namespace, "lockstep-coordinator")
			if pdb == nil {
				t.Fatal("no PodDisruptionBudget")
			}
			if v, _, _ := unstructured.NestedFieldNoCopy(pdb.Object, "spec", "minAvailable"); fmt.Sprint(v) != "1" {
				t.Errorf("minAvailable %v, want 1", v)
			}
			sel, _, _ := unstructured.NestedStringMap(pdb.Object, "spec", "selector", "matchLabels")
			if !reflect.DeepEqual(sel, d.Spec.Selector.MatchLabels) {
				t.Errorf("PDB selector %v, want the Deployment's %v", sel, d.Spec.Selector.MatchLabels)
			}
		})
	}
}

// TestHelmValues covers the chart's switches and its values schema.
func TestHelmValues(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		values  map[string]any
		wantErr string
		check   func(t *testing.T, objs []*unstructured.Unstructured)
	}{
		{name: "switches off", values: map[string]any{
			"networkPolicy":       map[string]any{"enabled": false},
			"podDisruptionBudget": map[string]any{"enabled": false},
			"crds":                map[string]any{"enabled": false},
		}, check: func(t *testing.T, objs []*unstructured.Unstructured) {
			for _, k := range []string{"NetworkPolicy", "PodDisruptionBudget", "CustomResourceDefinition"} {
				if n := len(ofKind(objs, k)); n > 0 {
					t.Errorf("%d %s with it disabled", n, k)
				}
			}
		}},
		{name: "image, replicas, no thanos", values: map[string]any{
			"image":     map[string]any{"repository": "registry.example/lockstep", "tag": "v1.2.3"},
			"replicas":  3,
			"thanosURL": "",
			"extraArgs": []any{"--namespace=team-a"},
		}, check: func(t *testing.T, objs []*unstructured.Unstructured) {
			d := typed[appsv1.Deployment](t, ofKind(objs, "Deployment")[0])
			c := d.Spec.Template.Spec.Containers[0]
			if c.Image != "registry.example/lockstep:v1.2.3" {
				t.Errorf("image %s", c.Image)
			}
			if *d.Spec.Replicas != 3 {
				t.Errorf("replicas %d, want 3", *d.Spec.Replicas)
			}
			for _, a := range c.Args {
				if strings.HasPrefix(a, "--thanos-url") {
					t.Errorf("arg %s with an empty thanosURL", a)
				}
			}
			if !slices.Contains(c.Args, "--namespace=team-a") || !slices.Contains(c.Args, "--leader-elect") {
				t.Errorf("args %q: want --namespace=team-a and --leader-elect", c.Args)
			}
		}},
		{name: "crds not kept", values: map[string]any{"crds": map[string]any{"keep": false}},
			check: func(t *testing.T, objs []*unstructured.Unstructured) {
				for _, crd := range ofKind(objs, "CustomResourceDefinition") {
					if _, ok := crd.GetAnnotations()["helm.sh/resource-policy"]; ok {
						t.Errorf("%s keeps a resource policy with crds.keep=false", Key(crd))
					}
				}
			}},
		{name: "unknown value", values: map[string]any{"replica": 3}, wantErr: "replica"},
		{name: "wrong type", values: map[string]any{"replicas": "two"}, wantErr: "replicas"},
		{name: "bad log format", values: map[string]any{"logFormat": "xml"}, wantErr: "logFormat"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			objs, err := Helm(chartDir, HelmOptions{Values: c.values})
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, objs)
		})
	}
}

func TestDefaultCRDsKept(t *testing.T) {
	t.Parallel()
	objs, err := Helm(chartDir, HelmOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, crd := range ofKind(objs, "CustomResourceDefinition") {
		if crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("%s: no helm.sh/resource-policy: keep; helm uninstall would delete every FleetRollout", Key(crd))
		}
	}
}

func TestHelmKubeVersion(t *testing.T) {
	t.Parallel()
	if _, err := Helm(chartDir, HelmOptions{KubeVersion: "v1.24.0"}); err == nil {
		t.Error("rendered for Kubernetes 1.24; want the chart's kubeVersion to refuse it")
	}
}
