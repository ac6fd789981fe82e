package status

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
)

func TestPickOne(t *testing.T) {
	t.Parallel()
	fr := func(ns, name string) client.Object {
		return &v1alpha1.FleetRollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	hub := func(objs ...client.Object) client.Reader {
		return fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(objs...).Build()
	}
	ctx := context.Background()
	if got, err := pickOne(ctx, hub(), "lockstep", true); got != nil || err != nil {
		t.Errorf("none: %v, %v; want nothing (clusters read directly)", got, err)
	}
	if got, err := pickOne(ctx, hub(fr("team-a", "checkout")), "lockstep", true); err != nil || got == nil || got.Name != "checkout" {
		t.Errorf("one, in another namespace: %v, %v; want it", got, err)
	}
	_, err := pickOne(ctx, hub(fr("lockstep", "helloworld"), fr("team-a", "checkout")), "lockstep", true)
	if err == nil || !strings.Contains(err.Error(), "2 FleetRollouts on the hub (lockstep/helloworld, team-a/checkout): name one") {
		t.Errorf("several: err = %v", err)
	}
	if got, err := pickOne(ctx, hub(fr("lockstep", "helloworld"), fr("team-a", "checkout")), "team-a", false); err != nil || got == nil || got.Name != "checkout" {
		t.Errorf("-n team-a: %v, %v; want the one there", got, err)
	}
}
