package analysis

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/judge"
)

// Defaults of the sequential judge: Istio's standard metrics as the
// ingress gateways (reporter="source") report them, and Envoy's 5xx as
// failure.
const (
	DefaultJudgeRequests  = `istio_requests_total{reporter="source"}`
	DefaultJudgeHistogram = `istio_request_duration_milliseconds_bucket{reporter="source"}`
	DefaultFailureLabel   = "response_code"
	DefaultFailureCodes   = "5.."
)

// JudgeSpec is the sequential judge's input in package analysis' terms.
// Field names in errors are the FleetRollout's (spec.analysis.judge.*).
type JudgeSpec struct {
	// Requests selects the request counter with the matchers both versions
	// share; Histogram the duration histogram's _bucket series ("" turns
	// the latency check off).
	Requests  string
	Histogram string
	// Canary and Stable are label matchers, e.g.
	// destination_service="helloworld-canary.helloworld.svc.cluster.local".
	Canary, Stable string
	// FailureLabel's value, matched (fully) by FailureCodes, marks a failed
	// request.
	FailureLabel string
	FailureCodes string
	// ReportingLabel and ServingLabel name the clusters.
	ReportingLabel, ServingLabel string
	// ScrapeInterval is the metrics' scrape interval; see Window.
	ScrapeInterval time.Duration
	Config         judge.Config
}

// DefaultScrapeInterval is prometheus-operator's default.
const DefaultScrapeInterval = 30 * time.Second

// Lookback is how far before the canary's first traffic the judge reads
// the counters: two scrapes and a second, so every series that existed
// then has a baseline scrape, and the judge can see whether an earlier
// canary was still serving.
func (s JudgeSpec) Lookback() time.Duration { return 2*s.ScrapeInterval + time.Second }

// Slice is the length of one stratum: two scrapes, at least 10 s. Canary
// and stable are compared within a slice, so a change that hits both for
// longer than a slice (an incident, a traffic shift) cancels out.
func (s JudgeSpec) Slice() time.Duration { return max(2*s.ScrapeInterval, 10*time.Second) }

// judgeQueries are the expanded selectors and the failure pattern.
type judgeQueries struct {
	requests, histogram armSelectors
	failure             *regexp.Regexp
}

// armSelectors are one series family's selectors for each version.
type armSelectors struct {
	canary, stable string
}

func (a armSelectors) empty() bool { return a.canary == "" }

// ranges are the two raw-sample queries: every scrape of each version's
// series over the last r.
func (a armSelectors) ranges(r time.Duration) (canary, stable string) {
	d := model.Duration(r.Round(time.Second)).String()
	return a.canary + "[" + d + "]", a.stable + "[" + d + "]"
}

// Field paths named in errors.
const judgeField = "spec.analysis.judge"

// Validate reports every problem with the spec, each naming its field.
func (s JudgeSpec) Validate(args map[string]string) error {
	_, err := s.expand(args)
	return err
}

func (s JudgeSpec) expand(args map[string]string) (judgeQueries, error) {
	return s.expandFor(args, nil)
}

