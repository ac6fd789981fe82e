package judge

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Verdict is a judgement; the values are package decide's.
type Verdict string

// Verdicts.
const (
	Pass         Verdict = "Pass"
	Inconclusive Verdict = "Inconclusive"
	Fail         Verdict = "Fail"
)

// Reasons a Finding gives.
const (
	ReasonBelowThreshold    = "FailureRateBelowThreshold"
	ReasonWithinStable      = "FailureRateWithinStable"
	ReasonAboveThreshold    = "FailureRateAboveThreshold"
	ReasonWorseThanStable   = "CanaryWorseThanStable"
	ReasonSlowerThanStable  = "CanarySlowerThanStable"
	ReasonNotEnoughEvidence = "NotEnoughEvidence"
	ReasonNoCanaryRequests  = "NoCanaryRequests"
	ReasonInvalidCounts     = "InvalidCounts"
)

// Zone says what a good and a bad canary are.
type Zone string

// Zones.
const (
	// ZoneRelative, the default, measures the canary against the stable
	// version's own failure rate in the same stretch of time: it fails
	// when shown failing more often than the stable, and passes when shown
	// within the stable's rate plus MinEffect. A service with a baseline
	// error rate is judged against it, and a shared incident moves both.
	ZoneRelative Zone = "Relative"
	// ZoneAbsolute judges the canary's failure rate against MaxFailureRate
	// (good at most MaxFailureRate-MinEffect, bad at MaxFailureRate or
	// more), as the guide's AnalysisTemplate does, and fails it too when
	// it is shown to fail more often than the stable.
	ZoneAbsolute Zone = "Absolute"
)

// Config is what the operator asks of the judge.
type Config struct {
	// Zone is ZoneRelative (also the zero value) or ZoneAbsolute.
	Zone Zone
	// MaxFailureRate is the failure rate a canary must stay below (the
	// guide's "success rate > 0.90" is 0.10).
	MaxFailureRate float64
	// MinEffect is the indifference zone: a canary failing at most
	// MaxFailureRate-MinEffect is good, and only a canary worse than the
	// stable version by more than MinEffect is worse than stable.
	MinEffect float64
	// FalseAbortRate bounds the chance that a good release is aborted,
	// over every scope and every look.
	FalseAbortRate float64
	// FalsePromoteRate bounds the chance that a scope whose canary fails at
	// MaxFailureRate or more passes.
	FalsePromoteRate float64
	// LatencyQuantile is the stable version's quantile whose bucket bound
	// marks a request as slow (0.9: slower than the stable's p90 bucket).
	// Zero turns the latency check off.
	LatencyQuantile float64
	// LatencyMinEffect is how much larger the canary's share of slow
	// requests may be than the stable's before the canary fails.
	LatencyMinEffect float64
}

// DefaultConfig is what a FleetRollout gets without settings: the guide's
// 90 % success rate, a 5-point indifference zone, a 1 % chance of aborting
// a good release and a 5 % chance of passing a bad scope.
func DefaultConfig() Config {
	return Config{
		Zone: ZoneRelative, MaxFailureRate: 0.10, MinEffect: 0.05,
		FalseAbortRate: 0.01, FalsePromoteRate: 0.05,
		LatencyQuantile: 0.9, LatencyMinEffect: 0.10,
	}
}

func (c Config) zone() Zone {
	if c.Zone == "" {
		return ZoneRelative
	}
	return c.Zone
}

// Validate reports settings that cannot be meant, naming the field.
func (c Config) Validate() error {
	var errs []error
	if c.Zone != "" && c.Zone != ZoneRelative && c.Zone != ZoneAbsolute {
		errs = append(errs, fmt.Errorf("zone must be Relative or Absolute, not %q", c.Zone))
	}
	open := func(name string, v float64) {
		if math.IsNaN(v) || v <= 0 || v >= 1 {
			errs = append(errs, fmt.Errorf("%s must be between 0 and 1 (exclusive), not %g", name, v))
		}
	}
	open("maxFailureRate", c.MaxFailureRate)
	open("minEffect", c.MinEffect)
	open("falseAbortRate", c.FalseAbortRate)
	open("falsePromoteRate", c.FalsePromoteRate)
	if len(errs) == 0 && c.MinEffect >= c.MaxFailureRate {
		errs = append(errs, fmt.Errorf("minEffect (%g) must be below maxFailureRate (%g): a good canary's failure rate is maxFailureRate-minEffect", c.MinEffect, c.MaxFailureRate))
	}
	if len(errs) == 0 && c.FalseAbortRate+c.FalsePromoteRate >= 1 {
		errs = append(errs, fmt.Errorf("falseAbortRate + falsePromoteRate (%g) must be below 1", c.FalseAbortRate+c.FalsePromoteRate))
	}
	if c.LatencyQuantile != 0 {
		open("latency.quantile", c.LatencyQuantile)
		open("latency.minEffect", c.LatencyMinEffect)
	}
	return errors.Join(errs...)
}

