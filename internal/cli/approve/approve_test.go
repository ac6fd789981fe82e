package approve

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"lockstep.dev/lockstep/api/v1alpha1"
)

func TestApprove(t *testing.T) {
	t.Parallel()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	fr := &v1alpha1.FleetRollout{ObjectMeta: metav1.ObjectMeta{Namespace: "lockstep", Name: "helloworld"},
		Spec:   v1alpha1.FleetRolloutSpec{Waves: []v1alpha1.Wave{{Name: "first"}, {Name: "rest", Approval: "Required"}}},
		Status: v1alpha1.FleetRolloutStatus{Fleet: v1alpha1.FleetState{Revision: "6d4f"}}}
	alice := func(context.Context) (string, error) { return "alice", nil }
	ctx := context.Background()
	for _, bad := range []struct{ wave, revision, want string }{
		{"nope", "", `--wave "nope": lockstep/helloworld has no such wave (spec.waves: first, rest)`},
		{"first", "", `--wave "first": the wave needs no approval`},
	} {
		hub := fake.NewClientBuilder().WithScheme(scheme).Build()
		if _, err := Approve(ctx, hub, alice, fr, Gate{Wave: bad.wave}, bad.revision); err == nil || !strings.Contains(err.Error(), bad.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("wave %q: err %v, want one line with %q", bad.wave, err, bad.want)
		}
		var list v1alpha1.FleetApprovalList
		if err := hub.List(ctx, &list); err != nil || len(list.Items) != 0 {
			t.Errorf("wave %q: bad input created %d approvals", bad.wave, len(list.Items))
		}
	}
	noRev := fr.DeepCopy()
	noRev.Status.Fleet.Revision = ""
	if _, err := Approve(ctx, fake.NewClientBuilder().WithScheme(scheme).Build(), alice, noRev, Gate{Wave: "rest"}, ""); err == nil || !strings.Contains(err.Error(), "--revision") {
		t.Errorf("no revision: %v", err)
	}

	hub := fake.NewClientBuilder().WithScheme(scheme).Build()
	a, err := Approve(ctx, hub, alice, fr, Gate{Wave: "rest"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var got v1alpha1.FleetApproval
	if err := hub.Get(ctx, client.ObjectKeyFromObject(a), &got); err != nil {
		t.Fatal(err)
	}
	if got.Spec != (v1alpha1.FleetApprovalSpec{FleetRollout: "helloworld", Revision: "6d4f", Wave: "rest", Approver: "alice"}) || !strings.HasPrefix(got.Name, "helloworld-rest-") {
		t.Errorf("approval %s: %+v", got.Name, got.Spec)
	}
}

func TestApproveBarrier(t *testing.T) {
	t.Parallel()
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	fr := &v1alpha1.FleetRollout{ObjectMeta: metav1.ObjectMeta{Namespace: "lockstep", Name: "helloworld"},
		Spec: v1alpha1.FleetRolloutSpec{Hold: v1alpha1.Hold{Steps: []v1alpha1.StepHold{
			{Step: 1, Name: "smoke"}, {Step: 3, Name: "prod-gate", Approval: "Required"}}}},
		Status: v1alpha1.FleetRolloutStatus{Fleet: v1alpha1.FleetState{Revision: "6d4f"}}}
	alice := func(context.Context) (string, error) { return "alice", nil }
	ctx := context.Background()
	for _, bad := range []struct{ barrier, want string }{
		{"nope", `--barrier "nope": lockstep/helloworld has no such barrier (spec.hold.steps[].name: smoke, prod-gate)`},
		{"smoke", `--barrier "smoke": the barrier needs no approval (its approval is not Required)`},
	} {
		hub := fake.NewClientBuilder().WithScheme(scheme).Build()
		if _, err := Approve(ctx, hub, alice, fr, Gate{Barrier: bad.barrier}, ""); err == nil || err.Error() != bad.want {
			t.Errorf("barrier %q: err %v, want %q", bad.barrier, err, bad.want)
		}
	}
	hub := fake.NewClientBuilder().WithScheme(scheme).Build()
	a, err := Approve(ctx, hub, alice, fr, Gate{Barrier: "prod-gate"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Spec != (v1alpha1.FleetApprovalSpec{FleetRollout: "helloworld", Revision: "6d4f", Barrier: "prod-gate", Approver: "alice"}) {
		t.Errorf("approval %+v", a.Spec)
	}
}

func TestAwaiting(t *testing.T) {
	t.Parallel()
	three := int32(3)
	fr := &v1alpha1.FleetRollout{ObjectMeta: metav1.ObjectMeta{Namespace: "lockstep", Name: "helloworld"},
		Spec: v1alpha1.FleetRolloutSpec{
			Waves: []v1alpha1.Wave{{Name: "first"}, {Name: "rest", Approval: "Required"}},
			Hold:  v1alpha1.Hold{Steps: []v1alpha1.StepHold{{Step: 3, Name: "prod-gate", Approval: "Required"}}}}}
	if _, err := Awaiting(fr); err == nil || !strings.Contains(err.Error(), "awaits no approval") {
		t.Errorf("not waiting: %v", err)
	}
	fr.Status.Reason = "AwaitingApproval"
	if g, err := Awaiting(fr); err != nil || g != (Gate{Wave: "rest"}) {
		t.Errorf("at the wave: %v %v", g, err)
	}
	fr.Status.Fleet.BarrierStep = &three
	if g, err := Awaiting(fr); err != nil || g != (Gate{Barrier: "prod-gate"}) {
		t.Errorf("at the barrier: %v %v", g, err)
	}
	fr.Status.Fleet.Approvals = []v1alpha1.WaveApproval{{Barrier: "prod-gate"}, {Wave: "rest"}}
	if _, err := Awaiting(fr); err == nil {
		t.Error("everything approved, still awaiting something")
	}
}
