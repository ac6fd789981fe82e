package meshsim

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// rolloutPod is a pod of the Rollout "helloworld" as kwok runs it.
func rolloutPod(name, hash, image, ip string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "helloworld", Annotations: annotations,
			Labels: map[string]string{"app": "helloworld", "rollouts-pod-template-hash": hash},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "helloworld-" + hash, UID: types.UID("uid-" + hash), Controller: ptrTo(true),
			}},
		},
		Spec:   corev1.PodSpec{Containers: []corev1.Container{{Name: "helloworld", Image: image}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
	}
}

// endpointSlice is what kube-controller-manager writes for service svc.
func endpointSlice(name, svc string, pods map[*corev1.Pod]bool) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "helloworld",
			Labels: map[string]string{discoveryv1.LabelServiceName: svc},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for p, ready := range pods {
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{p.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptrTo(ready)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name},
		})
	}
	return s
}

func virtualService(stable, canary int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1",
		"kind":       "VirtualService",
		"metadata":   map[string]any{"name": DefaultVirtualService, "namespace": "helloworld"},
		"spec": map[string]any{
			"hosts": []any{"*"},
			"http": []any{map[string]any{
				"name": "helloworld",
				"route": []any{
					map[string]any{"destination": map[string]any{"host": "helloworld", "port": map[string]any{"number": int64(5000)}}, "weight": stable},
					map[string]any{"destination": map[string]any{"host": "helloworld-canary.helloworld.svc.cluster.local", "port": map[string]any{"number": int64(5000)}}, "weight": canary},
				},
			}},
		},
	}}
}

func newDynamic(objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{VirtualServiceGVR: "VirtualServiceList"}, objs...)
}

// startTopology runs t until the test ends.
func startTopology(t *testing.T, topo *KubeTopology) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- topo.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
}

// waitUntil waits for cond to hold, re-checking at each topology change
// rather than on a timer.
func waitUntil(t *testing.T, topo *KubeTopology, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		changed := topo.Changed()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

func podNames(eps []Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, e.Cluster+"/"+e.Pod)
	}
	return out
}

