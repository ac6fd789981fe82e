package meshsim

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
)

func TestParseMeshConfig(t *testing.T) {
	t.Parallel()
	mc, err := ParseMeshConfig(`
accessLogFile: /dev/stdout
serviceSettings:
- settings:
    clusterLocal: true
  hosts:
  - "helloworld-canary.helloworld.svc.cluster.local"
  - "*.local-only.svc.cluster.local"
- settings:
    clusterLocal: false
  hosts:
  - "global.local-only.svc.cluster.local"
`)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"helloworld-canary.helloworld.svc.cluster.local": true,
		"helloworld.helloworld.svc.cluster.local":        false,
		"x.local-only.svc.cluster.local":                 true,
		// The last matching setting wins, as in Istio.
		"global.local-only.svc.cluster.local": false,
	} {
		if got := mc.ClusterLocal(host); got != want {
			t.Errorf("ClusterLocal(%s) = %t, want %t", host, got, want)
		}
	}
	if mc, err := ParseMeshConfig(""); err != nil || mc.ClusterLocal("a.b.svc.cluster.local") {
		t.Errorf("empty mesh config: %+v, %v", mc, err)
	}
	if _, err := ParseMeshConfig("serviceSettings: {"); err == nil {
		t.Error("broken YAML accepted")
	}
}

// TestKubeTopologyClusterLocal: with Istio's clusterLocal setting for the
// canary host in the local mesh config, the gateway sees only its own
// cluster's canary endpoints; the stable host stays mesh-wide. Without the
// setting (or when it is removed) the canary host spans every cluster, as
// Istio's multi-primary mesh does by default.
func TestKubeTopologyClusterLocal(t *testing.T) {
	t.Parallel()
	canary := rolloutPod("helloworld-7c9d8b6f4-bbbbb", "7c9d8b6f4", "docker.io/istio/examples-helloworld-v2", "10.244.0.6", nil)
	stable := rolloutPod("helloworld-6d8f9c7b5-aaaaa", "6d8f9c7b5", "docker.io/istio/examples-helloworld-v1", "10.244.0.5", nil)
	remoteCanary := rolloutPod("helloworld-6d8f9c7b5-ddddd", "6d8f9c7b5", "docker.io/istio/examples-helloworld-v1", "10.244.0.9", nil)
	remoteStable := rolloutPod("helloworld-6d8f9c7b5-eeeee", "6d8f9c7b5", "docker.io/istio/examples-helloworld-v1", "10.244.0.8", nil)
	mesh := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: MeshConfigNamespace, Name: MeshConfigName},
		Data:       map[string]string{MeshConfigKey: "serviceSettings:\n- settings: {clusterLocal: true}\n  hosts: [helloworld-canary.helloworld.svc.cluster.local]\n"},
	}
	local := fake.NewClientset(canary, stable, mesh,
		endpointSlice("helloworld-canary-x1", "helloworld-canary", map[*corev1.Pod]bool{canary: true}),
		endpointSlice("helloworld-x1", "helloworld", map[*corev1.Pod]bool{stable: true}))
	// The peer's canary Service still selects its stable pods (the peer's
	// wave has not started): its "canary" endpoint runs the old version.
	peer := fake.NewClientset(remoteCanary, remoteStable,
		endpointSlice("helloworld-canary-y1", "helloworld-canary", map[*corev1.Pod]bool{remoteCanary: true}),
		endpointSlice("helloworld-y1", "helloworld", map[*corev1.Pod]bool{remoteStable: true}))
	topo, err := NewKubeTopology(KubeTopologyConfig{
		Cluster: cluster1, Local: local, LocalDynamic: newDynamic(virtualService(90, 10)),
		Peers: map[string]kubernetes.Interface{cluster2: peer},
	})
	if err != nil {
		t.Fatal(err)
	}
	startTopology(t, topo)
	waitUntil(t, topo, "synced with the local canary only", func() bool {
		return topo.HasSynced() && len(topo.Endpoints(stableKey)) == 2 && len(topo.Endpoints(canaryKey)) == 1
	})
	if got, want := podNames(topo.Endpoints(canaryKey)), []string{cluster1 + "/" + canary.Name}; !reflect.DeepEqual(got, want) {
		t.Errorf("cluster-local canary endpoints = %v, want %v", got, want)
	}

	if err := local.CoreV1().ConfigMaps(MeshConfigNamespace).Delete(t.Context(), MeshConfigName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, topo, "the canary host is mesh-wide again", func() bool {
		return len(topo.Endpoints(canaryKey)) == 2
	})
}
