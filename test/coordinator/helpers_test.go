package coordinator_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/config"
	"lockstep.dev/lockstep/internal/coordinator"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/fleet"
	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/rollouts"
	"lockstep.dev/lockstep/test/fleettest"
)

var workloads = []string{"argo-rollout1", "argo-rollout2"}

var crdOnce sync.Once

// setup skips without a fleet and installs Lockstep's CRDs once.
func setup(t testing.TB) {
	t.Helper()
	fleettest.Need(t)
	var err error
	crdOnce.Do(func() {
		var objs []*unstructured.Unstructured
		if objs, err = kube.ReadYAMLs(config.CRDs, config.LockstepCRDs...); err != nil {
			return
		}
		cfg := fleettest.RESTConfig(t, "argo-hub")
		var a *kube.Applier
		if a, err = kube.NewApplier(cfg); err != nil {
			return
		}
		ctx := context.Background()
		if err = a.Apply(ctx, objs...); err != nil {
			return
		}
		err = kube.WaitEstablished(ctx, a.Dynamic, []string{"fleetrollouts.lockstep.dev", "fleetapprovals.lockstep.dev"}, 30*time.Second)
	})
	if err != nil {
		t.Fatalf("install FleetRollout CRD: %v", err)
	}
}

func hubClient(t testing.TB) client.Client {
	t.Helper()
	c, err := client.New(fleettest.RESTConfig(t, "argo-hub"), client.Options{Scheme: coordinator.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// app names the objects of the test application in one namespace.
type app struct {
	ns, rollout, stable, canary, vs, route string
	steps                                  []any
}

func newApp(ns string) app {
	return app{ns: ns, rollout: "hw", stable: "hw", canary: "hw-canary", vs: "hw-vs", route: "primary", steps: defaultSteps()}
}

func defaultSteps() []any {
	return []any{
		map[string]any{"setWeight": int64(20)}, map[string]any{"pause": map[string]any{}},
		map[string]any{"setWeight": int64(50)}, map[string]any{"pause": map[string]any{}},
		map[string]any{"setWeight": int64(80)}, map[string]any{"pause": map[string]any{}},
	}
}

func obj(m map[string]any) *unstructured.Unstructured { return &unstructured.Unstructured{Object: m} }

func (a app) objects(image string) []*unstructured.Unstructured {
	svc := func(name string) *unstructured.Unstructured {
		return obj(map[string]any{
			"apiVersion": "v1", "kind": "Service",
			"metadata": map[string]any{"name": name, "namespace": a.ns},
			"spec": map[string]any{
				"selector": map[string]any{"app": a.rollout},
				"ports":    []any{map[string]any{"name": "http", "port": int64(5000), "targetPort": int64(5000)}},
			},
		})
	}
	return []*unstructured.Unstructured{
		obj(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": a.ns}}),
		svc(a.stable), svc(a.canary),
		obj(map[string]any{
			"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
			"metadata": map[string]any{"name": a.vs, "namespace": a.ns},
			"spec": map[string]any{
				"hosts": []any{"*"},
				"http": []any{map[string]any{
					"name": a.route,
					"route": []any{
						map[string]any{"destination": map[string]any{"host": a.stable, "port": map[string]any{"number": int64(5000)}}, "weight": int64(100)},
						map[string]any{"destination": map[string]any{"host": a.canary, "port": map[string]any{"number": int64(5000)}}, "weight": int64(0)},
					},
				}},
			},
		}),
		a.rolloutObject(image),
	}
}

func (a app) rolloutObject(image string) *unstructured.Unstructured {
	return obj(map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": a.rollout, "namespace": a.ns},
		"spec": map[string]any{
			"replicas":             int64(2),
			"revisionHistoryLimit": int64(2),
			"selector":             map[string]any{"matchLabels": map[string]any{"app": a.rollout}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": a.rollout}},
				"spec": map[string]any{"containers": []any{map[string]any{
					"name": "helloworld", "image": image,
					"ports": []any{map[string]any{"name": "http", "containerPort": int64(5000), "protocol": "TCP"}},
				}}},
			},
			"strategy": map[string]any{"canary": map[string]any{
				"canaryService":              a.canary,
				"stableService":              a.stable,
				"scaleDownDelaySeconds":      int64(2),
				"abortScaleDownDelaySeconds": int64(2),
				"trafficRouting": map[string]any{"istio": map[string]any{
					"virtualService": map[string]any{"name": a.vs, "routes": []any{a.route}},
				}},
				"steps": a.steps,
			}},
		},
	})
}

const (
	imageV1 = "docker.io/istio/examples-helloworld-v1"
	imageV2 = "docker.io/istio/examples-helloworld-v2"
)

// deploy applies the app at image to the given clusters.
func deploy(t testing.TB, a app, image string, clusters ...string) {
	t.Helper()
	ctx := context.Background()
	for _, c := range clusters {
		ap, err := kube.NewApplier(fleettest.RESTConfig(t, c))
		if err != nil {
			t.Fatal(err)
		}
		if err := ap.Apply(ctx, a.objects(image)...); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
	}
}

// setImage changes only the Rollout's image in the given clusters.
func setImage(t testing.TB, a app, image string, clusters ...string) {
	t.Helper()
	for _, c := range clusters {
		patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"helloworld","image":%q}]}}}}`, image)
		_, err := fleettest.Dynamic(t, c).Resource(rollouts.RolloutGVR).Namespace(a.ns).Patch(context.Background(), a.rollout, "application/strategic-merge-patch+json", []byte(patch), metav1.PatchOptions{})
		if err != nil {
			// CRDs take no strategic merge patch; a merge patch replaces
			// the container list, which is what we want here anyway.
			body := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"helloworld","image":%q,"ports":[{"name":"http","containerPort":5000,"protocol":"TCP"}]}]}}}}`, image)
			if _, err = fleettest.Dynamic(t, c).Resource(rollouts.RolloutGVR).Namespace(a.ns).Patch(context.Background(), a.rollout, "application/merge-patch+json", []byte(body), metav1.PatchOptions{}); err != nil {
				t.Fatalf("%s: set image: %v", c, err)
			}
		}
	}
}