// expandFor builds the queries; with members, the selectors only match
// their reporting clusters, so a cluster that is not a member (a staging
// fleet in the same Thanos) feeds no scope.
func (s JudgeSpec) expandFor(args map[string]string, members []Member) (judgeQueries, error) {
	var errs []string
	bad := func(field, format string, a ...any) {
		errs = append(errs, judgeField+"."+field+": "+escapeLines(fmt.Sprintf(format, a...)))
	}
	if err := s.Config.Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			field, _, _ := strings.Cut(line, " ")
			bad(field, "%s", line)
		}
	}
	for field, l := range map[string]string{"reportingLabel": s.reportingLabel(), "servingLabel": s.servingLabel(), "failureLabel": s.failureLabel()} {
		if !labelName.MatchString(l) {
			bad(field, "%q is not a label name", l)
		}
	}
	var q judgeQueries
	re, err := regexp.Compile("^(?:" + cmp.Or(s.FailureCodes, DefaultFailureCodes) + ")$")
	if err != nil {
		bad("failureCodes", "%v", err)
	}
	q.failure = re
	arm := func(field, matchers string) []*labels.Matcher {
		m, err := ResolveArgs(matchers, args)
		if err != nil {
			bad(field, "%v", err)
			return nil
		}
		if strings.TrimSpace(m) == "" {
			bad(field, "no label matchers: the judge cannot tell this version's requests apart (set it, or give the Rollout a canaryService and stableService to default it from)")
			return nil
		}
		// Checked on their own so that a typo is reported here, not in
		// every query the matchers go into. The position is in the
		// braced text the message shows.
		ms, err := promQLParser.ParseMetricSelector("{" + m + "}")
		if err != nil {
			bad(field, "label matchers {%s}: %v", m, parseError(err))
			return nil
		}
		return ms
	}
	canary, stable := arm("canary", s.Canary), arm("stable", s.Stable)
	if canary != nil && matchersString(canary) == matchersString(stable) {
		bad("stable", "the same label matchers as canary (%s): the judge would compare the canary with itself", matchersString(stable))
	}
	var only []*labels.Matcher
	if len(members) > 0 {
		values := make([]string, 0, len(members))
		for _, m := range members {
			values = append(values, regexp.QuoteMeta(m.Reporting))
		}
		slices.Sort(values)
		values = slices.Compact(values)
		m, err := labels.NewMatcher(labels.MatchRegexp, s.reportingLabel(), strings.Join(values, "|"))
		if err != nil {
			bad("reportingLabel", "%v", err)
		} else {
			only = append(only, m)
		}
	}
	build := func(field, selector string, histogram bool) armSelectors {
		sel, err := ResolveArgs(selector, args)
		if err != nil {
			bad(field, "%v", err)
			return armSelectors{}
		}
		vs, err := seriesSelector(sel)
		if err != nil {
			bad(field, "%v", err)
			return armSelectors{}
		}
		if histogram && !strings.HasSuffix(vs.Name, "_bucket") {
			bad(field, "%q is not a histogram's _bucket series", sel)
		}
		if canary == nil || stable == nil {
			return armSelectors{}
		}
		a := armSelectors{canary: withMatchers(vs, canary, only), stable: withMatchers(vs, stable, only)}
		c, st := a.ranges(time.Minute)
		for _, query := range []string{c, st} {
			if err := CheckQuery(query); err != nil {
				bad(field, "%v", err)
			}
		}
		return a
	}
	q.requests = build("requests", s.requests(), false)
	if s.Histogram != "" {
		q.histogram = build("latency.histogram", s.Histogram, true)
	}
	if len(errs) > 0 {
		return q, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return q, nil
}

// seriesSelector parses sel with the PromQL parser and accepts a single
// plain series selector such as metric{label="value"}: the judge reads its
// raw scrapes, so anything else (an "or", a function, an offset) would
// either not be a counter or quietly change what is counted.
func seriesSelector(sel string) (*parser.VectorSelector, error) {
	expr, err := promQLParser.ParseExpr(sel)
	if err != nil {
		return nil, fmt.Errorf("%q: %v", sel, parseError(err))
	}
	vs, ok := expr.(*parser.VectorSelector)
	if !ok || vs.OriginalOffset != 0 || vs.OriginalOffsetExpr != nil || vs.Timestamp != nil || vs.StartOrEnd != 0 {
		return nil, fmt.Errorf("%q is not a single series selector such as metric{label=\"value\"}", sel)
	}
	return vs, nil
}

// withMatchers is the selector vs with more label matchers, printed by the
// parser (so values are quoted and escaped by it).
func withMatchers(vs *parser.VectorSelector, more ...[]*labels.Matcher) string {
	out := &parser.VectorSelector{Name: vs.Name, LabelMatchers: slices.Clone(vs.LabelMatchers)}
	for _, ms := range more {
		out.LabelMatchers = append(out.LabelMatchers, ms...)
	}
	return out.String()
}

func matchersString(ms []*labels.Matcher) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

func (s JudgeSpec) requests() string { return cmp.Or(s.Requests, DefaultJudgeRequests) }

func (s JudgeSpec) reportingLabel() string { return cmp.Or(s.ReportingLabel, DefaultReportingLabel) }

func (s JudgeSpec) servingLabel() string { return cmp.Or(s.ServingLabel, DefaultServingLabel) }

func (s JudgeSpec) failureLabel() string { return cmp.Or(s.FailureLabel, DefaultFailureLabel) }

