package meshsim

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestVersionFromImage(t *testing.T) {
	t.Parallel()
	tests := []struct{ image, want string }{
		{"docker.io/istio/examples-helloworld-v2", "v2"},
		{"docker.io/istio/examples-helloworld-v1:1.0", "v1"},
		{"docker.io/istio/examples-helloworld-v1:latest", "v1"},
		{"docker.io/istio/examples-helloworld:v3", "v3"},
		{"example.com/helloworld-v1:v3", "v3"},
		{"localhost:5000/examples-helloworld-v4", "v4"},
		{"localhost:5000/examples-helloworld:v5", "v5"},
		{"docker.io/istio/examples-helloworld-v2@sha256:0123abcd", "v2"},
		{"helloworld-v12", "v12"},
		{"docker.io/istio/examples-helloworld", ""},
		{"docker.io/istio/examples-helloworld:1.0", ""},
		{"docker.io/istio/examples-helloworld-vx", ""},
		{"docker.io/istio/examples-helloworld-v", ""},
		{"registry-v2.example.com/app", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			t.Parallel()
			if got := VersionFromImage(tt.image); got != tt.want {
				t.Fatalf("VersionFromImage(%q) = %q, want %q", tt.image, got, tt.want)
			}
		})
	}
}

func TestPodVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		pod  corev1.Pod
		want string
	}{
		{"label wins over image", pod("p", map[string]string{"version": "v9"}, "docker.io/istio/examples-helloworld-v2"), "v9"},
		{"image name", pod("p", nil, "docker.io/istio/examples-helloworld-v2"), "v2"},
		{"image tag", pod("p", nil, "docker.io/istio/examples-helloworld:v3"), "v3"},
		{"nothing to go by", pod("p", nil, "nginx"), "unknown"},
		{"no containers", corev1.Pod{}, "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := PodVersion(&tt.pod); got != tt.want {
				t.Fatalf("PodVersion() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWorkloadName(t *testing.T) {
	t.Parallel()
	owned := func(kind, name string, controller bool, labels map[string]string) *corev1.Pod {
		p := pod("helloworld-6d8f9c7b5-x2x4z", labels, "img")
		p.OwnerReferences = []metav1.OwnerReference{{Kind: kind, Name: name, Controller: ptrTo(controller)}}
		return &p
	}
	tests := []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"rollout replicaset", owned("ReplicaSet", "helloworld-6d8f9c7b5", true, map[string]string{"rollouts-pod-template-hash": "6d8f9c7b5"}), "helloworld"},
		{"deployment replicaset", owned("ReplicaSet", "helloworld-v1-5c7f", true, map[string]string{"pod-template-hash": "5c7f"}), "helloworld-v1"},
		{"replicaset without hash label keeps its name", owned("ReplicaSet", "helloworld-6d8f9c7b5", true, nil), "helloworld-6d8f9c7b5"},
		{"hash label that is not the suffix", owned("ReplicaSet", "helloworld-abc", true, map[string]string{"rollouts-pod-template-hash": "zzz"}), "helloworld-abc"},
		{"statefulset", owned("StatefulSet", "db", true, nil), "db"},
		{"non-controller owner ignored", owned("ReplicaSet", "helloworld-6d8f9c7b5", false, nil), "helloworld-6d8f9c7b5-x2x4z"},
		{"bare pod", ptrTo(pod("lonely", nil, "img")), "lonely"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := WorkloadName(tt.pod); got != tt.want {
				t.Fatalf("WorkloadName() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseFault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		annotations map[string]string
		want        Fault
		problems    []string
	}{
		{name: "none", annotations: nil},
		{name: "both", annotations: map[string]string{AnnotationErrorRate: "0.3", AnnotationLatency: "150ms"}, want: Fault{ErrorRate: 0.3, Latency: 150 * time.Millisecond}},
		{name: "spaces tolerated", annotations: map[string]string{AnnotationErrorRate: " 1 ", AnnotationLatency: " 2s"}, want: Fault{ErrorRate: 1, Latency: 2 * time.Second}},
		{name: "zero", annotations: map[string]string{AnnotationErrorRate: "0", AnnotationLatency: "0s"}},
		{name: "rate not a number", annotations: map[string]string{AnnotationErrorRate: "30%", AnnotationLatency: "1ms"}, want: Fault{Latency: time.Millisecond}, problems: []string{"error-rate", "not a number"}},
		{name: "rate above one", annotations: map[string]string{AnnotationErrorRate: "1.5"}, problems: []string{"between 0 and 1"}},
		{name: "rate negative", annotations: map[string]string{AnnotationErrorRate: "-0.1"}, problems: []string{"between 0 and 1"}},
		{name: "rate NaN", annotations: map[string]string{AnnotationErrorRate: "NaN"}, problems: []string{"between 0 and 1"}},
		{name: "latency without unit", annotations: map[string]string{AnnotationLatency: "150", AnnotationErrorRate: "0.5"}, want: Fault{ErrorRate: 0.5}, problems: []string{"latency", "not a duration"}},
		{name: "latency negative", annotations: map[string]string{AnnotationLatency: "-1s"}, problems: []string{"negative"}},
		{name: "both bad", annotations: map[string]string{AnnotationLatency: "soon", AnnotationErrorRate: "high"}, problems: []string{"error-rate", "latency"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, problems := ParseFault(tt.annotations)
			if got != tt.want {
				t.Errorf("ParseFault() fault = %+v, want %+v", got, tt.want)
			}
			var text []string
			for _, p := range problems {
				text = append(text, p.Error())
			}
			joined := strings.Join(text, "\n")
			for _, want := range tt.problems {
				if !strings.Contains(joined, want) {
					t.Errorf("ParseFault() problems %q lack %q", joined, want)
				}
			}
			if len(tt.problems) == 0 && len(problems) > 0 {
				t.Errorf("ParseFault() unexpected problems %q", joined)
			}
		})
	}
}

func TestEndpointFromPod(t *testing.T) {
	t.Parallel()
	p := pod("helloworld-6d8f9c7b5-x2x4z", map[string]string{"app": "helloworld", "rollouts-pod-template-hash": "6d8f9c7b5"}, "docker.io/istio/examples-helloworld-v2")
	p.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "helloworld-6d8f9c7b5", Controller: ptrTo(true)}}
	p.Annotations = map[string]string{AnnotationErrorRate: "0.25", AnnotationLatency: "oops"}
	p.Spec.ServiceAccountName = "hello"
	svc := ServiceKey{"helloworld", "helloworld-canary"}
	got, problems := EndpointFromPod("argo-rollout2", svc, "10.0.0.7", &p)
	want := Endpoint{
		Cluster: "argo-rollout2", Pod: "helloworld-6d8f9c7b5-x2x4z", Namespace: "helloworld", Service: "helloworld-canary",
		IP: "10.0.0.7", Version: "v2", Workload: "helloworld", App: "helloworld", ServiceAccount: "hello",
		CanonicalService: "helloworld", CanonicalRevision: "latest", ErrorRate: 0.25,
	}
	if got != want {
		t.Fatalf("EndpointFromPod() =\n%+v\nwant\n%+v", got, want)
	}
	if len(problems) != 1 || !strings.Contains(problems[0].Error(), AnnotationLatency) {
		t.Fatalf("problems = %v, want one about %s", problems, AnnotationLatency)
	}
	peer := got.Peer()
	if peer.Principal != "spiffe://cluster.local/ns/helloworld/sa/hello" || peer.Cluster != "argo-rollout2" || peer.Workload != "helloworld" {
		t.Fatalf("Peer() = %+v", peer)
	}
	if _, problems := EndpointFromPod("c", svc, "", nil); len(problems) == 0 {
		t.Fatal("EndpointFromPod(nil) reported no problem")
	}
}

func TestEndpointsFromSlices(t *testing.T) {
	t.Parallel()
	svc := ServiceKey{"helloworld", "helloworld"}
	pods := map[string]*corev1.Pod{}
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		p := pod(name, map[string]string{"version": "v1"}, "img")
		pods[name] = &p
	}
	lookup := func(name string) (*corev1.Pod, bool) { p, ok := pods[name]; return p, ok }
	ep := func(ip, pod string, ready *bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{
			Addresses:  []string{ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ready},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Name: pod, Namespace: "helloworld"},
		}
	}
	slice := func(name, service string, addrType discoveryv1.AddressType, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Name: name, Namespace: "helloworld", Labels: map[string]string{discoveryv1.LabelServiceName: service}},
			AddressType: addrType,
			Endpoints:   eps,
		}
	}
	noTarget := ep("10.0.0.9", "x", nil)
	noTarget.TargetRef = nil
	noAddress := ep("", "e", nil)
	noAddress.Addresses = nil
	input := []*discoveryv1.EndpointSlice{
		slice("s1", "helloworld", discoveryv1.AddressTypeIPv4,
			ep("10.0.0.3", "c", ptrTo(true)),
			ep("10.0.0.1", "a", nil), // a nil condition means ready
			ep("10.0.0.2", "b", ptrTo(false)),
			ep("10.0.0.8", "ghost", ptrTo(true)), // pod not in cache
			noTarget,
			noAddress,
		),
		// The same address in a second slice, as during a slice rebalance.
		slice("s2", "helloworld", discoveryv1.AddressTypeIPv4, ep("10.0.0.3", "c", ptrTo(true)), ep("fd00::4", "d", ptrTo(true))),
		slice("s3", "helloworld-canary", discoveryv1.AddressTypeIPv4, ep("10.0.0.5", "e", ptrTo(true))),
		slice("s4", "helloworld", discoveryv1.AddressTypeFQDN, ep("e.example", "e", ptrTo(true))),
		nil,
	}
	got := EndpointsFromSlices("argo-rollout1", svc, input, lookup)
	var names []string
	for _, e := range got {
		names = append(names, e.Pod+"@"+e.IP)
		if e.Cluster != "argo-rollout1" || e.Service != "helloworld" || e.Version != "v1" {
			t.Errorf("endpoint %+v has wrong cluster, service or version", e)
		}
	}
	want := []string{"a@10.0.0.1", "c@10.0.0.3", "d@fd00::4"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("EndpointsFromSlices() = %v, want %v", names, want)
	}
}

// pod returns a pod in namespace helloworld with one container.
func pod(name string, labels map[string]string, image string) corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "helloworld", Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "helloworld", Image: image}}},
	}
}

func ptrTo[T any](v T) *T { return &v }
