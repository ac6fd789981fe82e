package analysis

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"lockstep.dev/lockstep/internal/decide"
)

// Member maps a Lockstep member cluster to the label values naming it in
// the metrics.
type Member struct {
	// Name is the member's name in Lockstep (and in decide.Snapshot).
	Name string
	// Reporting is its value of the reporting label, e.g. data-producer-1.
	Reporting string
	// Serving is its value of the serving label, e.g. argo-rollout1.
	Serving string
}

// Reason explains an Outcome or MemberResult.
type Reason string

// Reasons. Every reason except ReasonThresholdMet comes with a verdict other
// than Pass.
const (
	ReasonThresholdMet    Reason = "ThresholdMet"
	ReasonThresholdNotMet Reason = "ThresholdNotMet"
	// ReasonServingFailed: this member's pods fail the threshold; it is the
	// culprit.
	ReasonServingFailed Reason = "ServingFailed"
	// ReasonReportingFailed: this member's clients see failures that no
	// serving cluster accounts for (or the failing cluster is elsewhere).
	ReasonReportingFailed Reason = "ReportingFailed"
	ReasonInvalidMetric   Reason = "InvalidMetric"
	ReasonInvalidMembers  Reason = "InvalidMembers"
	ReasonQueryError      Reason = "QueryError"
	ReasonQueryWarning    Reason = "QueryWarning"
	ReasonEmptyResult     Reason = "EmptyResult"
	// ReasonAmbiguousResult: more than one series where one was expected.
	ReasonAmbiguousResult Reason = "AmbiguousResult"
	// ReasonMemberMissing: the per-cluster result has no series for the
	// member, so nothing is known about it.
	ReasonMemberMissing Reason = "MemberMissing"
	// ReasonNotANumber: NaN, ±Inf, a negative count or a histogram sample.
	ReasonNotANumber     Reason = "NotANumber"
	ReasonTooFewRequests Reason = "TooFewRequests"
)

// Outcome is a metric's value in one scope (global, or one member seen from
// one side) and its verdict.
type Outcome struct {
	// Query and CountQuery are the PromQL that produced the numbers.
	Query      string
	CountQuery string
	Value      float64
	HasValue   bool
	Count      float64
	HasCount   bool
	Verdict    decide.Verdict
	Reason     Reason
	Message    string
}

// MemberResult is one member's outcomes and their combination.
type MemberResult struct {
	Name string
	// Reporting is what the member's clients saw; Serving is how the
	// member's pods did.
	Reporting Outcome
	Serving   Outcome
	// Verdict is the worse of the two: Fail if either failed (a serving
	// failure names the member as the culprit, a reporting failure only says
	// its clients suffer), else Inconclusive if either is, else Pass.
	Verdict decide.Verdict
	Reason  Reason
	Message string
}

// Result is one evaluation of one metric.
type Result struct {
	Metric      string
	EvaluatedAt time.Time
	Global      Outcome
	Members     []MemberResult
}

// Verdict is the worst verdict in the result.
func (r Result) Verdict() decide.Verdict {
	v := r.Global.Verdict
	for _, m := range r.Members {
		v = decide.Worst(v, m.Verdict)
	}
	return v
}

// Culprits lists the members whose own pods failed (serving scope).
func (r Result) Culprits() []string {
	var out []string
	for _, m := range r.Members {
		if m.Serving.Verdict == decide.VerdictFail {
			out = append(out, m.Name)
		}
	}
	return out
}

// Analysis converts the result into decide's verdicts for revision. A
// member's request count is the smaller of its two sides, so a minimum is
// met only if both sides have enough evidence.
func (r Result) Analysis(revision string) decide.Analysis {
	g := r.Global
	out := decide.Analysis{
		Global: &decide.AnalysisVerdict{
			Verdict: g.Verdict, Reason: string(g.Reason), Message: r.Metric + ": " + g.Message,
			Revision: revision, EvaluatedAt: r.EvaluatedAt,
			Requests: g.Count, RequestsKnown: g.HasCount,
		},
		Members: make(map[string]decide.AnalysisVerdict, len(r.Members)),
	}
	for _, m := range r.Members {
		v := decide.AnalysisVerdict{
			Verdict: m.Verdict, Reason: string(m.Reason), Message: r.Metric + ": " + m.Message,
			Revision: revision, EvaluatedAt: r.EvaluatedAt,
		}
		if m.Reporting.HasCount && m.Serving.HasCount {
			v.Requests, v.RequestsKnown = min(m.Reporting.Count, m.Serving.Count), true
		}
		out.Members[m.Name] = v
	}
	return out
}

