package judge

import (
	"math"
)

// Stratum is the evidence of one stretch of time (a slice of the canary's
// window): what each version served in it, and where latency is judged,
// each version's duration histogram over the same stretch.
//
// Canary and stable are only ever compared within a stratum. A shared
// incident (a dependency failing, a slow database) moves both versions in
// the stratum where it happens, whatever the canary's weight was then, so
// it leaves the comparison alone; counts that add up over the whole window
// would charge it mostly to the canary, whose requests sit in the later,
// heavier steps (Simpson's paradox).
type Stratum struct {
	Canary, Stable Counts
	// CanaryLatency and StableLatency are nil where latency is not judged.
	CanaryLatency, StableLatency *Histogram
}

// shareAlternatives are the ratios theta = p_canary / p_stable the
// comparison's e-process bets on, in equal parts: small ratios catch a
// moderate regression over many failures, large ones a broken canary in a
// handful. The grid costs ln(len) of evidence, less than a wrongly placed
// single alternative would.
var shareAlternatives = []float64{1.5, 2, 3, 5, 10, 50}

// ShareTest is the stratified comparison of two versions' failure rates, by
// the share of failures the canary takes. It needs no baseline: within a
// stratum in which the canary served a share w of the requests, a failure
// came from the canary with probability
//
//	w·theta / (w·theta + 1 − w),  theta = p_canary / p_stable,
//
// whatever the failure rate both versions share, because the stable's rate
// cancels. Under H0 (theta <= 1: the canary fails no more often than the
// stable) the failures' split is Binomial(failures, <= w) in every stratum,
// so for each alternative theta the product over strata of the likelihood
// ratios is a non-negative supermartingale with mean at most 1, and so is
// their average over shareAlternatives. By Ville's inequality it ever
// reaches 1/Alpha with probability at most Alpha, however often it is
// looked at and whatever the shared rate does over time.
type ShareTest struct {
	Alpha float64
}

// LogE is the log of the test's e-value over the strata and the strata
// that carried information (both versions served requests and something
// failed).
func (t ShareTest) LogE(strata []Stratum, counts func(Stratum) (canary, stable Counts)) (logE float64, informative int) {
	sums := make([]float64, len(shareAlternatives))
	for _, s := range strata {
		c, st := counts(s)
		if c.Requests <= 0 || st.Requests <= 0 || c.Failures+st.Failures == 0 || !c.valid() || !st.valid() {
			continue
		}
		informative++
		w := float64(c.Requests) / float64(c.Requests+st.Requests)
		xc, xs := float64(c.Failures), float64(st.Failures)
		for i, theta := range shareAlternatives {
			pi := w * theta / (w*theta + 1 - w)
			sums[i] += xc*math.Log(pi/w) + xs*math.Log((1-pi)/(1-w))
		}
	}
	return logMeanExp(sums), informative
}

// AbortAt is the log e-value at which H0 is rejected, ln(1/Alpha).
func (t ShareTest) AbortAt() float64 { return -math.Log(t.Alpha) }

// logMeanExp is log(mean(exp(x))) without overflow.
func logMeanExp(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = math.Max(m, x)
	}
	var s float64
	for _, x := range xs {
		s += math.Exp(x - m)
	}
	return m + math.Log(s/float64(len(xs)))
}

// failures picks what the failure ShareTest compares (latency picks slow
// requests).
func failures(s Stratum) (Counts, Counts) { return s.Canary, s.Stable }

// Totals adds the strata up.
func Totals(strata []Stratum) (canary, stable Counts) {
	for _, s := range strata {
		canary, stable = canary.Add(s.Canary), stable.Add(s.Stable)
	}
	return canary, stable
}
