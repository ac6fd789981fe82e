package judge

import (
	"math"
	"slices"
	"strings"
)

// Sample is one raw counter series at one instant: its full label set (as
// a canonical key) and its value.
type Sample struct {
	Key    string
	Labels map[string]string
	Value  float64
}

// Key builds the canonical key of a label set (sorted name=value pairs).
func Key(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(labels[n])
		b.WriteByte(0)
	}
	return b.String()
}

// Increase returns, per series present now, how much its counter grew
// since start, in whole requests:
//   - a series absent at start is new and counts from zero;
//   - a counter lower now than at start was reset (its process or pod
//     restarted) and counts from zero again: what it counted before the
//     reset and after start is lost, so the count is a lower bound;
//   - a series present at start and gone now (a pod that went away)
//     contributes nothing;
//   - values are rounded to whole requests; NaN, infinite or negative
//     values are skipped and reported in bad.
func Increase(start, now []Sample) (out []Sample, bad int) {
	before := make(map[string]float64, len(start))
	for _, s := range start {
		if finiteNonNeg(s.Value) {
			before[s.Key] = s.Value
		}
	}
	out = make([]Sample, 0, len(now))
	for _, s := range now {
		if !finiteNonNeg(s.Value) {
			bad++
			continue
		}
		d := s.Value
		if b, ok := before[s.Key]; ok && b <= s.Value {
			d = s.Value - b
		}
		out = append(out, Sample{Key: s.Key, Labels: s.Labels, Value: math.Round(d)})
	}
	return out, bad
}

func finiteNonNeg(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0
}
