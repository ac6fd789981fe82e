package analysis

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
)

// Default label names: Prometheus' external label naming the reporting
// Prometheus, and Istio's label naming the cluster whose pod served a request.
const (
	DefaultReportingLabel = "cluster"
	DefaultServingLabel   = "destination_cluster"
)

// Scope is one way of grouping a metric.
type Scope string

// The three scopes a metric is evaluated in.
const (
	// ScopeGlobal aggregates everything into one value.
	ScopeGlobal Scope = "global"
	// ScopeReporting groups by the reporting cluster: what each cluster's
	// clients saw. With multi-primary load balancing a bad pod anywhere
	// lowers every cluster's value, so this scope cannot name the culprit.
	ScopeReporting Scope = "reporting"
	// ScopeServing groups by the serving cluster: how each cluster's pods
	// did. Only this scope names the culprit.
	ScopeServing Scope = "serving"
)

// Metric is one success-ratio check. Give either Query (with CountQuery) or
// Ratio.
//
// Query is a PromQL template with {{scope}} where the grouping goes and
// {{args.NAME}} for arguments; Lockstep substitutes "" for the global scope
// and "by (LABEL)" for the per-cluster scopes, so it belongs right after an
// aggregation operator. The guide's query becomes:
//
//	sum {{scope}} (irate(istio_requests_total{reporter="source",destination_service=~"{{args.service}}",response_code!~"5.*"}[40s]))
//	  / sum {{scope}} (irate(istio_requests_total{reporter="source",destination_service=~"{{args.service}}"}[40s]))
//
// CountQuery, in the same shape, yields the number of requests behind each
// value, e.g. sum {{scope}} (increase(istio_requests_total{...}[40s])).
//
// Ratio is the simpler form: two series selectors from which Lockstep builds
// both queries itself.
type Metric struct {
	Name       string
	Query      string
	CountQuery string
	Ratio      *Ratio
	// Threshold is what a value must satisfy to pass (Argo's
	// successCondition without the "result[0]").
	Threshold Threshold
	// MinCount, when positive, makes a value backed by fewer requests
	// inconclusive. It requires a count query.
	MinCount float64
	// ReportingLabel and ServingLabel name the grouping labels; empty means
	// DefaultReportingLabel and DefaultServingLabel.
	ReportingLabel string
	ServingLabel   string
}

// Ratio describes a success ratio by two series selectors over a window.
type Ratio struct {
	// Good selects the successful requests' counter, Total all requests'
	// counter, e.g. istio_requests_total{reporter="source",
	// destination_service=~"{{args.service}}",response_code!~"5.*"}. They
	// must be plain selectors (checked, see plainSelector): Lockstep
	// appends [Window].
	Good  string
	Total string
	// Window is the range, e.g. "40s" (arguments allowed).
	Window string
	// Func is "rate" (the default) or "irate".
	Func string
}

// ScopeQueries are the PromQL queries of one scope.
type ScopeQueries struct {
	Value string
	// Count is empty when the metric has no count query.
	Count string
}

// Queries are a metric's queries in every scope.
type Queries struct {
	Global, Reporting, Serving ScopeQueries
}

