package view

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/fleet"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

var t0 = time.Date(2026, 11, 26, 0, 12, 28, 100_000_000, time.UTC)

// rollout builds a helloworld Rollout paused at a step of revision
// "6d4f" over stable "5c8b"; mods change it.
func rollout(mods ...func(map[string]any)) *unstructured.Unstructured {
	steps := []any{
		map[string]any{"setWeight": int64(10)}, map[string]any{"pause": map[string]any{}},
		map[string]any{"setWeight": int64(20)}, map[string]any{"pause": map[string]any{}},
		map[string]any{"setWeight": int64(50)}, map[string]any{"pause": map[string]any{}},
	}
	obj := map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": "helloworld", "namespace": "helloworld", "uid": "ro-uid"},
		"spec":     map[string]any{"strategy": map[string]any{"canary": map[string]any{"steps": steps}}},
		"status": map[string]any{
			"phase": "Paused", "message": "CanaryPauseStep", "currentPodHash": "6d4f", "stableRS": "5c8b",
			"currentStepIndex": int64(3),
			"pauseConditions":  []any{map[string]any{"reason": "CanaryPauseStep"}},
			"canary": map[string]any{
				"currentBackgroundAnalysisRunStatus": map[string]any{"name": "helloworld-6d4f-2", "status": "Running"},
			},
		},
	}
	for _, m := range mods {
		m(obj)
	}
	return &unstructured.Unstructured{Object: obj}
}

func status(obj map[string]any) map[string]any { return obj["status"].(map[string]any) }

func rs(hash, image string, replicas, ready int32) appsv1.ReplicaSet {
	return appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: "helloworld-" + hash, Namespace: "helloworld",
			Labels:          map[string]string{hashLabel: hash},
			OwnerReferences: []metav1.OwnerReference{{Kind: "Rollout", Name: "helloworld", UID: types.UID("ro-uid")}},
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: &replicas,
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "helloworld", Image: image}}}},
		},
		Status: appsv1.ReplicaSetStatus{ReadyReplicas: ready},
	}
}

func analysisRunObj() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "helloworld-6d4f-2", "namespace": "helloworld"},
		"status": map[string]any{
			"phase": "Running",
			"metricResults": []any{map[string]any{
				"name": "success-rate", "phase": "Running", "successful": int64(2), "failed": int64(0),
				"measurements": []any{
					map[string]any{"phase": "Successful", "value": "0.97", "finishedAt": "2026-11-26T00:12:20Z"},
					map[string]any{"phase": "Successful", "value": "0.99", "finishedAt": "2026-11-26T00:12:25Z"},
				},
			}},
		},
	}}
}

func micro(t time.Time) *metav1.MicroTime { m := metav1.NewMicroTime(t); return &m }
func i32(v int32) *int32                  { return &v }

func fleetRollout() *v1alpha1.FleetRollout {
	lc := metav1.NewTime(t0)
	return &v1alpha1.FleetRollout{
		ObjectMeta: metav1.ObjectMeta{Name: "helloworld", Namespace: "lockstep"},
		Status: v1alpha1.FleetRolloutStatus{
			Phase: v1alpha1.PhaseHolding, Reason: "Holding", Message: "holding step 3 for 5s",
			CurrentStep: i32(3),
			Fleet:       v1alpha1.FleetState{Revision: "6d4f", BarrierStep: i32(3), StepEnteredAt: micro(t0)},
			Analysis: &v1alpha1.AnalysisStatus{EvaluatedAt: *micro(t0), Revision: "6d4f", Global: v1alpha1.Verdict{
				Verdict: "Pass", Reason: "ThresholdMet", Message: "success-rate: 0.985 > 0.9 (1200 requests)", Requests: "1200",
				Evidence: &v1alpha1.Evidence{Canary: v1alpha1.RequestCounts{Requests: 240, Failures: 2}, Stable: v1alpha1.RequestCounts{Requests: 2160, Failures: 20},
					LogLikelihoodRatio: "-4.100", AbortAt: "6.908", PassAt: "-2.996", Decision: "FailureRateBelowThreshold",
					Latency: &v1alpha1.LatencyEvidence{Bound: "5.000", CanarySlow: v1alpha1.RequestCounts{Requests: 240, Failures: 20}, StableSlow: v1alpha1.RequestCounts{Requests: 2160, Failures: 210}}}}},
			Members: []v1alpha1.MemberStatus{
				{Name: "argo-rollout1", Reachable: true, LastContact: &lc, Verdict: &v1alpha1.Verdict{Verdict: "Pass", Reason: "ThresholdMet",
					Message: "success-rate: serving Pass (ThresholdMet: 0.99 > 0.9 (600 requests)); reporting Pass (ThresholdMet: 0.98 > 0.9 (610 requests))"}},
				{Name: "argo-rollout2", Reachable: false, Error: "cluster not connected"},
			},
			History: []v1alpha1.HistoryEntry{
				{Time: metav1.NewTime(t0.Add(-20 * time.Second)), Action: "Promote", Reason: "BarrierPassed", Step: i32(1), Revision: "6d4f", Message: "every member passed step 1"},
				{Time: metav1.NewTime(t0), Action: "Hold", Reason: "Holding", Step: i32(3), Revision: "6d4f", Message: "holding step 3 for 5s"},
			},
		},
	}
}

