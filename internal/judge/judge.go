package judge

import (
	"errors"
	"fmt"
	"math"
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
	ReasonAboveThreshold    = "FailureRateAboveThreshold"
	ReasonWorseThanStable   = "CanaryWorseThanStable"
	ReasonSlowerThanStable  = "CanarySlowerThanStable"
	ReasonNotEnoughEvidence = "NotEnoughEvidence"
	ReasonNoCanaryRequests  = "NoCanaryRequests"
	ReasonInvalidCounts     = "InvalidCounts"
)

// Config is what the operator asks of the judge.
type Config struct {
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
		MaxFailureRate: 0.10, MinEffect: 0.05,
		FalseAbortRate: 0.01, FalsePromoteRate: 0.05,
		LatencyQuantile: 0.9, LatencyMinEffect: 0.10,
	}
}

// Validate reports settings that cannot be meant, naming the field.
func (c Config) Validate() error {
	var errs []error
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

// Evidence is what is known about one scope.
type Evidence struct {
	Canary, Stable Counts
	// CanaryLatency and StableLatency are nil where latency is not judged.
	CanaryLatency, StableLatency *Histogram
}

// LatencyFinding is the latency comparison's detail.
type LatencyFinding struct {
	// Bound is the stable version's quantile bucket bound; requests above
	// it are slow.
	Bound              float64
	CanarySlow         Counts
	StableSlow         Counts
	CanaryInterval     Interval
	StableInterval     Interval
	Slower, Applicable bool
}

// Finding is the judgement of one scope and how it was reached.
type Finding struct {
	Verdict Verdict
	Reason  string
	Message string
	// LogLR is the threshold test's statistic; it fails the canary at
	// AbortAt and passes it at PassAt.
	LogLR, AbortAt, PassAt float64
	// CanaryInterval and StableInterval are the failure rates' confidence
	// sequences used by the comparison.
	CanaryInterval, StableInterval Interval
	Latency                        *LatencyFinding
}

// Judge applies a Config to the scopes of one fleet.
type Judge struct {
	cfg    Config
	sprt   SPRT
	alphaT float64 // false-abort budget of one test
}

// New returns a judge for a fleet judged in scopes scopes (each with a
// threshold test and a comparison) of which latencyScopes also have a
// latency comparison. The false-abort budget is split evenly over them.
func New(cfg Config, scopes, latencyScopes int) (*Judge, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.LatencyQuantile == 0 {
		latencyScopes = 0
	}
	tests := 2*max(scopes, 1) + max(latencyScopes, 0)
	alphaT := cfg.FalseAbortRate / float64(tests)
	return &Judge{
		cfg:    cfg,
		alphaT: alphaT,
		sprt:   SPRT{P0: cfg.MaxFailureRate - cfg.MinEffect, P1: cfg.MaxFailureRate, Alpha: alphaT, Beta: cfg.FalsePromoteRate},
	}, nil
}

// Evaluate judges one scope. Fail wins over Pass: a canary shown worse than
// stable fails even if its threshold test passed.
func (j *Judge) Evaluate(e Evidence) Finding {
	f := Finding{Verdict: Inconclusive, AbortAt: j.sprt.UpperBound(), PassAt: j.sprt.LowerBound(),
		CanaryInterval: Interval{0, 1}, StableInterval: Interval{0, 1}}
	if !e.Canary.valid() || !e.Stable.valid() {
		f.Reason = ReasonInvalidCounts
		f.Message = fmt.Sprintf("impossible counts: canary %d/%d, stable %d/%d failed", e.Canary.Failures, e.Canary.Requests, e.Stable.Failures, e.Stable.Requests)
		return f
	}
	f.LogLR = j.sprt.LogLR(e.Canary)
	worse, ci, si := Worse(e.Canary, e.Stable, j.cfg.MinEffect, j.alphaT)
	f.CanaryInterval, f.StableInterval = ci, si
	counts := fmt.Sprintf("canary %d/%d failed (%s), stable %d/%d (%s)",
		e.Canary.Failures, e.Canary.Requests, pct(e.Canary.Rate()), e.Stable.Failures, e.Stable.Requests, pct(e.Stable.Rate()))
	if e.CanaryLatency != nil && e.StableLatency != nil && j.cfg.LatencyQuantile > 0 {
		f.Latency = j.latency(*e.CanaryLatency, *e.StableLatency)
	}
	outcome := j.sprt.Test(e.Canary)
	switch {
	case outcome == AcceptH1:
		f.Verdict, f.Reason = Fail, ReasonAboveThreshold
		f.Message = fmt.Sprintf("failure rate above %s: %s; log LR %s >= %s", pct(j.cfg.MaxFailureRate), counts, num(f.LogLR), num(f.AbortAt))
	case worse:
		f.Verdict, f.Reason = Fail, ReasonWorseThanStable
		f.Message = fmt.Sprintf("canary fails more than stable + %s: %s; canary rate >= %s > stable <= %s", pct(j.cfg.MinEffect), counts, pct(ci.Lo), pct(si.Hi))
	case f.Latency != nil && f.Latency.Slower:
		l := f.Latency
		f.Verdict, f.Reason = Fail, ReasonSlowerThanStable
		f.Message = fmt.Sprintf("canary slower than stable: %d/%d canary requests above %sms (stable's p%s bucket) against %d/%d stable; share >= %s > stable <= %s + %s",
			l.CanarySlow.Failures, l.CanarySlow.Requests, num(l.Bound), num(j.cfg.LatencyQuantile*100), l.StableSlow.Failures, l.StableSlow.Requests,
			pct(l.CanaryInterval.Lo), pct(l.StableInterval.Hi), pct(j.cfg.LatencyMinEffect))
	case e.Canary.Requests == 0:
		f.Reason = ReasonNoCanaryRequests
		f.Message = "the canary has served no requests here yet"
	case outcome == AcceptH0:
		f.Verdict, f.Reason = Pass, ReasonBelowThreshold
		f.Message = fmt.Sprintf("failure rate below %s: %s; log LR %s <= %s", pct(j.cfg.MaxFailureRate), counts, num(f.LogLR), num(f.PassAt))
	default:
		f.Reason = ReasonNotEnoughEvidence
		f.Message = fmt.Sprintf("not enough evidence yet: %s; log LR %s, fails at %s, passes at %s", counts, num(f.LogLR), num(f.AbortAt), num(f.PassAt))
	}
	return f
}

// latency compares the shares of slow requests.
func (j *Judge) latency(canary, stable Histogram) *LatencyFinding {
	l := &LatencyFinding{}
	b, ok := stable.quantileBound(j.cfg.LatencyQuantile)
	if !ok || canary.Total() == 0 || len(canary.Bounds) != len(stable.Bounds) {
		return l
	}
	l.Applicable, l.Bound = true, b
	l.CanarySlow, l.StableSlow = canary.slowerThan(b), stable.slowerThan(b)
	// The bound is chosen from the data at every look; splitting the
	// budget over every bound it could be keeps the union of all those
	// comparisons within the test's share.
	alpha := j.alphaT / float64(max(len(stable.Bounds)-1, 1))
	l.Slower, l.CanaryInterval, l.StableInterval = Worse(l.CanarySlow, l.StableSlow, j.cfg.LatencyMinEffect, alpha)
	return l
}

func pct(f float64) string {
	return strconv.FormatFloat(f*100, 'f', 1, 64) + "%"
}

func num(f float64) string {
	return strconv.FormatFloat(f, 'f', 2, 64)
}
