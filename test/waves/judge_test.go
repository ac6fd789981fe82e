package waves_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/common/model"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/analysis"
	"lockstep.dev/lockstep/internal/coordinator"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/fleet"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/rollouts"
	"lockstep.dev/lockstep/test/fleettest"
)

// all are the four workload clusters of the judged tests.
var all = []string{"argo-rollout1", "argo-rollout2", "argo-rollout3", "argo-rollout4"}

const (
	imageV1 = "docker.io/istio/examples-helloworld-v1"
	imageV2 = "docker.io/istio/examples-helloworld-v2"
	imageV3 = "docker.io/istio/examples-helloworld-v3"
	// canaryHost is the canary's mesh host, cluster-local by the GitOps
	// tree's mesh config.
	canaryHost = "helloworld-canary.helloworld.svc.cluster.local"
)

var mesh = fleettest.MeshNames

// meshFleet starts from a clean helloworld namespace in every workload,
// deploys v1 there, waits until it is Healthy and puts load on every
// gateway until the test ends.
func meshFleet(t *testing.T) {
	t.Helper()
	fleettest.Need(t)
	ctx := context.Background()
	installCRD(t)
	for _, c := range all {
		_ = fleettest.Clientset(t, c).CoreV1().Namespaces().Delete(ctx, mesh.Namespace, metav1.DeleteOptions{})
	}
	fleettest.Eventually(t, 120*time.Second, "namespace "+mesh.Namespace+" gone", func() error {
		for _, c := range all {
			if _, err := fleettest.Clientset(t, c).CoreV1().Namespaces().Get(ctx, mesh.Namespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("%s: still there (%v)", c, err)
			}
		}
		return nil
	})
	for _, c := range all {
		apply(t, c, fleettest.LeadingPauseAppNamed(mesh, imageV1, 2))
	}
	waitHealthy(t, mesh.Namespace, mesh.Stable, all...)
	lctx, cancel := context.WithCancel(ctx)
	wg := fleettest.Load(lctx, t, all...)
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func meshState(t *testing.T, cluster string) decide.RolloutState {
	t.Helper()
	s, _ := rolloutIn(t, cluster, mesh.Namespace, mesh.Stable)
	return s
}

func setMeshImage(t *testing.T, image string, clusters ...string) {
	t.Helper()
	body := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"helloworld","image":%q,"ports":[{"name":"http","containerPort":5000,"protocol":"TCP"}]}]}}}}`, image)
	for _, c := range clusters {
		if _, err := fleettest.Dynamic(t, c).Resource(rollouts.RolloutGVR).Namespace(mesh.Namespace).Patch(context.Background(), mesh.Stable, types.MergePatchType, []byte(body), metav1.PatchOptions{}); err != nil {
			t.Fatalf("%s: set image: %v", c, err)
		}
	}
}

// judgedRollout is a FleetRollout of the helloworld Rollout over members,
// judged by the sequential judge with its defaults, looking every second.
func judgedRollout(name string, members []string, waves []v1alpha1.Wave) *v1alpha1.FleetRollout {
	a := &v1alpha1.Analysis{
		Interval: &metav1.Duration{Duration: time.Second},
		Judge:    &v1alpha1.Judge{ScrapeInterval: &metav1.Duration{Duration: local.ScrapeInterval}},
	}
	for _, m := range members {
		i := strings.TrimPrefix(m, "argo-rollout")
		var n int
		fmt.Sscan(i, &n)
		a.Clusters = append(a.Clusters, v1alpha1.ClusterLabels{Member: m, Reporting: local.PrometheusClusterLabel(n), Serving: m})
	}
	return &v1alpha1.FleetRollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: v1alpha1.FleetRolloutSpec{
			Rollout:  v1alpha1.RolloutReference{Namespace: mesh.Namespace, Name: mesh.Stable},
			Members:  v1alpha1.Members{Names: members},
			Hold:     v1alpha1.Hold{Default: &metav1.Duration{Duration: 2 * time.Second}},
			Waves:    waves,
			Analysis: a,
			Policy:   v1alpha1.Policy{InconclusiveLimit: &metav1.Duration{Duration: 3 * time.Minute}},
		},
	}
}

// runJudged creates fr, runs the coordinator with Thanos and its own
// credentials until the test ends, and returns v1's revision once fr
// completed at v1.
func runJudged(t *testing.T, fr *v1alpha1.FleetRollout) string {
	t.Helper()
	ctx := context.Background()
	if err := hub(t).Create(ctx, fr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hub(t).Delete(context.Background(), fr) })
	startCoordinator(t, fleettest.F.State.URLs["thanos-query"])
	var rev string
	fleettest.Eventually(t, 90*time.Second, fr.Name+" completed at v1", func() error {
		got := getNamed(t, fr.Name)
		if got.Status.Phase != v1alpha1.PhaseCompleted || got.Status.Fleet.Revision == "" {
			return fmt.Errorf("phase %s (%s: %s)", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		rev = got.Status.Fleet.Revision
		return nil
	})
	return rev
}

// startCoordinator runs the coordinator in-process with its own
// credentials (the kubeconfig lab up writes for it) until the test ends;
// thanosURL "" runs it without analysis.
func startCoordinator(t *testing.T, thanosURL string) {
	t.Helper()
	hubCfg, err := local.RESTConfig(local.CoordinatorKubeconfig(fleettest.F.Dir), local.HubName)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- coordinator.Run(ctx, coordinator.Config{Hub: hubCfg, MetricsAddr: "0", ThanosURL: thanosURL,
			Logger:  logr.FromSlogHandler(slog.NewTextHandler(io.Discard, nil)),
			Cluster: fleet.CacheOptions{HealthInterval: 500 * time.Millisecond, RequestTimeout: 2 * time.Second}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("coordinator: %v", err)
		}
	})
}

func getNamed(t *testing.T, name string) *v1alpha1.FleetRollout {
	t.Helper()
	var fr v1alpha1.FleetRollout
	if err := hub(t).Get(context.Background(), types.NamespacedName{Namespace: "default", Name: name}, &fr); err != nil {
		t.Fatal(err)
	}
	return &fr
}

// canaryServed is, per destination cluster and version, how many requests
// to the canary host the gateways reported as served by time at.
func canaryServed(t *testing.T, q *analysis.PrometheusQuerier, at time.Time) map[string]float64 {
	t.Helper()
	vec, warnings, err := q.Query(context.Background(),
		`sum by (destination_cluster, destination_version) (istio_requests_total{reporter="source",destination_service="`+canaryHost+`"})`, at)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("canary requests at %s: %v %v", at, err, warnings)
	}
	out := map[string]float64{}
	for _, s := range vec {
		out[string(s.Metric["destination_cluster"])+"/"+string(s.Metric["destination_version"])] = float64(s.Value)
	}
	return out
}

// stepWatch polls the clusters' step index while a release runs, to tell
// whether any of them ever left its leading pause.
type stepWatch struct {
	mu   sync.Mutex
	left map[string]int32
}

func watchSteps(ctx context.Context, t *testing.T, clusters ...string) *stepWatch {
	w := &stepWatch{left: map[string]int32{}}
	go func() {
		for ctx.Err() == nil {
			for _, c := range clusters {
				u, err := rollouts.Get(ctx, fleettest.Dynamic(t, c), mesh.Namespace, mesh.Stable)
				if err != nil || u == nil {
					continue
				}
				if s, err := rollouts.State(u); err == nil && s.CurrentStepIndex != nil && *s.CurrentStepIndex > 0 && s.Revision != s.StableRevision {
					w.mu.Lock()
					w.left[c] = max(w.left[c], *s.CurrentStepIndex)
					w.mu.Unlock()
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return w
}

func (w *stepWatch) leftPause() map[string]int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int32{}
	for k, v := range w.left {
		out[k] = v
	}
	return out
}

// TestWavesJudgedOnTheirOwnCanary releases helloworld over four workloads
// in waves [argo-rollout1], [argo-rollout2], [rest], judged by the
// sequential judge, with load on every gateway:
//   - a good release completes every wave, and while the first wave runs
//     no request to the canary host is served by a pod of the old version,
//     in any cluster (the canary host is cluster-local: the waiting
//     clusters' canary Services still select their stable pods);
//   - a release that fails only in argo-rollout2's new pods: the first wave
//     completes, the second is aborted by the judge naming argo-rollout2,
//     and the third never leaves its leading pause.
func TestWavesJudgedOnTheirOwnCanary(t *testing.T) {
	meshFleet(t)
	ctx := context.Background()
	fr := judgedRollout("judged-waves", all, []v1alpha1.Wave{
		{Name: "first", Names: []string{"argo-rollout1"}, Soak: &metav1.Duration{Duration: 5 * time.Second}},
		{Name: "second", Names: []string{"argo-rollout2"}, Soak: &metav1.Duration{Duration: 5 * time.Second}},
		{Name: "rest", Rest: true},
	})
	v1rev := runJudged(t, fr)
	q, err := analysis.NewPrometheusQuerier(analysis.PrometheusConfig{Address: fleettest.F.State.URLs["thanos-query"], Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	// A good release.
	setMeshImage(t, imageV2, all...)
	seen := map[string]bool{}
	var waveOneFrom, waveOneTo time.Time
	fleettest.Eventually(t, 5*time.Minute, "v2 completed wave by wave", func() error {
		got := getNamed(t, fr.Name)
		if got.Status.Fleet.Aborted {
			t.Fatalf("the good release was aborted: %s: %s", got.Status.Fleet.AbortReason, got.Status.Fleet.AbortMessage)
		}
		ws := waveStates(got)
		seen[ws] = true
		switch {
		case waveOneFrom.IsZero() && strings.HasPrefix(ws, "argo-rollout1=InCanary"):
			waveOneFrom = time.Now()
		case !waveOneFrom.IsZero() && waveOneTo.IsZero() && strings.HasPrefix(ws, "argo-rollout1=Completed"):
			waveOneTo = time.Now()
		}
		if got.Status.Phase != v1alpha1.PhaseCompleted || got.Status.Fleet.Revision == v1rev ||
			ws != "argo-rollout1=Completed argo-rollout2=Completed argo-rollout3=Completed argo-rollout4=Completed" {
			return fmt.Errorf("phase %s (%s: %s) %s", got.Status.Phase, got.Status.Reason, got.Status.Message, ws)
		}
		return nil
	})
	for _, want := range []string{
		"argo-rollout1=InCanary argo-rollout2=NotStarted argo-rollout3=NotStarted argo-rollout4=NotStarted",
		"argo-rollout1=Completed argo-rollout2=InCanary argo-rollout3=NotStarted argo-rollout4=NotStarted",
		"argo-rollout1=Completed argo-rollout2=Completed argo-rollout3=InCanary argo-rollout4=InCanary",
	} {
		if !seen[want] {
			t.Errorf("never saw %q; saw %v", want, seen)
		}
	}
	// Wave one's canary traffic, from Thanos, once its last scrape is in.
	time.Sleep(local.ScrapeInterval + 2*time.Second)
	before, after := canaryServed(t, q, waveOneFrom.Add(-time.Second)), canaryServed(t, q, waveOneTo)
	served := map[string]float64{}
	for k, v := range after {
		served[k] = v - before[k]
	}
	t.Logf("canary host requests while wave one ran, by destination cluster/version: %v", served)
	for k, n := range served {
		if strings.HasSuffix(k, "/v1") && n > 0 {
			t.Errorf("%s: %g requests to the canary host served by the old version while wave one ran", k, n)
		}
		if !strings.HasPrefix(k, "argo-rollout1/") && n > 0 {
			t.Errorf("%s: %g requests to the canary host served outside wave one", k, n)
		}
	}
	if served["argo-rollout1/v2"] == 0 {
		t.Errorf("wave one's canary served nothing: %v", served)
	}

	// A release that fails in argo-rollout2's new pods only.
	v2rev := getNamed(t, fr.Name).Status.Fleet.Revision
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	steps := watchSteps(wctx, t, "argo-rollout3", "argo-rollout4")
	setMeshImage(t, imageV3, all...)
	var v3rev string
	fleettest.Eventually(t, 60*time.Second, "v3 recorded", func() error {
		if v3rev = getNamed(t, fr.Name).Status.Fleet.Revision; v3rev == v2rev {
			return fmt.Errorf("still %s", v3rev)
		}
		return nil
	})
	fleettest.InjectFault(wctx, t, "argo-rollout2", mesh.Namespace, v3rev)
	var got *v1alpha1.FleetRollout
	fleettest.Eventually(t, 4*time.Minute, "the second wave aborted", func() error {
		got = getNamed(t, fr.Name)
		if !got.Status.Fleet.Aborted {
			return fmt.Errorf("phase %s (%s: %s) %s", got.Status.Phase, got.Status.Reason, got.Status.Message, waveStates(got))
		}
		return nil
	})
	ws := waveStates(got)
	t.Logf("v3 stopped: %s; %s: %s", ws, got.Status.Fleet.AbortReason, got.Status.Fleet.AbortMessage)
	if ws != "argo-rollout1=Completed argo-rollout2=Aborted argo-rollout3=NotStarted argo-rollout4=NotStarted" {
		t.Errorf("wave states %s: want the first completed, the second aborted, the rest not started", ws)
	}
	if got.Status.Fleet.AbortReason != string(decide.ReasonAnalysisFailed) || !strings.Contains(got.Status.Fleet.AbortMessage, "argo-rollout2") {
		t.Errorf("abort %s: %s; want the judge's failure naming argo-rollout2", got.Status.Fleet.AbortReason, got.Status.Fleet.AbortMessage)
	}
	time.Sleep(2 * time.Second)
	if left := steps.leftPause(); len(left) > 0 {
		t.Errorf("the third wave left its leading pause: %v", left)
	}
	if s := meshState(t, "argo-rollout1"); s.Revision != v3rev || s.StableRevision != v3rev || s.Aborted {
		t.Errorf("argo-rollout1 should stay on v3: revision %s stable %s aborted %v", s.Revision, s.StableRevision, s.Aborted)
	}
}

// TestForeignClusterChangesNoVerdict: argo-rollout4 runs the same service
// into the same Thanos but is not a member. Its canary, promoted by hand,
// fails every request; the members' release completes, judged on the
// members alone.
func TestForeignClusterChangesNoVerdict(t *testing.T) {
	meshFleet(t)
	ctx := context.Background()
	members := all[:3]
	fr := judgedRollout("members-only", members, nil)
	runJudged(t, fr)
	q, err := analysis.NewPrometheusQuerier(analysis.PrometheusConfig{Address: fleettest.F.State.URLs["thanos-query"], Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	setMeshImage(t, imageV2, all...)
	var v2rev string
	fleettest.Eventually(t, 60*time.Second, "argo-rollout4 at its leading pause on v2", func() error {
		s := meshState(t, "argo-rollout4")
		if s.Revision == s.StableRevision || s.CurrentStepIndex == nil || *s.CurrentStepIndex != 0 || len(s.PauseReasons) == 0 {
			return fmt.Errorf("step %v, pause %v", s.CurrentStepIndex, s.PauseReasons)
		}
		v2rev = s.Revision
		return nil
	})
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	fleettest.InjectFault(fctx, t, "argo-rollout4", mesh.Namespace, v2rev)
	// By hand, as a team that does not use Lockstep there would.
	if err := rollouts.Promote(ctx, fleettest.Dynamic(t, "argo-rollout4"), mesh.Namespace, mesh.Stable, false); err != nil {
		t.Fatal(err)
	}
	fleettest.Eventually(t, 60*time.Second, "argo-rollout4's canary failing in Thanos", func() error {
		vec, _, err := q.Query(ctx, `sum(istio_requests_total{reporter="source",cluster="`+local.PrometheusClusterLabel(4)+`",destination_service="`+canaryHost+`",response_code=~"5.."})`, time.Now())
		if err != nil || len(vec) == 0 || vec[0].Value < model.SampleValue(20) {
			return fmt.Errorf("failures: %v %v", vec, err)
		}
		return nil
	})
	fleettest.Eventually(t, 4*time.Minute, "the members' release completed", func() error {
		got := getNamed(t, fr.Name)
		if got.Status.Fleet.Aborted {
			t.Fatalf("a cluster that is not a member aborted the release: %s", got.Status.Fleet.AbortMessage)
		}
		if got.Status.Phase != v1alpha1.PhaseCompleted || got.Status.Fleet.Revision != v2rev {
			return fmt.Errorf("phase %s (%s: %s)", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		return nil
	})
	if an := getNamed(t, fr.Name).Status.Analysis; an != nil && an.Global.Evidence != nil && an.Global.Evidence.Canary.Failures > 0 {
		t.Errorf("the fleet's evidence holds %d failures: argo-rollout4's", an.Global.Evidence.Canary.Failures)
	}
}