func cleanupApp(t testing.TB, a app) {
	t.Cleanup(func() {
		for _, c := range workloads {
			_ = fleettest.Clientset(t, c).CoreV1().Namespaces().Delete(context.Background(), a.ns, metav1.DeleteOptions{})
		}
	})
}

func getRollout(t testing.TB, cluster string, a app) *unstructured.Unstructured {
	t.Helper()
	u, err := rollouts.Get(context.Background(), fleettest.Dynamic(t, cluster), a.ns, a.rollout)
	if err != nil {
		t.Fatalf("%s: %v", cluster, err)
	}
	return u
}

// waitHealthy waits until the Rollout is Healthy with the given image.
func waitHealthy(t testing.TB, a app, image string, timeout time.Duration, clusters ...string) {
	t.Helper()
	for _, c := range clusters {
		fleettest.Eventually(t, timeout, c+" Rollout Healthy at "+image, func() error {
			u := getRollout(t, c, a)
			if u == nil {
				return fmt.Errorf("no rollout")
			}
			s, err := rollouts.State(u)
			if err != nil {
				return err
			}
			img, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			cur := ""
			if len(img) > 0 {
				cur, _ = img[0].(map[string]any)["image"].(string)
			}
			if s.Phase != "Healthy" || s.Revision == "" || s.Revision != s.StableRevision || cur != image || s.ObservedGeneration < s.Generation {
				return fmt.Errorf("phase %s, revision %s, stable %s, image %s", s.Phase, s.Revision, s.StableRevision, cur)
			}
			return nil
		})
	}
}

// coordinatorRun is one in-process coordinator.
type coordinatorRun struct {
	cancel context.CancelFunc
	done   chan error
	// metrics is the host:port of its /metrics.
	metrics chan string
}

