package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"lockstep.dev/lockstep/internal/lab/provider"
)

// calls records the order in which fake actions ran.
type calls struct{ names []string }

// fakeAction is an Action that records its call, creates one Secret on the
// hub through EnsureSecret (so its counts go through the real bookkeeping)
// unless noop, and then fails with err when set.
type fakeAction struct {
	name  string
	err   error
	noop  bool
	calls *calls
	// phase, when set, receives the phase the state ConfigMap gives this
	// action while it executes.
	phase *string
}

func (a fakeAction) Name() string        { return a.name }
func (a fakeAction) Description() string { return "the " + a.name + " step" }

func (a fakeAction) Execute(c *Context) error {
	a.calls.names = append(a.calls.names, a.name)
	if a.phase != nil {
		st, err := ReadState(c)
		if err != nil {
			return err
		}
		*a.phase = st[a.name].Phase
	}
	if !a.noop {
		_, err := c.EnsureSecret(c.Hub, "fake-actions", a.name, nil, func() (map[string][]byte, error) {
			return map[string][]byte{"k": []byte(a.name)}, nil
		})
		if err != nil {
			return err
		}
	}
	return a.err
}

func testContext(t *testing.T, objs ...runtime.Object) (*Context, *bytes.Buffer) {
	t.Helper()
	out := &bytes.Buffer{}
	return &Context{
		Context: t.Context(),
		Hub:     &Cluster{Cluster: provider.Cluster{Name: "hub", Role: provider.RoleHub}, Kube: fake.NewClientset(objs...)},
		Out:     out,
	}, out
}

func actions(rec *calls, names ...string) []Action {
	out := make([]Action, 0, len(names))
	for _, n := range names {
		out = append(out, fakeAction{name: n, calls: rec})
	}
	return out
}