// Histogram is a cumulative histogram of request durations: Cumulative[i]
// requests took at most Bounds[i]. Bounds ascend and end with +Inf.
type Histogram struct {
	Bounds     []float64 `json:"bounds"`
	Cumulative []int64   `json:"cumulative"`
}

// Total is the +Inf bucket.
func (h Histogram) Total() int64 {
	if len(h.Cumulative) == 0 {
		return 0
	}
	return h.Cumulative[len(h.Cumulative)-1]
}

// slowerThan counts the requests above bound b (b one of Bounds).
func (h Histogram) slowerThan(b float64) Counts {
	total := h.Total()
	for i, x := range h.Bounds {
		if x == b {
			return Counts{Requests: total, Failures: total - h.Cumulative[i]}
		}
	}
	return Counts{Requests: total}
}

// quantileBound is the smallest finite bound with at least q of the
// requests at or below it, or false if the histogram has no requests or
// only the +Inf bucket reaches q.
func (h Histogram) quantileBound(q float64) (float64, bool) {
	total := h.Total()
	if total == 0 {
		return 0, false
	}
	for i, b := range h.Bounds {
		if math.IsInf(b, 1) {
			break
		}
		if float64(h.Cumulative[i]) >= q*float64(total) {
			return b, true
		}
	}
	return 0, false
}

// Evidence is what is known about one scope: its strata, in time order.
// Canary, Stable and the histograms are their totals; Evaluate fills them
// in from Strata, and a caller that gives only totals gets them judged as
// one stratum.
type Evidence struct {
	Canary, Stable Counts
	// CanaryLatency and StableLatency are nil where latency is not judged.
	CanaryLatency, StableLatency *Histogram
	Strata                       []Stratum
}

// strata returns the evidence's strata, its totals as one stratum if it
// has none, and fills the totals in.
func (e *Evidence) strata() []Stratum {
	if len(e.Strata) == 0 {
		return []Stratum{{Canary: e.Canary, Stable: e.Stable, CanaryLatency: e.CanaryLatency, StableLatency: e.StableLatency}}
	}
	e.Canary, e.Stable = Totals(e.Strata)
	e.CanaryLatency, e.StableLatency = nil, nil
	for _, s := range e.Strata {
		e.CanaryLatency = addHistogram(e.CanaryLatency, s.CanaryLatency)
		e.StableLatency = addHistogram(e.StableLatency, s.StableLatency)
	}
	return e.Strata
}

// LatencyFinding is the latency comparison's detail.
type LatencyFinding struct {
	// Bound is the stable version's quantile bucket bound; requests above
	// it are slow.
	Bound      float64
	CanarySlow Counts
	StableSlow Counts
	// LogE is the stratified comparison's log e-value on slow requests;
	// the canary is slower at AbortAt.
	LogE, AbortAt      float64
	Slower, Applicable bool
}

// Finding is the judgement of one scope and how it was reached.
type Finding struct {
	Verdict Verdict
	Reason  string
	Message string
	// Zone is the indifference zone the verdict used.
	Zone Zone
	// LogLR is the threshold test's statistic (it decides only in the
	// absolute zone); it fails the canary at AbortAt and passes it at
	// PassAt.
	LogLR, AbortAt, PassAt float64
	// LogE is the stratified comparison's log e-value: the canary fails
	// more often than the stable at AbortAt (both tests have the same
	// budget). Strata counts the strata that carried information.
	LogE   float64
	Strata int
	// CanaryInterval and StableInterval are the failure rates' confidence
	// sequences at level FalsePromoteRate/2; the relative zone's pass test
	// starts from the stable's lower bound.
	CanaryInterval, StableInterval Interval
	Latency                        *LatencyFinding
}

// Judge applies a Config to the scopes of one fleet.
type Judge struct {
	cfg    Config
	sprt   SPRT
	share  ShareTest
	alphaT float64 // false-abort budget of one test
}

// New returns a judge for a fleet judged in scopes scopes of which
// latencyScopes also have a latency comparison. The false-abort budget is
// split evenly over every test that can fail a canary: the comparison per
// scope, in the absolute zone also the threshold test, and the latency
// comparisons.
func New(cfg Config, scopes, latencyScopes int) (*Judge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.LatencyQuantile == 0 {
		latencyScopes = 0
	}
	perScope := 1
	if cfg.Zone == ZoneAbsolute {
		perScope = 2
	}
	tests := perScope*max(scopes, 1) + max(latencyScopes, 0)
	alphaT := cfg.FalseAbortRate / float64(tests)
	return &Judge{
		cfg:    cfg,
		alphaT: alphaT,
		sprt:   SPRT{P0: cfg.MaxFailureRate - cfg.MinEffect, P1: cfg.MaxFailureRate, Alpha: alphaT, Beta: cfg.FalsePromoteRate},
		share:  ShareTest{Alpha: alphaT},
	}, nil
}