// startCoordinator runs the coordinator until stop is called (or the test
// ends). Logs go to the test log at debug level.
func startCoordinator(t testing.TB, mods ...func(*coordinator.Config)) *coordinatorRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &coordinatorRun{cancel: cancel, done: make(chan error, 1), metrics: make(chan string, 1)}
	log := logr.FromSlogHandler(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug - 1}))
	cfg := coordinator.Config{
		// The credentials the fleet's coordinator runs with: its own
		// ServiceAccount on the hub, and through the member Secrets that
		// ServiceAccount reads, its own ServiceAccount in every member.
		Hub:         coordinatorHub(t),
		ThanosURL:   fleettest.F.State.URLs["thanos-query"],
		MetricsAddr: "127.0.0.1:0",
		Logger:      log,
		Cluster:     fleet.CacheOptions{HealthInterval: 500 * time.Millisecond, HealthTimeout: 500 * time.Millisecond, FailureThreshold: 2, RequestTimeout: 2 * time.Second},
		OnStarted:   func(addr string) { r.metrics <- addr },
	}
	for _, m := range mods {
		m(&cfg)
	}
	go func() { r.done <- coordinator.Run(ctx, cfg) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// coordinatorHub is the hub as the coordinator's ServiceAccount sees it
// (the kubeconfig `lab up` writes for the fleet's coordinator).
func coordinatorHub(t testing.TB) *rest.Config {
	t.Helper()
	cfg, err := local.RESTConfig(local.CoordinatorKubeconfig(fleettest.F.Dir), "argo-hub")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (r *coordinatorRun) stop(t testing.TB) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("coordinator: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("coordinator did not stop within 30s")
	}
}

// testWriter sends logs to t.Log until the test ends.
type testWriter struct{ t testing.TB }

var logMu sync.Mutex
var logDone = map[testing.TB]bool{}

func (w testWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	if logDone[w.t] {
		return len(p), nil
	}
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func stopLogs(t testing.TB) {
	t.Cleanup(func() {
		logMu.Lock()
		logDone[t] = true
		logMu.Unlock()
	})
}

var _ io.Writer = testWriter{}

// sample is one observed Rollout state.
type sample struct {
	at       time.Time
	cluster  string
	revision string
	step     int32 // -1 when unset
	paused   bool
	aborted  bool
	phase    string
	canary   int32 // canary weight in the VirtualService, -1 when unknown
}

// recorder watches the Rollout and VirtualService in every workload and
// keeps every change with a timestamp, so that step skew can be computed
// after the fact.
type recorder struct {
	mu      sync.Mutex
	samples []sample
	last    map[string]sample
	cancel  context.CancelFunc
}

func record(t testing.TB, a app) *recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{last: map[string]sample{}, cancel: cancel}
	t.Cleanup(cancel)
	for _, c := range workloads {
		dyn := fleettest.Dynamic(t, c)
		f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, a.ns, nil)
		for _, gvr := range []schema.GroupVersionResource{rollouts.RolloutGVR, rollouts.VirtualServiceGVR} {
			inf := f.ForResource(gvr).Informer()
			gvr := gvr
			h := func(o any) {
				u, ok := o.(*unstructured.Unstructured)
				if !ok {
					return
				}
				r.observe(c, gvr, u, a)
			}
			_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: h, UpdateFunc: func(_, o any) { h(o) }})
		}
		f.Start(ctx.Done())
		f.WaitForCacheSync(ctx.Done())
	}
	_ = dynamic.Interface(nil)
	return r
}

func (r *recorder) observe(cluster string, gvr schema.GroupVersionResource, u *unstructured.Unstructured, a app) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.last[cluster]
	if !ok {
		s = sample{cluster: cluster, step: -1, canary: -1}
	}
	switch gvr {
	case rollouts.RolloutGVR:
		if u.GetName() != a.rollout {
			return
		}
		st, err := rollouts.State(u)
		if err != nil {
			return
		}
		s.revision, s.aborted, s.phase = st.Revision, st.Aborted, string(st.Phase)
		s.step = -1
		if st.CurrentStepIndex != nil {
			s.step = *st.CurrentStepIndex
		}
		s.paused = len(st.PauseReasons) == 1 && st.PauseReasons[0] == "CanaryPauseStep"
	case rollouts.VirtualServiceGVR:
		if u.GetName() != a.vs {
			return
		}
		w, err := rollouts.RouteWeights(u, []string{a.route}, a.stable, a.canary)
		if err != nil {
			return
		}
		s.canary = w.Canary
	}
	if ok && sameState(s, r.last[cluster]) {
		return
	}
	s.at = now
	r.last[cluster] = s
	r.samples = append(r.samples, s)
}

func sameState(a, b sample) bool {
	a.at, b.at = time.Time{}, time.Time{}
	return a == b
}

func (r *recorder) snapshot() []sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sample(nil), r.samples...)
}

func (r *recorder) timeline() string {
	var b strings.Builder
	var t0 time.Time
	for i, s := range r.snapshot() {
		if i == 0 {
			t0 = s.at
		}
		fmt.Fprintf(&b, "%8.3fs %s rev=%s step=%d paused=%t aborted=%t phase=%s canary=%d\n",
			s.at.Sub(t0).Seconds(), s.cluster, s.revision, s.step, s.paused, s.aborted, s.phase, s.canary)
	}
	return b.String()
}

