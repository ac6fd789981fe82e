package coordinator_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/analysis"
	"lockstep.dev/lockstep/internal/cli"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/judge"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/test/fleettest"
)

const imageV3 = "docker.io/istio/examples-helloworld-v3"

// judgeAnalysis is the sequential judge with its defaults, looking every
// second; canary and stable default to the Rollout's Services.
func judgeAnalysis() *v1alpha1.Analysis {
	return &v1alpha1.Analysis{
		Interval: &metav1.Duration{Duration: time.Second},
		Clusters: []v1alpha1.ClusterLabels{
			{Member: "argo-rollout1", Reporting: local.PrometheusClusterLabel(1), Serving: "argo-rollout1"},
			{Member: "argo-rollout2", Reporting: local.PrometheusClusterLabel(2), Serving: "argo-rollout2"},
		},
		Judge: &v1alpha1.Judge{ScrapeInterval: &metav1.Duration{Duration: local.ScrapeInterval}},
	}
}

// faultAll makes every pod of revision fail all its requests, in every
// workload cluster, until ctx ends.
func faultAll(ctx context.Context, t testing.TB, ns, revision string) {
	for _, c := range workloads {
		fleettest.InjectFault(ctx, t, c, ns, revision)
	}
}

// freshApp deletes what an earlier test left of the app and waits until
// it is gone: a Rollout or faulty pods of the same revision left behind
// would be reused.
func freshApp(t testing.TB, a app) {
	t.Helper()
	ctx := context.Background()
	for _, c := range workloads {
		_ = fleettest.Clientset(t, c).CoreV1().Namespaces().Delete(ctx, a.ns, metav1.DeleteOptions{})
	}
	fleettest.Eventually(t, 120*time.Second, "namespace "+a.ns+" gone", func() error {
		for _, c := range workloads {
			if _, err := fleettest.Clientset(t, c).CoreV1().Namespaces().Get(ctx, a.ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("%s: still there (%v)", c, err)
			}
		}
		return nil
	})
	cleanupApp(t, a)
}

