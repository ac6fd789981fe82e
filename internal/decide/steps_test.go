package decide

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseSteps(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		raw     []map[string]any
		want    []Step
		wantErr string
	}{
		{
			name: "guide steps as decoded from JSON",
			raw: []map[string]any{
				{"setWeight": int64(20)}, {"pause": map[string]any{}},
				{"setWeight": float64(50)}, {"pause": nil},
				{"setWeight": json.Number("80")}, {"pause": map[string]any{"duration": nil}},
			},
			want: []Step{SetWeight(20), Pause(), SetWeight(50), Pause(), SetWeight(80), Pause()},
		},
		{
			name: "timed pauses keep their duration",
			raw:  []map[string]any{{"pause": map[string]any{"duration": "30s"}}, {"pause": map[string]any{"duration": int64(10)}}, {"pause": map[string]any{"duration": ""}}},
			want: []Step{TimedPause("30s"), TimedPause("10"), TimedPause(`""`)},
		},
		{
			name: "unknown kinds are kept canonically",
			raw:  []map[string]any{{"setCanaryScale": map[string]any{"weight": int64(5), "matchTrafficWeight": false}}},
			want: []Step{{Kind: "setCanaryScale", Spec: `{"matchTrafficWeight":false,"weight":5}`}},
		},
		{name: "two keys", raw: []map[string]any{{"setWeight": int64(1), "pause": map[string]any{}}}, wantErr: "step 0: want exactly one key"},
		{name: "empty step", raw: []map[string]any{{}}, wantErr: "step 0: want exactly one key"},
		{name: "fractional weight", raw: []map[string]any{{"setWeight": 1.5}}, wantErr: "not a 32-bit integer"},
		{name: "string weight", raw: []map[string]any{{"setWeight": "10"}}, wantErr: "want a number"},
		{name: "negative weight", raw: []map[string]any{{"setWeight": int64(-10)}}, wantErr: "step 0: setWeight: -10 is negative"},
		{name: "weight above 100 is left to maxTrafficWeight", raw: []map[string]any{{"setWeight": int64(500)}}, want: []Step{SetWeight(500)}},
		{name: "keys are quoted", raw: []map[string]any{{"a\nb": int64(1), "c": int64(2)}}, wantErr: `got 2 ["a\nb" "c"]`},
		{name: "pause not an object", raw: []map[string]any{{"pause": "yes"}}, wantErr: "want an object"},
		{name: "pause with unknown field", raw: []map[string]any{{"pause": map[string]any{"until": "later"}}}, wantErr: `unknown field "until"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSteps(tc.raw)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCheckSteps(t *testing.T) {
	t.Parallel()
	guide := []Step{SetWeight(20), Pause(), SetWeight(50), Pause()}
	tests := []struct {
		name  string
		lists map[string][]Step
		want  []string // substrings, one per expected problem
	}{
		{name: "identical lists", lists: map[string][]Step{"a": guide, "b": slices.Clone(guide), "c": slices.Clone(guide)}},
		{name: "single member", lists: map[string][]Step{"a": guide}},
		{name: "no members", lists: map[string][]Step{}},
		{
			name:  "weight differs",
			lists: map[string][]Step{"a": guide, "b": {SetWeight(20), Pause(), SetWeight(60), Pause()}},
			want:  []string{`steps of b differ from a: step 2 is "setWeight: 60" here but "setWeight: 50" there`},
		},
		{
			name:  "length differs",
			lists: map[string][]Step{"a": guide, "b": guide[:2]},
			want:  []string{"steps of b differ from a: 2 steps here but 4 there"},
		},
		{
			name:  "timed pause in one list",
			lists: map[string][]Step{"a": guide, "b": {SetWeight(20), TimedPause("30s"), SetWeight(50), Pause()}},
			want:  []string{"b: step 1 (pause: {duration: 30s}) is a timed pause", "steps of b differ from a: step 1"},
		},
		{
			name:  "timed pause everywhere",
			lists: map[string][]Step{"a": {TimedPause("1m")}, "b": {TimedPause("1m")}},
			want:  []string{"a: step 0", "b: step 0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := CheckSteps(tc.lists)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			var se *StepsError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want *StepsError", err)
			}
			if len(se.Problems) != len(tc.want) {
				t.Fatalf("problems = %q, want %d", se.Problems, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.Contains(se.Problems[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, se.Problems[i], w)
				}
			}
		})
	}
}

func TestValidateSteps(t *testing.T) {
	t.Parallel()
	if err := ValidateSteps([]Step{SetWeight(10), Pause(), {Kind: "analysis", Spec: "{}"}}); err != nil {
		t.Errorf("indefinite pauses and other kinds rejected: %v", err)
	}
	// A zero duration is still a timed pause: Argo moves on by itself.
	if err := ValidateSteps([]Step{TimedPause("0")}); err == nil {
		t.Error("pause with duration 0 accepted")
	}
}
