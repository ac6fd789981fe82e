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

// Baseline is the start vector Increase should use for a window that
// opens at an instant t, from two readings: before, each series' latest
// sample at or before t, and firstAfter, each series' first sample after t.
// A series in before existed at t; its baseline is its first sample after
// t, when it has one, because a sample before t may predate requests made
// just before t (a previous canary's last requests, in the scrape interval
// before its abort); without one it has not been scraped since and its
// sample before t stands. A series not in before is new and counts from
// zero, so it has no baseline. The window thus starts at the first scrape
// after t for old series: a few of the new canary's first requests may be
// left out, none of an earlier canary's is let in.
func Baseline(before, firstAfter []Sample) []Sample {
	after := make(map[string]float64, len(firstAfter))
	for _, s := range firstAfter {
		after[s.Key] = s.Value
	}
	out := make([]Sample, 0, len(before))
	for _, s := range before {
		if v, ok := after[s.Key]; ok {
			s.Value = v
		}
		out = append(out, s)
	}
	return out
}

func finiteNonNeg(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0
}
