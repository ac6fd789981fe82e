package coordinator_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/test/fleettest"
)

// meshApp is the application the fleet's simulated data plane serves: its
// names are meshsim's defaults, so requests to the ingress reach its pods
// and show up in istio_requests_total.
func meshApp() app {
	return app{
		ns: "helloworld", rollout: "helloworld", stable: "helloworld", canary: "helloworld-canary",
		vs: "helloworld-crosscluster-gateways", route: "helloworld", steps: defaultSteps(),
	}
}

// successRate is the guide's success-rate analysis in Lockstep's form.
func successRate() *v1alpha1.Analysis {
	sel := `istio_requests_total{reporter="source",destination_service=~"{{args.service}}.{{args.namespace}}.svc.cluster.local"`
	return &v1alpha1.Analysis{
		Args:     []v1alpha1.Arg{{Name: "service", Value: "helloworld-canary"}, {Name: "namespace", Value: "helloworld"}},
		Interval: &metav1.Duration{Duration: 2 * time.Second},
		Clusters: []v1alpha1.ClusterLabels{
			{Member: "argo-rollout1", Reporting: local.PrometheusClusterLabel(1), Serving: "argo-rollout1"},
			{Member: "argo-rollout2", Reporting: local.PrometheusClusterLabel(2), Serving: "argo-rollout2"},
		},
		Metrics: []v1alpha1.Metric{{
			Name:      "success-rate",
			Ratio:     &v1alpha1.Ratio{Good: sel + `,response_code!~"5.*"}`, Total: sel + `}`, Window: "20s"},
			Threshold: v1alpha1.Threshold{Op: v1alpha1.OpGreater, Value: "0.9"},
		}},
	}
}

// load sends requests to every workload's ingress until ctx ends.
func load(ctx context.Context, t testing.TB) *sync.WaitGroup {
	return fleettest.Load(ctx, t, workloads...)
}

// TestFailureInOneClusterAbortsBoth injects a fault into the canary pods of
// argo-rollout2 only. The serving-side analysis must name argo-rollout2,
// and the coordinator must abort the canary in both clusters, promptly and
// before argo-rollout1 moves past the first pause step.
func TestFailureInOneClusterAbortsBoth(t *testing.T) {
	setup(t)
	stopLogs(t)
	a := meshApp()
	cleanupApp(t, a)
	deploy(t, a, imageV1, workloads...)
	waitHealthy(t, a, imageV1, 90*time.Second, workloads...)
	v1rev := getRolloutState(t, workloads[0], a).Revision

	ctx, cancel := context.WithCancel(context.Background())
	wg := load(ctx, t)
	t.Cleanup(func() { cancel(); wg.Wait() })

	rec := record(t, a)
	fr := newFleetRollout("one-fails", a)
	// Members by selector this time, as an ApplicationSet would pick them.
	fr.Spec.Members = v1alpha1.Members{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{local.WorkloadLabel: local.RoleWorkload}}}
	// Long enough that the fault is in place before a promotion could happen.
	fr.Spec.Hold.Default = &metav1.Duration{Duration: 30 * time.Second}
	fr.Spec.Analysis = successRate()
	createFleetRollout(t, fr)
	startCoordinator(t)
	fleettest.Eventually(t, 30*time.Second, "FleetRollout completed at v1", func() error {
		return wantPhase(t, fr.Name, v1alpha1.PhaseCompleted, v1rev)
	})

	setImage(t, a, imageV2, workloads...)
	var v2rev string
	fleettest.Eventually(t, 30*time.Second, "new revision recorded", func() error {
		got := getFleetRollout(t, fr.Name)
		if got.Status.Fleet.Revision == "" || got.Status.Fleet.Revision == v1rev {
			return fmt.Errorf("revision %q", got.Status.Fleet.Revision)
		}
		v2rev = got.Status.Fleet.Revision
		return nil
	})
	fleettest.InjectFault(ctx, t, "argo-rollout2", a.ns, v2rev)

	got := waitAborted(t, fr.Name, 90*time.Second, "fleet aborted")
	if got.Status.Fleet.AbortReason != string(decide.ReasonAnalysisFailed) {
		t.Errorf("abort reason %s (%s); want AnalysisFailed", got.Status.Fleet.AbortReason, got.Status.Fleet.AbortMessage)
	}
	if msg := got.Status.Fleet.AbortMessage; !strings.Contains(msg, "analysis failed for argo-rollout2: Fail (ServingFailed)") {
		t.Errorf("abort message does not name argo-rollout2's serving side as failing: %s", msg)
	}
	fleettest.Eventually(t, 10*time.Second, "both members aborted", func() error {
		for _, c := range workloads {
			s, err := rolloutsStateOf(t, c, a)
			if err != nil {
				return err
			}
			if !s.Aborted {
				return fmt.Errorf("%s not aborted (phase %s)", c, s.Phase)
			}
		}
		return nil
	})

	samples := rec.snapshot()
	t.Logf("timeline:\n%s", rec.timeline())
	abortedAt := map[string]time.Time{}
	for _, s := range samples {
		if s.aborted && s.revision == v2rev {
			if _, ok := abortedAt[s.cluster]; !ok {
				abortedAt[s.cluster] = s.at
			}
		}
		if s.revision == v2rev && s.step > 1 {
			t.Errorf("%s moved to step %d before the abort; the failing canary must hold the fleet at step 1", s.cluster, s.step)
		}
	}
	if len(abortedAt) == 2 {
		d := abortedAt[workloads[0]].Sub(abortedAt[workloads[1]]).Abs()
		t.Logf("abort reached the two clusters %s apart", d.Round(time.Millisecond))
		if d > time.Second {
			t.Errorf("abort reached the clusters %s apart; want at most 1s", d)
		}
	}
	aborted := eventsByReason(t, fr.Name, "Aborted")
	for _, c := range workloads {
		if aborted[c] == 0 {
			t.Errorf("no Aborted event for %s", c)
		}
	}
	if c := findCondition(got, v1alpha1.ConditionAborted); c == nil || c.Status != metav1.ConditionTrue || c.Reason != string(decide.ReasonAnalysisFailed) {
		t.Errorf("Aborted condition = %+v", c)
	}
}

func rolloutsStateOf(t testing.TB, cluster string, a app) (decide.RolloutState, error) {
	u := getRollout(t, cluster, a)
	if u == nil {
		return decide.RolloutState{}, fmt.Errorf("%s: no rollout", cluster)
	}
	return rolloutsState2(u)
}

func findCondition(fr *v1alpha1.FleetRollout, typ string) *metav1.Condition {
	for i := range fr.Status.Conditions {
		if fr.Status.Conditions[i].Type == typ {
			return &fr.Status.Conditions[i]
		}
	}
	return nil
}
