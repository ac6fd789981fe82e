package judge

import (
	"math"
)

// Counts are the requests one version served in one scope since the window
// start, and how many of them failed.
type Counts struct {
	Requests int64 `json:"requests"`
	Failures int64 `json:"failures"`
}

// Add returns the sum of two counts.
func (c Counts) Add(o Counts) Counts {
	return Counts{Requests: c.Requests + o.Requests, Failures: c.Failures + o.Failures}
}

// Rate is the observed failure rate, 0 without requests.
func (c Counts) Rate() float64 {
	if c.Requests == 0 {
		return 0
	}
	return float64(c.Failures) / float64(c.Requests)
}

// valid reports whether the counts can be judged.
func (c Counts) valid() bool {
	return c.Requests >= 0 && c.Failures >= 0 && c.Failures <= c.Requests
}

// SPRT is Wald's sequential probability ratio test of a Bernoulli rate with
// Ville's thresholds: H0: p <= P0 against H1: p >= P1 (P0 < P1).
type SPRT struct {
	P0, P1 float64
	// Alpha bounds the chance of ever rejecting H0 when it holds; Beta the
	// chance of ever accepting H0 when H1 holds.
	Alpha, Beta float64
}

// LogLR is the log-likelihood ratio of H1 to H0 after x failures in n.
func (t SPRT) LogLR(c Counts) float64 {
	x, n := float64(c.Failures), float64(c.Requests)
	return x*math.Log(t.P1/t.P0) + (n-x)*math.Log((1-t.P1)/(1-t.P0))
}

// UpperBound is the log-likelihood ratio at which H1 is accepted, ln(1/Alpha).
// Under H0 the likelihood ratio is a non-negative supermartingale with mean
// at most 1, so by Ville's inequality it ever reaches 1/Alpha with
// probability at most Alpha (for every p <= P0, at any number of looks).
func (t SPRT) UpperBound() float64 { return -math.Log(t.Alpha) }

// LowerBound is the log-likelihood ratio at which H0 is accepted, ln(Beta):
// the inverse ratio is a supermartingale under H1.
func (t SPRT) LowerBound() float64 { return math.Log(t.Beta) }

// Outcome of a sequential test.
type Outcome int

// Outcomes.
const (
	Continue Outcome = iota
	AcceptH0
	AcceptH1
)

// Test returns the outcome for the counts so far.
func (t SPRT) Test(c Counts) Outcome {
	llr := t.LogLR(c)
	switch {
	case llr >= t.UpperBound():
		return AcceptH1
	case llr <= t.LowerBound():
		return AcceptH0
	}
	return Continue
}

// Confidence sequences: for the beta-binomial mixture
//
//	M_n(p) = B(a+x, b+n-x) / B(a, b) / (p^x (1-p)^(n-x))
//
// is a non-negative martingale with mean 1 when p is the true rate, so the
// set {p : M_n(p) < 1/alpha} covers the true rate at every n at once with
// probability at least 1-alpha (Ville). The prior is Beta(1/2, 1/2).
const priorA, priorB = 0.5, 0.5

func lbeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}

// logMixture is log M_n(p).
func logMixture(c Counts, p float64) float64 {
	x, n := float64(c.Failures), float64(c.Requests)
	ll := 0.0
	if x > 0 {
		ll += x * math.Log(p)
	}
	if n-x > 0 {
		ll += (n - x) * math.Log1p(-p)
	}
	return lbeta(priorA+x, priorB+n-x) - lbeta(priorA, priorB) - ll
}

// Interval is a time-uniform confidence interval of a rate.
type Interval struct {
	Lo, Hi float64
}

// ConfidenceSequence returns the interval of failure rates not ruled out at
// level alpha by the counts. Without requests it is [0, 1].
func ConfidenceSequence(c Counts, alpha float64) Interval {
	if c.Requests <= 0 || !c.valid() {
		return Interval{0, 1}
	}
	limit := -math.Log(alpha)
	mle := c.Rate()
	// log M_n(p) is convex in p with its minimum (<= 0) at the MLE, so each
	// side's crossing of the limit is found by bisection between the MLE
	// (inside) and 0 or 1 (outside).
	ruledOut := func(p float64) bool { return logMixture(c, p) >= limit }
	out := Interval{Lo: 0, Hi: 1}
	if c.Failures > 0 {
		out.Lo = crossing(0, mle, ruledOut)
	}
	if c.Failures < c.Requests {
		out.Hi = crossing(1, mle, ruledOut)
	}
	return out
}

// Worse reports whether the canary's rate is shown to exceed the stable
// version's by more than margin: the canary's lower bound above the stable's
// upper bound plus margin, each interval at level alpha/2. If both intervals
// cover their true rates (probability at least 1-alpha) and the canary is
// not worse by more than margin, this cannot happen.
func Worse(canary, stable Counts, margin, alpha float64) (bool, Interval, Interval) {
	c := ConfidenceSequence(canary, alpha/2)
	s := ConfidenceSequence(stable, alpha/2)
	return c.Lo > s.Hi+margin, c, s
}

// crossing bisects between out (where ruledOut holds) and in (where it does
// not) for the last point still ruled out, towards out.
func crossing(out, in float64, ruledOut func(float64) bool) float64 {
	for range 60 {
		mid := (out + in) / 2
		if ruledOut(mid) {
			out = mid
		} else {
			in = mid
		}
	}
	return out
}
