package judge

import (
	"math"
	"math/rand/v2"
	"testing"
)

// release is a simulated canary release of one scope: the lockstep
// Rollout's weights 10, 20, ..., 90, held stepHold seconds each, under
// rate requests per second, judged every look seconds on strata of slice
// seconds, as the coordinator does on Thanos' counts.
type release struct {
	rate, stepHold, look, slice int
	// stable and canary give each version's failure rate at second t.
	stable, canary func(t int) float64
}

// weightAt is the canary's share of requests at second t.
func (r release) weightAt(t int) float64 {
	step := t / r.stepHold
	return float64(min(step+1, 9)) / 10
}

func (r release) seconds() int { return 9 * r.stepHold }

// run plays one release and returns the judge's first decision, when it
// came, and how many canary requests it had seen.
func (r release) run(j *Judge, rng *rand.Rand) (Verdict, Finding, int, int64) {
	var strata []Stratum
	for t := 0; t < r.seconds(); t++ {
		k := t / r.slice
		for len(strata) <= k {
			strata = append(strata, Stratum{})
		}
		w := r.weightAt(t)
		for range r.rate {
			if rng.Float64() < w {
				strata[k].Canary.Requests++
				if rng.Float64() < r.canary(t) {
					strata[k].Canary.Failures++
				}
			} else {
				strata[k].Stable.Requests++
				if rng.Float64() < r.stable(t) {
					strata[k].Stable.Failures++
				}
			}
		}
		if (t+1)%r.look != 0 {
			continue
		}
		f := j.Evaluate(Evidence{Strata: strata})
		if f.Verdict == Fail {
			c, _ := Totals(strata)
			return Fail, f, t + 1, c.Requests
		}
	}
	c, _ := Totals(strata)
	f := j.Evaluate(Evidence{Strata: strata})
	return f.Verdict, f, r.seconds(), c.Requests
}

// verdicts plays runs releases and counts their outcomes.
func (r release) verdicts(j *Judge, rng *rand.Rand, runs int) map[Verdict]int {
	out := map[Verdict]int{}
	for range runs {
		v, _, _, _ := r.run(j, rng)
		out[v]++
	}
	return out
}

func constant(p float64) func(int) float64 { return func(int) float64 { return p } }

// incident adds extra to base from second from for d seconds.
func incident(base, extra float64, from, d int) func(int) float64 {
	return func(t int) float64 {
		if t >= from && t < from+d {
			return base + extra
		}
		return base
	}
}

// oracleRequests is Wald's approximation of the canary requests a
// sequential test that knew both true rates would need to tell bad (p1)
// from good (p0) at the same false-abort budget: ln(1/alpha) / KL(p1||p0).
func oracleRequests(p0, p1, alpha float64) float64 {
	kl := p1*math.Log(p1/p0) + (1-p1)*math.Log((1-p1)/(1-p0))
	return math.Log(1/alpha) / kl
}

// fleetJudge is the judge of the local fleet: 2 members seen from two
// sides plus the fleet (5 scopes), latency in 2.
func fleetJudge(t testing.TB) *Judge {
	return mustJudge(t, DefaultConfig(), 5, 2)
}

// TestSharedIncidentDoesNotAbortGoodReleases is the case: both
// versions fail 20 % for 30 s during the 50 % step of a good release. The
// pooled comparison charged it to the canary; within strata it is shared.
func TestSharedIncidentDoesNotAbortGoodReleases(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	j := fleetJudge(t)
	rng := rand.New(rand.NewPCG(11, 12))
	for _, base := range []float64{0, 0.03} {
		// The 50 % step is the fifth: seconds 4*hold .. 5*hold.
		r := release{rate: 10, stepHold: 40, look: 2, slice: 10}
		r.stable = incident(base, 0.20, 4*r.stepHold+5, 30)
		r.canary = r.stable
		const runs = 1000
		aborts := r.verdicts(j, rng, runs)[Fail]
		t.Logf("baseline %.0f%%, shared 20%% incident for 30 s at the 50%% step: %d/%d good releases aborted (falseAbortRate %.2f)", base*100, aborts, runs, DefaultConfig().FalseAbortRate)
		if float64(aborts)/runs > DefaultConfig().FalseAbortRate {
			t.Errorf("baseline %.0f%%: %d/%d good releases aborted, above falseAbortRate", base*100, aborts, runs)
		}
	}
}