func mustState(t *testing.T, c *Context) map[string]ActionState {
	t.Helper()
	st, err := ReadState(c)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRunRecordsEveryActionInOrder(t *testing.T) {
	t.Parallel()
	c, out := testContext(t)
	rec := &calls{}
	var phase string
	acts := actions(rec, "a", "b", "c")
	acts[1] = fakeAction{name: "b", calls: rec, phase: &phase}

	res, err := Run(c, acts, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(rec.names, want) {
		t.Errorf("ran %v, want %v", rec.names, want)
	}
	if phase != PhaseRunning {
		t.Errorf("state during Execute = %q, want %q", phase, PhaseRunning)
	}
	if len(res) != 3 {
		t.Fatalf("got %d results, want 3: %+v", len(res), res)
	}
	st := mustState(t, c)
	for i, n := range []string{"a", "b", "c"} {
		if res[i].Action != n || res[i].Skipped {
			t.Errorf("result %d = %+v, want %s run", i, res[i], n)
		}
		if res[i].Counts.Created != 1 || !slices.Equal(res[i].Counts.Touched, []string{"Secret/fake-actions/" + n}) {
			t.Errorf("result %s counts = %+v, want the one Secret created", n, res[i].Counts)
		}
		s := st[n]
		if s.Phase != PhaseDone || s.Counts.Created != 1 || s.Counts.Changed != 0 || s.Counts.Unchanged != 0 {
			t.Errorf("state %s = %+v, want Done with 1 created", n, s)
		}
		if s.Counts.Touched != nil {
			t.Errorf("state %s keeps Touched %v: the state must not list objects", n, s.Counts.Touched)
		}
		if s.Started.IsZero() || s.Finished.Before(s.Started) || s.Message != "" {
			t.Errorf("state %s = %+v, want started, finished and no message", n, s)
		}
		if !strings.Contains(out.String(), fmt.Sprintf("[%d/3] the %s step", i+1, n)) {
			t.Errorf("output lacks the progress line of %s:\n%s", n, out)
		}
	}
	cm, err := c.Hub.Kube.CoreV1().ConfigMaps(StateNamespace).Get(c, StateConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Labels["app.kubernetes.io/managed-by"] != "lockstep" {
		t.Errorf("state ConfigMap labels = %v, want managed-by lockstep", cm.Labels)
	}

	// A second run changes nothing and says so.
	rec.names = nil
	res, err = Run(c, acts, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Counts.Created != 0 || r.Counts.Unchanged != 1 || len(r.Counts.Touched) != 0 {
			t.Errorf("second run of %s counted %+v, want 1 unchanged", r.Action, r.Counts)
		}
	}
	if s := mustState(t, c)["b"]; s.Counts.Unchanged != 1 || s.Counts.Created != 0 {
		t.Errorf("state b after the second run = %+v, want 1 unchanged", s)
	}
}

func TestRunStopsAtFailureAndResumes(t *testing.T) {
	t.Parallel()
	c, out := testContext(t)
	rec := &calls{}
	boom := errors.New("boom\nsecond line")
	acts := actions(rec, "a", "b", "c")
	acts[1] = fakeAction{name: "b", calls: rec, err: boom}

	res, err := Run(c, acts, RunOptions{})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want it to wrap %v", err, boom)
	}
	if !strings.HasPrefix(err.Error(), "b: ") {
		t.Errorf("err = %q, want it to name action b", err)
	}
	if want := []string{"a", "b"}; !slices.Equal(rec.names, want) {
		t.Errorf("ran %v, want %v (nothing after the failure)", rec.names, want)
	}
	if len(res) != 1 || res[0].Action != "a" {
		t.Errorf("results = %+v, want only a's", res)
	}
	if strings.Contains(out.String(), "the c step") {
		t.Errorf("output announces c after b failed:\n%s", out)
	}
	st := mustState(t, c)
	if st["a"].Phase != PhaseDone {
		t.Errorf("state a = %+v, want Done", st["a"])
	}
	if s := st["b"]; s.Phase != PhaseFailed || s.Message != boom.Error() || s.Finished.IsZero() || s.Counts.Created != 1 {
		t.Errorf("state b = %+v, want Failed with %q and the counts made before failing", s, boom)
	}
	if _, ok := st["c"]; ok {
		t.Errorf("state records c, which never ran: %+v", st["c"])
	}

	// Resume starts at the failed action; the earlier one is not run again.
	rec.names = nil
	acts[1] = fakeAction{name: "b", calls: rec}
	res, err = Run(c, acts, RunOptions{Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"b", "c"}; !slices.Equal(rec.names, want) {
		t.Errorf("resume ran %v, want %v", rec.names, want)
	}
	if len(res) != 3 || !res[0].Skipped || res[1].Skipped || res[2].Skipped {
		t.Errorf("resume results = %+v, want a skipped, b and c run", res)
	}
	st = mustState(t, c)
	for _, n := range []string{"a", "b", "c"} {
		if st[n].Phase != PhaseDone || st[n].Message != "" {
			t.Errorf("state %s after resume = %+v, want Done without message", n, st[n])
		}
	}
	// b's Secret was made by the failed run: the resumed run found it.
	if s := st["b"]; s.Counts.Unchanged != 1 || s.Counts.Created != 0 {
		t.Errorf("state b after resume = %+v, want its Secret unchanged", s)
	}

	// Resume when everything is Done runs nothing.
	rec.names = nil
	res, err = Run(c, acts, RunOptions{Resume: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.names) != 0 {
		t.Errorf("resume of a finished pipeline ran %v", rec.names)
	}
	for _, r := range res {
		if !r.Skipped {
			t.Errorf("resume of a finished pipeline: %s not skipped", r.Action)
		}
	}
}

func TestRunResumeWithoutState(t *testing.T) {
	t.Parallel()
	c, _ := testContext(t)
	rec := &calls{}
	if _, err := Run(c, actions(rec, "a", "b"), RunOptions{Resume: true}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b"}; !slices.Equal(rec.names, want) {
		t.Errorf("resume without state ran %v, want %v", rec.names, want)
	}
}

func TestRunResumeUnreadableState(t *testing.T) {
	t.Parallel()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: StateNamespace, Name: StateConfigMap},
		Data: map[string]string{"a": "{not json"}}
	c, _ := testContext(t, cm)
	rec := &calls{}
	_, err := Run(c, actions(rec, "a", "b"), RunOptions{Resume: true})
	if err == nil || !strings.Contains(err.Error(), "install state a") {
		t.Errorf("err = %v, want the unreadable entry named", err)
	}
	if len(rec.names) != 0 {
		t.Errorf("ran %v on an unreadable state", rec.names)
	}
}

func TestRunFrom(t *testing.T) {
	t.Parallel()
	c, _ := testContext(t)
	rec := &calls{}
	res, err := Run(c, actions(rec, "a", "b", "c"), RunOptions{From: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"b", "c"}; !slices.Equal(rec.names, want) {
		t.Errorf("ran %v, want %v", rec.names, want)
	}
	if len(res) != 3 || !res[0].Skipped || res[0].Action != "a" {
		t.Errorf("results = %+v, want a skipped", res)
	}
	if _, ok := mustState(t, c)["a"]; ok {
		t.Errorf("state records the skipped action a")
	}
}

func TestRunRefusesBadOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts RunOptions
		want []string
	}{
		{"unknown from", RunOptions{From: "nope"}, []string{`"nope"`, "a, b, c"}},
		{"from and resume", RunOptions{From: "b", Resume: true}, []string{"--from", "--resume"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, out := testContext(t)
			rec := &calls{}
			res, err := Run(c, actions(rec, "a", "b", "c"), tc.opts)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to contain %q", err, w)
				}
			}
			if len(rec.names) != 0 || len(res) != 0 || out.Len() != 0 {
				t.Errorf("ran %v (results %+v, output %q), want nothing", rec.names, res, out)
			}
			if _, err := c.Hub.Kube.CoreV1().ConfigMaps(StateNamespace).Get(c, StateConfigMap, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("state ConfigMap: err = %v, want it never written", err)
			}
		})
	}
}