// Evaluate judges one scope. Fail wins over Pass: a canary shown worse than
// stable fails even if its threshold test passed.
//
// In the relative zone (the default) the canary fails only when the
// stratified comparison shows it failing more often than the stable, and
// passes when its failure rate is shown below the stable's (as the canary
// saw it) plus MinEffect. In the absolute zone the threshold test fails it
// above MaxFailureRate and passes it below MaxFailureRate-MinEffect, and
// the comparison can fail it too.
func (j *Judge) Evaluate(e Evidence) Finding {
	f := Finding{Verdict: Inconclusive, Zone: j.cfg.zone(), AbortAt: j.share.AbortAt(), PassAt: j.sprt.LowerBound(),
		CanaryInterval: Interval{0, 1}, StableInterval: Interval{0, 1}}
	strata := e.strata()
	for _, s := range strata {
		if !s.Canary.valid() || !s.Stable.valid() {
			f.Reason = ReasonInvalidCounts
			f.Message = fmt.Sprintf("impossible counts: canary %d/%d, stable %d/%d failed", s.Canary.Failures, s.Canary.Requests, s.Stable.Failures, s.Stable.Requests)
			return f
		}
	}
	f.LogLR = j.sprt.LogLR(e.Canary)
	f.LogE, f.Strata = j.share.LogE(strata, failures)
	worse := f.LogE >= f.AbortAt
	beta := j.cfg.FalsePromoteRate
	f.CanaryInterval, f.StableInterval = ConfidenceSequence(e.Canary, beta/2), ConfidenceSequence(e.Stable, beta/2)
	counts := fmt.Sprintf("canary %d/%d failed (%s), stable %d/%d (%s)",
		e.Canary.Failures, e.Canary.Requests, pct(e.Canary.Rate()), e.Stable.Failures, e.Stable.Requests, pct(e.Stable.Rate()))
	if e.CanaryLatency != nil && e.StableLatency != nil && j.cfg.LatencyQuantile > 0 {
		f.Latency = j.latency(strata, *e.StableLatency)
	}
	outcome := j.sprt.Test(e.Canary)
	absolute := f.Zone == ZoneAbsolute
	relPass := j.relativePass(e.Stable.Rate(), f.StableInterval)
	if !absolute {
		f.LogLR, f.PassAt = relPass.LogLR(e.Canary), relPass.LowerBound()
	}
	switch {
	case absolute && outcome == AcceptH1:
		f.Verdict, f.Reason = Fail, ReasonAboveThreshold
		f.Message = fmt.Sprintf("failure rate above %s: %s; log LR %s >= %s", pct(j.cfg.MaxFailureRate), counts, num(f.LogLR), num(j.sprt.UpperBound()))
	case worse:
		f.Verdict, f.Reason = Fail, ReasonWorseThanStable
		f.Message = fmt.Sprintf("canary fails more often than stable: %s; log e-value %s >= %s over %s (the canary's share of the failures against its share of the requests, slice by slice)",
			counts, num(f.LogE), num(f.AbortAt), sliceCount(f.Strata))
	case f.Latency != nil && f.Latency.Slower:
		l := f.Latency
		f.Verdict, f.Reason = Fail, ReasonSlowerThanStable
		f.Message = fmt.Sprintf("canary slower than stable: %d/%d canary requests above %sms (stable's p%s bucket) against %d/%d stable; log e-value %s >= %s",
			l.CanarySlow.Failures, l.CanarySlow.Requests, num(l.Bound), num(j.cfg.LatencyQuantile*100), l.StableSlow.Failures, l.StableSlow.Requests,
			num(l.LogE), num(l.AbortAt))
	case e.Canary.Requests == 0:
		f.Reason = ReasonNoCanaryRequests
		f.Message = "the canary has served no requests here yet"
	case absolute && outcome == AcceptH0:
		f.Verdict, f.Reason = Pass, ReasonBelowThreshold
		f.Message = fmt.Sprintf("failure rate below %s: %s; log LR %s <= %s", pct(j.cfg.MaxFailureRate), counts, num(f.LogLR), num(f.PassAt))
	case !absolute && relPass.Test(e.Canary) == AcceptH0:
		f.Verdict, f.Reason = Pass, ReasonWithinStable
		f.Message = fmt.Sprintf("failure rate within stable + %s: %s; stable's rate >= %s, log LR of %s against %s: %s <= %s",
			pct(j.cfg.MinEffect), counts, pct(f.StableInterval.Lo), pct(relPass.P1), pct(relPass.P0), num(f.LogLR), num(f.PassAt))
	case absolute:
		f.Reason = ReasonNotEnoughEvidence
		f.Message = fmt.Sprintf("not enough evidence yet: %s; log LR %s, fails at %s, passes at %s", counts, num(f.LogLR), num(j.sprt.UpperBound()), num(f.PassAt))
	default:
		f.Reason = ReasonNotEnoughEvidence
		f.Message = fmt.Sprintf("not enough evidence yet: %s; log LR of %s against %s %s, passes at %s; log e-value against stable %s, fails at %s",
			counts, pct(relPass.P1), pct(relPass.P0), num(f.LogLR), num(f.PassAt), num(f.LogE), num(f.AbortAt))
	}
	return f
}