func scenarios() map[string]Fleet {
	ok := Observation{
		Cluster: "argo-rollout1", Rollout: rollout(), Weights: &Weights{Stable: 80, Canary: 20},
		ReplicaSets: []appsv1.ReplicaSet{
			rs("5c8b", "helloworld:v1", 4, 4), rs("6d4f", "helloworld:v2", 1, 1), rs("1a2b", "helloworld:v0", 0, 0),
		},
		AnalysisRun: analysisRunObj(),
	}
	// The outage is the typed error the fleet cache returns, as the CLI
	// would pass it.
	down := Observation{Cluster: "argo-rollout2", Err: &fleet.NotConnectedError{Cluster: "argo-rollout2", Err: errors.New("Get \"https://127.0.0.1:40001/readyz\": context deadline exceeded")}}
	aborted := Observation{
		Cluster: "argo-rollout2",
		Rollout: rollout(func(o map[string]any) {
			st := status(o)
			st["abort"], st["phase"], st["message"] = true, "Degraded", "RolloutAborted: Rollout aborted update to revision 2"
			st["currentStepIndex"] = int64(0)
			delete(st, "pauseConditions")
			delete(st, "canary")
		}),
		Weights:     &Weights{Stable: 100, Canary: 0},
		ReplicaSets: []appsv1.ReplicaSet{rs("5c8b", "helloworld:v1", 4, 4), rs("6d4f", "helloworld:v2", 0, 0)},
		// A read that failed beside the Rollout is shown, not dropped.
		OtherErrs: []error{errors.New(`get analysisrun helloworld-6d4f-1: analysisruns.argoproj.io "helloworld-6d4f-1" is forbidden`)},
	}
	missing := Observation{Cluster: "argo-rollout3"}
	// A release in waves: argo-rollout1 completed its wave and soaks,
	// argo-rollout2 waits in the next one.
	inWaves := fleetRollout()
	inWaves.Spec.Waves = []v1alpha1.Wave{{Name: "first", Names: []string{"argo-rollout1"}}, {Name: "rest", Rest: true}}
	inWaves.Status.Fleet.BarrierStep = nil
	inWaves.Status.Fleet.WaveCompletedAt = &metav1.MicroTime{Time: t0.Add(-4 * time.Second)}
	inWaves.Status.Members[0].Wave, inWaves.Status.Members[0].WaveState = "first", "Completed"
	inWaves.Status.Members[1].Wave, inWaves.Status.Members[1].WaveState = "rest", "NotStarted"
	return map[string]Fleet{
		"waves":       Build("helloworld/helloworld", inWaves, []Observation{ok, down}),
		"coordinated": Build("helloworld/helloworld", fleetRollout(), []Observation{ok, down}),
		"direct":      Build("helloworld/helloworld", nil, []Observation{ok, aborted, missing}),
	}
}