// ScopeJudgement is one scope's evidence and what the judge made of it.
type ScopeJudgement struct {
	Evidence judge.Evidence
	Finding  judge.Finding
	Verdict  decide.Verdict
	Reason   string
	Message  string
}

// MemberJudgement is one member seen from its pods (serving) and its
// clients (reporting).
type MemberJudgement struct {
	Name               string
	Serving, Reporting ScopeJudgement
	Verdict            decide.Verdict
	Reason, Message    string
}

// JudgeResult is one evaluation of the sequential judge.
type JudgeResult struct {
	EvaluatedAt time.Time
	// Since is the start of the evidence window (see JudgeSpec.Window).
	Since   time.Time
	Global  ScopeJudgement
	Members []MemberJudgement
	// Problem, when set, is a configuration problem found in the data (a
	// counter or histogram with no series), naming the field.
	Problem string
	// Queries are the PromQL sent, for people.
	Queries []string
}

// Analysis converts the result into decide's verdicts; Requests is the
// canary's request count.
func (r JudgeResult) Analysis(revision string) decide.Analysis {
	conv := func(s ScopeJudgement) decide.AnalysisVerdict {
		return decide.AnalysisVerdict{Verdict: s.Verdict, Reason: s.Reason, Message: "judge: " + s.Message,
			Revision: revision, EvaluatedAt: r.EvaluatedAt,
			Requests: float64(s.Evidence.Canary.Requests), RequestsKnown: true}
	}
	g := conv(r.Global)
	out := decide.Analysis{Global: &g, Members: map[string]decide.AnalysisVerdict{}}
	for _, m := range r.Members {
		v := conv(m.Serving)
		v.Verdict, v.Reason, v.Message = m.Verdict, m.Reason, "judge: "+m.Message
		v.Requests = float64(min(m.Serving.Evidence.Canary.Requests, m.Reporting.Evidence.Canary.Requests))
		out.Members[m.Name] = v
	}
	return out
}

// SampleQuerier reads raw scrapes: promql is a range selector such as
// x{a="b"}[5m], evaluated at ts. PrometheusQuerier implements it.
type SampleQuerier interface {
	QuerySamples(ctx context.Context, promql string, ts time.Time) (model.Matrix, []string, error)
}

// EvaluateJudge counts every scope's requests since `since` (the moment the
// canary of the revision being judged first got traffic) and judges them.
// Four queries, whatever the number of members: every raw scrape of the
// request counter and of the histogram buckets, for each version, from
// Lookback before since to now.
//
// Counting is scrape by scrape (judge.Deltas), so a reset between two
// scrapes loses nothing but the requests just before it. Which increments
// count is the window's call (see window): from the canary's first
// traffic, or, when the fleet was quiet long enough before it, from the
// scrape before it, so the first verdict can come at the first scrape
// after the canary's first traffic.
//
// Like Evaluate it never fails: every problem is an Inconclusive verdict
// that says what went wrong.
func EvaluateJudge(ctx context.Context, q SampleQuerier, spec JudgeSpec, args map[string]string, members []Member, win JudgeWindow, now time.Time) JudgeResult {
	r := &judgeRun{spec: spec, members: members, now: now,
		res: JudgeResult{EvaluatedAt: now, Since: win.Since, Members: make([]MemberJudgement, len(members))}}
	for i, m := range members {
		r.res.Members[i].Name = m.Name
	}
	if !r.check(q, args, win) || !r.read(ctx, q) || !r.count() {
		return r.res
	}
	r.judgeScopes()
	return r.res
}

// judgeRun is one evaluation of the judge, phase by phase: check the
// spec and the window, read the raw scrapes, count them into a tally,
// judge every scope. A phase that finds a problem makes every verdict
// Inconclusive, saying what went wrong, and stops the run.
type judgeRun struct {
	spec    JudgeSpec
	members []Member
	now     time.Time
	res     JudgeResult

	queries           judgeQueries
	judge             *judge.Judge
	w                 window
	requests, buckets []armSeries
	tally             *tally
}

