package judge

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func mustJudge(t testing.TB, cfg Config, scopes, latency int) *Judge {
	t.Helper()
	j, err := New(cfg, scopes, latency)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestKnownCases pins the judge's answers on hand-checkable counts, in
// both zones.
func TestKnownCases(t *testing.T) {
	abs := DefaultConfig()
	abs.Zone = ZoneAbsolute
	tests := []struct {
		name           string
		zone           Zone
		canary, stable Counts
		want           Verdict
		reason         string
	}{
		{"no requests", ZoneRelative, Counts{}, Counts{1000, 0}, Inconclusive, ReasonNoCanaryRequests},
		{"a few good requests are not enough", ZoneRelative, Counts{10, 0}, Counts{1000, 0}, Inconclusive, ReasonNotEnoughEvidence},
		{"half of 20 failed, stable clean", ZoneRelative, Counts{20, 10}, Counts{200, 0}, Fail, ReasonWorseThanStable},
		{"half of 4 failed is not yet certain", ZoneRelative, Counts{4, 2}, Counts{200, 0}, Inconclusive, ReasonNotEnoughEvidence},
		{"100 clean requests pass", ZoneRelative, Counts{100, 0}, Counts{1000, 0}, Pass, ReasonWithinStable},
		{"6% is worse than a clean stable", ZoneRelative, Counts{20000, 1200}, Counts{200000, 0}, Fail, ReasonWorseThanStable},
		{"2% like stable passes", ZoneRelative, Counts{400, 8}, Counts{4000, 80}, Pass, ReasonWithinStable},
		{"15% like stable is no fault of the canary", ZoneRelative, Counts{4000, 600}, Counts{40000, 6000}, Pass, ReasonWithinStable},
		{"impossible counts", ZoneRelative, Counts{3, 5}, Counts{}, Inconclusive, ReasonInvalidCounts},
		{"absolute: half of 30 failed", ZoneAbsolute, Counts{30, 15}, Counts{200, 40}, Fail, ReasonAboveThreshold},
		{"absolute: 15% of 400 fail against 10%", ZoneAbsolute, Counts{400, 60}, Counts{4000, 600}, Fail, ReasonAboveThreshold},
		{"absolute: 100 clean requests pass", ZoneAbsolute, Counts{100, 0}, Counts{1000, 0}, Pass, ReasonBelowThreshold},
		{"absolute: worse than stable fails", ZoneAbsolute, Counts{20000, 1200}, Counts{200000, 0}, Fail, ReasonWorseThanStable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Zone = tc.zone
			j := mustJudge(t, cfg, 5, 0)
			f := j.Evaluate(Evidence{Canary: tc.canary, Stable: tc.stable})
			if f.Verdict != tc.want || f.Reason != tc.reason {
				t.Errorf("got %s (%s: %s), want %s (%s)", f.Verdict, f.Reason, f.Message, tc.want, tc.reason)
			}
		})
	}
}

// TestFewRequestsNeverDecideOnNoise is the example: 36 requests of
// a good (5 %) release with 4 failures must not abort it.
func TestFewRequestsNeverDecideOnNoise(t *testing.T) {
	j := mustJudge(t, DefaultConfig(), 5, 2)
	f := j.Evaluate(Evidence{Canary: Counts{36, 4}, Stable: Counts{400, 20}})
	if f.Verdict != Inconclusive {
		t.Fatalf("36 requests, 4 failed: %s (%s)", f.Verdict, f.Message)
	}
}

// simulate runs a sequential experiment: requests arrive one by one, the
// judge looks every `every` requests, until it decides or maxN requests.
func simulate(j *Judge, rng *rand.Rand, pCanary, pStable float64, stablePerCanary, every, maxN int) (Verdict, int) {
	var c, s Counts
	for n := 1; n <= maxN; n++ {
		c.Requests++
		if rng.Float64() < pCanary {
			c.Failures++
		}
		for range stablePerCanary {
			s.Requests++
			if rng.Float64() < pStable {
				s.Failures++
			}
		}
		if n%every != 0 {
			continue
		}
		if f := j.Evaluate(Evidence{Canary: c, Stable: s}); f.Verdict != Inconclusive {
			return f.Verdict, n
		}
	}
	return Inconclusive, maxN
}

