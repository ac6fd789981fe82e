package istio

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sort"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/provider"
	"lockstep.dev/lockstep/internal/lab/sources"
)

func TestActionsOrder(t *testing.T) {
	t.Parallel()
	var got []string
	for _, a := range Actions() {
		got = append(got, a.Name())
		if a.Description() == "" {
			t.Errorf("%s has no description", a.Name())
		}
	}
	want := []string{"istio-certs", "istio-control-planes", "istio-gateways", "istio-remote-secrets", "istio-verify-sample"}
	if !slices.Equal(got, want) {
		t.Errorf("actions %v, want %v", got, want)
	}
}

func TestSampleObjects(t *testing.T) {
	t.Parallel()
	read := func(p string) []*unstructured.Unstructured {
		b, err := sources.DefaultResolver().ReadFile(context.Background(), sources.Istio, p)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := kube.DecodeYAML(b)
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	hello, curl := read(helloworldManifest), read(curlManifest)
	for _, tc := range []struct {
		workload int
		want     []string
	}{
		{0, []string{"Deployment/curl", "Deployment/helloworld-v1", "Namespace/sample", "Service/curl", "Service/helloworld", "ServiceAccount/curl"}},
		{1, []string{"Deployment/curl", "Deployment/helloworld-v2", "Namespace/sample", "Service/curl", "Service/helloworld", "ServiceAccount/curl"}},
		{2, []string{"Deployment/curl", "Deployment/helloworld-v1", "Namespace/sample", "Service/curl", "Service/helloworld", "ServiceAccount/curl"}},
	} {
		t.Run(sampleVersion(tc.workload), func(t *testing.T) {
			t.Parallel()
			objs := sampleObjects(hello, curl, sampleVersion(tc.workload))
			var got []string
			for _, o := range objs {
				got = append(got, o.GetKind()+"/"+o.GetName())
				if o.GetKind() != "Namespace" && o.GetNamespace() != SampleNamespace {
					t.Errorf("%s %s in namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
				}
				if o.GetKind() == "Namespace" && o.GetLabels()["istio-injection"] != "enabled" {
					t.Errorf("namespace labels %v, want istio-injection=enabled", o.GetLabels())
				}
			}
			sort.Strings(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("objects %v, want %v", got, tc.want)
			}
		})
	}
	if hello[0].GetNamespace() != "" {
		t.Error("sampleObjects changed the manifests it was given")
	}
}

func TestJudge(t *testing.T) {
	t.Parallel()
	v1 := "Hello version: v1, instance: helloworld-v1-6d65866976-jb6qc\n"
	v2 := "Hello version: v2, instance: helloworld-v2-7d4b9b8d5b-8xhtt\n"
	boom := errors.New("curl: (7) Failed to connect")
	for _, tc := range []struct {
		name     string
		outs     []string
		errs     []error
		status   ReachabilityStatus
		versions map[string]int
		missing  []string
		failures int
	}{
		{"both versions", []string{v1, v2, v1}, []error{nil, nil, nil}, Reachable, map[string]int{"v1": 2, "v2": 1}, nil, 0},
		{"only the local version", []string{v1, v1, v1}, []error{nil, nil, nil}, Unreachable, map[string]int{"v1": 3}, []string{"v2"}, 0},
		{"errors do not count", []string{v1, "", v2}, []error{nil, boom, nil}, Reachable, map[string]int{"v1": 1, "v2": 1}, nil, 1},
		{"an answer without a version is no pass", []string{"upstream connect error", v1}, []error{nil, nil}, Unreachable, map[string]int{"v1": 1}, []string{"v2"}, 1},
		{"nothing answered", []string{"", ""}, []error{boom, boom}, Unreachable, map[string]int{}, []string{"v1", "v2"}, 2},
		{"no request", nil, nil, Unreachable, map[string]int{}, []string{"v1", "v2"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := judge(Reachability{Cluster: "argo-rollout1"}, tc.outs, tc.errs, []string{"v1", "v2"})
			if r.Status != tc.status {
				t.Errorf("status %s, want %s (%s)", r.Status, tc.status, r)
			}
			if !reflect.DeepEqual(r.Versions, tc.versions) {
				t.Errorf("versions %v, want %v", r.Versions, tc.versions)
			}
			if !slices.Equal(r.Missing, tc.missing) {
				t.Errorf("missing %v, want %v", r.Missing, tc.missing)
			}
			if r.Failures != tc.failures || r.Attempts != len(tc.outs) {
				t.Errorf("%d failures of %d attempts, want %d of %d", r.Failures, r.Attempts, tc.failures, len(tc.outs))
			}
		})
	}
}

func TestCheckReachabilitySimulated(t *testing.T) {
	t.Parallel()
	cl := &install.Cluster{Cluster: provider.Cluster{Name: "argo-rollout1"}, DataPlane: install.DataPlaneSimulated}
	r := CheckReachability(context.Background(), cl, ReachOptions{})
	if r.Status != Unverifiable || r.Err == nil || r.Attempts != 0 {
		t.Errorf("got %+v, want Unverifiable with a reason and no request", r)
	}
	if r.Status == Reachable {
		t.Error("a simulated data plane passed")
	}
}