// inconclusive gives every scope the same Inconclusive verdict; problem,
// when set, is a configuration problem found (it names the field).
func (r *judgeRun) inconclusive(reason, msg string, problem bool) bool {
	if problem {
		r.res.Problem = msg
	}
	s := ScopeJudgement{Verdict: decide.VerdictInconclusive, Reason: reason, Message: msg}
	r.res.Global = s
	for i := range r.res.Members {
		mj := &r.res.Members[i]
		mj.Serving, mj.Reporting = s, s
		mj.Verdict, mj.Reason, mj.Message = s.Verdict, reason, msg
	}
	return false
}

// check validates the members and the spec, and opens the window.
func (r *judgeRun) check(q SampleQuerier, args map[string]string, win JudgeWindow) bool {
	if msg := membersProblem(r.members); msg != "" {
		return r.inconclusive(string(ReasonInvalidMembers), msg, false)
	}
	var err error
	if r.queries, err = r.spec.expandFor(args, r.members); err != nil {
		return r.inconclusive(string(ReasonInvalidMetric), err.Error(), true)
	}
	if r.judge, err = judge.New(r.spec.Config, 1+2*len(r.members), len(r.members)); err != nil {
		return r.inconclusive(string(ReasonInvalidMetric), err.Error(), true)
	}
	switch since := win.Since; {
	case q == nil:
		return r.inconclusive(string(ReasonQueryError), "the metrics backend cannot read raw samples", false)
	case since.IsZero():
		return r.inconclusive(judge.ReasonNoCanaryRequests, "the canary of this revision has had no traffic yet", false)
	case !r.now.After(since):
		return r.inconclusive(judge.ReasonNoCanaryRequests, "the evidence window opens at "+since.UTC().Format("15:04:05.000")+", the canary's first traffic", false)
	}
	r.w = newWindow(r.spec, win.Since, win.QuietSince)
	return true
}

// read runs the range queries: requests, then the histogram's buckets.
func (r *judgeRun) read(ctx context.Context, q SampleQuerier) bool {
	span := r.now.Sub(r.w.rangeStart)
	reqC, reqS := r.queries.requests.ranges(span)
	r.res.Queries = []string{reqC, reqS}
	var qerr string
	if r.requests, qerr = rawSeries(ctx, q, reqC, reqS, r.now); qerr != "" {
		return r.inconclusive(string(ReasonQueryError), "requests: "+qerr, false)
	}
	if len(r.requests) == 0 {
		return r.inconclusive(string(ReasonEmptyResult), fmt.Sprintf("%s.requests: no series match %s in Thanos (does the counter exist?)", judgeField, r.spec.requests()), true)
	}
	if r.queries.histogram.empty() {
		return true
	}
	histC, histS := r.queries.histogram.ranges(span)
	r.res.Queries = append(r.res.Queries, histC, histS)
	r.buckets, qerr = rawSeries(ctx, q, histC, histS, r.now)
	switch {
	case qerr != "":
		return r.inconclusive(string(ReasonQueryError), "latency histogram: "+qerr, false)
	case len(r.buckets) == 0:
		return r.inconclusive(string(ReasonEmptyResult), fmt.Sprintf("%s.latency.histogram: no series match %s in Thanos", judgeField, r.spec.Histogram), true)
	case !slices.ContainsFunc(r.buckets, func(s armSeries) bool { _, ok := s.Labels["le"]; return ok }):
		return r.inconclusive(string(ReasonNotANumber), fmt.Sprintf("%s.latency.histogram: %s has no le label: it has no buckets", judgeField, r.spec.Histogram), true)
	}
	return true
}

// count turns the scrapes into increments and tallies the ones the window
// counts, per scope, slice and version.
func (r *judgeRun) count() bool {
	// Every series first scraped after the range's first scrape is
	// marked born; the window decides which births count.
	firstScrape := r.w.rangeStart.Add(r.spec.ScrapeInterval + time.Second).UnixMilli()
	reqDeltas, bad := judge.Deltas(plain(r.requests), nil, firstScrape)
	r.res.Since = r.w.anchor
	r.tally = newTally(r.spec, r.queries.failure, r.members, r.w)
	for _, d := range reqDeltas {
		r.tally.addRequests(r.requests[d.Series], d)
	}
	if r.buckets != nil {
		for _, b := range r.buckets {
			r.tally.seeBucket(b)
		}
		bDeltas, hbad := judge.Deltas(plain(r.buckets), judge.HistogramGroup, firstScrape)
		bad += hbad
		for _, d := range bDeltas {
			r.tally.addBuckets(r.buckets[d.Series], d)
		}
	}
	if bad > 0 {
		return r.inconclusive(string(ReasonNotANumber), fmt.Sprintf("%d scrapes had NaN, infinite or negative values", bad), false)
	}
	return true
}

