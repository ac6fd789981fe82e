package istio

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/sources"
	"lockstep.dev/lockstep/internal/meshsim"
)

// renderTest renders a release from the pinned istio module, as the
// actions do, without a cluster.
func renderTest(t *testing.T, r release) []*unstructured.Unstructured {
	t.Helper()
	dir, err := sources.DefaultResolver().Path(context.Background(), sources.Istio, chartsDir+"/"+r.Chart)
	if err != nil {
		t.Fatalf("the pinned istio module is needed (go mod download %s): %v", sources.Istio, err)
	}
	objs, err := render(dir, r, nil, namespacedKind)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 {
		t.Fatalf("%s rendered nothing", r.Name)
	}
	return objs
}

func namespacedKind(o *unstructured.Unstructured) bool {
	switch o.GetKind() {
	case "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
		"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
		return false
	}
	return true
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

func mustFind(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	o := find(objs, kind, name)
	if o == nil {
		var have []string
		for _, o := range objs {
			have = append(have, o.GetKind()+"/"+o.GetName())
		}
		t.Fatalf("no %s %s among %v", kind, name, have)
	}
	return o
}

// container returns the named container of a Deployment.
func container(t *testing.T, d *unstructured.Unstructured, name string) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	for _, c := range cs {
		if m, ok := c.(map[string]any); ok && m["name"] == name {
			return m
		}
	}
	t.Fatalf("deployment %s has no container %s", d.GetName(), name)
	return nil
}

func env(c map[string]any) map[string]string {
	out := map[string]string{}
	es, _ := c["env"].([]any)
	for _, e := range es {
		if m, ok := e.(map[string]any); ok {
			v, _ := m["value"].(string)
			out[fmt.Sprint(m["name"])] = v
		}
	}
	return out
}

var labSettings = install.DefaultSettings()

func TestRenderControlPlane(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ cluster, network string }{
		{"argo-rollout1", "network1"},
		{"argo-rollout2", "network2"},
	} {
		t.Run(tc.cluster, func(t *testing.T) {
			t.Parallel()
			objs := append(renderTest(t, baseRelease()), renderTest(t, istiodRelease(labSettings, tc.cluster, tc.network))...)
			sortForApply(objs)

			d := mustFind(t, objs, "Deployment", "istiod")
			c := container(t, d, "discovery")
			if e := env(c); e["CLUSTER_ID"] != tc.cluster {
				t.Errorf("istiod CLUSTER_ID = %q, want %q", e["CLUSTER_ID"], tc.cluster)
			}
			if want := labSettings.IstioHub + "/pilot:" + labSettings.IstioTag; c["image"] != want {
				t.Errorf("istiod image %v, want %s", c["image"], want)
			}
			// istiod takes its network from istio-system's label; the
			// sidecars and gateways it injects take it from the injector's
			// values, where global.network goes.
			inj := mustFind(t, objs, "ConfigMap", "istio-sidecar-injector")
			vals, _, _ := unstructured.NestedString(inj.Object, "data", "values")
			var v struct {
				Global struct {
					Network      string `json:"network"`
					MeshID       string `json:"meshID"`
					MultiCluster struct {
						ClusterName string `json:"clusterName"`
					} `json:"multiCluster"`
				} `json:"global"`
			}
			if err := json.Unmarshal([]byte(vals), &v); err != nil {
				t.Fatalf("injector values: %v", err)
			}
			if v.Global.Network != tc.network || v.Global.MeshID != labSettings.MeshID || v.Global.MultiCluster.ClusterName != tc.cluster {
				t.Errorf("injector global = %+v, want network %s, mesh %s, cluster %s", v.Global, tc.network, labSettings.MeshID, tc.cluster)
			}
			mesh := mustFind(t, objs, "ConfigMap", "istio")
			if m, _, _ := unstructured.NestedString(mesh.Object, "data", "mesh"); !strings.Contains(m, "meshId: "+labSettings.MeshID+"\n") {
				t.Errorf("mesh config has no meshId %s:\n%s", labSettings.MeshID, m)
			}
			// The canary host is cluster-local, read the way the local
			// fleet's meshsim reads the same object.
			m, _, _ := unstructured.NestedString(mesh.Object, "data", "mesh")
			mc, err := meshsim.ParseMeshConfig(m)
			if err != nil {
				t.Fatal(err)
			}
			if !mc.ClusterLocal("helloworld-canary.helloworld.svc.cluster.local") || mc.ClusterLocal("helloworld.helloworld.svc.cluster.local") {
				t.Errorf("mesh config: the canary host must be cluster-local and the stable host mesh-wide:\n%s", m)
			}

			mustFind(t, objs, "ServiceAccount", readerServiceAccount)
			if n := len(readerRBAC(objs)); n != 3 {
				t.Errorf("reader RBAC: %d objects, want the ServiceAccount, ClusterRole and binding", n)
			}
			checkApplyOrder(t, objs)
			for _, o := range objs {
				if namespacedKind(o) && o.GetNamespace() != SystemNamespace {
					t.Errorf("%s %s in namespace %q, want %s", o.GetKind(), o.GetName(), o.GetNamespace(), SystemNamespace)
				}
				if o.GetLabels()["app.kubernetes.io/managed-by"] == "Helm" {
					t.Errorf("%s %s is labelled managed-by Helm", o.GetKind(), o.GetName())
				}
			}
		})
	}
}

