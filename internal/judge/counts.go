package judge

import (
	"math"
	"slices"
	"strings"
)

// Point is one scrape of a counter: its time (Unix milliseconds, as
// Prometheus keeps it) and value.
type Point struct {
	T int64
	V float64
}

// Series is one raw counter series: its labels and every scrape of it in
// the range read, in time order.
type Series struct {
	Labels map[string]string
	Points []Point
}

// Delta is what one series counted between two of its scrapes: V whole
// requests in (From, To]. Born is set on a series' first scrape when the
// series was born in the range read (it counts from zero).
type Delta struct {
	Series   int
	From, To int64
	V        float64
	Born     bool
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

// HistogramGroup is the group key of a histogram's bucket series: its labels
// without le. Every bucket of one histogram resets together.
func HistogramGroup(labels map[string]string) string {
	out := make(map[string]string, len(labels))
	for k, v := range labels {
		if k != "le" {
			out[k] = v
		}
	}
	return Key(out)
}

// Deltas turns raw scrapes into whole-number increments, scrape by scrape,
// so that nothing between two readings is lost to a reset:
//   - series are grouped by group (nil: each series alone; for histograms
//     HistogramGroup), and a reset is decided once per group and scrape:
//     if any series of the group went down at a scrape, the group's
//     process restarted and every one of its series counts from zero
//     there, so a histogram's buckets never disagree about a reset;
//   - a crash-looping process is counted at every scrape after each of
//     its resets: only what it served between its last scrape and the
//     crash is lost, which no reading of a counter can see;
//   - a series whose first scrape comes later than bornAfter was born in
//     the range and counts from zero at that scrape (Born); one scraped by
//     then is only the baseline;
//   - values are rounded to whole requests; NaN, infinite or negative
//     scrapes are dropped and counted in bad.
func Deltas(series []Series, group func(map[string]string) string, bornAfter int64) (out []Delta, bad int) {
	clean := make([][]Point, len(series))
	for i, s := range series {
		pts := make([]Point, 0, len(s.Points))
		for _, p := range s.Points {
			if !finiteNonNeg(p.V) {
				bad++
				continue
			}
			pts = append(pts, p)
		}
		slices.SortFunc(pts, func(a, b Point) int { return int(a.T - b.T) })
		clean[i] = pts
	}
	groups := map[string][]int{}
	for i, s := range series {
		k := ""
		if group != nil {
			k = group(s.Labels)
		} else {
			k = Key(s.Labels)
		}
		groups[k] = append(groups[k], i)
	}
	for _, members := range groups {
		// resetAt holds every scrape time at which some series of the
		// group went down.
		resetAt := map[int64]bool{}
		for _, i := range members {
			pts := clean[i]
			for k := 1; k < len(pts); k++ {
				if pts[k].V < pts[k-1].V {
					resetAt[pts[k].T] = true
				}
			}
		}
		for _, i := range members {
			pts := clean[i]
			if len(pts) == 0 {
				continue
			}
			if pts[0].T > bornAfter && pts[0].V > 0 {
				out = append(out, Delta{Series: i, From: pts[0].T, To: pts[0].T, V: math.Round(pts[0].V), Born: true})
			}
			for k := 1; k < len(pts); k++ {
				d := pts[k].V - pts[k-1].V
				if resetAt[pts[k].T] {
					d = pts[k].V
				}
				if d = math.Round(d); d > 0 {
					out = append(out, Delta{Series: i, From: pts[k-1].T, To: pts[k].T, V: d})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b Delta) int {
		if a.To != b.To {
			return int(a.To - b.To)
		}
		return a.Series - b.Series
	})
	return out, bad
}

func finiteNonNeg(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0
}