// waitTraffic waits until Thanos has request series reported by both
// clusters' Prometheus, so that the fleet is judged on complete data.
func waitTraffic(t testing.TB) {
	t.Helper()
	q, err := analysis.NewPrometheusQuerier(analysis.PrometheusConfig{Address: fleettest.F.State.URLs["thanos-query"], Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fleettest.Eventually(t, 60*time.Second, "request series from both clusters", func() error {
		vec, _, err := q.Query(context.Background(), `count by (cluster) (istio_requests_total{reporter="source",destination_service="helloworld.helloworld.svc.cluster.local"})`, time.Now())
		if err != nil {
			return err
		}
		if len(vec) < len(workloads) {
			return fmt.Errorf("series from %d clusters", len(vec))
		}
		return nil
	})
}

func waitRevision(t testing.TB, name, not string) string {
	var rev string
	fleettest.Eventually(t, 60*time.Second, "new revision recorded", func() error {
		got := getFleetRollout(t, name)
		if got.Status.Fleet.Revision == "" || got.Status.Fleet.Revision == not {
			return fmt.Errorf("revision %q", got.Status.Fleet.Revision)
		}
		rev = got.Status.Fleet.Revision
		return nil
	})
	return rev
}

// judgedFleet deploys the app at v1 on a clean slate, puts load on the
// given gateways, creates a FleetRollout judged by the sequential judge
// (edit sets its spec) and starts the coordinator; it returns once the
// FleetRollout completed at v1, with v1's revision and the coordinator.
func judgedFleet(t *testing.T, name string, gateways []string, edit func(*v1alpha1.FleetRollout)) (app, *v1alpha1.FleetRollout, string, context.Context, *coordinatorRun) {
	t.Helper()
	setup(t)
	stopLogs(t)
	a := meshApp()
	freshApp(t, a)
	deploy(t, a, imageV1, workloads...)
	waitHealthy(t, a, imageV1, 90*time.Second, workloads...)
	v1rev := getRolloutState(t, workloads[0], a).Revision
	ctx, cancel := context.WithCancel(context.Background())
	wg := fleettest.Load(ctx, t, gateways...)
	t.Cleanup(func() { cancel(); wg.Wait() })
	fr := newFleetRollout(name, a)
	fr.Spec.Analysis = judgeAnalysis()
	edit(fr)
	createFleetRollout(t, fr)
	run := startCoordinator(t)
	fleettest.Eventually(t, 30*time.Second, "FleetRollout completed at v1", func() error {
		return wantPhase(t, fr.Name, v1alpha1.PhaseCompleted, v1rev)
	})
	return a, fr, v1rev, ctx, run
}

// TestJudgeIsRevisionScoped ships a release whose canary fails every
// request, which the judge aborts after a handful of them, then a good
// release through the same canary Service. The bad release's failures are
// still in the counters; the good release must complete all the same, its
// evidence holding none of them.
func TestJudgeIsRevisionScoped(t *testing.T) {
	a, fr, v1rev, ctx, _ := judgedFleet(t, "judge-scoped", workloads, func(fr *v1alpha1.FleetRollout) {
		fr.Spec.Hold.Default = &metav1.Duration{Duration: 3 * time.Second}
		fr.Spec.Policy.InconclusiveLimit = &metav1.Duration{Duration: 90 * time.Second}
	})
	waitTraffic(t)

	// Release v2: every canary request fails.
	setImage(t, a, imageV2, workloads...)
	v2rev := waitRevision(t, fr.Name, v1rev)
	faultCtx, stopFault := context.WithCancel(ctx)
	faultAll(faultCtx, t, a.ns, v2rev)
	got := waitAborted(t, fr.Name, 60*time.Second, "bad release aborted by the judge")
	stopFault()
	if got.Status.Fleet.AbortReason != string(decide.ReasonAnalysisFailed) || !strings.Contains(got.Status.Fleet.AbortMessage, "judge:") {
		t.Fatalf("abort %s: %s; want the judge's AnalysisFailed", got.Status.Fleet.AbortReason, got.Status.Fleet.AbortMessage)
	}
	var bad *v1alpha1.Evidence
	for _, m := range got.Status.Members {
		if v := m.Verdict; v != nil && v.Verdict == string(decide.VerdictFail) && v.Evidence != nil {
			bad = v.Evidence
		}
	}
	if bad == nil || bad.Canary.Failures == 0 {
		t.Fatalf("no failures in the failing members' evidence: %+v", got.Status.Members)
	}
	t.Logf("v2 aborted on %d/%d failed canary requests: %s", bad.Canary.Failures, bad.Canary.Requests, got.Status.Fleet.AbortMessage)
	// Time from the verdict to every member's route at weight 0.
	abortedAt := got.Status.Fleet.AbortedAt.Time
	fleettest.Eventually(t, 10*time.Second, "every member at canary weight 0", func() error {
		for _, m := range getFleetRollout(t, fr.Name).Status.Members {
			if m.Weights == nil || m.Weights.Canary != 0 || !m.Aborted {
				return fmt.Errorf("%s weights %+v aborted %t", m.Name, m.Weights, m.Aborted)
			}
		}
		return nil
	})
	t.Logf("verdict -> every member aborted at weight 0 within %s (status poll)", time.Since(abortedAt).Round(time.Millisecond))

	// Release v3: good, through the same canary Service.
	setImage(t, a, imageV3, workloads...)
	v3rev := waitRevision(t, fr.Name, v2rev)
	sawEvidence := false
	fleettest.Eventually(t, 180*time.Second, "good release completed", func() error {
		got = getFleetRollout(t, fr.Name)
		if got.Status.Fleet.Aborted && got.Status.Fleet.Revision == v3rev {
			t.Fatalf("the good release was aborted: %s", got.Status.Fleet.AbortMessage)
		}
		if an := got.Status.Analysis; an != nil && an.Revision == v3rev && an.Global.Evidence != nil {
			e := an.Global.Evidence
			if e.Canary.Failures > 0 {
				t.Fatalf("the good release's evidence holds %d failures (the bad release's?): %+v", e.Canary.Failures, e)
			}
			if e.Since == nil || !e.Since.After(abortedAt) {
				t.Fatalf("evidence window opens at %v, before the bad release's abort at %v", e.Since, abortedAt)
			}
			sawEvidence = sawEvidence || e.Canary.Requests > 0
		}
		return wantPhase(t, fr.Name, v1alpha1.PhaseCompleted, v3rev)
	})
	if !sawEvidence {
		t.Error("the good release completed without any canary request in its evidence")
	}
}

// TestJudgeNeverPassesWithoutTraffic sends load through argo-rollout1's
// gateway only: argo-rollout2's clients never see the canary, so nothing
// is known of the canary there. The fleet must hold at its first barrier
// and, at the inconclusive limit, pause for a person (the default
// policy.onInconclusive: Pause) with condition Inconclusive and an Event
// that name the reason, never promote or abort on its own. A person then
// promotes through `lockstep promote`, and the fleet moves on in step.
func TestJudgeNeverPassesWithoutTraffic(t *testing.T) {
	const limit = 25 * time.Second
	a, fr, v1rev, _, _ := judgedFleet(t, "judge-no-traffic", []string{"argo-rollout1"}, func(fr *v1alpha1.FleetRollout) {
		fr.Spec.Hold.Default = &metav1.Duration{Duration: 2 * time.Second}
		fr.Spec.Policy.InconclusiveLimit = &metav1.Duration{Duration: limit}
	})
	rec := record(t, a)
	setImage(t, a, imageV2, workloads...)
	v2rev := waitRevision(t, fr.Name, v1rev)
	if getFleetRollout(t, fr.Name).Status.Fleet.Aborted {
		t.Fatal("aborted at once")
	}
	var got *v1alpha1.FleetRollout
	fleettest.Eventually(t, limit+60*time.Second, "paused at the inconclusive limit", func() error {
		got = getFleetRollout(t, fr.Name)
		if got.Status.Fleet.Aborted {
			t.Fatalf("aborted on a timer: %s: %s", got.Status.Fleet.AbortReason, got.Status.Fleet.AbortMessage)
		}
		if !got.Status.Fleet.InconclusivePaused {
			return fmt.Errorf("phase %s (%s: %s)", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		return nil
	})
	c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionInconclusive)
	if c == nil || c.Status != metav1.ConditionTrue || got.Status.Reason != string(decide.ReasonInconclusivePaused) {
		t.Fatalf("condition %+v, reason %s; want Inconclusive True", c, got.Status.Reason)
	}
	if !strings.Contains(c.Message, "argo-rollout2") || !strings.Contains(c.Message, judge.ReasonNoCanaryRequests) || !strings.Contains(c.Message, "lockstep promote") {
		t.Errorf("the pause does not say argo-rollout2's canary had no requests and what a person can do: %s", c.Message)
	}
	fleettest.Eventually(t, 10*time.Second, "an Inconclusive Event", func() error {
		evs, err := fleettest.Clientset(t, local.HubName).CoreV1().Events(fr.Namespace).List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + fr.Name + ",reason=" + string(decide.ReasonInconclusivePaused)})
		if err != nil || len(evs.Items) == 0 {
			return fmt.Errorf("no Event (%v)", err)
		}
		return nil
	})
	// It stays paused: nobody but a person moves it.
	time.Sleep(5 * time.Second)
	for _, s := range rec.snapshot() {
		if s.revision == v2rev && s.step > 1 {
			t.Fatalf("%s promoted to step %d although argo-rollout2 never saw the canary", s.cluster, s.step)
		}
	}
	if got := getFleetRollout(t, fr.Name); got.Status.Fleet.Aborted || !got.Status.Fleet.InconclusivePaused {
		t.Fatalf("left the pause on its own: aborted %t, paused %t", got.Status.Fleet.Aborted, got.Status.Fleet.InconclusivePaused)
	}

	// A person promotes, through the CLI.
	var out, errOut strings.Builder
	if code := cli.Run([]string{"promote", fr.Name, "-n", fr.Namespace, "--kubeconfig", fleettest.F.State.Kubeconfig, "--context", local.HubName}, nil, &out, &errOut); code != 0 {
		t.Fatalf("lockstep promote: exit %d: %s%s", code, out.String(), errOut.String())
	}
	t.Logf("lockstep promote: %s", strings.TrimSpace(out.String()))
	fleettest.Eventually(t, 60*time.Second, "both members past step 1, in step", func() error {
		for _, c := range workloads {
			st, err := rolloutsStateOf(t, c, a)
			if err != nil {
				return err
			}
			if st.CurrentStepIndex == nil || *st.CurrentStepIndex <= 1 {
				return fmt.Errorf("%s at %v", c, st.CurrentStepIndex)
			}
		}
		return nil
	})
	fleettest.Eventually(t, 30*time.Second, "the pause of step 1 cleared", func() error {
		got := getFleetRollout(t, fr.Name)
		if got.Status.Fleet.Aborted {
			t.Fatalf("aborted after the promote: %s", got.Status.Fleet.AbortMessage)
		}
		if got.Status.Fleet.BarrierStep != nil && *got.Status.Fleet.BarrierStep == 1 {
			return fmt.Errorf("still at barrier 1: %s", got.Status.Message)
		}
		return nil
	})
}

// TestStrictStores stops argo-rollout2's Thanos sidecar. Thanos Query's
// endpoints are strict, so queries fail instead of answering with
// data-producer-1 alone, and the judge gives no verdict on that data.
func TestStrictStores(t *testing.T) {
	setup(t)
	stopLogs(t)
	q, err := analysis.NewPrometheusQuerier(analysis.PrometheusConfig{Address: fleettest.F.State.URLs["thanos-query"], Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	clusters := func() (map[string]bool, error) {
		vec, warnings, err := q.Query(context.Background(), `count by (cluster) (up)`, time.Now())
		if err != nil {
			return nil, err
		}
		if len(warnings) > 0 {
			return nil, fmt.Errorf("warnings: %v", warnings)
		}
		out := map[string]bool{}
		for _, s := range vec {
			out[string(s.Metric["cluster"])] = true
		}
		return out, nil
	}
	two := local.PrometheusClusterLabel(2)
	fleettest.Eventually(t, 30*time.Second, "both clusters in Thanos", func() error {
		got, err := clusters()
		if err != nil || !got[two] {
			return fmt.Errorf("clusters %v, %v", got, err)
		}
		return nil
	})

	pid := fleettest.ComponentPID(t, "argo-rollout2/thanos-sidecar")
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	// Longer than Query's health checks (5 s): a non-strict endpoint would
	// be dropped by now and the answer would quietly lack the cluster.
	time.Sleep(15 * time.Second)
	for range 3 {
		got, err := clusters()
		if err == nil {
			t.Fatalf("query answered %v with argo-rollout2's sidecar stopped; want an error", got)
		}
	}
	members := []analysis.Member{
		{Name: "argo-rollout1", Reporting: local.PrometheusClusterLabel(1), Serving: "argo-rollout1"},
		{Name: "argo-rollout2", Reporting: two, Serving: "argo-rollout2"},
	}
	spec := analysis.JudgeSpec{Canary: `destination_service="helloworld-canary.helloworld.svc.cluster.local"`,
		Stable: `destination_service="helloworld.helloworld.svc.cluster.local"`, Config: judge.DefaultConfig()}
	res := analysis.EvaluateJudge(context.Background(), q, spec, nil, members, analysis.JudgeWindow{Since: time.Now().Add(-time.Minute)}, time.Now())
	if res.Global.Verdict != decide.VerdictInconclusive {
		t.Errorf("fleet verdict %s with a store down: %s", res.Global.Verdict, res.Global.Message)
	}
	for _, m := range res.Members {
		if m.Verdict != decide.VerdictInconclusive {
			t.Errorf("%s: %s with a store down (%s)", m.Name, m.Verdict, m.Message)
		}
	}
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	fleettest.Eventually(t, 60*time.Second, "both clusters back", func() error {
		got, err := clusters()
		if err != nil || !got[two] {
			return fmt.Errorf("clusters %v, %v", got, err)
		}
		return nil
	})
}

// TestJudgeMissingCounter names the field when the configured counter has
// no series: a condition, never a verdict.
func TestJudgeMissingCounter(t *testing.T) {
	a, fr, v1rev, _, _ := judgedFleet(t, "judge-missing", workloads, func(fr *v1alpha1.FleetRollout) {
		fr.Spec.Hold.Default = &metav1.Duration{Duration: 2 * time.Second}
		fr.Spec.Analysis.Judge.Requests = `istio_requests_totall{reporter="source"}`
	})
	setImage(t, a, imageV2, workloads...)
	waitRevision(t, fr.Name, v1rev)
	fleettest.Eventually(t, 60*time.Second, "AnalysisValid=False naming the field", func() error {
		got := getFleetRollout(t, fr.Name)
		c := findCondition(got, v1alpha1.ConditionAnalysisValid)
		if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "spec.analysis.judge.requests") {
			return fmt.Errorf("condition %+v", c)
		}
		if got.Status.Analysis != nil && got.Status.Analysis.Global.Verdict != string(decide.VerdictInconclusive) {
			t.Fatalf("a verdict from a counter that does not exist: %+v", got.Status.Analysis.Global)
		}
		return nil
	})
	// Fixing the spec clears it.
	cs := hubClient(t)
	patch := []byte(`{"spec":{"analysis":{"judge":{"requests":"istio_requests_total{reporter=\"source\"}"}}}}`)
	if err := cs.Patch(context.Background(), getFleetRollout(t, fr.Name), client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
	fleettest.Eventually(t, 60*time.Second, "AnalysisValid=True", func() error {
		c := findCondition(getFleetRollout(t, fr.Name), v1alpha1.ConditionAnalysisValid)
		if c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("condition %+v", c)
		}
		return nil
	})
}