// judgeScopes judges every member from both sides, then the fleet.
// Complete data or no verdict: the fleet's counts must hold every
// member's series, or the fleet is judged on part of it.
func (r *judgeRun) judgeScopes() {
	t := r.tally
	scope := func(e judge.Evidence) ScopeJudgement {
		f := r.judge.Evaluate(e)
		return ScopeJudgement{Evidence: e, Finding: f, Verdict: decide.Verdict(f.Verdict), Reason: f.Reason, Message: f.Message}
	}
	var missing []string
	for i, m := range r.members {
		mj := &r.res.Members[i]
		if t.reportingSeen[m.Reporting] {
			mj.Reporting = scope(t.evidence(t.reporting[m.Reporting], nil, nil))
		} else {
			missing = append(missing, m.Name)
			msg := fmt.Sprintf("no series with %s=%q: its Prometheus is not in the answer", r.spec.reportingLabel(), m.Reporting)
			mj.Reporting = ScopeJudgement{Verdict: decide.VerdictInconclusive, Reason: string(ReasonMemberMissing), Message: msg}
		}
		e := t.evidence(t.serving[m.Serving], nil, nil)
		if r.buckets != nil {
			hist := t.buckets[m.Serving]
			if hist == nil {
				hist = map[string][]map[float64]int64{}
			}
			e = t.evidence(t.serving[m.Serving], hist, t.bucketSeen[m.Serving])
		}
		mj.Serving = scope(e)
		mj.Verdict, mj.Reason, mj.Message = combineJudged(mj.Reporting, mj.Serving)
	}
	if len(missing) > 0 {
		r.res.Global = ScopeJudgement{Verdict: decide.VerdictInconclusive, Reason: string(ReasonMemberMissing),
			Message: "no fleet verdict on partial data: no series from " + strings.Join(missing, ", ")}
		return
	}
	r.res.Global = scope(t.evidence(t.global, nil, nil))
}

// JudgeWindow is when the canary being judged got traffic: Since is its
// first traffic (FleetStatus.CanaryStartedAt) and QuietSince, if known,
// the moment from which no canary of the Service was served before it
// (FleetStatus.QuietSince: every member on the revision at weight 0).
type JudgeWindow struct {
	Since, QuietSince time.Time
}

// window is where the judge's evidence comes from.
//
// A scrape of a counter reflects every request before it, so an increment
// between two scrapes taken at or after a moment holds only requests
// after it, and a series first seen a whole scrape interval after a moment
// was born after it. The anchor is that moment: the canary's first
// traffic, or, when the fleet was quiet (no canary served) for at least a
// scrape interval before it, the start of that quiet stretch. Then the
// increments across the canary's first traffic count too, and the first
// scrape after it carries evidence: nothing else was served in between.
type window struct {
	rangeStart, anchor, bornAfter time.Time
	slice                         time.Duration
}

func newWindow(spec JudgeSpec, since, quietSince time.Time) window {
	w := window{rangeStart: since.Add(-spec.Lookback()), slice: spec.Slice(), anchor: since}
	gap := spec.ScrapeInterval + time.Second
	if !quietSince.IsZero() && since.Sub(quietSince) >= gap {
		w.anchor = quietSince
		if w.anchor.Before(w.rangeStart) {
			w.anchor = w.rangeStart
		}
	}
	w.bornAfter = w.anchor.Add(gap)
	return w
}

// counts reports whether an increment belongs to the evidence.
func (w window) counts(d judge.Delta) bool {
	if d.Born {
		return d.To > w.bornAfter.UnixMilli()
	}
	return d.From >= w.anchor.UnixMilli()
}

// stratum is the slice an increment falls in, counted from the range's
// start.
func (w window) stratum(d judge.Delta) int {
	return int((d.To - w.rangeStart.UnixMilli()) / w.slice.Milliseconds())
}

// armSeries is a raw series and the version it belongs to.
type armSeries struct {
	judge.Series
	arm string
}

