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
	// armLabel is the label the judge's queries add to tell the canary's
	// series from the stable's.
	armLabel = "lockstep_arm"
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

// Window is where the evidence window of a canary that first got traffic
// at canaryStart opens: one scrape interval and a second later. An
// instant query there reads, for every counter, a sample scraped after
// canaryStart, so requests an earlier canary served just before it (after
// that counter's previous scrape) are in the baseline, not in the
// evidence. The new canary's requests in that first interval are left
// out; the judgement only gets more careful.
func (s JudgeSpec) Window(canaryStart time.Time) time.Time {
	if canaryStart.IsZero() {
		return time.Time{}
	}
	return canaryStart.Add(s.ScrapeInterval + time.Second)
}

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

// query is the family at an instant, each series tagged with its version.
func (a armSelectors) query() string {
	return fmt.Sprintf(`label_replace(%s, %q, "canary", "", "") or label_replace(%s, %q, "stable", "", "")`, a.canary, armLabel, a.stable, armLabel)
}

// Field paths named in errors.
const judgeField = "spec.analysis.judge"

// Validate reports every problem with the spec, each naming its field.
func (s JudgeSpec) Validate(args map[string]string) error {
	_, err := s.expand(args)
	return err
}

func (s JudgeSpec) expand(args map[string]string) (judgeQueries, error) {
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
	arm := func(field, matchers string) string {
		m, err := ResolveArgs(matchers, args)
		if err != nil {
			bad(field, "%v", err)
			return ""
		}
		if strings.TrimSpace(m) == "" {
			bad(field, "no label matchers: the judge cannot tell this version's requests apart (set it, or give the Rollout a canaryService and stableService to default it from)")
			return m
		}
		// Checked on their own so that a typo is reported here, not in
		// every query the matchers go into. The position is in the
		// braced text the message shows.
		if _, err := promQLParser.ParseMetricSelector("{" + m + "}"); err != nil {
			bad(field, "label matchers {%s}: %v", m, parseError(err))
			return ""
		}
		return m
	}
	canary, stable := arm("canary", s.Canary), arm("stable", s.Stable)
	if canary != "" && strings.TrimSpace(canary) == strings.TrimSpace(stable) {
		bad("stable", "the same label matchers as canary (%s): the judge would compare the canary with itself", stable)
	}
	build := func(field, selector string, histogram bool) armSelectors {
		sel, err := ResolveArgs(selector, args)
		if err != nil {
			bad(field, "%v", err)
			return armSelectors{}
		}
		name, _, _ := strings.Cut(strings.TrimSpace(sel), "{")
		if histogram && !strings.HasSuffix(strings.TrimSpace(name), "_bucket") {
			bad(field, "%q is not a histogram's _bucket series", sel)
		}
		c, err1 := withMatchers(sel, canary)
		st, err2 := withMatchers(sel, stable)
		if err1 != nil || err2 != nil {
			bad(field, "%v", cmpErr(err1, err2))
			return armSelectors{}
		}
		a := armSelectors{canary: c, stable: st}
		if err := CheckQuery(a.query()); err != nil {
			bad(field, "%v", err)
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

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

var selectorRe = regexp.MustCompile(`^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(\{(.*)\})?\s*$`)

// withMatchers adds label matchers to a plain series selector.
func withMatchers(selector, matchers string) (string, error) {
	m := selectorRe.FindStringSubmatch(selector)
	if m == nil || (m[1] == "" && m[2] == "") {
		return "", fmt.Errorf("%q is not a series selector such as metric{label=\"value\"}", selector)
	}
	inner := strings.TrimSpace(m[3])
	inner = strings.TrimSuffix(inner, ",")
	if inner != "" {
		inner += ","
	}
	return m[1] + "{" + inner + strings.TrimSpace(matchers) + "}", nil
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

// EvaluateJudge counts every scope's requests since `since` (the moment the
// canary of the revision being judged first got traffic) and judges them.
// Four instant queries, whatever the number of members: requests and
// histogram buckets, at since and now.
//
// since must be a moment at which every counter's latest sample was taken
// after the previous canary's last request: the caller opens the window
// one scrape interval after the canary's first traffic (Window). Like
// Evaluate it never fails: every problem is an Inconclusive verdict that
// says what went wrong.
func EvaluateJudge(ctx context.Context, q Querier, spec JudgeSpec, args map[string]string, members []Member, since, now time.Time) JudgeResult {
	res := JudgeResult{EvaluatedAt: now, Since: since, Members: make([]MemberJudgement, len(members))}
	for i, m := range members {
		res.Members[i].Name = m.Name
	}
	inconclusive := func(reason, msg string) JudgeResult {
		s := ScopeJudgement{Verdict: decide.VerdictInconclusive, Reason: reason, Message: msg}
		res.Global = s
		for i := range res.Members {
			mj := &res.Members[i]
			mj.Serving, mj.Reporting = s, s
			mj.Verdict, mj.Reason, mj.Message = s.Verdict, reason, msg
		}
		return res
	}
	if msg := membersProblem(members); msg != "" {
		return inconclusive(string(ReasonInvalidMembers), msg)
	}
	queries, err := spec.expand(args)
	if err != nil {
		res.Problem = err.Error()
		return inconclusive(string(ReasonInvalidMetric), err.Error())
	}
	j, err := judge.New(spec.Config, 1+2*len(members), len(members))
	if err != nil {
		res.Problem = err.Error()
		return inconclusive(string(ReasonInvalidMetric), err.Error())
	}
	if since.IsZero() {
		return inconclusive(judge.ReasonNoCanaryRequests, "the canary of this revision has had no traffic yet")
	}
	if !now.After(since) {
		return inconclusive(judge.ReasonNoCanaryRequests, "the evidence window opens at "+since.UTC().Format("15:04:05.000")+", one scrape after the canary's first traffic")
	}
	res.Queries = []string{queries.requests.query()}
	if !queries.histogram.empty() {
		res.Queries = append(res.Queries, queries.histogram.query())
	}

	reqNow, reqStart, qerr := readings(ctx, q, queries.requests, since, now)
	if qerr != "" {
		return inconclusive(string(ReasonQueryError), "requests: "+qerr)
	}
	if len(reqNow) == 0 {
		res.Problem = fmt.Sprintf("%s.requests: no series match %s in Thanos (does the counter exist?)", judgeField, spec.requests())
		return inconclusive(string(ReasonEmptyResult), res.Problem)
	}
	var histNow, histStart []judge.Sample
	if !queries.histogram.empty() {
		histNow, histStart, qerr = readings(ctx, q, queries.histogram, since, now)
		switch {
		case qerr != "":
			return inconclusive(string(ReasonQueryError), "latency histogram: "+qerr)
		case len(histNow) == 0:
			res.Problem = fmt.Sprintf("%s.latency.histogram: no series match %s in Thanos", judgeField, spec.Histogram)
			return inconclusive(string(ReasonEmptyResult), res.Problem)
		case !slices.ContainsFunc(histNow, func(s judge.Sample) bool { _, ok := s.Labels["le"]; return ok }):
			res.Problem = fmt.Sprintf("%s.latency.histogram: %s has no le label: it has no buckets", judgeField, spec.Histogram)
			return inconclusive(string(ReasonNotANumber), res.Problem)
		}
	}

	t := newTally(spec, queries.failure, members)
	incs, bad := judge.Increase(reqStart, reqNow)
	for _, s := range incs {
		t.addRequests(s)
	}
	if histNow != nil {
		hincs, hbad := judge.Increase(histStart, histNow)
		bad += hbad
		for _, s := range hincs {
			t.addBuckets(s)
		}
	}
	if bad > 0 {
		return inconclusive(string(ReasonNotANumber), fmt.Sprintf("%d series had NaN, infinite or negative values", bad))
	}

	scope := func(e judge.Evidence) ScopeJudgement {
		f := j.Evaluate(e)
		return ScopeJudgement{Evidence: e, Finding: f, Verdict: decide.Verdict(f.Verdict), Reason: f.Reason, Message: f.Message}
	}
	// Complete data or no verdict: the fleet's counts must hold every
	// member's series, or the fleet is judged on part of it.
	var missing []string
	for i, m := range members {
		mj := &res.Members[i]
		if t.reportingSeen[m.Reporting] {
			mj.Reporting = scope(judge.Evidence{Canary: t.reporting[m.Reporting]["canary"], Stable: t.reporting[m.Reporting]["stable"]})
		} else {
			missing = append(missing, m.Name)
			msg := fmt.Sprintf("no series with %s=%q: its Prometheus is not in the answer", spec.reportingLabel(), m.Reporting)
			mj.Reporting = ScopeJudgement{Verdict: decide.VerdictInconclusive, Reason: string(ReasonMemberMissing), Message: msg}
		}
		e := judge.Evidence{Canary: t.serving[m.Serving]["canary"], Stable: t.serving[m.Serving]["stable"]}
		if histNow != nil {
			e.CanaryLatency, e.StableLatency = t.histogram(m.Serving, "canary"), t.histogram(m.Serving, "stable")
		}
		mj.Serving = scope(e)
		mj.Verdict, mj.Reason, mj.Message = combineJudged(mj.Reporting, mj.Serving)
	}
	if len(missing) > 0 {
		res.Global = ScopeJudgement{Verdict: decide.VerdictInconclusive, Reason: string(ReasonMemberMissing),
			Message: "no fleet verdict on partial data: no series from " + strings.Join(missing, ", ")}
	} else {
		res.Global = scope(judge.Evidence{Canary: t.global["canary"], Stable: t.global["stable"]})
	}
	return res
}

// readings reads a series family at the window's start and now.
func readings(ctx context.Context, q Querier, a armSelectors, since, now time.Time) (atNow, atStart []judge.Sample, problem string) {
	n := runQuery(ctx, q, a.query(), now)
	if p := vectorProblem(n); p != "" {
		return nil, nil, p
	}
	s := runQuery(ctx, q, a.query(), since)
	if p := vectorProblem(s); p != "" {
		return nil, nil, p
	}
	return samples(n.vec), samples(s.vec), ""
}

func vectorProblem(r queryResult) string {
	switch {
	case r.err != nil:
		return r.err.Error()
	case len(r.warnings) > 0:
		return "warnings: " + strings.Join(r.warnings, "; ")
	}
	return ""
}

func samples(vec model.Vector) []judge.Sample {
	out := make([]judge.Sample, 0, len(vec))
	for _, s := range vec {
		labels := make(map[string]string, len(s.Metric))
		for k, v := range s.Metric {
			// The name is the same for every series of a family.
			if k != model.MetricNameLabel {
				labels[string(k)] = string(v)
			}
		}
		v := float64(s.Value)
		if s.Histogram != nil {
			v = math.NaN()
		}
		out = append(out, judge.Sample{Key: judge.Key(labels), Labels: labels, Value: v})
	}
	return out
}

// tally sums increments per scope and version.
type tally struct {
	spec          JudgeSpec
	failure       *regexp.Regexp
	global        map[string]judge.Counts
	reporting     map[string]map[string]judge.Counts
	serving       map[string]map[string]judge.Counts
	reportingSeen map[string]bool
	// buckets[serving][arm][le] are bucket increments.
	buckets map[string]map[string]map[float64]int64
}

func newTally(spec JudgeSpec, failure *regexp.Regexp, members []Member) *tally {
	t := &tally{spec: spec, failure: failure, global: map[string]judge.Counts{},
		reporting: map[string]map[string]judge.Counts{}, serving: map[string]map[string]judge.Counts{},
		reportingSeen: map[string]bool{}, buckets: map[string]map[string]map[float64]int64{}}
	for _, m := range members {
		t.reporting[m.Reporting] = map[string]judge.Counts{}
		t.serving[m.Serving] = map[string]judge.Counts{}
	}
	return t
}

func (t *tally) addRequests(s judge.Sample) {
	arm := s.Labels[armLabel]
	rep, srv := s.Labels[t.spec.reportingLabel()], s.Labels[t.spec.servingLabel()]
	// A series present now was scraped from its cluster's Prometheus,
	// whether or not it grew: the member is in the answer.
	t.reportingSeen[rep] = true
	c := judge.Counts{Requests: int64(s.Value)}
	if t.failure.MatchString(s.Labels[t.spec.failureLabel()]) {
		c.Failures = c.Requests
	}
	t.global[arm] = t.global[arm].Add(c)
	if m, ok := t.reporting[rep]; ok {
		m[arm] = m[arm].Add(c)
	}
	if m, ok := t.serving[srv]; ok {
		m[arm] = m[arm].Add(c)
	}
}

func (t *tally) addBuckets(s judge.Sample) {
	le, err := strconv.ParseFloat(s.Labels["le"], 64)
	if err != nil {
		return
	}
	srv, arm := s.Labels[t.spec.servingLabel()], s.Labels[armLabel]
	if t.buckets[srv] == nil {
		t.buckets[srv] = map[string]map[float64]int64{}
	}
	if t.buckets[srv][arm] == nil {
		t.buckets[srv][arm] = map[float64]int64{}
	}
	t.buckets[srv][arm][le] += int64(s.Value)
}

// histogram builds a cumulative histogram over the bounds both versions
// report, so the two are comparable bucket by bucket.
func (t *tally) histogram(serving, arm string) *judge.Histogram {
	bounds := map[float64]bool{}
	for _, a := range []string{"canary", "stable"} {
		for le := range t.buckets[serving][a] {
			bounds[le] = true
		}
	}
	h := &judge.Histogram{}
	for _, b := range slices.Sorted(func(yield func(float64) bool) {
		for b := range bounds {
			if !yield(b) {
				return
			}
		}
	}) {
		h.Bounds = append(h.Bounds, b)
		h.Cumulative = append(h.Cumulative, t.buckets[serving][arm][b])
	}
	if len(h.Bounds) == 0 || !math.IsInf(h.Bounds[len(h.Bounds)-1], 1) {
		h.Bounds = append(h.Bounds, math.Inf(1))
		h.Cumulative = append(h.Cumulative, 0)
	}
	// Bucket increments of separate series can break monotonicity by a
	// count lost in a reset; keep the histogram cumulative.
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
