package coordinator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/test/fleettest"
)

// pausedAtStep1 deploys a at v1 in the given clusters (steps per cluster),
// then moves it to v2 so that Argo Rollouts pauses at step 1 on its own.
func pausedAtStep1(t *testing.T, a app, stepsByCluster map[string][]any) {
	t.Helper()
	cleanupApp(t, a)
	for _, c := range workloads {
		ac := a
		if s, ok := stepsByCluster[c]; ok {
			ac.steps = s
		}
		deploy(t, ac, imageV1, c)
	}
	waitHealthy(t, a, imageV1, 90*time.Second, workloads...)
	setImage(t, a, imageV2, workloads...)
	for _, c := range workloads {
		fleettest.Eventually(t, 60*time.Second, c+" paused at step 1", func() error { return isPausedAt(t, c, a, 1) })
	}
}

func isPausedAt(t testing.TB, cluster string, a app, step int32) error {
	s, err := rolloutsStateOf(t, cluster, a)
	if err != nil {
		return err
	}
	if s.CurrentStepIndex == nil || *s.CurrentStepIndex != step || len(s.PauseReasons) != 1 || s.Aborted {
		idx := int32(-1)
		if s.CurrentStepIndex != nil {
			idx = *s.CurrentStepIndex
		}
		return fmt.Errorf("step %d, pause reasons %v, aborted %t", idx, s.PauseReasons, s.Aborted)
	}
	return nil
}