// maxBarrierSkew is maxStepSkew counted in pause steps passed rather than
// step indexes: a member promoted past pause step 1 runs straight through
// setWeight 50 to pause step 3 while the other may still be leaving step 1,
// which is two indexes but one step of the canary, the most the barrier
// allows.
func maxBarrierSkew(samples []sample, revision string, steps []any) int32 {
	passed := func(step int32) int32 {
		var n int32
		for i := int32(0); i < step && int(i) < len(steps); i++ {
			if _, ok := steps[i].(map[string]any)["pause"]; ok {
				n++
			}
		}
		return n
	}
	mapped := make([]sample, len(samples))
	for i, s := range samples {
		if s.step >= 0 {
			s.step = passed(s.step)
		}
		mapped[i] = s
	}
	return maxStepSkew(mapped, revision)
}

// maxStepSkew replays the samples and returns the largest difference in
// step index between the clusters while both ran revision.
func maxStepSkew(samples []sample, revision string) int32 {
	cur := map[string]sample{}
	var worst int32
	for _, s := range samples {
		cur[s.cluster] = s
		a, okA := cur[workloads[0]]
		b, okB := cur[workloads[1]]
		if !okA || !okB || a.revision != revision || b.revision != revision || a.step < 0 || b.step < 0 {
			continue
		}
		d := a.step - b.step
		if d < 0 {
			d = -d
		}
		worst = max(worst, d)
	}
	return worst
}

// weightSkews returns, for each canary weight both clusters reached, how
// far apart in time they reached it.
func weightSkews(samples []sample) map[int32]time.Duration {
	first := map[string]map[int32]time.Time{}
	for _, s := range samples {
		if s.canary < 0 {
			continue
		}
		if first[s.cluster] == nil {
			first[s.cluster] = map[int32]time.Time{}
		}
		if _, ok := first[s.cluster][s.canary]; !ok {
			first[s.cluster][s.canary] = s.at
		}
	}
	out := map[int32]time.Duration{}
	for w, ta := range first[workloads[0]] {
		if tb, ok := first[workloads[1]][w]; ok {
			d := ta.Sub(tb)
			if d < 0 {
				d = -d
			}
			out[w] = d
		}
	}
	return out
}

// pausedSteps lists, per cluster, the pause steps seen paused, in order.
func pausedSteps(samples []sample, revision string) map[string][]int32 {
	out := map[string][]int32{}
	for _, s := range samples {
		if s.revision != revision || !s.paused || s.step < 0 {
			continue
		}
		l := out[s.cluster]
		if len(l) == 0 || l[len(l)-1] != s.step {
			out[s.cluster] = append(l, s.step)
		}
	}
	return out
}

func sortedWeights(m map[int32]time.Duration) []int32 {
	var ws []int32
	for w := range m {
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i] < ws[j] })
	return ws
}

func newFleetRollout(name string, a app) *v1alpha1.FleetRollout {
	return &v1alpha1.FleetRollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1alpha1.FleetRolloutSpec{
			Rollout: v1alpha1.RolloutReference{Namespace: a.ns, Name: a.rollout},
			Members: v1alpha1.Members{Names: workloads},
			Hold:    v1alpha1.Hold{Default: &metav1.Duration{Duration: 2 * time.Second}},
			Policy: v1alpha1.Policy{
				UnreachableDeadline: &metav1.Duration{Duration: 20 * time.Second},
				InconclusiveLimit:   &metav1.Duration{Duration: 60 * time.Second},
			},
		},
	}
}

func createFleetRollout(t testing.TB, fr *v1alpha1.FleetRollout) {
	t.Helper()
	c := hubClient(t)
	if err := c.Create(context.Background(), fr); err != nil {
		t.Fatalf("create FleetRollout: %v", err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), fr) })
}

func getFleetRollout(t testing.TB, name string) *v1alpha1.FleetRollout {
	t.Helper()
	var fr v1alpha1.FleetRollout
	if err := hubClient(t).Get(context.Background(), client.ObjectKey{Namespace: "default", Name: name}, &fr); err != nil {
		t.Fatal(err)
	}
	return &fr
}

func rolloutsState2(u *unstructured.Unstructured) (decide.RolloutState, error) {
	return rollouts.State(u)
}

func runtimeToMap(o any) (map[string]any, error) {
	return runtime.DefaultUnstructuredConverter.ToUnstructured(o)
}

// waitAborted waits until the FleetRollout records a fleet abort, and
// returns it.
func waitAborted(t testing.TB, name string, timeout time.Duration, what string) *v1alpha1.FleetRollout {
	t.Helper()
	var got *v1alpha1.FleetRollout
	fleettest.Eventually(t, timeout, what, func() error {
		got = getFleetRollout(t, name)
		if !got.Status.Fleet.Aborted {
			return fmt.Errorf("phase %s (%s: %s)", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		return nil
	})
	return got
}