func TestGolden(t *testing.T) {
	t.Parallel()
	for name, f := range scenarios() {
		for _, format := range Formats {
			t.Run(name+"/"+format, func(t *testing.T) {
				t.Parallel()
				var buf bytes.Buffer
				if err := Print(&buf, format, f); err != nil {
					t.Fatal(err)
				}
				path := filepath.Join("testdata", name+"."+format+".golden")
				if *update {
					if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./internal/view -update to create it)", err)
				}
				if got := buf.String(); got != string(want) {
					t.Errorf("%s differs from %s:\n--- got\n%s\n--- want\n%s", format, path, got, want)
				}
			})
		}
	}
}

// The golden files are only as good as what they contain; these checks
// pin the facts a person relies on, independent of layout.
func TestBuildFacts(t *testing.T) {
	t.Parallel()
	f := scenarios()["coordinated"]
	if len(f.Clusters) != 2 {
		t.Fatalf("clusters = %d, want 2", len(f.Clusters))
	}
	up, down := f.Clusters[0], f.Clusters[1]
	if !up.Reachable || *up.SetWeight != 20 || up.Weights.Canary != 20 || up.StableImage != "helloworld:v1" || up.CanaryImage != "helloworld:v2" {
		t.Errorf("reachable cluster = %+v", up)
	}
	if len(up.ReplicaSets) != 2 {
		t.Errorf("scaled-down old ReplicaSet should be hidden: %+v", up.ReplicaSets)
	}
	if up.Verdict == nil || up.Verdict.SuccessRate == nil || *up.Verdict.SuccessRate != 0.99 {
		t.Errorf("member success rate = %+v, want the serving side's 0.99", up.Verdict)
	}
	if down.Reachable || Status(down) != "Unreachable" || !strings.Contains(down.Error, "argo-rollout2") {
		t.Errorf("unreachable cluster = %+v", down)
	}
	if f.Coordinator.Barrier != "step 3 since 00:12:28.100" {
		t.Errorf("barrier = %q", f.Coordinator.Barrier)
	}
	d := scenarios()["direct"]
	if ab := d.Clusters[1]; !ab.Aborted || *ab.SetWeight != 0 || Status(ab) != "Aborted" {
		t.Errorf("aborted cluster = %+v", ab)
	}
	if nf := d.Clusters[2]; !nf.Reachable || nf.Found || Status(nf) != "NotFound" {
		t.Errorf("missing rollout = %+v", nf)
	}
}

func TestMemberOnlyInFleetRolloutIsShown(t *testing.T) {
	t.Parallel()
	f := Build("helloworld/helloworld", fleetRollout(), []Observation{{Cluster: "argo-rollout1", Rollout: rollout()}})
	if len(f.Clusters) != 2 || f.Clusters[1].Name != "argo-rollout2" || f.Clusters[1].Reachable {
		t.Fatalf("clusters = %+v", f.Clusters)
	}
}

func TestSetWeight(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mod  func(map[string]any)
		want int32
	}{
		{"first pause", func(o map[string]any) { status(o)["currentStepIndex"] = int64(1) }, 10},
		{"second pause", func(o map[string]any) {}, 20},
		{"past last step", func(o map[string]any) { status(o)["currentStepIndex"] = int64(6) }, 100},
		{"promoted", func(o map[string]any) { status(o)["stableRS"] = "6d4f" }, 0},
		{"aborted", func(o map[string]any) { status(o)["abort"] = true }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := Build("a/b", nil, []Observation{{Cluster: "c", Rollout: rollout(tc.mod)}}).Clusters[0]
			if c.SetWeight == nil || *c.SetWeight != tc.want {
				t.Errorf("set weight = %v, want %d", c.SetWeight, tc.want)
			}
		})
	}
}

