package judge

import (
	"math"
	"math/rand/v2"
	"testing"
	"testing/quick"
)

// scraped simulates one counter: reqs[t] requests arrive in second t, the
// process restarts (the counter drops to 0) at the seconds in restarts, and
// Prometheus scrapes it every interval seconds from offset. It returns the
// scrapes, the true count, and what no reading of the counter can see: the
// requests between a restart and the scrape before it, and, where the
// counter grew back past its last scraped value before the next scrape (a
// reset that looks like growth), that value too.
func scraped(reqs []int, restarts map[int]bool, interval, offset int) (pts []Point, truth, lost float64) {
	var v, sinceScrape, lastScraped float64
	restarted := false
	for t, n := range reqs {
		if restarts[t] {
			lost += sinceScrape
			v, sinceScrape, restarted = 0, 0, true
		}
		v += float64(n)
		sinceScrape += float64(n)
		truth += float64(n)
		if t >= offset && (t-offset)%interval == 0 {
			if restarted && v >= lastScraped {
				lost += lastScraped
			}
			pts = append(pts, Point{T: int64(t) * 1000, V: v})
			sinceScrape, lastScraped, restarted = 0, v, false
		}
	}
	return pts, truth, lost
}

// TestDeltasCountEveryScrape: on random counter histories with restarts,
// the deltas never exceed the truth, lose at most what happened between a
// restart and the scrape before it, and are exact without restarts. A
// crash-looping counter (a restart between most scrapes) is counted at
// every scrape, where two readings of it would see almost nothing.
func TestDeltasCountEveryScrape(t *testing.T) {
	prop := func(seed uint64, crashLoop bool) bool {
		rng := rand.New(rand.NewPCG(seed, 1))
		reqs := make([]int, 120)
		for i := range reqs {
			reqs[i] = rng.IntN(20)
		}
		restarts := map[int]bool{}
		for i := range reqs {
			if i > 0 && (crashLoop && i%7 == 3 || rng.IntN(40) == 0) {
				restarts[i] = true
			}
		}
		// The series is born in the range (its first scrape is after
		// bornAfter), so its first value counts.
		pts, truth, lost := scraped(reqs, restarts, 5, 2)
		out, bad := Deltas([]Series{{Labels: map[string]string{"a": "1"}, Points: pts}}, nil, -1)
		if bad != 0 {
			return false
		}
		var got float64
		for _, d := range out {
			if d.V <= 0 || d.V != math.Round(d.V) || d.Series != 0 {
				return false
			}
			got += d.V
		}
		// What arrived after the last scrape is not in any scrape yet.
		last := pts[len(pts)-1].T / 1000
		for s := int(last) + 1; s < len(reqs); s++ {
			truth -= float64(reqs[s])
		}
		if len(restarts) == 0 {
			return got == truth
		}
		return got <= truth && got >= truth-lost
	}
	if err := quick.Check(prop, &quick.Config{MaxCount: 500}); err != nil {
		t.Fatal(err)
	}
}

// TestDeltasResetOncePerHistogram: a histogram whose process restarted
// resets as a whole. A bucket that happens to be higher after the restart
// than before (it filled up again) is still counted from zero, as its
// siblings are; deciding per bucket would count it as growth and inflate
// that bucket's share.
func TestDeltasResetOncePerHistogram(t *testing.T) {
	bucket := func(le string, vals ...float64) Series {
		s := Series{Labels: map[string]string{"le": le, "pod": "a"}}
		for i, v := range vals {
			s.Points = append(s.Points, Point{T: int64(i) * 5000, V: v})
		}
		return s
	}
	// Before the restart: 10 fast, 12 in all. After: 1 fast, 14 in all
	// (the +Inf bucket grew past its old value).
	series := []Series{bucket("5", 10, 1), bucket("+Inf", 12, 14)}
	out, _ := Deltas(series, HistogramGroup, 0)
	got := map[int]float64{}
	for _, d := range out {
		got[d.Series] += d.V
	}
	if got[0] != 1 || got[1] != 14 {
		t.Fatalf("per-histogram reset: fast %v, all %v; want 1 and 14 (13 slow)", got[0], got[1])
	}
	// Per series, the +Inf bucket would have counted 2: 1 fast of 2, a
	// slow share of 50 % instead of 13/14.
	out, _ = Deltas(series, nil, 0)
	got = map[int]float64{}
	for _, d := range out {
		got[d.Series] += d.V
	}
	if got[1] != 2 {
		t.Fatalf("per-series reset of +Inf counted %v; the comparison above is moot", got[1])
	}
}

// TestDeltasProperties: deltas are whole and positive, a series scraped by
// bornAfter is only a baseline, bad scrapes are counted and skipped.
func TestDeltasProperties(t *testing.T) {
	s := []Series{
		{Labels: map[string]string{"a": "old"}, Points: []Point{{0, 100}, {5000, 103.0000001}, {10000, math.NaN()}, {15000, 110}}},
		{Labels: map[string]string{"a": "new"}, Points: []Point{{10000, 4}, {15000, 6}}},
		{Labels: map[string]string{"a": "gone"}, Points: []Point{{0, 7}}},
	}
	out, bad := Deltas(s, nil, 5000)
	if bad != 1 {
		t.Errorf("bad = %d, want the NaN", bad)
	}
	want := []Delta{
		{Series: 0, From: 0, To: 5000, V: 3},
		{Series: 1, From: 10000, To: 10000, V: 4, Born: true},
		{Series: 0, From: 5000, To: 15000, V: 7},
		{Series: 1, From: 10000, To: 15000, V: 2},
	}
	if len(out) != len(want) {
		t.Fatalf("deltas %+v, want %+v", out, want)
	}
	for i := range want {
		if out[i] != want[i] {
			t.Errorf("delta %d = %+v, want %+v", i, out[i], want[i])
		}
	}
}
