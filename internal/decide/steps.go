package decide

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// StepKind names a canary step by its Argo Rollouts key.
type StepKind string

// The step kinds Lockstep understands. Any other key (analysis, experiment,
// setCanaryScale, ...) is kept under its own name and compared verbatim.
const (
	StepSetWeight StepKind = "setWeight"
	StepPause     StepKind = "pause"
)

// Step is one canary step in a comparable form: two members run the same
// steps exactly when their []Step are element-wise equal.
type Step struct {
	Kind StepKind
	// Weight is the setWeight value.
	Weight int32
	// PauseDuration is the pause duration as written ("30s", "30"); empty
	// for an indefinite pause, the only kind Lockstep can coordinate.
	PauseDuration string
	// Spec is the canonical JSON of any other step's body, so that two
	// steps of the same unknown kind compare equal only if identical.
	Spec string
}

// SetWeight returns a setWeight step.
func SetWeight(w int32) Step { return Step{Kind: StepSetWeight, Weight: w} }

// Pause returns an indefinite pause step.
func Pause() Step { return Step{Kind: StepPause} }

// TimedPause returns a pause step with a duration.
func TimedPause(d string) Step { return Step{Kind: StepPause, PauseDuration: d} }

// IsIndefinitePause reports whether the step is a pause without duration.
func (s Step) IsIndefinitePause() bool {
	return s.Kind == StepPause && s.PauseDuration == ""
}

// String renders the step the way it is written in a Rollout.
func (s Step) String() string {
	switch s.Kind {
	case StepSetWeight:
		return fmt.Sprintf("setWeight: %d", s.Weight)
	case StepPause:
		if s.PauseDuration == "" {
			return "pause: {}"
		}
		return fmt.Sprintf("pause: {duration: %s}", s.PauseDuration)
	default:
		return fmt.Sprintf("%s: %s", s.Kind, s.Spec)
	}
}

// ParseSteps converts spec.strategy.canary.steps, as read from an
// unstructured Rollout, into Steps. Each element must set exactly one key, as
// Argo Rollouts requires.
func ParseSteps(raw []map[string]any) ([]Step, error) {
	steps := make([]Step, 0, len(raw))
	for i, m := range raw {
		s, err := parseStep(m)
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", i, err)
		}
		steps = append(steps, s)
	}
	return steps, nil
}

func parseStep(m map[string]any) (Step, error) {
	if len(m) != 1 {
		return Step{}, fmt.Errorf("want exactly one key, got %d %q", len(m), slices.Sorted(maps.Keys(m)))
	}
	var key string
	var val any
	for k, v := range m {
		key, val = k, v
	}
	switch StepKind(key) {
	case StepSetWeight:
		w, err := toInt32(val)
		if err != nil {
			return Step{}, fmt.Errorf("setWeight: %w", err)
		}
		// Argo Rollouts refuses a negative weight too; Lockstep must not
		// read one as "no canary traffic yet" and skip the analysis. The
		// upper bound is trafficRouting.maxTrafficWeight (default 100),
		// which Argo checks.
		if w < 0 {
			return Step{}, fmt.Errorf("setWeight: %d is negative", w)
		}
		return SetWeight(w), nil
	case StepPause:
		return parsePause(val)
	default:
		// encoding/json sorts map keys, so equal bodies give equal text.
		spec, err := json.Marshal(val)
		if err != nil {
			return Step{}, fmt.Errorf("%s: %w", key, err)
		}
		return Step{Kind: StepKind(key), Spec: string(spec)}, nil
	}
}