func TestSuccessRate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		msg  string
		want float64
		ok   bool
	}{
		{"success-rate: 0.985 > 0.9 (1200 requests)", 0.985, true},
		{"success-rate: not 0.5 > 0.9 (30 requests)", 0.5, true},
		{"success-rate: serving Fail (ThresholdNotMet: not 0.7 > 0.9 (40 requests)); reporting Pass (ThresholdMet: 0.95 > 0.9)", 0.7, true},
		{"success-rate: serving Inconclusive (NotANumber: value: value is NaN); reporting Pass (ThresholdMet: 0.95 > 0.9)", 0, false},
		{"success-rate: 3 requests, need 20", 0, false},
		{"success-rate: value: no series with cluster=\"x\"", 0, false},
		{"", 0, false},
	} {
		got, ok := SuccessRate(tc.msg)
		if ok != tc.ok || got != tc.want {
			t.Errorf("SuccessRate(%q) = %v, %v; want %v, %v", tc.msg, got, ok, tc.want, tc.ok)
		}
	}
}

func TestUnknownFormat(t *testing.T) {
	t.Parallel()
	err := Print(&bytes.Buffer{}, "xml", Fleet{})
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), `"xml"`) {
		t.Fatalf("Print(xml) = %v, want a one-line error naming the format", err)
	}
}

func TestCurrentAnalysisRun(t *testing.T) {
	t.Parallel()
	if n := CurrentAnalysisRun(rollout()); n != "helloworld-6d4f-2" {
		t.Errorf("CurrentAnalysisRun = %q", n)
	}
	if n := CurrentAnalysisRun(nil); n != "" {
		t.Errorf("CurrentAnalysisRun(nil) = %q", n)
	}
}

// TestEvidenceCellZones: the relative zone shows the comparison that can
// fail a canary and the pass test; the absolute zone its threshold test.
func TestEvidenceCellZones(t *testing.T) {
	t.Parallel()
	rel := &Verdict{Evidence: &v1alpha1.Evidence{Zone: "Relative", Canary: v1alpha1.RequestCounts{Requests: 120, Failures: 3}, Stable: v1alpha1.RequestCounts{Requests: 1100, Failures: 30},
		LogEValue: "-1.200", AbortAt: "6.215", LogLikelihoodRatio: "-4.000", PassAt: "-3.689"}}
	if got, want := EvidenceCell(rel), "canary 3/120 stable 30/1100 vs-stable -1.2 (fail 6.215) LLR -4 (pass -3.689)"; got != want {
		t.Errorf("relative: %q, want %q", got, want)
	}
	abs := &Verdict{Evidence: &v1alpha1.Evidence{Zone: "Absolute", Canary: v1alpha1.RequestCounts{Requests: 120, Failures: 3}, Stable: v1alpha1.RequestCounts{Requests: 1100},
		LogEValue: "0.500", AbortAt: "6.908", LogLikelihoodRatio: "-1.000", PassAt: "-2.996"}}
	if got, want := EvidenceCell(abs), "canary 3/120 stable 0/1100 LLR -1 (fail 6.908, pass -2.996) vs-stable 0.5"; got != want {
		t.Errorf("absolute: %q, want %q", got, want)
	}
}

// TestShadowBesideWhatHappened: in shadow mode the header says what the
// analysis would have done, with its evidence, above the clusters' rows
// that say what they did.
func TestShadowBesideWhatHappened(t *testing.T) {
	t.Parallel()
	fr := fleetRollout()
	fr.Status.Phase = v1alpha1.PhaseShadow
	at := time.Date(2026, 5, 1, 14, 2, 11, 0, time.UTC)
	fr.Status.Shadow = &v1alpha1.ShadowStatus{Revision: "6d4f", Verdict: "Fail", WouldAbortAt: micro(at),
		WouldAbort: "would abort every member: argo-rollout2: Fail (ServingFailed/CanaryWorseThanStable)",
		Evidence:   &v1alpha1.Evidence{Canary: v1alpha1.RequestCounts{Requests: 20, Failures: 9}, Stable: v1alpha1.RequestCounts{Requests: 180}}}
	f := Build("helloworld/helloworld", fr, nil)
	var b strings.Builder
	if err := Print(&b, "table", f); err != nil {
		t.Fatal(err)
	}
	want := "  SHADOW would have aborted at 14:02:11: would abort every member: argo-rollout2: Fail (ServingFailed/CanaryWorseThanStable)  EVIDENCE canary 9/20 stable 0/180\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("table:\n%s\nwant a line\n%s", b.String(), want)
	}
}