// TestInvalidFleetRolloutsTouchNothing checks that FleetRollouts the
// coordinator cannot act on safely get a Valid=False condition with a
// clear reason and that no member is patched: every Rollout stays paused
// at step 1 although the hold time is zero, so a valid FleetRollout would
// promote at once.
func TestInvalidFleetRolloutsTouchNothing(t *testing.T) {
	setup(t)
	stopLogs(t)

	good := newApp("it-invalid")
	timed := newApp("it-timed")
	timedSteps := defaultSteps()
	timedSteps[1] = map[string]any{"pause": map[string]any{"duration": "1h"}}
	timed.steps = timedSteps
	mismatched := newApp("it-mismatch")
	otherSteps := defaultSteps()
	otherSteps[0] = map[string]any{"setWeight": int64(30)}

	pausedAtStep1(t, good, nil)
	pausedAtStep1(t, timed, nil)
	pausedAtStep1(t, mismatched, map[string][]any{"argo-rollout2": otherSteps})

	zero := &metav1.Duration{}
	cases := []struct {
		name       string
		app        app
		mod        func(*v1alpha1.FleetRollout)
		wantReason string
		wantMsg    string
	}{
		{
			name: "unknown-cluster", app: good,
			mod:        func(fr *v1alpha1.FleetRollout) { fr.Spec.Members.Names = []string{"argo-rollout1", "argo-rollout9"} },
			wantReason: v1alpha1.ReasonUnknownMember, wantMsg: "argo-rollout9",
		},
		{
			name: "bad-promql", app: good,
			mod: func(fr *v1alpha1.FleetRollout) {
				fr.Spec.Analysis = successRate()
				fr.Spec.Analysis.Metrics[0].Ratio = nil
				fr.Spec.Analysis.Metrics[0].Query = `sum {{scope}} (rate(istio_requests_total[1m])`
			},
			wantReason: v1alpha1.ReasonInvalidSpec, wantMsg: "unclosed",
		},
		{
			name: "impossible-confidence", app: good,
			mod: func(fr *v1alpha1.FleetRollout) {
				fr.Spec.Analysis = &v1alpha1.Analysis{Judge: &v1alpha1.Judge{FalseAbortRate: "1.5", FalsePromoteRate: "0"}}
			},
			wantReason: v1alpha1.ReasonInvalidSpec, wantMsg: "spec.analysis.judge.falseAbortRate",
		},
		{
			name: "judge-histogram-without-buckets", app: good,
			mod: func(fr *v1alpha1.FleetRollout) {
				fr.Spec.Analysis = &v1alpha1.Analysis{Judge: &v1alpha1.Judge{Latency: &v1alpha1.LatencyJudge{Histogram: "istio_request_duration_milliseconds_count"}}}
			},
			wantReason: v1alpha1.ReasonInvalidSpec, wantMsg: "spec.analysis.judge.latency.histogram",
		},
		{
			name: "overlapping-waves", app: good,
			mod: func(fr *v1alpha1.FleetRollout) {
				fr.Spec.Waves = []v1alpha1.Wave{{Name: "one", Names: []string{"argo-rollout1"}}, {Name: "both", Names: []string{"argo-rollout1", "argo-rollout2"}}}
			},
			wantReason: v1alpha1.ReasonInvalidSpec, wantMsg: "spec.waves[1] (both) overlaps spec.waves[0] (one): argo-rollout1 is in both",
		},
		{
			name: "wave-matching-nothing", app: good,
			mod: func(fr *v1alpha1.FleetRollout) {
				fr.Spec.Waves = []v1alpha1.Wave{{Name: "ap", Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"region": "ap"}}}, {Name: "rest", Rest: true}}
			},
			wantReason: v1alpha1.ReasonInvalidSpec, wantMsg: "spec.waves[0] (ap) matches no member cluster",
		},
		{
			name: "wave-max-failures", app: good,
			mod: func(fr *v1alpha1.FleetRollout) {
				fr.Spec.Waves = []v1alpha1.Wave{{Name: "one", Names: []string{"argo-rollout1"}, MaxFailures: 2}, {Name: "rest", Rest: true}}
			},
			wantReason: v1alpha1.ReasonInvalidSpec, wantMsg: "spec.waves[0].maxFailures: 2 is more than the wave's 1 clusters",
		},
		{
			name: "shadow-unmeetable-threshold", app: good,
			mod: func(fr *v1alpha1.FleetRollout) {
				fr.Spec.Analysis = successRate()
				fr.Spec.Analysis.Mode = "Shadow"
				fr.Spec.Analysis.Metrics[0].Threshold = v1alpha1.Threshold{Op: v1alpha1.OpGreater, Value: "1"}
			},
			wantReason: v1alpha1.ReasonInvalidSpec, wantMsg: `metric "success-rate": threshold "> 1" can never be met by a ratio`,
		},
		{
			name: "approval-barrier-not-a-pause", app: good,
			mod: func(fr *v1alpha1.FleetRollout) {
				fr.Spec.Hold.Steps = []v1alpha1.StepHold{{Step: 0, Name: "gate", Approval: "Required"}}
			},
			wantReason: string(decide.ReasonStepsNotCoordinable), wantMsg: "spec.hold.steps: barrier gate at step 0 (setWeight",
		},
		{name: "timed-pause", app: timed, wantReason: string(decide.ReasonStepsNotCoordinable), wantMsg: "timed pause"},
		{name: "mismatched-steps", app: mismatched, wantReason: string(decide.ReasonStepsNotCoordinable), wantMsg: "differ"},
	}
	for _, c := range cases {
		fr := newFleetRollout(c.name, c.app)
		fr.Spec.Hold.Default = zero
		if c.mod != nil {
			c.mod(fr)
		}
		createFleetRollout(t, fr)
	}
	startCoordinator(t)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fleettest.Eventually(t, 30*time.Second, "Valid=False", func() error {
				got := getFleetRollout(t, c.name)
				cond := findCondition(got, v1alpha1.ConditionValid)
				if cond == nil || cond.Status != metav1.ConditionFalse {
					return fmt.Errorf("Valid condition %+v; phase %s", cond, got.Status.Phase)
				}
				if cond.Reason != c.wantReason || !strings.Contains(cond.Message, c.wantMsg) {
					return fmt.Errorf("Valid=False with %s: %s; want %s mentioning %q", cond.Reason, cond.Message, c.wantReason, c.wantMsg)
				}
				if got.Status.Phase != v1alpha1.PhaseRefused {
					return fmt.Errorf("phase %s, want Refused", got.Status.Phase)
				}
				return nil
			})
		})
	}
	// Give a (wrong) promotion time to happen before looking for it.
	time.Sleep(3 * time.Second)
	for _, a := range []app{good, timed, mismatched} {
		for _, c := range workloads {
			if err := isPausedAt(t, c, a, 1); err != nil {
				t.Errorf("%s/%s was touched: %v", a.ns, c, err)
			}
		}
	}
}