// TestErrorRatesBySimulation measures, in the absolute zone, the false-abort and false-promote
// rates over many synthetic releases looked at every 3 requests (many
// looks), against the configured rates. A fixed-sample test re-run this
// often would exceed them several times over.
func TestErrorRatesBySimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	cfg := DefaultConfig()
	cfg.Zone = ZoneAbsolute
	cfg.FalseAbortRate, cfg.FalsePromoteRate = 0.05, 0.05
	j := mustJudge(t, cfg, 1, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	const runs = 1500
	count := func(p, ps float64) (fails, passes int, meanN float64) {
		total := 0
		for range runs {
			v, n := simulate(j, rng, p, ps, 4, 3, 3000)
			total += n
			switch v {
			case Fail:
				fails++
			case Pass:
				passes++
			}
		}
		return fails, passes, float64(total) / runs
	}
	// Good at the edge of the indifference zone: p = maxFailureRate-minEffect,
	// stable the same. The hardest good case.
	fails, _, n := count(0.05, 0.05)
	rate := float64(fails) / runs
	t.Logf("good canary at p0=5%%: false aborts %d/%d = %.3f (configured %.2f), mean requests %.0f", fails, runs, rate, cfg.FalseAbortRate, n)
	if rate > cfg.FalseAbortRate+3*math.Sqrt(cfg.FalseAbortRate/runs) {
		t.Errorf("false-abort rate %.3f above %.2f", rate, cfg.FalseAbortRate)
	}
	// Bad at exactly the threshold: the hardest bad case.
	_, passes, n := count(0.10, 0.10)
	rate = float64(passes) / runs
	t.Logf("bad canary at p1=10%%: false promotes %d/%d = %.3f (configured %.2f), mean requests %.0f", passes, runs, rate, cfg.FalsePromoteRate, n)
	if rate > cfg.FalsePromoteRate+3*math.Sqrt(cfg.FalsePromoteRate/runs) {
		t.Errorf("false-promote rate %.3f above %.2f", rate, cfg.FalsePromoteRate)
	}
	// A clearly bad canary is stopped after a handful of requests.
	fails, _, n = count(0.5, 0)
	if fails != runs || n > 30 {
		t.Errorf("50%% failures: %d/%d failed, mean %.0f requests (want all, <= 30)", fails, runs, n)
	}
	t.Logf("50%% failures: all failed after %.1f requests on average", n)
}

// TestConfidenceSequenceCoverage checks time-uniform coverage: the share of
// runs whose interval ever misses the true rate stays below alpha.
func TestConfidenceSequenceCoverage(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const runs, alpha = 800, 0.05
	for _, p := range []float64{0.02, 0.1, 0.5} {
		missed := 0
		for range runs {
			var c Counts
			for n := 1; n <= 1000; n++ {
				c.Requests++
				if rng.Float64() < p {
					c.Failures++
				}
				if n%5 == 0 {
					if iv := ConfidenceSequence(c, alpha); iv.Lo > p || iv.Hi < p {
						missed++
						break
					}
				}
			}
		}
		if rate := float64(missed) / runs; rate > alpha+3*math.Sqrt(alpha/runs) {
			t.Errorf("p=%.2f: ever missed in %.3f of runs, above %.2f", p, rate, alpha)
		}
	}
}

func TestConfidenceSequenceShape(t *testing.T) {
	for _, c := range []Counts{{1, 0}, {1, 1}, {10, 3}, {1000, 0}, {1000, 1000}, {5000, 250}} {
		iv := ConfidenceSequence(c, 0.01)
		if iv.Lo < 0 || iv.Hi > 1 || iv.Lo > c.Rate() || iv.Hi < c.Rate() {
			t.Errorf("%+v: interval %+v does not hold the observed rate %g", c, iv, c.Rate())
		}
		wider := ConfidenceSequence(c, 0.0001)
		if wider.Lo > iv.Lo+1e-9 || wider.Hi < iv.Hi-1e-9 {
			t.Errorf("%+v: a smaller alpha gave a narrower interval %+v than %+v", c, wider, iv)
		}
	}
	if iv := ConfidenceSequence(Counts{}, 0.01); iv != (Interval{0, 1}) {
		t.Errorf("no data: %+v", iv)
	}
}

func hist(bounds []float64, per []int64) *Histogram {
	h := &Histogram{Bounds: bounds}
	var cum int64
	for _, n := range per {
		cum += n
		h.Cumulative = append(h.Cumulative, cum)
	}
	return h
}