func parsePause(val any) (Step, error) {
	if val == nil {
		return Pause(), nil
	}
	body, ok := val.(map[string]any)
	if !ok {
		return Step{}, fmt.Errorf("pause: want an object, got %T", val)
	}
	for k := range body {
		if k != "duration" {
			return Step{}, fmt.Errorf("pause: unknown field %q", k)
		}
	}
	d, ok := body["duration"]
	if !ok || d == nil {
		return Pause(), nil
	}
	switch d := d.(type) {
	case string:
		// An empty string is still a duration field that was set; keep it
		// visible rather than mistaking it for an indefinite pause.
		if d == "" {
			return TimedPause(`""`), nil
		}
		return TimedPause(d), nil
	default:
		n, err := toInt32(d)
		if err != nil {
			return Step{}, fmt.Errorf("pause duration: %w", err)
		}
		return TimedPause(strconv.Itoa(int(n))), nil
	}
}

func toInt32(v any) (int32, error) {
	var f float64
	switch n := v.(type) {
	case int:
		f = float64(n)
	case int32:
		return n, nil
	case int64:
		f = float64(n)
	case float64:
		f = n
	case json.Number:
		var err error
		if f, err = n.Float64(); err != nil {
			return 0, err
		}
	default:
		return 0, fmt.Errorf("want a number, got %T", v)
	}
	if f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
		return 0, fmt.Errorf("%v is not a 32-bit integer", v)
	}
	return int32(f), nil
}

// StepsError lists why a set of step lists cannot be coordinated.
type StepsError struct {
	Problems []string
}

func (e *StepsError) Error() string {
	return strings.Join(e.Problems, "; ")
}

// ValidateSteps reports the steps of one list that Lockstep cannot
// coordinate. A timed pause is one: Argo Rollouts leaves it on its own clock,
// so members would move on independently and no barrier could hold them.
func ValidateSteps(steps []Step) error {
	var problems []string
	for i, s := range steps {
		if s.Kind == StepPause && !s.IsIndefinitePause() {
			problems = append(problems, fmt.Sprintf("step %d (%s) is a timed pause; use pause: {} so Lockstep decides when to move on", i, s))
		}
	}
	if len(problems) > 0 {
		return &StepsError{Problems: problems}
	}
	return nil
}

// CheckSteps validates every member's list and checks that all lists are
// identical, because a barrier at step N only means something if step N is
// the same step everywhere. Members are reported in name order so the message
// is stable. It returns nil or a *StepsError.
func CheckSteps(lists map[string][]Step) error {
	names := slices.Sorted(maps.Keys(lists))
	var problems []string
	for _, name := range names {
		var se *StepsError
		if err := ValidateSteps(lists[name]); errors.As(err, &se) {
			for _, p := range se.Problems {
				problems = append(problems, name+": "+p)
			}
		}
	}
	if len(names) > 1 {
		ref := names[0]
		for _, name := range names[1:] {
			if d := diffSteps(lists[ref], lists[name]); d != "" {
				problems = append(problems, fmt.Sprintf("steps of %s differ from %s: %s", name, ref, d))
			}
		}
	}
	if len(problems) > 0 {
		return &StepsError{Problems: problems}
	}
	return nil
}

// diffSteps describes the first difference between a and b, or returns "".
func diffSteps(a, b []Step) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("step %d is %q here but %q there", i, b[i], a[i])
		}
	}
	if len(a) != len(b) {
		return fmt.Sprintf("%d steps here but %d there", len(b), len(a))
	}
	return ""
}

// CheckBarriers reports approval barriers (Policy.ApprovalBarriers) at
// steps that are not pauses of steps: the fleet never stops there, so the
// approval a person expects would never be asked for.
func CheckBarriers(steps []Step, barriers map[int32]string) error {
	var problems []string
	for _, n := range slices.Sorted(maps.Keys(barriers)) {
		switch {
		case int(n) >= len(steps):
			problems = append(problems, fmt.Sprintf("spec.hold.steps: barrier %s at step %d: the Rollout has %d steps", barriers[n], n, len(steps)))
		case steps[n].Kind != StepPause:
			problems = append(problems, fmt.Sprintf("spec.hold.steps: barrier %s at step %d (%s) is not a pause step: nothing would wait for its approval", barriers[n], n, steps[n]))
		}
	}
	if len(problems) > 0 {
		return &StepsError{Problems: problems}
	}
	return nil
}