// queryResult is one query's raw answer.
type queryResult struct {
	vec      model.Vector
	warnings []string
	err      error
}

// Evaluate runs metric m for every scope at now and judges each value. It
// never returns an error: every problem becomes an Inconclusive outcome
// whose message says what went wrong, because a missing value must never be
// read as a pass.
func Evaluate(ctx context.Context, q Querier, m Metric, args map[string]string, members []Member, now time.Time) Result {
	res := Result{Metric: m.Name, EvaluatedAt: now, Members: make([]MemberResult, len(members))}
	for i, mem := range members {
		res.Members[i].Name = mem.Name
	}

	inconclusive := func(reason Reason, msg string) Result {
		o := Outcome{Verdict: decide.VerdictInconclusive, Reason: reason, Message: msg}
		res.Global = o
		for i := range res.Members {
			res.Members[i].Reporting, res.Members[i].Serving = o, o
			res.Members[i].Verdict, res.Members[i].Reason, res.Members[i].Message = o.Verdict, reason, msg
		}
		return res
	}
	if msg := membersProblem(members); msg != "" {
		return inconclusive(ReasonInvalidMembers, msg)
	}
	queries, err := m.Expand(args)
	if err != nil {
		return inconclusive(ReasonInvalidMetric, err.Error())
	}

	run := func(sq ScopeQueries) (value, count queryResult) {
		value = runQuery(ctx, q, sq.Value, now)
		if sq.Count != "" {
			count = runQuery(ctx, q, sq.Count, now)
		}
		return value, count
	}
	e := evaluator{m: m}

	gv, gc := run(queries.Global)
	res.Global = e.outcome(queries.Global, gv, gc, "", "")

	rv, rc := run(queries.Reporting)
	sv, sc := run(queries.Serving)
	for i, mem := range members {
		mr := &res.Members[i]
		mr.Reporting = e.outcome(queries.Reporting, rv, rc, m.reportingLabel(), mem.Reporting)
		mr.Serving = e.outcome(queries.Serving, sv, sc, m.servingLabel(), mem.Serving)
		mr.Verdict, mr.Reason, mr.Message = combine(mr.Reporting, mr.Serving)
	}
	return res
}

func runQuery(ctx context.Context, q Querier, promql string, ts time.Time) queryResult {
	vec, warnings, err := q.Query(ctx, promql, ts)
	return queryResult{vec: vec, warnings: warnings, err: err}
}

// membersProblem reports members that cannot be told apart in the results.
func membersProblem(members []Member) string {
	names, reporting, serving := map[string]bool{}, map[string]string{}, map[string]string{}
	for _, m := range members {
		switch {
		case m.Name == "":
			return "a member has no name"
		case names[m.Name]:
			return fmt.Sprintf("member %s is listed twice", m.Name)
		case m.Reporting == "" || m.Serving == "":
			return fmt.Sprintf("member %s lacks a reporting or serving label value", m.Name)
		case reporting[m.Reporting] != "":
			return fmt.Sprintf("members %s and %s share reporting label value %q", reporting[m.Reporting], m.Name, m.Reporting)
		case serving[m.Serving] != "":
			return fmt.Sprintf("members %s and %s share serving label value %q", serving[m.Serving], m.Name, m.Serving)
		}
		names[m.Name], reporting[m.Reporting], serving[m.Serving] = true, m.Name, m.Name
	}
	return ""
}

type evaluator struct {
	m Metric
}