func TestLatency(t *testing.T) {
	bounds := []float64{1, 5, 10, 25, 50, 100, 250, 500, math.Inf(1)}
	stable := hist(bounds, []int64{400, 500, 80, 20, 0, 0, 0, 0, 0})
	j := mustJudge(t, DefaultConfig(), 5, 2)
	// +200 ms: every canary request lands in the 250 ms bucket.
	slow := hist(bounds, []int64{0, 0, 0, 0, 0, 0, 30, 0, 0})
	f := j.Evaluate(Evidence{Canary: Counts{30, 0}, Stable: Counts{1000, 0}, CanaryLatency: slow, StableLatency: stable})
	if f.Verdict != Fail || f.Reason != ReasonSlowerThanStable {
		t.Fatalf("slow canary: %s (%s: %s)", f.Verdict, f.Reason, f.Message)
	}
	if f.Latency.Bound != 5 {
		t.Errorf("bound = %g, want the stable's p90 bucket 5", f.Latency.Bound)
	}
	same := hist(bounds, []int64{40, 50, 8, 2, 0, 0, 0, 0, 0})
	f = j.Evaluate(Evidence{Canary: Counts{100, 0}, Stable: Counts{1000, 0}, CanaryLatency: same, StableLatency: stable})
	if f.Verdict != Pass {
		t.Fatalf("canary as fast as stable: %s (%s)", f.Verdict, f.Message)
	}
	// No stable traffic: no baseline, the latency check does not apply.
	f = j.Evaluate(Evidence{Canary: Counts{30, 0}, Stable: Counts{}, CanaryLatency: slow, StableLatency: hist(bounds, make([]int64, 9))})
	if f.Latency == nil || f.Latency.Applicable || f.Verdict == Fail {
		t.Fatalf("no stable latency: %+v %s", f.Latency, f.Verdict)
	}
}

// TestLatencyFalseAlarmsBySimulation: canary and stable drawn from the same
// latency distribution, looked at often, rarely fail.
func TestLatencyFalseAlarmsBySimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	bounds := []float64{1, 5, 10, 25, 50, math.Inf(1)}
	probs := []float64{0.3, 0.4, 0.2, 0.08, 0.02}
	cfg := DefaultConfig()
	cfg.FalseAbortRate = 0.05
	j := mustJudge(t, cfg, 1, 1)
	rng := rand.New(rand.NewPCG(5, 6))
	draw := func(h *Histogram) {
		u, i := rng.Float64(), 0
		for ; i < len(probs)-1 && u > probs[i]; i++ {
			u -= probs[i]
		}
		for k := i; k < len(h.Cumulative); k++ {
			h.Cumulative[k]++
		}
	}
	const runs = 400
	fails := 0
	for range runs {
		c := &Histogram{Bounds: bounds, Cumulative: make([]int64, len(bounds))}
		s := &Histogram{Bounds: bounds, Cumulative: make([]int64, len(bounds))}
		for n := 1; n <= 600; n++ {
			draw(c)
			for range 4 {
				draw(s)
			}
			if n%10 == 0 {
				f := j.Evaluate(Evidence{Canary: Counts{Requests: c.Total()}, Stable: Counts{Requests: s.Total()}, CanaryLatency: c, StableLatency: s})
				if f.Verdict == Fail {
					fails++
					break
				}
			}
		}
	}
	if rate := float64(fails) / runs; rate > cfg.FalseAbortRate {
		t.Errorf("latency false alarms %.3f above %.2f", rate, cfg.FalseAbortRate)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []struct {
		mutate func(*Config)
		field  string
	}{
		{func(c *Config) { c.FalseAbortRate = 0 }, "falseAbortRate"},
		{func(c *Config) { c.FalseAbortRate = 1.5 }, "falseAbortRate"},
		{func(c *Config) { c.FalsePromoteRate = -0.1 }, "falsePromoteRate"},
		{func(c *Config) { c.MinEffect = 0.2 }, "minEffect"},
		{func(c *Config) { c.MaxFailureRate = math.NaN() }, "maxFailureRate"},
		{func(c *Config) { c.FalseAbortRate, c.FalsePromoteRate = 0.6, 0.5 }, "falseAbortRate + falsePromoteRate"},
		{func(c *Config) { c.LatencyQuantile = 1 }, "latency.quantile"},
	}
	for _, b := range bad {
		cfg := DefaultConfig()
		b.mutate(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), b.field) {
			t.Errorf("%+v: err = %v, want one naming %s", cfg, err, b.field)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}