var (
	labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	// promDuration is Prometheus' duration syntax, e.g. 40s or 1m30s.
	promDuration = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d|w|y))+$`)
)

func (m Metric) reportingLabel() string {
	if m.ReportingLabel == "" {
		return DefaultReportingLabel
	}
	return m.ReportingLabel
}

func (m Metric) servingLabel() string {
	if m.ServingLabel == "" {
		return DefaultServingLabel
	}
	return m.ServingLabel
}

// Validate reports whether the metric expands cleanly with args; see Expand.
func (m Metric) Validate(args map[string]string) error {
	_, err := m.Expand(args)
	return err
}

// Expand substitutes args and the grouping of each scope and checks each
// resulting query with CheckQuery.
func (m Metric) Expand(args map[string]string) (Queries, error) {
	var errs []error
	if strings.TrimSpace(m.Name) == "" {
		errs = append(errs, errors.New("metric has no name"))
	}
	if err := m.Threshold.Validate(); err != nil {
		errs = append(errs, err)
	} else if m.Ratio != nil && !m.Threshold.Meetable(0, 1) {
		errs = append(errs, fmt.Errorf("metric %q: threshold \"%s %v\" can never be met by a ratio (0 to 1): every look would fail", m.Name, m.Threshold.Op, m.Threshold.Value))
	}
	if m.MinCount < 0 || math.IsNaN(m.MinCount) || math.IsInf(m.MinCount, 0) {
		errs = append(errs, fmt.Errorf("minimum count %v must be a non-negative number", m.MinCount))
	}
	rep, srv := m.reportingLabel(), m.servingLabel()
	for _, l := range []string{rep, srv} {
		if !labelName.MatchString(l) {
			errs = append(errs, fmt.Errorf("%q is not a label name", l))
		}
	}
	if rep == srv {
		errs = append(errs, fmt.Errorf("reporting and serving label are both %q", rep))
	}
	valueTmpl, countTmpl, err := m.templates(args)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return Queries{}, fmt.Errorf("metric %q: %w", m.Name, errors.Join(errs...))
	}

	var out Queries
	for _, s := range []struct {
		scope  Scope
		clause string
		dst    *ScopeQueries
	}{
		{ScopeGlobal, "", &out.Global},
		{ScopeReporting, "by (" + rep + ")", &out.Reporting},
		{ScopeServing, "by (" + srv + ")", &out.Serving},
	} {
		tags := argTags(args)
		tags[scopeTag] = s.clause
		for _, q := range []struct {
			what string
			tmpl string
			dst  *string
		}{
			{"query", valueTmpl, &s.dst.Value},
			{"count query", countTmpl, &s.dst.Count},
		} {
			if q.tmpl == "" {
				continue
			}
			text, err := resolve(q.tmpl, tags)
			if err == nil {
				err = CheckQuery(text)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", s.scope, q.what, err))
				continue
			}
			*q.dst = strings.TrimSpace(text)
		}
	}
	if len(errs) > 0 {
		return Queries{}, fmt.Errorf("metric %q: %w", m.Name, errors.Join(errs...))
	}
	return out, nil
}

// templates returns the value and count templates, building them from Ratio
// when that form is used.
func (m Metric) templates(args map[string]string) (value, count string, err error) {
	switch {
	case m.Ratio != nil && (m.Query != "" || m.CountQuery != ""):
		return "", "", errors.New("give either query templates or a ratio, not both")
	case m.Ratio != nil:
		return m.Ratio.templates(args)
	case strings.TrimSpace(m.Query) == "":
		return "", "", errors.New("give a query template or a ratio")
	}
	// Without {{scope}} every scope would run the same ungrouped query and
	// no member could ever be found in the per-cluster results.
	if !hasTag(m.Query, scopeTag) {
		return "", "", errors.New("query template has no {{scope}} to group by")
	}
	if m.CountQuery != "" && !hasTag(m.CountQuery, scopeTag) {
		return "", "", errors.New("count query template has no {{scope}} to group by")
	}
	if m.MinCount > 0 && strings.TrimSpace(m.CountQuery) == "" {
		return "", "", errors.New("a minimum count needs a count query")
	}
	return m.Query, m.CountQuery, nil
}

// templates builds a ratio's queries. A cluster where every request failed
// has no "good" series at all, so the numerator falls back to 0 times the
// denominator: the ratio is then 0 (a failure) rather than absent (merely
// inconclusive). Where there was no traffic the ratio is 0/0 = NaN, which
// Evaluate treats as inconclusive.
func (r Ratio) templates(args map[string]string) (value, count string, err error) {
	fn := r.Func
	if fn == "" {
		fn = "rate"
	}
	if fn != "rate" && fn != "irate" {
		return "", "", fmt.Errorf("ratio function %q: want rate or irate", r.Func)
	}
	window, err := ResolveArgs(r.Window, args)
	if err != nil {
		return "", "", fmt.Errorf("ratio window: %w", err)
	}
	if !promDuration.MatchString(window) {
		return "", "", fmt.Errorf("ratio window %q is not a duration like 40s", window)
	}
	for _, sel := range []struct{ name, text string }{{"good", r.Good}, {"total", r.Total}} {
		if strings.TrimSpace(sel.text) == "" {
			return "", "", fmt.Errorf("ratio %s selector is empty", sel.name)
		}
		if hasTag(sel.text, scopeTag) {
			return "", "", fmt.Errorf("ratio %s selector must not use {{scope}}; Lockstep places it", sel.name)
		}
		resolved, err := ResolveArgs(sel.text, args)
		if err != nil {
			return "", "", fmt.Errorf("ratio %s selector: %w", sel.name, err)
		}
		if err := plainSelector(resolved); err != nil {
			return "", "", fmt.Errorf("ratio %s selector: %w", sel.name, err)
		}
	}
	good := fmt.Sprintf("%s(%s[%s])", fn, strings.TrimSpace(r.Good), window)
	total := fmt.Sprintf("%s(%s[%s])", fn, strings.TrimSpace(r.Total), window)
	value = fmt.Sprintf("(sum {{scope}} (%s) or 0 * sum {{scope}} (%s)) / sum {{scope}} (%s)", good, total, total)
	count = fmt.Sprintf("sum {{scope}} (increase(%s[%s]))", strings.TrimSpace(r.Total), window)
	return value, count, nil
}

// plainSelector reports whether sel is a series selector and nothing more,
// such as x{a="b"}: Lockstep appends [window] to it inside rate(). Anything
// else (a function call, an offset, "x) or vector(1) or (y") would either
// not parse there or quietly change what the ratio measures.
func plainSelector(sel string) error {
	expr, err := promQLParser.ParseExpr(sel)
	if err != nil {
		return parseError(err)
	}
	vs, ok := expr.(*parser.VectorSelector)
	if !ok || vs.OriginalOffset != 0 || vs.OriginalOffsetExpr != nil || vs.Timestamp != nil || vs.StartOrEnd != 0 {
		return fmt.Errorf("%q is not a plain series selector such as metric{label=\"value\"}", sel)
	}
	return nil
}

// Op is a threshold comparison.
type Op string

// Comparison operators.
const (
	OpGreater      Op = ">"
	OpGreaterEqual Op = ">="
	OpLess         Op = "<"
	OpLessEqual    Op = "<="
)

// Threshold is the condition a value must meet to pass.
type Threshold struct {
	Op    Op
	Value float64
}

// Validate reports an unknown operator or a non-finite bound.
func (t Threshold) Validate() error {
	switch t.Op {
	case OpGreater, OpGreaterEqual, OpLess, OpLessEqual:
	default:
		return fmt.Errorf("threshold operator %q: want >, >=, < or <=", t.Op)
	}
	if math.IsNaN(t.Value) || math.IsInf(t.Value, 0) {
		return fmt.Errorf("threshold value %v is not finite", t.Value)
	}
	return nil
}

// Meetable reports whether some value in [lo, hi] meets the threshold.
func (t Threshold) Meetable(lo, hi float64) bool {
	return t.Met(lo) || t.Met(hi)
}

// Met reports whether v satisfies the threshold. NaN never does.
func (t Threshold) Met(v float64) bool {
	switch t.Op {
	case OpGreater:
		return v > t.Value
	case OpGreaterEqual:
		return v >= t.Value
	case OpLess:
		return v < t.Value
	case OpLessEqual:
		return v <= t.Value
	}
	return false
}

func (t Threshold) String() string {
	return fmt.Sprintf("%s %s", t.Op, strconv.FormatFloat(t.Value, 'g', -1, 64))
}

// ParseThreshold parses "> 0.9", ">=0.95" and Argo's successCondition
// forms "result > 0.9" and "result[0] > 0.90". Anything richer (&&, len())
// is rejected rather than half understood.
func ParseThreshold(s string) (Threshold, error) {
	rest := strings.TrimSpace(s)
	for _, prefix := range []string{"result[0]", "result"} {
		if strings.HasPrefix(rest, prefix) {
			rest = strings.TrimSpace(rest[len(prefix):])
			break
		}
	}
	var op Op
	for _, candidate := range []Op{OpGreaterEqual, OpLessEqual, OpGreater, OpLess} {
		if strings.HasPrefix(rest, string(candidate)) {
			op = candidate
			break
		}
	}
	if op == "" {
		return Threshold{}, fmt.Errorf("threshold %q: want an operator (>, >=, <, <=) and a number", s)
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(rest[len(op):]), 64)
	if err != nil {
		return Threshold{}, fmt.Errorf("threshold %q: %w", s, err)
	}
	t := Threshold{Op: op, Value: v}
	if err := t.Validate(); err != nil {
		return Threshold{}, fmt.Errorf("threshold %q: %w", s, err)
	}
	return t, nil
}
