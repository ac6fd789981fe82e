package dashboard

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"lockstep.dev/lockstep/api/v1alpha1"
)

func TestStatusSourceShowsTheCoordinatorsObservation(t *testing.T) {
	t.Parallel()
	s := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	step := int32(3)
	fr := &v1alpha1.FleetRollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "lockstep", Name: "helloworld"},
		Spec:       v1alpha1.FleetRolloutSpec{Rollout: v1alpha1.RolloutReference{Namespace: "helloworld", Name: "helloworld"}},
		Status: v1alpha1.FleetRolloutStatus{Phase: v1alpha1.PhaseHolding, Members: []v1alpha1.MemberStatus{
			{Name: "argo-rollout1", Reachable: true, Step: &step, Weights: &v1alpha1.Weights{Stable: 70, Canary: 30}},
			{Name: "argo-rollout2", Reachable: false, Error: "dial tcp 127.0.0.1:1: connection refused"},
		}},
	}
	hub := fake.NewClientBuilder().WithScheme(s).WithObjects(fr).Build()
	src := StatusSource{Hub: hub}

	entries, err := src.Index(context.Background())
	if err != nil || len(entries) != 1 || entries[0].Ref != FleetRolloutRef("lockstep", "helloworld") || entries[0].Phase != "Holding" {
		t.Fatalf("index %+v %v", entries, err)
	}
	f, err := src.Open(FleetRolloutRef("lockstep", "helloworld"))
	if err != nil {
		t.Fatal(err)
	}
	p := f.Refresh(context.Background())
	if p.Err != nil || len(p.Fleet.Clusters) != 2 {
		t.Fatalf("%+v", p)
	}
	one, two := p.Fleet.Clusters[0], p.Fleet.Clusters[1]
	if w, ok := canaryWeight(one); !one.Reachable || !ok || w != 30 {
		t.Errorf("argo-rollout1 %+v", one)
	}
	if two.Reachable || !strings.Contains(two.Error, "connection refused") {
		t.Errorf("argo-rollout2 %+v", two)
	}
	if _, err := f.Act(context.Background(), "abort"); err != ErrReadOnly {
		t.Errorf("act: %v", err)
	}
	missing, _ := src.Open(FleetRolloutRef("lockstep", "nope"))
	if p := missing.Refresh(context.Background()); !p.NotFound || !strings.Contains(p.Err.Error(), "lockstep/nope not found") {
		t.Errorf("missing: %+v", p)
	}
	if _, err := src.Open(RolloutRef("helloworld", "helloworld")); err == nil {
		t.Error("the coordinator's source opened a Rollout page")
	}
}
