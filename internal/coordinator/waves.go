package coordinator

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/fleet"
)

// wavesFromSpec resolves spec.waves against the members into decide's
// batches: names and selectors first, then the rest; each wave's clusters
// in name order, cut into batches of maxParallel. Anything that does not
// split the members cleanly is an error naming the field.
func wavesFromSpec(spec []v1alpha1.Wave, members []fleet.Member) ([]decide.Wave, error) {
	if len(spec) == 0 {
		return nil, nil
	}
	isMember := map[string]bool{}
	for _, m := range members {
		isMember[m.Name] = true
	}
	owner := map[string]int{}
	groups := make([][]string, len(spec))
	rest := -1
	for i, w := range spec {
		field := fmt.Sprintf("spec.waves[%d]", i)
		switch {
		case w.Rest:
			if rest >= 0 {
				return nil, fmt.Errorf("%s (%s): only one wave may take the rest; spec.waves[%d] (%s) does already", field, w.Name, rest, spec[rest].Name)
			}
			rest = i
			continue
		case len(w.Names) > 0:
			for _, n := range w.Names {
				if !isMember[n] {
					return nil, fmt.Errorf("%s.names: %s is not a member cluster", field, n)
				}
				groups[i] = append(groups[i], n)
			}
		case w.Selector != nil:
			sel, err := metav1.LabelSelectorAsSelector(w.Selector)
			if err != nil {
				return nil, fmt.Errorf("%s.selector: %w", field, err)
			}
			for _, m := range members {
				if sel.Matches(labels.Set(m.Labels)) {
					groups[i] = append(groups[i], m.Name)
				}
			}
		default:
			return nil, fmt.Errorf("%s (%s): give exactly one of names, selector and rest", field, w.Name)
		}
		for _, n := range groups[i] {
			if j, dup := owner[n]; dup {
				return nil, fmt.Errorf("%s (%s) overlaps spec.waves[%d] (%s): %s is in both", field, w.Name, j, spec[j].Name, n)
			}
			owner[n] = i
		}
	}
	if rest >= 0 {
		for _, m := range members {
			if _, ok := owner[m.Name]; !ok {
				groups[rest] = append(groups[rest], m.Name)
				owner[m.Name] = rest
			}
		}
	}
	var missing []string
	for _, m := range members {
		if _, ok := owner[m.Name]; !ok {
			missing = append(missing, m.Name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("spec.waves: %s in no wave (add a wave with rest: true)", strings.Join(missing, ", "))
	}
	out := make([]decide.Wave, len(spec))
	for i, w := range spec {
		field := fmt.Sprintf("spec.waves[%d]", i)
		g := groups[i]
		if len(g) == 0 {
			return nil, fmt.Errorf("%s (%s) matches no member cluster", field, w.Name)
		}
		if int(w.MaxFailures) > len(g) {
			return nil, fmt.Errorf("%s.maxFailures: %d is more than the wave's %d clusters", field, w.MaxFailures, len(g))
		}
		size, err := batchSize(w, len(g))
		if err != nil {
			return nil, fmt.Errorf("%s.maxParallel: %w", field, err)
		}
		slices.Sort(g)
		dw := decide.Wave{Name: w.Name, MaxFailures: int(w.MaxFailures), ApprovalRequired: w.Approval == "Required"}
		if w.Soak != nil {
			dw.Soak = w.Soak.Duration
		}
		for start := 0; start < len(g); start += size {
			dw.Batches = append(dw.Batches, g[start:min(start+size, len(g))])
		}
		out[i] = dw
	}
	return out, nil
}

// batchSize is how many of n clusters run the canary together. The
// arithmetic is apimachinery's (a percentage rounds up, as Deployments'
// maxSurge does); a count may also come as a string ("2").
func batchSize(w v1alpha1.Wave, n int) (int, error) {
	p := w.MaxParallel
	if p == nil {
		return n, nil
	}
	if p.Type == intstr.String {
		s := p.StrVal
		num, isPct := strings.CutSuffix(s, "%")
		v, err := strconv.Atoi(num)
		switch {
		case err != nil:
			return 0, fmt.Errorf("%q: want a count or a percentage", s)
		case !isPct:
			c := intstr.FromInt32(int32(v))
			p = &c
		case v < 1 || v > 100:
			return 0, fmt.Errorf("%s: want 1%% to 100%%", s)
		}
	}
	if p.Type == intstr.Int && p.IntVal < 1 {
		return 0, fmt.Errorf("%d: want at least 1", p.IntVal)
	}
	size, err := intstr.GetScaledValueFromIntOrPercent(p, n, true)
	if err != nil {
		return 0, err
	}
	return min(size, n), nil
}

// waveOf names every member's wave.
func waveOf(waves []decide.Wave) map[string]string {
	out := map[string]string{}
	for _, w := range waves {
		for _, b := range w.Batches {
			for _, m := range b {
				out[m] = w.Name
			}
		}
	}
	return out
}