func plain(ss []armSeries) []judge.Series {
	out := make([]judge.Series, len(ss))
	for i, s := range ss {
		out[i] = s.Series
	}
	return out
}

// rawSeries reads both versions' raw scrapes.
func rawSeries(ctx context.Context, q SampleQuerier, canary, stable string, now time.Time) ([]armSeries, string) {
	var out []armSeries
	for _, arm := range []struct{ name, query string }{{"canary", canary}, {"stable", stable}} {
		m, warnings, err := q.QuerySamples(ctx, arm.query, now)
		switch {
		case err != nil:
			return nil, err.Error()
		case len(warnings) > 0:
			return nil, "warnings: " + strings.Join(warnings, "; ")
		}
		for _, ss := range m {
			labels := make(map[string]string, len(ss.Metric))
			for k, v := range ss.Metric {
				// The name is the same for every series of a family.
				if k != model.MetricNameLabel {
					labels[string(k)] = string(v)
				}
			}
			s := armSeries{Series: judge.Series{Labels: labels}, arm: arm.name}
			for _, p := range ss.Values {
				s.Points = append(s.Points, judge.Point{T: int64(p.Timestamp), V: float64(p.Value)})
			}
			if len(ss.Histograms) > 0 {
				// A native histogram is not a counter: count it as bad.
				s.Points = append(s.Points, judge.Point{T: int64(ss.Histograms[0].Timestamp), V: math.NaN()})
			}
			out = append(out, s)
		}
	}
	return out, ""
}

// strata are one scope's counts per slice and version.
type strata map[string][]judge.Counts

func (s strata) add(arm string, k int, c judge.Counts) {
	for len(s[arm]) <= k {
		s[arm] = append(s[arm], judge.Counts{})
	}
	s[arm][k] = s[arm][k].Add(c)
}

// tally sums increments per scope, slice and version.
type tally struct {
	spec          JudgeSpec
	failure       *regexp.Regexp
	w             window
	global        strata
	reporting     map[string]strata
	serving       map[string]strata
	reportingSeen map[string]bool
	// buckets[serving][arm][slice][le] are bucket increments, and
	// bucketSeen[serving][arm] the bounds each version reports.
	buckets    map[string]map[string][]map[float64]int64
	bucketSeen map[string]map[string]map[float64]bool
}

func newTally(spec JudgeSpec, failure *regexp.Regexp, members []Member, w window) *tally {
	t := &tally{spec: spec, failure: failure, w: w, global: strata{},
		reporting: map[string]strata{}, serving: map[string]strata{},
		reportingSeen: map[string]bool{}, buckets: map[string]map[string][]map[float64]int64{},
		bucketSeen: map[string]map[string]map[float64]bool{}}
	for _, m := range members {
		t.reporting[m.Reporting] = strata{}
		t.serving[m.Serving] = strata{}
	}
	return t
}

func (t *tally) addRequests(s armSeries, d judge.Delta) {
	rep, srv := s.Labels[t.spec.reportingLabel()], s.Labels[t.spec.servingLabel()]
	// A series in the answer was scraped from its cluster's Prometheus,
	// whether or not it grew: the member is in the answer.
	t.reportingSeen[rep] = true
	if !t.w.counts(d) {
		return
	}
	c := judge.Counts{Requests: int64(d.V)}
	if t.failure.MatchString(s.Labels[t.spec.failureLabel()]) {
		c.Failures = c.Requests
	}
	k := t.w.stratum(d)
	// Only members' series are asked for; the check keeps a stray one
	// out of the fleet's counts all the same.
	if m, ok := t.reporting[rep]; ok {
		m.add(s.arm, k, c)
		t.global.add(s.arm, k, c)
	}
	if m, ok := t.serving[srv]; ok {
		m.add(s.arm, k, c)
	}
}

// seeBucket records that a version reports a bucket bound in a serving
// cluster, whether or not the bucket grew.
func (t *tally) seeBucket(s armSeries) {
	le, err := strconv.ParseFloat(s.Labels["le"], 64)
	if err != nil {
		return
	}
	srv := s.Labels[t.spec.servingLabel()]
	if t.bucketSeen[srv] == nil {
		t.bucketSeen[srv] = map[string]map[float64]bool{}
	}
	if t.bucketSeen[srv][s.arm] == nil {
		t.bucketSeen[srv][s.arm] = map[float64]bool{}
	}
	t.bucketSeen[srv][s.arm][le] = true
}