func TestRunDryRunRecordsNothing(t *testing.T) {
	t.Parallel()
	c, _ := testContext(t)
	c.DryRun = true
	rec := &calls{}
	acts := []Action{fakeAction{name: "a", calls: rec, noop: true}, fakeAction{name: "b", calls: rec, noop: true}}
	if _, err := Run(c, acts, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b"}; !slices.Equal(rec.names, want) {
		t.Errorf("dry run ran %v, want %v", rec.names, want)
	}
	if _, err := c.Hub.Kube.CoreV1().ConfigMaps(StateNamespace).Get(c, StateConfigMap, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("state ConfigMap: err = %v, want none written by a dry run", err)
	}
	if _, err := c.Hub.Kube.CoreV1().Namespaces().Get(c, StateNamespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("namespace %s: err = %v, want none created by a dry run", StateNamespace, err)
	}
}

func TestCountsString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		c    Counts
		want string
	}{
		{Counts{}, "0 created, 0 changed, 0 unchanged"},
		{Counts{Created: 3, Changed: 1, Unchanged: 40, Touched: []string{"x"}}, "3 created, 1 changed, 40 unchanged"},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.c, got, tc.want)
		}
	}
}

func TestDeploymentAvailable(t *testing.T) {
	t.Parallel()
	status := func(observed int64, replicas, updated, available int32) appsv1.DeploymentStatus {
		return appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: replicas, UpdatedReplicas: updated, AvailableReplicas: available}
	}
	for _, tc := range []struct {
		name     string
		replicas *int32
		gen      int64
		status   appsv1.DeploymentStatus
		want     bool
	}{
		{"all available", ptr.To[int32](2), 3, status(3, 2, 2, 2), true},
		{"controller has not seen the spec", ptr.To[int32](2), 4, status(3, 2, 2, 2), false},
		{"observed newer than generation", ptr.To[int32](2), 3, status(4, 2, 2, 2), true},
		{"one unavailable", ptr.To[int32](2), 1, status(1, 2, 2, 1), false},
		{"one not updated", ptr.To[int32](2), 1, status(1, 2, 1, 2), false},
		{"old replica still terminating", ptr.To[int32](2), 1, status(1, 3, 2, 2), false},
		{"nil replicas means one", nil, 1, status(1, 1, 1, 1), true},
		{"nil replicas, none available", nil, 1, status(1, 1, 1, 0), false},
		{"scaled to zero", ptr.To[int32](0), 1, status(1, 0, 0, 0), true},
		{"no status yet", ptr.To[int32](1), 1, appsv1.DeploymentStatus{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: tc.gen},
				Spec: appsv1.DeploymentSpec{Replicas: tc.replicas}, Status: tc.status}
			if got := DeploymentAvailable(d); got != tc.want {
				t.Errorf("DeploymentAvailable = %v, want %v", got, tc.want)
			}
		})
	}
}

func u(apiVersion, kind, namespace, name string, fields map[string]any) *unstructured.Unstructured {
	o := &unstructured.Unstructured{Object: map[string]any{}}
	for k, v := range fields {
		o.Object[k] = v
	}
	o.SetAPIVersion(apiVersion)
	o.SetKind(kind)
	o.SetName(name)
	o.SetNamespace(namespace)
	return o
}

func sa(name, namespace string) map[string]any {
	m := map[string]any{"kind": "ServiceAccount", "name": name}
	if namespace != "" {
		m["namespace"] = namespace
	}
	return m
}