// relativePass is the relative zone's pass test: Wald's test of a canary
// as good as the stable (P0, its observed rate) against one worse by
// MinEffect (P1), the stable's rate taken at the low end of its confidence
// sequence (level beta/2). A canary worse than the true stable rate by
// MinEffect or more fails at least at P1 whenever that sequence covers the
// stable's rate, and then passes with probability at most beta/2 (the
// inverse likelihood ratio is a supermartingale under it): at most
// FalsePromoteRate in all. P0 only sets how fast a good canary passes; it
// is kept off zero, where a single failure would rule out passing for
// good, and below P1.
//
// The stable's rate here is pooled over the window, not stratified: a
// shared incident in the window raises it, and a canary that saw less of
// the incident passes a little sooner. Failing stays stratified, and it
// watches every later step.
func (j *Judge) relativePass(stableRate float64, stable Interval) SPRT {
	p1 := math.Min(stable.Lo+j.cfg.MinEffect, 0.999)
	p0 := math.Min(math.Max(stableRate, j.cfg.MinEffect/10), p1-j.cfg.MinEffect/10)
	return SPRT{P0: p0, P1: p1, Alpha: j.alphaT, Beta: j.cfg.FalsePromoteRate / 2}
}

// latency compares the shares of slow requests, stratum by stratum.
func (j *Judge) latency(strata []Stratum, stable Histogram) *LatencyFinding {
	l := &LatencyFinding{}
	b, ok := stable.quantileBound(j.cfg.LatencyQuantile)
	if !ok {
		return l
	}
	slow := func(s Stratum) (Counts, Counts) {
		if s.CanaryLatency == nil || s.StableLatency == nil || !sameBounds(*s.CanaryLatency, *s.StableLatency) {
			return Counts{}, Counts{}
		}
		return s.CanaryLatency.slowerThan(b), s.StableLatency.slowerThan(b)
	}
	for _, s := range strata {
		c, st := slow(s)
		l.CanarySlow, l.StableSlow = l.CanarySlow.Add(c), l.StableSlow.Add(st)
	}
	if l.CanarySlow.Requests == 0 {
		return l
	}
	l.Applicable, l.Bound = true, b
	// The bound is chosen from the data at every look; splitting the
	// budget over every bound it could be keeps the union of all those
	// comparisons within the test's share.
	t := ShareTest{Alpha: j.alphaT / float64(max(len(stable.Bounds)-1, 1))}
	l.LogE, _ = t.LogE(strata, slow)
	l.AbortAt = t.AbortAt()
	l.Slower = l.LogE >= l.AbortAt
	return l
}

func sameBounds(a, b Histogram) bool {
	return slices.Equal(a.Bounds, b.Bounds) && len(a.Cumulative) == len(a.Bounds) && len(b.Cumulative) == len(b.Bounds)
}

// addHistogram adds b to a (nil for nothing) when their bounds match.
func addHistogram(a, b *Histogram) *Histogram {
	switch {
	case b == nil:
		return a
	case a == nil:
		return &Histogram{Bounds: slices.Clone(b.Bounds), Cumulative: slices.Clone(b.Cumulative)}
	case !sameBounds(*a, *b):
		return a
	}
	for i := range a.Cumulative {
		a.Cumulative[i] += b.Cumulative[i]
	}
	return a
}

// sliceCount says how many time slices carried the evidence.
func sliceCount(n int) string {
	if n == 1 {
		return "1 time slice"
	}
	return strconv.Itoa(n) + " time slices"
}

func pct(f float64) string {
	return strconv.FormatFloat(f*100, 'f', 1, 64) + "%"
}

func num(f float64) string {
	return strconv.FormatFloat(f, 'f', 2, 64)
}