// outcome judges the value and count for one key of one scope. label is ""
// for the global scope, where exactly one series is expected.
func (e evaluator) outcome(sq ScopeQueries, value, count queryResult, label, key string) Outcome {
	o := Outcome{Query: sq.Value, CountQuery: sq.Count, Verdict: decide.VerdictInconclusive}

	v, reason, msg := pick(value, label, key, false)
	if reason == "" {
		o.Value, o.HasValue = v, true
	}
	var cReason Reason
	var cMsg string
	if sq.Count != "" {
		var c float64
		c, cReason, cMsg = pick(count, label, key, true)
		if cReason == "" {
			o.Count, o.HasCount = c, true
		}
	}
	switch {
	case reason != "":
		o.Reason, o.Message = reason, "value: "+msg
		return o
	case cReason != "":
		o.Reason, o.Message = cReason, "request count: "+cMsg
		return o
	case e.m.MinCount > 0 && o.Count < e.m.MinCount:
		o.Reason = ReasonTooFewRequests
		o.Message = fmt.Sprintf("%s requests, need %s", fmtNum(o.Count), fmtNum(e.m.MinCount))
		return o
	}

	cond := fmt.Sprintf("%s %s", fmtNum(o.Value), e.m.Threshold)
	if o.HasCount {
		cond += fmt.Sprintf(" (%s requests)", fmtNum(o.Count))
	}
	if e.m.Threshold.Met(o.Value) {
		o.Verdict, o.Reason, o.Message = decide.VerdictPass, ReasonThresholdMet, cond
	} else {
		o.Verdict, o.Reason, o.Message = decide.VerdictFail, ReasonThresholdNotMet, "not "+cond
	}
	return o
}

// pick extracts the single finite value for key from a query result, or
// says why there is none.
func pick(r queryResult, label, key string, isCount bool) (float64, Reason, string) {
	switch {
	case r.err != nil:
		return 0, ReasonQueryError, r.err.Error()
	case len(r.warnings) > 0:
		return 0, ReasonQueryWarning, strings.Join(r.warnings, "; ")
	case len(r.vec) == 0:
		return 0, ReasonEmptyResult, "query returned no series"
	}
	var found []*model.Sample
	if label == "" {
		found = r.vec
	} else {
		for _, s := range r.vec {
			if string(s.Metric[model.LabelName(label)]) == key {
				found = append(found, s)
			}
		}
	}
	switch {
	case len(found) == 0:
		return 0, ReasonMemberMissing, fmt.Sprintf("no series with %s=%q", label, key)
	case len(found) > 1 && label == "":
		return 0, ReasonAmbiguousResult, fmt.Sprintf("%d series where one was expected", len(found))
	case len(found) > 1:
		return 0, ReasonAmbiguousResult, fmt.Sprintf("%d series with %s=%q", len(found), label, key)
	}
	s := found[0]
	if s.Histogram != nil {
		return 0, ReasonNotANumber, "histogram sample where a number was expected"
	}
	v := float64(s.Value)
	if math.IsNaN(v) || math.IsInf(v, 0) || (isCount && v < 0) {
		return 0, ReasonNotANumber, fmt.Sprintf("value is %v", v)
	}
	return v, "", ""
}

// combine folds a member's two sides into its verdict.
func combine(rep, srv Outcome) (decide.Verdict, Reason, string) {
	side := func(name string, o Outcome) string {
		return fmt.Sprintf("%s %s (%s: %s)", name, o.Verdict, o.Reason, o.Message)
	}
	both := side("serving", srv) + "; " + side("reporting", rep)
	switch {
	case srv.Verdict == decide.VerdictFail:
		return decide.VerdictFail, ReasonServingFailed, both
	case rep.Verdict == decide.VerdictFail:
		return decide.VerdictFail, ReasonReportingFailed, both
	case srv.Verdict != decide.VerdictPass:
		return decide.VerdictInconclusive, srv.Reason, both
	case rep.Verdict != decide.VerdictPass:
		return decide.VerdictInconclusive, rep.Reason, both
	}
	return decide.VerdictPass, ReasonThresholdMet, both
}

func fmtNum(f float64) string {
	return strconv.FormatFloat(f, 'g', 6, 64)
}