func checkApplyOrder(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	crds := true
	for i, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			crds = false
		} else if !crds {
			t.Errorf("CRD %s at %d comes after other objects", o.GetName(), i)
		}
	}
	if objs[0].GetKind() != "CustomResourceDefinition" {
		t.Errorf("first object is a %s, want the CRDs first", objs[0].GetKind())
	}
	last := -1
	for i, o := range objs {
		if o.GetKind() == "Deployment" {
			last = i
		}
	}
	for i, o := range objs {
		if strings.HasSuffix(o.GetKind(), "WebhookConfiguration") && i < last {
			t.Errorf("%s %s at %d comes before a Deployment", o.GetKind(), o.GetName(), i)
		}
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	t.Parallel()
	for _, r := range []release{baseRelease(), istiodRelease(labSettings, "argo-rollout1", "network1"), eastwestRelease("network1", nil), ingressRelease()} {
		t.Run(r.Name, func(t *testing.T) {
			t.Parallel()
			a, b := renderTest(t, r), renderTest(t, r)
			if !reflect.DeepEqual(a, b) {
				t.Error("two renders differ: a rerun would change objects")
			}
		})
	}
}

func TestRenderGateways(t *testing.T) {
	t.Parallel()
	t.Run("east-west", func(t *testing.T) {
		t.Parallel()
		objs := renderTest(t, eastwestRelease("network2", nil))
		svc := mustFind(t, objs, "Service", eastwestGateway)
		if typ, _, _ := unstructured.NestedString(svc.Object, "spec", "type"); typ != "LoadBalancer" {
			t.Errorf("east-west Service type %q, want LoadBalancer", typ)
		}
		ports := map[string]int64{}
		ps, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
		for _, p := range ps {
			m := p.(map[string]any)
			ports[fmt.Sprint(m["name"])] = toInt(m["port"])
		}
		want := map[string]int64{"status-port": 15021, "tls": 15443, "tls-istiod": 15012, "tls-webhook": 15017}
		if !reflect.DeepEqual(ports, want) {
			t.Errorf("east-west ports %v, want %v", ports, want)
		}
		sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
		if sel["istio"] != "eastwestgateway" || sel["app"] != eastwestGateway {
			t.Errorf("east-west selector %v", sel)
		}
		if svc.GetLabels()[NetworkLabel] != "network2" || svc.GetNamespace() != SystemNamespace {
			t.Errorf("east-west Service %s/%s labels %v", svc.GetNamespace(), svc.GetName(), svc.GetLabels())
		}
		d := mustFind(t, objs, "Deployment", eastwestGateway)
		if e := env(container(t, d, "istio-proxy")); e["ISTIO_META_REQUESTED_NETWORK_VIEW"] != "network2" {
			t.Errorf("east-west env %v, want ISTIO_META_REQUESTED_NETWORK_VIEW=network2", e)
		}
		pl, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "labels")
		if pl["istio"] != "eastwestgateway" || pl[NetworkLabel] != "network2" || pl["sidecar.istio.io/inject"] != "true" {
			t.Errorf("east-west pod labels %v", pl)
		}
	})
	t.Run("ingress", func(t *testing.T) {
		t.Parallel()
		objs := renderTest(t, ingressRelease())
		svc := mustFind(t, objs, "Service", ingressGateway)
		sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
		// What gitops/istio-resources' Gateway selects and its
		// VirtualService matches as sourceLabels.
		if sel["istio"] != "ingressgateway" || sel["app"] != ingressGateway {
			t.Errorf("ingress selector %v, want istio=ingressgateway app=istio-ingressgateway", sel)
		}
		if svc.GetNamespace() != IngressNamespace {
			t.Errorf("ingress Service in %q, want %s", svc.GetNamespace(), IngressNamespace)
		}
		d := mustFind(t, objs, "Deployment", ingressGateway)
		pl, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "labels")
		if pl["istio"] != "ingressgateway" || pl["app"] != ingressGateway {
			t.Errorf("ingress pod labels %v", pl)
		}
	})
}

func toInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	case int:
		return int64(n)
	}
	return -1
}

