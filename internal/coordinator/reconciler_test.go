package coordinator

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/fleet"
	"lockstep.dev/lockstep/internal/rollouts"
)

// journal records the order of writes across the hub and the members.
type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.entries = append(j.entries, s)
}

func (j *journal) String() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return strings.Join(j.entries, ", ")
}

// fakeClusters serves fake dynamic clients; a member in down is not
// connected.
type fakeClusters struct {
	clients map[string]*dynamicfake.FakeDynamicClient
	down    map[string]bool
}

func (f *fakeClusters) Update([]fleet.Member) error { return nil }

func (f *fakeClusters) Client(_ context.Context, name string) (dynamic.Interface, error) {
	c, ok := f.clients[name]
	if !ok || f.down[name] {
		return nil, &fleet.NotConnectedError{Cluster: name, Err: errors.New("down")}
	}
	return c, nil
}

func (f *fakeClusters) Watch(string, schema.GroupVersionResource, string) error { return nil }

// pausedRollout is a Rollout of revision r2 paused at pause step 1.
func pausedRollout() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": "hw", "namespace": "app", "generation": int64(2)},
		"spec": map[string]any{"strategy": map[string]any{"canary": map[string]any{"steps": []any{
			map[string]any{"setWeight": int64(20)}, map[string]any{"pause": map[string]any{}},
			map[string]any{"setWeight": int64(50)}, map[string]any{"pause": map[string]any{}},
		}}}},
		"status": map[string]any{
			"observedGeneration": "2", "currentPodHash": "r2", "stableRS": "r1", "currentStepIndex": int64(1),
			"controllerPause": true, "phase": "Paused",
			"pauseConditions": []any{map[string]any{"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:00:00Z"}},
		},
	}}
}

func clusterSecret(name string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "member-" + name, Namespace: "lockstep-system", Labels: map[string]string{fleet.LockstepSecretTypeLabel: fleet.SecretTypeCluster}},
		Data:       map[string][]byte{"name": []byte(name), "server": []byte("https://" + name + ":6443"), "config": []byte(`{"bearerToken":"t"}`)},
	}
}

type fixture struct {
	r        *Reconciler
	hub      client.Client
	clusters *fakeClusters
	journal  *journal
}

// newFixture builds a reconciler whose hub holds fr and two cluster
// Secrets, and whose members a and b both run pausedRollout. hubFuncs can
// intercept hub writes.
func newFixture(t *testing.T, fr *v1alpha1.FleetRollout, hubFuncs interceptor.Funcs) *fixture {
	t.Helper()
	j := &journal{}
	scheme := Scheme()
	inner := hubFuncs.SubResourceUpdate
	hubFuncs.SubResourceUpdate = func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
		if inner != nil {
			if err := inner(ctx, c, sub, obj, opts...); err != nil {
				j.add("status-write-failed")
				return err
			}
		}
		j.add("status")
		return c.SubResource(sub).Update(ctx, obj, opts...)
	}
	hub := fake.NewClientBuilder().WithScheme(scheme).
		WithObjects(fr, clusterSecret("a"), clusterSecret("b")).
		WithStatusSubresource(&v1alpha1.FleetRollout{}).
		WithInterceptorFuncs(hubFuncs).Build()
	fc := &fakeClusters{clients: map[string]*dynamicfake.FakeDynamicClient{}, down: map[string]bool{}}
	for _, name := range []string{"a", "b"} {
		dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
			map[schema.GroupVersionResource]string{rollouts.RolloutGVR: "RolloutList"}, pausedRollout())
		dyn.PrependReactor("patch", "rollouts", func(a k8stesting.Action) (bool, runtime.Object, error) {
			j.add("patch:" + name + "/" + a.GetSubresource())
			return false, nil, nil
		})
		fc.clients[name] = dyn
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r := &Reconciler{Client: hub, Clusters: fc, Secrets: fleet.LockstepSecrets(""), Now: func() time.Time { return now }, Resync: time.Hour}
	return &fixture{r: r, hub: hub, clusters: fc, journal: j}
}

func fleetRollout(mods ...func(*v1alpha1.FleetRollout)) *v1alpha1.FleetRollout {
	fr := &v1alpha1.FleetRollout{
		ObjectMeta: metav1.ObjectMeta{Name: "fr", Namespace: "default", Generation: 1},
		Spec: v1alpha1.FleetRolloutSpec{
			Rollout: v1alpha1.RolloutReference{Namespace: "app", Name: "hw"},
			Members: v1alpha1.Members{Names: []string{"a", "b"}},
			Hold:    v1alpha1.Hold{Default: &metav1.Duration{}},
		},
	}
	for _, m := range mods {
		m(fr)
	}
	return fr
}

func (f *fixture) reconcile(t *testing.T) (ctrl.Result, error) {
	t.Helper()
	return f.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: client.ObjectKey{Namespace: "default", Name: "fr"}})
}

