package rollouts

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

// decode turns fuzzed JSON into an object the way the dynamic client
// does (integers as int64, other numbers as float64); false if it is not
// a JSON object.
func decode(data []byte) (*unstructured.Unstructured, bool) {
	var m map[string]any
	if err := utiljson.Unmarshal(data, &m); err != nil || m == nil {
		return nil, false
	}
	return &unstructured.Unstructured{Object: m}, true
}

// seedJSON is a YAML fixture of the tests as JSON.
func seedJSON(f *testing.F, doc string) []byte {
	b, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzState feeds Rollouts as a member cluster's API server could return
// them: the guide's Rollout paused at a step, fresh and aborted ones, and
// mistyped fields.
func FuzzState(f *testing.F) {
	for _, doc := range []string{
		pausedRollout,
		"metadata: {name: x, generation: 1}\nspec: {paused: true}\n",
		"metadata: {name: x, generation: 2}\nstatus: {abort: true, observedGeneration: 7c9f, phase: Degraded}\n",
		"metadata: {name: x, namespace: ns}\nspec: {strategy: {canary: {steps: [{setWeight: 10, pause: {}}]}}}\n",
		"metadata: {name: x, namespace: ns}\nspec: {strategy: {canary: {steps: [{setWeight: 10}, {pause: {}}]}}}\nstatus: {currentStepIndex: 2}\n",
		"metadata: {name: x, namespace: ns}\nspec: {strategy: {canary: {steps: [{setWeight: 10}]}}}\nstatus: {currentStepIndex: 4294967297}\n",
		"metadata: {name: x}\nspec: {strategy: {canary: {steps: [1]}}}\nstatus: {currentStepIndex: -1, observedGeneration: 1.5}\n",
		"metadata: []\nspec: {strategy: {canary: []}}\nstatus: {pauseConditions: [1, {reason: 2}]}\n",
	} {
		f.Add(seedJSON(f, doc), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, full bool) {
		u, ok := decode(data)
		if !ok {
			return
		}
		svc := ServicesOf(u)
		if c, _, _ := unstructured.NestedString(u.Object, "spec", "strategy", "canary", "canaryService"); svc.Canary != c {
			t.Fatalf("ServicesOf canary %q, want %q", svc.Canary, c)
		}
		spec, status := PromotePatches(u, full)
		for _, p := range []string{spec, status} {
			if p != "" && !json.Valid([]byte(p)) {
				t.Fatalf("PromotePatches gave %q, not JSON", p)
			}
		}

		s, err := State(u)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "rollout "+u.GetNamespace()+"/"+u.GetName()+": ") {
				t.Fatalf("error %q does not name the Rollout", err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error spans lines: %q", err)
			}
			return
		}
		raw, _, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "strategy", "canary", "steps")
		if list, ok := raw.([]any); ok && len(list) != len(s.Steps) {
			t.Fatalf("%d steps from %d", len(s.Steps), len(list))
		}
		if i := s.CurrentStepIndex; i != nil && (*i < 0 || int(*i) > len(s.Steps)) {
			t.Fatalf("step index %d outside 0..%d", *i, len(s.Steps))
		}
		if i := s.CurrentStepIndex; i != nil {
			if want, _, _ := unstructured.NestedInt64(u.Object, "status", "currentStepIndex"); int64(*i) != want {
				t.Fatalf("step index %d, status says %d", *i, want)
			}
		}
		if s.Generation != u.GetGeneration() {
			t.Fatalf("generation %d, want %d", s.Generation, u.GetGeneration())
		}
		// A promotion of a Rollout State accepts moves at most one step,
		// and never past the end.
		if i := s.CurrentStepIndex; i != nil && !full && status != "" && status != clearPauseConditionsPatch {
			var p struct {
				Status struct {
					CurrentStepIndex int64 `json:"currentStepIndex"`
				} `json:"status"`
			}
			if err := json.Unmarshal([]byte(status), &p); err != nil {
				t.Fatal(err)
			}
			if next := p.Status.CurrentStepIndex; next < int64(*i) || next > int64(*i)+1 || next > int64(len(s.Steps)) {
				t.Fatalf("promote from step %d of %d sends step %d", *i, len(s.Steps), next)
			}
		}
	})
}

// FuzzRouteWeights feeds VirtualServices and route names. RouteWeights
// promises weights as Istio stores them (non-negative 32-bit integers), not
// that they add up to 100: with trafficRouting.maxTrafficWeight they add
// up to that, and a route may send to other hosts too.
func FuzzRouteWeights(f *testing.F) {
	vs := seedJSON(f, labVirtualService)
	f.Add(vs, "helloworld", "helloworld", "helloworld-canary")
	f.Add(vs, "", "helloworld", "helloworld-canary")
	f.Add(vs, "missing", "helloworld", "helloworld-canary")
	f.Add(seedJSON(f, "metadata: {name: vs}\nspec: {http: [{route: [{destination: {host: s}, weight: -1}, {destination: {host: c}, weight: 4294967297}]}]}\n"), "", "s", "c")
	f.Add(seedJSON(f, "spec: {http: [{route: [{destination: {host: s}}, {destination: {}, weight: 1.5}, 3]}, 7]}\n"), "", "s", "")
	f.Fuzz(func(t *testing.T, data []byte, route, stable, canary string) {
		u, ok := decode(data)
		if !ok {
			return
		}
		var routes []string
		if route != "" {
			routes = strings.Split(route, ",")
		}
		w, err := RouteWeights(u, routes, stable, canary)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "virtualservice "+u.GetNamespace()+"/"+u.GetName()+": ") {
				t.Fatalf("error %q does not name the VirtualService", err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error spans lines: %q", err)
			}
			return
		}
		if w == nil || w.Stable < 0 || w.Canary < 0 {
			t.Fatalf("weights %+v", w)
		}
		// The weights are ones written for the hosts: a weight never
		// appears from nowhere.
		for _, c := range []struct {
			host   string
			weight int32
		}{{stable, w.Stable}, {canary, w.Canary}} {
			if c.weight != 0 && !hasDestination(u, c.host, c.weight) {
				t.Fatalf("weight %d for %q, which no route gives it", c.weight, c.host)
			}
		}
	})
}

// hasDestination reports whether some HTTP route of vs sends weight to host.
func hasDestination(vs *unstructured.Unstructured, host string, weight int32) bool {
	http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	for _, r := range http {
		route, _ := r.(map[string]any)
		dests, _ := route["route"].([]any)
		for _, d := range dests {
			dm, _ := d.(map[string]any)
			h, _, _ := unstructured.NestedString(dm, "destination", "host")
			if w, ok := dm["weight"].(int64); ok && h == host && w == int64(weight) {
				return true
			}
		}
	}
	return false
}