func TestSetNamespace(t *testing.T) {
	t.Parallel()
	namespaced := func(o *unstructured.Unstructured) bool {
		switch o.GetKind() {
		case "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Namespace":
			return false
		}
		return true
	}
	objs := []*unstructured.Unstructured{
		u("apps/v1", "Deployment", "", "unset", nil),
		u("v1", "ServiceAccount", "upstream", "from-upstream", nil),
		u("v1", "ConfigMap", "elsewhere", "other", nil),
		u("rbac.authorization.k8s.io/v1", "ClusterRole", "", "cr", nil),
		u("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "things.example.com", nil),
		u("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", "crb", map[string]any{"subjects": []any{
			sa("moved", "upstream"),
			sa("unset", ""),
			sa("kept", "kube-system"),
			map[string]any{"kind": "User", "name": "alice", "namespace": "upstream"},
			map[string]any{"kind": "Group", "name": "devs"},
		}}),
		u("rbac.authorization.k8s.io/v1", "RoleBinding", "upstream", "rb", map[string]any{"subjects": []any{sa("moved", "upstream")}}),
		u("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", "no-subjects", nil),
	}
	SetNamespace(objs, "upstream", "target", namespaced)

	wantNS := map[string]string{
		"Deployment/unset": "target", "ServiceAccount/from-upstream": "target", "ConfigMap/other": "target",
		"ClusterRole/cr": "", "CustomResourceDefinition/things.example.com": "", "ClusterRoleBinding/crb": "",
		"RoleBinding/rb": "target", "ClusterRoleBinding/no-subjects": "",
	}
	for _, o := range objs {
		id := o.GetKind() + "/" + o.GetName()
		if got := o.GetNamespace(); got != wantNS[id] {
			t.Errorf("%s namespace = %q, want %q", id, got, wantNS[id])
		}
	}
	subs, _, _ := unstructured.NestedSlice(objs[5].Object, "subjects")
	want := []any{
		sa("moved", "target"),
		sa("unset", "target"),
		sa("kept", "kube-system"),
		map[string]any{"kind": "User", "name": "alice", "namespace": "upstream"},
		map[string]any{"kind": "Group", "name": "devs"},
	}
	if !reflect.DeepEqual(subs, want) {
		t.Errorf("ClusterRoleBinding subjects =\n%v\nwant\n%v", subs, want)
	}
	if subs, _, _ := unstructured.NestedSlice(objs[6].Object, "subjects"); !reflect.DeepEqual(subs, []any{sa("moved", "target")}) {
		t.Errorf("RoleBinding subjects = %v, want the ServiceAccount moved", subs)
	}
	// A binding without subjects must not gain a null subjects field: it
	// would be applied as a change to the binding.
	if _, ok := objs[7].Object["subjects"]; ok {
		t.Errorf("binding without subjects gained %v", objs[7].Object["subjects"])
	}
}

func TestNamespaceCarriesManagedBy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   map[string]string
	}{
		{"no labels", nil, map[string]string{"app.kubernetes.io/managed-by": "lockstep"}},
		{"labels kept", map[string]string{"istio-injection": "enabled"},
			map[string]string{"istio-injection": "enabled", "app.kubernetes.io/managed-by": "lockstep"}},
		{"managed-by cannot be overridden", map[string]string{"app.kubernetes.io/managed-by": "helm"},
			map[string]string{"app.kubernetes.io/managed-by": "lockstep"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := copyLabels(tc.labels)
			ns := Namespace("x", tc.labels)
			if ns.GetKind() != "Namespace" || ns.GetAPIVersion() != "v1" || ns.GetName() != "x" || ns.GetNamespace() != "" {
				t.Errorf("Namespace = %v", ns.Object)
			}
			if got := ns.GetLabels(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("labels = %v, want %v", got, tc.want)
			}
			if !reflect.DeepEqual(tc.labels, in) {
				t.Errorf("Namespace changed its argument: %v, was %v", tc.labels, in)
			}
		})
	}
}

func copyLabels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestDetectDataPlane(t *testing.T) {
	t.Parallel()
	node := func(name string, kwok bool) runtime.Object {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if kwok {
			n.Annotations = map[string]string{"kwok.x-k8s.io/node": "fake"}
		}
		return n
	}
	for _, tc := range []struct {
		name  string
		nodes []runtime.Object
		want  DataPlane
	}{
		{"no nodes", nil, DataPlaneReal},
		{"all kwok", []runtime.Object{node("a", true), node("b", true)}, DataPlaneSimulated},
		{"mixed", []runtime.Object{node("a", true), node("b", false)}, DataPlaneReal},
		{"all real", []runtime.Object{node("a", false)}, DataPlaneReal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := detectDataPlane(t.Context(), fake.NewClientset(tc.nodes...))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("detectDataPlane = %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("list error", func(t *testing.T) {
		t.Parallel()
		kc := fake.NewClientset()
		kc.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, errors.New("forbidden")
		})
		if dp, err := detectDataPlane(context.Background(), kc); err == nil || !strings.Contains(err.Error(), "forbidden") {
			t.Errorf("detectDataPlane = %q, %v, want the list error", dp, err)
		}
	})
}