// TestAPIServerRejectsMalformedSpecs checks the CRD's OpenAPI and CEL rules.
func TestAPIServerRejectsMalformedSpecs(t *testing.T) {
	setup(t)
	a := newApp("unused")
	for _, c := range []struct {
		name string
		mod  func(u map[string]any)
		want string
	}{
		{"selector-and-names", func(u map[string]any) {
			spec(u)["members"] = map[string]any{"names": []any{"a"}, "selector": map[string]any{"matchLabels": map[string]any{"x": "y"}}}
		}, "exactly one of members.selector and members.names"},
		{"neither", func(u map[string]any) { spec(u)["members"] = map[string]any{} }, "exactly one of members.selector and members.names"},
		{"bad-duration", func(u map[string]any) { spec(u)["hold"] = map[string]any{"default": "soon"} }, "hold.default"},
		{"negative-deadline", func(u map[string]any) { spec(u)["policy"] = map[string]any{"unreachableDeadline": "-1s"} }, "positive duration"},
		{"wave-percentage-over-100", func(u map[string]any) {
			spec(u)["waves"] = []any{map[string]any{"name": "all", "rest": true, "maxParallel": "150%"}}
		}, "maxParallel"},
		{"wave-names-and-rest", func(u map[string]any) {
			spec(u)["waves"] = []any{map[string]any{"name": "all", "rest": true, "names": []any{"argo-rollout1"}}}
		}, "exactly one of names, selector and rest"},
		{"bad-on-new-revision", func(u map[string]any) { spec(u)["policy"] = map[string]any{"onNewRevision": "Ignore"} }, "Unsupported value"},
		{"serving-label-with-promql", func(u map[string]any) {
			spec(u)["analysis"] = map[string]any{"clusters": []any{map[string]any{"member": "argo-rollout1", "serving": `x"} or vector(1) or up{a="`}}}
		}, "spec.analysis.clusters[0].serving"},
		{"approval-barrier-without-name", func(u map[string]any) {
			spec(u)["hold"] = map[string]any{"steps": []any{map[string]any{"step": int64(1), "duration": "0s", "approval": "Required"}}}
		}, "a barrier with approval Required needs a name"},
		{"bad-op", func(u map[string]any) {
			spec(u)["analysis"] = map[string]any{"metrics": []any{map[string]any{"name": "m", "query": "x", "threshold": map[string]any{"op": "==", "value": "1"}}}}
		}, "Unsupported value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fr := newFleetRollout("bad-"+c.name, a)
			body, err := toUnstructured(fr)
			if err != nil {
				t.Fatal(err)
			}
			c.mod(body.Object)
			_, err = fleettest.Dynamic(t, "argo-hub").Resource(v1alpha1.GroupVersion.WithResource("fleetrollouts")).Namespace("default").Create(context.Background(), body, metav1.CreateOptions{})
			if err == nil {
				t.Fatal("the API server accepted it")
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v; want Invalid mentioning %q", err, c.want)
			}
		})
	}
}

func spec(u map[string]any) map[string]any { return u["spec"].(map[string]any) }

func toUnstructured(fr *v1alpha1.FleetRollout) (*unstructured.Unstructured, error) {
	fr = fr.DeepCopy()
	fr.APIVersion, fr.Kind = v1alpha1.GroupVersion.String(), "FleetRollout"
	m, err := runtimeToMap(fr)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}