// TestPooledCountsWouldHaveAbortedTheSharedIncident shows what the strata
// are for: the same releases judged on totals (one stratum) are aborted.
func TestPooledCountsWouldHaveAbortedTheSharedIncident(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	j := fleetJudge(t)
	rng := rand.New(rand.NewPCG(13, 14))
	r := release{rate: 10, stepHold: 40, look: 2, slice: 1 << 20} // one stratum
	r.stable = incident(0, 0.20, 4*r.stepHold+5, 30)
	r.canary = r.stable
	const runs = 200
	aborts := r.verdicts(j, rng, runs)[Fail]
	t.Logf("pooled counts: %d/%d good releases aborted by the shared incident", aborts, runs)
	if aborts < runs/4 {
		t.Errorf("pooled counts aborted only %d/%d: the simulation does not show the confounding it guards against", aborts, runs)
	}
}

// TestBaselineGoodCanaryIsNeverAborted: a service that normally fails 3 %
// and a canary that does too. An absolute zone (good <= 5 %) sits at its
// edge; the relative zone judges it against its own stable.
func TestBaselineGoodCanaryIsNeverAborted(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	j := fleetJudge(t)
	rng := rand.New(rand.NewPCG(15, 16))
	r := release{rate: 10, stepHold: 20, look: 2, slice: 10, stable: constant(0.03), canary: constant(0.03)}
	const runs = 1000
	got := r.verdicts(j, rng, runs)
	aborts, passes := got[Fail], got[Pass]
	t.Logf("3%% baseline, good canary: %d/%d aborted, %d passed by the end", aborts, runs, passes)
	if aborts != 0 {
		t.Errorf("%d/%d good releases at a 3%% baseline aborted, want 0", aborts, runs)
	}
	// About 900 canary requests: the evidence limit of telling 3 % from
	// 3 % + minEffect with the stable's rate itself estimated. The rest
	// are Inconclusive, which pauses for a person, never aborts.
	if passes < runs*85/100 {
		t.Errorf("only %d/%d good releases passed by the end of the canary", passes, runs)
	}
}

// TestCanaryRegressionIsCaught: canary-only regressions, with and without
// a baseline and a shared incident, are stopped; the average sample number
// is printed beside what an oracle knowing both rates would need.
func TestCanaryRegressionIsCaught(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	j := fleetJudge(t)
	rng := rand.New(rand.NewPCG(17, 18))
	cases := []struct {
		name           string
		stable, canary func(int) float64
		p0, p1         float64
	}{
		{"50% failures, clean stable", constant(0), constant(0.5), 0.001, 0.5},
		{"+20 points on a 3% baseline", constant(0.03), constant(0.23), 0.03, 0.23},
		{"+10 points on a 3% baseline", constant(0.03), constant(0.13), 0.03, 0.13},
		{"+20 points through a shared incident", incident(0, 0.2, 165, 30), func(t int) float64 { return incident(0, 0.2, 165, 30)(t) + 0.2 }, 0.001, 0.2},
	}
	for _, tc := range cases {
		r := release{rate: 10, stepHold: 40, look: 2, slice: 10, stable: tc.stable, canary: tc.canary}
		const runs = 300
		caught, requests, seconds := 0, int64(0), 0
		for range runs {
			v, _, s, n := r.run(j, rng)
			if v == Fail {
				caught++
				requests += n
				seconds += s
			}
		}
		asn := float64(requests) / float64(max(caught, 1))
		oracle := oracleRequests(tc.p0, tc.p1, j.alphaT)
		t.Logf("%s: caught %d/%d, average %.1f canary requests (%.1f s); an oracle knowing both rates needs %.1f", tc.name, caught, runs, asn, float64(seconds)/float64(max(caught, 1)), oracle)
		if caught < runs*95/100 {
			t.Errorf("%s: caught only %d/%d", tc.name, caught, runs)
		}
	}
}