func TestKubeTopology(t *testing.T) {
	t.Parallel()
	stable := rolloutPod("helloworld-6d8f9c7b5-aaaaa", "6d8f9c7b5", "docker.io/istio/examples-helloworld-v1", "10.244.0.5",
		map[string]string{AnnotationErrorRate: "lots"})
	canary := rolloutPod("helloworld-7c9d8b6f4-bbbbb", "7c9d8b6f4", "docker.io/istio/examples-helloworld-v2", "10.244.0.6",
		map[string]string{AnnotationErrorRate: "0.3", AnnotationLatency: "150ms"})
	starting := rolloutPod("helloworld-7c9d8b6f4-ccccc", "7c9d8b6f4", "docker.io/istio/examples-helloworld-v2", "10.244.0.7", nil)
	// kwok hands out pod IPs from the same range in both clusters, so the
	// peer's pod may share an address with a local one.
	remote := rolloutPod("helloworld-7c9d8b6f4-ddddd", "7c9d8b6f4", "docker.io/istio/examples-helloworld-v2", "10.244.0.5", nil)
	localSlices := []*discoveryv1.EndpointSlice{
		endpointSlice("helloworld-x1", "helloworld", map[*corev1.Pod]bool{stable: true}),
		endpointSlice("helloworld-canary-x1", "helloworld-canary", map[*corev1.Pod]bool{canary: true, starting: false}),
	}
	local := fake.NewClientset(stable, canary, starting, localSlices[0], localSlices[1])
	peer := fake.NewClientset(remote, endpointSlice("helloworld-canary-y1", "helloworld-canary", map[*corev1.Pod]bool{remote: true}))
	dyn := newDynamic(virtualService(90, 10))
	logs := newLogSink()

	topo, err := NewKubeTopology(KubeTopologyConfig{
		Cluster: cluster1, Local: local, LocalDynamic: dyn,
		Peers:  map[string]kubernetes.Interface{cluster2: peer},
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topo.Weights(); err == nil {
		t.Fatal("Weights() succeeded before Run")
	}
	startTopology(t, topo)
	waitUntil(t, topo, "all clusters are seen", func() bool {
		return topo.HasSynced() && len(topo.Endpoints(canaryKey)) == 2
	})

	w, err := topo.Weights()
	if err != nil {
		t.Fatalf("Weights() error: %v", err)
	}
	if w.String() != "helloworld=90 helloworld-canary=10" {
		t.Errorf("Weights() = %s", w)
	}

	stableEps := topo.Endpoints(stableKey)
	wantStable := Endpoint{
		Cluster: cluster1, Pod: stable.Name, Namespace: "helloworld", Service: "helloworld", IP: "10.244.0.5",
		Version: "v1", Workload: "helloworld", App: "helloworld", ServiceAccount: "default",
		CanonicalService: "helloworld", CanonicalRevision: "latest",
	}
	if len(stableEps) != 1 || stableEps[0] != wantStable {
		t.Errorf("Endpoints(stable) =\n%+v\nwant\n%+v", stableEps, wantStable)
	}
	canaryEps := topo.Endpoints(canaryKey)
	if got, want := podNames(canaryEps), []string{cluster1 + "/" + canary.Name, cluster2 + "/" + remote.Name}; !reflect.DeepEqual(got, want) {
		t.Errorf("Endpoints(canary) = %v, want %v", got, want)
	}
	if canaryEps[0].ErrorRate != 0.3 || canaryEps[0].Latency != 150*time.Millisecond || canaryEps[0].Version != "v2" {
		t.Errorf("canary endpoint = %+v, want v2 with 30 %% errors and 150ms", canaryEps[0])
	}
	if got := topo.Endpoints(ServiceKey{"elsewhere", "helloworld"}); len(got) != 0 {
		t.Errorf("Endpoints in an unwatched namespace = %v", got)
	}
	logs.waitFor(t, "ignoring invalid fault annotation", stable.Name, "not a number")

	// The east-west side serves local pods only, Ready or not.
	if e, ok := topo.LocalEndpoint(canaryKey, starting.Name); !ok || e.IP != "10.244.0.7" {
		t.Errorf("LocalEndpoint(starting) = %+v, %v", e, ok)
	}
	if _, ok := topo.LocalEndpoint(canaryKey, remote.Name); ok {
		t.Error("LocalEndpoint() found a pod of the peer cluster")
	}

	// Argo Rollouts shifts the weights.
	vs := virtualService(40, 60)
	if _, err := dyn.Resource(VirtualServiceGVR).Namespace("helloworld").Update(t.Context(), vs, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, topo, "the new weights are seen", func() bool {
		w, err := topo.Weights()
		return err == nil && w.String() == "helloworld=40 helloworld-canary=60"
	})
	logs.waitFor(t, "routing weights", "helloworld=40 helloworld-canary=60")

	// The local canary pod stops being Ready; the remote one remains.
	slice := localSlices[1].DeepCopy()
	for i := range slice.Endpoints {
		slice.Endpoints[i].Conditions.Ready = ptrTo(false)
	}
	if _, err := local.DiscoveryV1().EndpointSlices("helloworld").Update(t.Context(), slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, topo, "the unready pod is dropped", func() bool {
		return reflect.DeepEqual(podNames(topo.Endpoints(canaryKey)), []string{cluster2 + "/" + remote.Name})
	})

	// The VirtualService disappears: no route.
	if err := dyn.Resource(VirtualServiceGVR).Namespace("helloworld").Delete(t.Context(), DefaultVirtualService, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, topo, "the route is gone", func() bool {
		_, err := topo.Weights()
		return err != nil
	})
}

func TestKubeTopologyUnreachablePeer(t *testing.T) {
	t.Parallel()
	stable := rolloutPod("helloworld-6d8f9c7b5-aaaaa", "6d8f9c7b5", "docker.io/istio/examples-helloworld-v1", "10.244.0.5", nil)
	local := fake.NewClientset(stable, endpointSlice("helloworld-x1", "helloworld", map[*corev1.Pod]bool{stable: true}))
	// The peer's API server refuses every request.
	peer := fake.NewClientset()
	refused := errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
	peer.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, refused })
	peer.PrependWatchReactor("*", func(k8stesting.Action) (bool, watch.Interface, error) { return true, nil, refused })
	logs := newLogSink()

	topo, err := NewKubeTopology(KubeTopologyConfig{
		Cluster: cluster1, Local: local, LocalDynamic: newDynamic(virtualService(100, 0)),
		Peers:  map[string]kubernetes.Interface{cluster2: peer},
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	startTopology(t, topo)
	waitUntil(t, topo, "the local cluster is seen", func() bool {
		return topo.HasSynced() && len(topo.Endpoints(stableKey)) == 1
	})
	if _, err := topo.Weights(); err != nil {
		t.Errorf("Weights() = %v with an unreachable peer", err)
	}
	logs.waitFor(t, "cannot list or watch cluster", "cluster="+cluster2, "connection refused")
}

func TestNewKubeTopologyValidates(t *testing.T) {
	t.Parallel()
	local, dyn := fake.NewClientset(), newDynamic()
	tests := []struct {
		name string
		cfg  KubeTopologyConfig
	}{
		{"no cluster", KubeTopologyConfig{Local: local, LocalDynamic: dyn}},
		{"no local client", KubeTopologyConfig{Cluster: cluster1, LocalDynamic: dyn}},
		{"no dynamic client", KubeTopologyConfig{Cluster: cluster1, Local: local}},
		{"nil peer", KubeTopologyConfig{Cluster: cluster1, Local: local, LocalDynamic: dyn, Peers: map[string]kubernetes.Interface{cluster2: nil}}},
		{"bad virtual service", KubeTopologyConfig{Cluster: cluster1, Local: local, LocalDynamic: dyn, VirtualService: "/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := NewKubeTopology(tt.cfg); err == nil {
				t.Fatal("NewKubeTopology() accepted an invalid config")
			}
		})
	}
	topo, err := NewKubeTopology(KubeTopologyConfig{Cluster: cluster1, Local: local, LocalDynamic: dyn, VirtualService: "istio-system/vs"})
	if err != nil || topo.vsKey != "istio-system/vs" {
		t.Fatalf("NewKubeTopology(NAMESPACE/NAME) = %v, key %q", err, topo.vsKey)
	}
}