func (t *tally) addBuckets(s armSeries, d judge.Delta) {
	le, err := strconv.ParseFloat(s.Labels["le"], 64)
	if err != nil || !t.w.counts(d) {
		return
	}
	srv := s.Labels[t.spec.servingLabel()]
	if t.buckets[srv] == nil {
		t.buckets[srv] = map[string][]map[float64]int64{}
	}
	k := t.w.stratum(d)
	for len(t.buckets[srv][s.arm]) <= k {
		t.buckets[srv][s.arm] = append(t.buckets[srv][s.arm], map[float64]int64{})
	}
	t.buckets[srv][s.arm][k][le] += int64(d.V)
}

// evidence builds a scope's strata; with buckets, each stratum's
// histograms too.
func (t *tally) evidence(counts strata, buckets map[string][]map[float64]int64, seen map[string]map[float64]bool) judge.Evidence {
	n := max(len(counts["canary"]), len(counts["stable"]))
	if buckets != nil {
		n = max(n, len(buckets["canary"]), len(buckets["stable"]))
	}
	at := func(arm string, k int) judge.Counts {
		if k < len(counts[arm]) {
			return counts[arm][k]
		}
		return judge.Counts{}
	}
	var bounds []float64
	if buckets != nil {
		bounds = sharedBounds(seen["canary"], seen["stable"])
	}
	e := judge.Evidence{Strata: make([]judge.Stratum, n)}
	for k := range n {
		st := judge.Stratum{Canary: at("canary", k), Stable: at("stable", k)}
		if bounds != nil {
			st.CanaryLatency, st.StableLatency = histogramAt(buckets["canary"], k, bounds), histogramAt(buckets["stable"], k, bounds)
		}
		e.Strata[k] = st
	}
	e.Canary, e.Stable = judge.Totals(e.Strata)
	return e
}

// sharedBounds are the bucket bounds that both versions report somewhere
// in the window, or nil if they share no +Inf bucket. A bucket only one
// version reports says nothing about the other, so it is left out rather
// than filled in.
func sharedBounds(canary, stable map[float64]bool) []float64 {
	var out []float64
	for le := range canary {
		if stable[le] {
			out = append(out, le)
		}
	}
	slices.Sort(out)
	if len(out) == 0 || !math.IsInf(out[len(out)-1], 1) {
		return nil
	}
	return out
}

// histogramAt is one version's cumulative histogram in slice k over
// bounds.
func histogramAt(slices []map[float64]int64, k int, bounds []float64) *judge.Histogram {
	h := &judge.Histogram{Bounds: bounds, Cumulative: make([]int64, len(bounds))}
	if k >= len(slices) {
		return h
	}
	for i, b := range bounds {
		h.Cumulative[i] = slices[k][b]
	}
	// Buckets reset together (judge.Deltas), so increments stay
	// cumulative; a scrape that caught buckets mid-update could still
	// break it by a request, and the histogram must stay cumulative.
	for i := 1; i < len(h.Cumulative); i++ {
		h.Cumulative[i] = max(h.Cumulative[i], h.Cumulative[i-1])
	}
	return h
}

// combineJudged folds a member's two sides as combine does for metrics.
func combineJudged(rep, srv ScopeJudgement) (decide.Verdict, string, string) {
	both := fmt.Sprintf("serving %s (%s: %s); reporting %s (%s: %s)", srv.Verdict, srv.Reason, srv.Message, rep.Verdict, rep.Reason, rep.Message)
	switch {
	case srv.Verdict == decide.VerdictFail:
		return decide.VerdictFail, string(ReasonServingFailed) + "/" + srv.Reason, both
	case rep.Verdict == decide.VerdictFail:
		return decide.VerdictFail, string(ReasonReportingFailed) + "/" + rep.Reason, both
	case srv.Verdict != decide.VerdictPass:
		return decide.VerdictInconclusive, srv.Reason, both
	case rep.Verdict != decide.VerdictPass:
		return decide.VerdictInconclusive, rep.Reason, both
	}
	return decide.VerdictPass, srv.Reason, both
}
