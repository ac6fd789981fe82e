package decide

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	utiljson "k8s.io/apimachinery/pkg/util/json"
)

// decodeSteps decodes a JSON array of steps the way the dynamic client
// decodes a Rollout (integers as int64, other numbers as float64), keeping
// only the elements that are objects, as rollouts.State passes them.
func decodeSteps(data []byte) ([]map[string]any, bool) {
	var raw []any
	if err := utiljson.Unmarshal(data, &raw); err != nil {
		return nil, false
	}
	steps := make([]map[string]any, 0, len(raw))
	for _, r := range raw {
		m, ok := r.(map[string]any)
		if !ok {
			return nil, false
		}
		steps = append(steps, m)
	}
	return steps, true
}

// FuzzParseSteps feeds spec.strategy.canary.steps as JSON, seeded with the
// guide's steps and the forms Argo Rollouts accepts.
func FuzzParseSteps(f *testing.F) {
	for _, s := range []string{
		`[{"setWeight":20},{"pause":{}},{"setWeight":50},{"pause":{}},{"setWeight":80},{"pause":{}}]`,
		`[{"setWeight":10},{"pause":{"duration":"30s"}},{"pause":{"duration":10}},{"pause":{"duration":""}},{"pause":null}]`,
		`[{"setCanaryScale":{"weight":5,"matchTrafficWeight":false}},{"analysis":{"templates":[{"templateName":"success-rate"}]}}]`,
		`[{"setWeight":1.5}]`, `[{"setWeight":"10"}]`, `[{"setWeight":-1}]`, `[{"setWeight":101}]`, `[{"setWeight":1e300}]`,
		`[{"setWeight":10,"pause":{}}]`, `[{}]`, `[{"pause":"yes"}]`, `[{"pause":{"until":"later"}}]`, "[{\"a\\nb\":1,\"c\":2}]",
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		raw, ok := decodeSteps(data)
		if !ok {
			return
		}
		steps, err := ParseSteps(raw)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error spans lines: %q", err)
			}
			if !strings.HasPrefix(err.Error(), "step ") {
				t.Fatalf("error %q does not name the step", err)
			}
			return
		}
		if len(steps) != len(raw) {
			t.Fatalf("%d steps from %d", len(steps), len(raw))
		}
		for i, s := range steps {
			switch s.Kind {
			case StepSetWeight:
				// Argo Rollouts refuses a negative weight (and one above
				// trafficRouting.maxTrafficWeight, which steps do not know).
				if s.Weight < 0 {
					t.Fatalf("step %d: setWeight %d accepted", i, s.Weight)
				}
			case StepPause:
				if s.Spec != "" || s.Weight != 0 {
					t.Fatalf("step %d: pause with a body %+v", i, s)
				}
			default:
				if !json.Valid([]byte(s.Spec)) {
					t.Fatalf("step %d: Spec %q is not JSON", i, s.Spec)
				}
			}
		}
		// Members are compared step by step: the same steps, written with
		// other spacing or key order, must give equal lists, and a list
		// never differs from itself.
		var indented bytes.Buffer
		if err := json.Indent(&indented, data, "", "  "); err != nil {
			t.Fatal(err)
		}
		again, ok := decodeSteps(indented.Bytes())
		if !ok {
			t.Fatalf("re-indented steps do not decode: %s", indented.Bytes())
		}
		other, err := ParseSteps(again)
		if err != nil || !slices.Equal(steps, other) {
			t.Fatalf("the same steps parse differently: %v then %v, %v", steps, other, err)
		}
		if err := CheckSteps(map[string][]Step{"a": steps, "b": other}); err != nil && strings.Contains(err.Error(), "differ") {
			t.Fatalf("CheckSteps: %v", err)
		}
		if err := ValidateSteps(steps); err != nil && strings.ContainsAny(err.Error(), "\n\r") {
			t.Fatalf("ValidateSteps error spans lines: %q", err)
		}
	})
}

// FuzzPatches checks the guarded patches for any revision and step: the
// body is a JSON patch whose tests carry exactly the values given.
func FuzzPatches(f *testing.F) {
	f.Add("6d4f8c", int32(1))
	f.Add("", int32(-1))
	f.Add("a\"b\n\u2028", int32(2147483647))
	f.Fuzz(func(t *testing.T, revision string, step int32) {
		for _, p := range []Patch{PromotePatch("m", revision, step), AbortPatch("m", revision), RetryPatch("m", revision)} {
			var ops []struct {
				Op    string          `json:"op"`
				Path  string          `json:"path"`
				Value json.RawMessage `json:"value"`
			}
			if err := json.Unmarshal(p.Body, &ops); err != nil {
				t.Fatalf("%s body %s: %v", p.Kind, p.Body, err)
			}
			if len(ops) == 0 || ops[0].Op != "test" || ops[0].Path != "/status/currentPodHash" {
				t.Fatalf("%s body %s does not test the revision first", p.Kind, p.Body)
			}
			// JSON carries only UTF-8; a revision that is not (pod-template
			// hashes are hex) tests for another value and so never applies.
			var rev string
			if err := json.Unmarshal(ops[0].Value, &rev); err != nil || (utf8.ValidString(revision) && rev != revision) {
				t.Fatalf("%s tests revision %q, want %q (%v)", p.Kind, rev, revision, err)
			}
			if p.Kind == PatchPromote {
				var got int32
				if err := json.Unmarshal(ops[1].Value, &got); err != nil || got != step {
					t.Fatalf("promote tests step %d, want %d (%v)", got, step, err)
				}
			}
		}
	})
}