func (f *fixture) get(t *testing.T) *v1alpha1.FleetRollout {
	t.Helper()
	var fr v1alpha1.FleetRollout
	if err := f.hub.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "fr"}, &fr); err != nil {
		t.Fatal(err)
	}
	return &fr
}

func TestReconcilePersistsBeforePatching(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fleetRollout(), interceptor.Funcs{})
	if _, err := f.reconcile(t); err != nil {
		t.Fatal(err)
	}
	got := f.journal.String()
	if !strings.HasPrefix(got, "status, ") || !strings.Contains(got, "patch:a/status") || !strings.Contains(got, "patch:b/status") {
		t.Fatalf("writes = %q; want the status first, then a status patch to each member", got)
	}
	fr := f.get(t)
	if lp := fr.Status.Fleet.LastPromotedStep; lp == nil || *lp != 1 {
		t.Errorf("lastPromotedStep = %v; want 1", lp)
	}
	if fr.Status.Phase != v1alpha1.PhasePromoting || fr.Status.ObservedGeneration != 1 {
		t.Errorf("phase %s, observedGeneration %d", fr.Status.Phase, fr.Status.ObservedGeneration)
	}
	// The members have applied the promotion (pause conditions removed by
	// the JSON patch); a second reconcile must not promote again.
	before := f.journal.String()
	if _, err := f.reconcile(t); err != nil {
		t.Fatal(err)
	}
	if after := f.journal.String(); strings.Count(after, "patch:") != strings.Count(before, "patch:") {
		t.Errorf("second reconcile patched again: %q", after)
	}
}

func TestReconcileConflictSendsNoPatch(t *testing.T) {
	t.Parallel()
	conflict := interceptor.Funcs{SubResourceUpdate: func(context.Context, client.Client, string, client.Object, ...client.SubResourceUpdateOption) error {
		return apierrors.NewConflict(schema.GroupResource{Group: "lockstep.dev", Resource: "fleetrollouts"}, "fr", errors.New("stale"))
	}}
	f := newFixture(t, fleetRollout(), conflict)
	res, err := f.reconcile(t)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Requeue { //nolint:staticcheck // Requeue is what the reconciler returns on a conflict.
		t.Errorf("result %+v; want a requeue", res)
	}
	if got := f.journal.String(); strings.Contains(got, "patch:") {
		t.Errorf("writes = %q; a decision that was not persisted must not be applied", got)
	}
}

func TestReconcileRefusesUnknownMember(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fleetRollout(func(fr *v1alpha1.FleetRollout) { fr.Spec.Members.Names = []string{"a", "zz"} }), interceptor.Funcs{})
	if _, err := f.reconcile(t); err != nil {
		t.Fatal(err)
	}
	if got := f.journal.String(); got != "status" {
		t.Errorf("writes = %q; want only the status", got)
	}
	c := meta.FindStatusCondition(f.get(t).Status.Conditions, v1alpha1.ConditionValid)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonUnknownMember || !strings.Contains(c.Message, "zz") {
		t.Errorf("Valid condition = %+v", c)
	}
}

func TestReconcileUnreachableMemberHolds(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fleetRollout(), interceptor.Funcs{})
	f.clusters.down["b"] = true
	res, err := f.reconcile(t)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.journal.String(); got != "status" {
		t.Errorf("writes = %q; want no patch while b is unreachable", got)
	}
	fr := f.get(t)
	var b *v1alpha1.MemberStatus
	for i := range fr.Status.Members {
		if fr.Status.Members[i].Name == "b" {
			b = &fr.Status.Members[i]
		}
	}
	if b == nil || b.Reachable || b.UnreachableSince == nil || !strings.Contains(b.Error, "cluster b not connected") {
		t.Fatalf("member b status = %+v", b)
	}
	// The default deadline is 2m: the decision asks to look again just
	// after it.
	if want := defaultUnreachableDeadline + time.Second; res.RequeueAfter != want {
		t.Errorf("requeue after %s; want %s", res.RequeueAfter, want)
	}
	// Past the deadline (the outage start is kept in status), the fleet
	// aborts the reachable member.
	later := f.r.Now().Add(defaultUnreachableDeadline + 2*time.Second)
	f.r.Now = func() time.Time { return later }
	if _, err := f.reconcile(t); err != nil {
		t.Fatal(err)
	}
	fr = f.get(t)
	if !fr.Status.Fleet.Aborted || fr.Status.Fleet.AbortReason != "UnreachableDeadlineExceeded" {
		t.Errorf("fleet = %+v", fr.Status.Fleet)
	}
	if got := f.journal.String(); !strings.Contains(got, "patch:a/status") || strings.Contains(got, "patch:b") {
		t.Errorf("writes = %q; want an abort patch to a only", got)
	}
}