func TestWebhooksForDataPlane(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		plane      install.DataPlane
		wantIgnore bool
	}{
		{install.DataPlaneSimulated, true},
		{install.DataPlaneReal, false},
	} {
		t.Run(string(tc.plane), func(t *testing.T) {
			t.Parallel()
			objs := append(renderTest(t, baseRelease()), renderTest(t, istiodRelease(labSettings, "argo-rollout1", "network1"))...)
			before := policies(objs)
			if !slices.Contains(before, "Fail") {
				t.Fatalf("the charts have no failing webhook to begin with: %v", before)
			}
			c := &install.Context{Context: context.Background()}
			cl := &install.Cluster{DataPlane: tc.plane}
			if err := forDataPlane(c, cl, objs); err != nil {
				t.Fatal(err)
			}
			after := policies(objs)
			if len(after) != len(before) {
				t.Fatalf("%d webhooks before, %d after", len(before), len(after))
			}
			for i, p := range after {
				switch {
				case tc.wantIgnore && p != "Ignore":
					t.Errorf("webhook %d: failurePolicy %q on a simulated data plane, want Ignore", i, p)
				case !tc.wantIgnore && p != before[i]:
					t.Errorf("webhook %d: failurePolicy %q changed to %q on a real data plane", i, before[i], p)
				}
			}
		})
	}
}

// policies lists the failurePolicy of every webhook in objs.
func policies(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		if !strings.HasSuffix(o.GetKind(), "WebhookConfiguration") {
			continue
		}
		hs, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
		for _, h := range hs {
			out = append(out, fmt.Sprint(h.(map[string]any)["failurePolicy"]))
		}
	}
	return out
}

func TestKeepFailClosed(t *testing.T) {
	t.Parallel()
	base := renderTest(t, istiodRelease(labSettings, "argo-rollout1", "network1"))
	vwc := mustFind(t, base, "ValidatingWebhookConfiguration", "istio-validator-istio-system")
	hooks, _, _ := unstructured.NestedSlice(vwc.Object, "webhooks")
	name := hooks[0].(map[string]any)["name"].(string)
	if p := hooks[0].(map[string]any)["failurePolicy"]; p != "Ignore" {
		t.Fatalf("the install rendering of %s has failurePolicy %v, want Ignore", name, p)
	}
	for _, tc := range []struct {
		name string
		live map[string]map[string]string
		want string
		n    int
	}{
		{"first install", nil, "Ignore", 0},
		{"istiod closed it", map[string]map[string]string{vwc.GetName(): {name: "Fail"}}, "Fail", 1},
		{"istiod not ready yet", map[string]map[string]string{vwc.GetName(): {name: "Ignore"}}, "Ignore", 0},
		{"another configuration closed", map[string]map[string]string{"other": {name: "Fail"}}, "Ignore", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			objs := []*unstructured.Unstructured{vwc.DeepCopy()}
			if n := keepFailClosed(objs, tc.live); n != tc.n {
				t.Errorf("kept %d closed, want %d", n, tc.n)
			}
			hs, _, _ := unstructured.NestedSlice(objs[0].Object, "webhooks")
			if p := hs[0].(map[string]any)["failurePolicy"]; p != tc.want {
				t.Errorf("failurePolicy %v, want %s", p, tc.want)
			}
		})
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	objs := renderTest(t, ingressRelease())
	d := mustFind(t, objs, "Deployment", ingressGateway)
	if _, found, _ := unstructured.NestedFieldNoCopy(d.Object, "metadata", "annotations"); found {
		t.Error("the empty annotations of the gateway Deployment were kept")
	}
	c := container(t, d, "istio-proxy")
	if _, found := c["env"]; found {
		t.Errorf("env: %v kept, want the null dropped", c["env"])
	}
	if _, found, _ := unstructured.NestedMap(d.Object, "spec", "template", "metadata", "annotations"); !found {
		t.Error("the pod annotations were dropped")
	}
	m := map[string]any{"metadata": map[string]any{"labels": map[string]any{}, "name": "x"},
		"spec": map[string]any{"volumes": []any{map[string]any{"name": "v", "emptyDir": map[string]any{}, "secret": nil}}}}
	prune(m)
	want := map[string]any{"metadata": map[string]any{"name": "x"},
		"spec": map[string]any{"volumes": []any{map[string]any{"name": "v", "emptyDir": map[string]any{}}}}}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("prune gave %v, want %v", m, want)
	}
}

// The provider's LoadBalancer annotations (EKS: an internet-facing NLB)
// reach the east-west gateway's Service, and only it.
func TestEastWestServiceCarriesProviderAnnotations(t *testing.T) {
	t.Parallel()
	ann := map[string]string{"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"}
	objs := renderTest(t, eastwestRelease("network1", ann))
	svc := mustFind(t, objs, "Service", eastwestGateway)
	if got := svc.GetAnnotations()["service.beta.kubernetes.io/aws-load-balancer-scheme"]; got != "internet-facing" {
		t.Fatalf("east-west Service annotations %v lack the provider's", svc.GetAnnotations())
	}
	dep := mustFind(t, objs, "Deployment", eastwestGateway)
	if _, ok := dep.GetAnnotations()["service.beta.kubernetes.io/aws-load-balancer-scheme"]; ok {
		t.Fatal("the Service annotation leaked onto the Deployment")
	}
}
