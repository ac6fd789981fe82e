package rollouts

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"lockstep.dev/lockstep/internal/decide"
)

func fromYAML(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	// yaml decodes integers as float64; the API machinery gives int64.
	return &unstructured.Unstructured{Object: intify(m).(map[string]any)}
}

func intify(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = intify(x)
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = intify(x)
		}
		return v
	case float64:
		if v == float64(int64(v)) {
			return int64(v)
		}
	}
	return v
}

const pausedRollout = `
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: helloworld, namespace: helloworld, generation: 3}
spec:
  strategy:
    canary:
      canaryService: helloworld-canary
      stableService: helloworld
      trafficRouting:
        istio:
          virtualService: {name: helloworld-vs, routes: [helloworld]}
      steps:
      - setWeight: 10
      - pause: {}
      - setWeight: 50
      - pause: {duration: 30s}
status:
  observedGeneration: "3"
  currentPodHash: 6d4f8c
  stableRS: 5b7c9d
  currentStepIndex: 1
  controllerPause: true
  phase: Paused
  pauseConditions:
  - {reason: CanaryPauseStep, startTime: "2026-01-01T00:00:00Z"}
`

func TestState(t *testing.T) {
	t.Parallel()
	one := int32(1)
	for _, c := range []struct {
		name string
		in   string
		want decide.RolloutState
	}{
		{
			name: "paused at a canary pause step",
			in:   pausedRollout,
			want: decide.RolloutState{
				Generation: 3, ObservedGeneration: 3, Revision: "6d4f8c", StableRevision: "5b7c9d",
				CurrentStepIndex: &one, ControllerPause: true, PauseReasons: []string{"CanaryPauseStep"},
				Phase: decide.PhasePaused,
				Steps: []decide.Step{decide.SetWeight(10), decide.Pause(), decide.SetWeight(50), decide.TimedPause("30s")},
			},
		},
		{
			name: "fresh rollout without status",
			in:   "metadata: {name: x, generation: 1}\nspec: {paused: true}\n",
			want: decide.RolloutState{Generation: 1, SpecPaused: true, Steps: []decide.Step{}},
		},
		{
			name: "aborted, observedGeneration not a number",
			in:   "metadata: {name: x, generation: 2}\nstatus: {abort: true, observedGeneration: 7c9f, phase: Degraded}\n",
			want: decide.RolloutState{Generation: 2, Aborted: true, Phase: decide.PhaseDegraded, Steps: []decide.Step{}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := State(fromYAML(t, c.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("State =\n%+v\nwant\n%+v", got, c.want)
			}
		})
	}
}

func TestStateRejectsBadSteps(t *testing.T) {
	t.Parallel()
	_, err := State(fromYAML(t, "metadata: {name: x, namespace: ns}\nspec: {strategy: {canary: {steps: [{setWeight: 10, pause: {}}]}}}\n"))
	if err == nil {
		t.Fatal("a step with two keys was accepted")
	}
}

func TestStateRejectsImpossibleStepIndex(t *testing.T) {
	t.Parallel()
	steps := "spec: {strategy: {canary: {steps: [{setWeight: 10}, {pause: {}}]}}}\n"
	for _, c := range []struct {
		index   string
		wantErr string
	}{
		{index: "0"},
		{index: "2"}, // every step done
		{index: "3", wantErr: "status.currentStepIndex 3 is not a step (the Rollout has 2)"},
		{index: "-1", wantErr: "status.currentStepIndex -1 is not a step"},
		// Truncated to 32 bits this would read as step 1.
		{index: "4294967297", wantErr: "status.currentStepIndex 4294967297 is not a step"},
	} {
		t.Run(c.index, func(t *testing.T) {
			t.Parallel()
			s, err := State(fromYAML(t, "metadata: {name: x, namespace: ns}\n"+steps+"status: {currentStepIndex: "+c.index+"}\n"))
			if c.wantErr == "" {
				if err != nil || s.CurrentStepIndex == nil || fmt.Sprint(*s.CurrentStepIndex) != c.index {
					t.Fatalf("State = %v, %v; want index %s", s.CurrentStepIndex, err, c.index)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "rollout ns/x") {
				t.Fatalf("err = %v, want %q naming the Rollout", err, c.wantErr)
			}
		})
	}
}

// labVirtualService is the lab's VirtualService: another route first, then the canary's.
const labVirtualService = `
metadata: {name: helloworld-vs, namespace: helloworld}
spec:
  http:
  - name: other
    route:
    - {destination: {host: helloworld}, weight: 100}
  - name: helloworld
    route:
    - {destination: {host: helloworld, port: {number: 5000}}, weight: 70}
    - {destination: {host: helloworld-canary, port: {number: 5000}}, weight: 30}
`

func TestRouteWeights(t *testing.T) {
	t.Parallel()
	vs := fromYAML(t, labVirtualService)
	w, err := RouteWeights(vs, []string{"helloworld"}, "helloworld", "helloworld-canary")
	if err != nil || *w != (Weights{Stable: 70, Canary: 30}) {
		t.Errorf("named route: %+v, %v", w, err)
	}
	w, err = RouteWeights(vs, nil, "helloworld", "helloworld-canary")
	if err != nil || *w != (Weights{Stable: 100}) {
		t.Errorf("first route: %+v, %v", w, err)
	}
	if _, err := RouteWeights(vs, []string{"missing"}, "helloworld", "helloworld-canary"); err == nil {
		t.Error("missing route: no error")
	}
	for _, weight := range []string{"-10", "4294967346"} {
		bad := fromYAML(t, "metadata: {name: vs, namespace: ns}\nspec: {http: [{name: r, route: [{destination: {host: s}, weight: "+weight+"}, {destination: {host: c}, weight: 0}]}]}\n")
		if w, err := RouteWeights(bad, nil, "s", "c"); err == nil || !strings.Contains(err.Error(), "weight "+weight+" of \"s\" is not a weight") {
			t.Errorf("weight %s: %+v, %v; want an error", weight, w, err)
		}
	}
}

func TestPromotePatches(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name             string
		in               string
		full             bool
		wantSpec, wantSt string
	}{
		{name: "paused at a pause step", in: pausedRollout, wantSt: `{"status":{"pauseConditions":null}}`},
		{name: "full", in: pausedRollout, full: true, wantSt: `{"status":{"promoteFull":true}}`},
		{name: "full, already stable", in: "spec: {}\nstatus: {currentPodHash: a, stableRS: a}\n", full: true},
		{
			name: "spec paused, no pause conditions: next step", in: "spec: {paused: true, strategy: {canary: {steps: [{setWeight: 10}, {pause: {}}]}}}\nstatus: {currentStepIndex: 0}\n",
			wantSpec: `{"spec":{"paused":false}}`, wantSt: `{"status":{"pauseConditions":null, "currentStepIndex":1}}`,
		},
		{
			name: "last step is not passed", in: "spec: {strategy: {canary: {steps: [{setWeight: 10}]}}}\nstatus: {currentStepIndex: 1}\n",
			wantSt: `{"status":{"pauseConditions":null, "currentStepIndex":1}}`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			spec, st := PromotePatches(fromYAML(t, c.in), c.full)
			if spec != c.wantSpec || st != c.wantSt {
				t.Errorf("PromotePatches = %q, %q; want %q, %q", spec, st, c.wantSpec, c.wantSt)
			}
		})
	}
}
