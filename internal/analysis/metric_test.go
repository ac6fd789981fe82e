package analysis

import (
	"strings"
	"testing"
)

const (
	guideValue = `sum {{scope}} (irate(istio_requests_total{reporter="source",destination_service=~"{{args.service}}",response_code!~"5.*"}[40s])) / sum {{scope}} (irate(istio_requests_total{reporter="source",destination_service=~"{{args.service}}"}[40s]))`
	guideCount = `sum {{scope}} (increase(istio_requests_total{reporter="source",destination_service=~"{{args.service}}"}[40s]))`
	service    = "helloworld-canary.helloworld.svc.cluster.local"
)

var guideArgs = map[string]string{"service": service, "namespace": "helloworld"}

func guideMetric() Metric {
	return Metric{
		Name:       "success-rate",
		Query:      guideValue,
		CountQuery: guideCount,
		Threshold:  Threshold{Op: OpGreater, Value: 0.90},
		MinCount:   10,
	}
}

func TestResolveArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, tmpl string
		args       map[string]string
		want       string
		wantErr    string
	}{
		{name: "argo syntax", tmpl: `x{service="{{args.service}}",ns="{{args.namespace}}"}`, args: guideArgs, want: `x{service="` + service + `",ns="helloworld"}`},
		{name: "spaces inside the tag are trimmed, as in Argo", tmpl: `{{ args.namespace }}`, args: guideArgs, want: "helloworld"},
		{name: "no tags", tmpl: `up{job="a"}`, want: `up{job="a"}`},
		{name: "values are not re-scanned", tmpl: `{{args.a}}`, args: map[string]string{"a": "{{args.b}}"}, want: "{{args.b}}"},
		{name: "unknown argument", tmpl: `{{args.service}} {{args.nope}}`, args: guideArgs, wantErr: "failed to resolve {{args.nope}}"},
		{name: "argument without the args. prefix", tmpl: `{{service}}`, args: guideArgs, wantErr: "failed to resolve {{service}}"},
		{name: "scope is not an argument", tmpl: `sum {{scope}} (x)`, args: guideArgs, wantErr: "failed to resolve {{scope}}"},
		{name: "unterminated tag", tmpl: `x{a="{{args.service"}`, args: guideArgs, wantErr: "cannot find end tag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ResolveArgs(tc.tmpl, tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCheckQuery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, q string
		// wantErr is empty for a valid query, else a part of the error.
		wantErr string
	}{
		{name: "guide query", q: `sum by (cluster) (irate(istio_requests_total{reporter="source",destination_service=~"svc",response_code!~"5.*"}[40s])) / sum by (cluster) (irate(istio_requests_total{reporter="source"}[40s]))`},
		{name: "global scope leaves two spaces", q: `sum  (increase(x[40s]))`},
		{name: "grouping after the arguments", q: `sum(rate(x[5m])) by (cluster)`},
		{name: "braces in a regex", q: `sum by (cluster) (rate(x{a=~"b{2}"}[1m]))`},
		{name: "brackets in a string", q: `x{a="unbalanced ( in a string"}`},
		{name: "single quotes", q: `x{a='single \' quoted )'}`},
		{name: "backquotes", q: "x{a=`raw \\` }"},
		{name: "comment", q: "sum(x) # a comment with ("},
		{name: "several lines", q: "sum by (cluster) (\n  rate(x[1m])\n)"},
		{name: "ratio with a fallback", q: `(sum (rate(g[1m])) or 0 * sum (rate(t[1m]))) / sum (rate(t[1m]))`},
		{name: "judge query", q: `label_replace(x{a="b",c="d"}, "lockstep_arm", "canary", "", "") or label_replace(x{a="b",c="e"}, "lockstep_arm", "stable", "", "")`},

		{name: "empty", q: "", wantErr: "query is empty"},
		{name: "blank", q: "  \n ", wantErr: "query is empty"},
		{name: "unclosed paren", q: "sum(x", wantErr: "1:6: parse error: unclosed left parenthesis"},
		{name: "extra paren", q: "sum(x))", wantErr: "unexpected right parenthesis"},
		{name: "unclosed brace", q: `x{a="b"`, wantErr: "unexpected end of input inside braces"},
		{name: "crossed brackets", q: "rate(x[1m)]", wantErr: `unexpected ")" in subquery or range`},
		{name: "unterminated string", q: `x{a="unterminated}`, wantErr: "unterminated quoted string"},
		{name: "bracket for a paren", q: "sum by (cluster] (x)", wantErr: "unexpected right bracket"},
		// Balanced, and still not PromQL: what a bracket count let through.
		{name: "by without labels", q: "sum(rate(x[5m])) by", wantErr: `1:20: parse error: unexpected end of input in grouping opts, expected "("`},
		{name: "rate of an instant vector", q: "rate(x)", wantErr: `expected type range vector in call to function "rate", got instant vector`},
		{name: "two selectors", q: "foo bar", wantErr: `1:5: parse error: unexpected identifier "bar"`},
		{name: "unknown function", q: "sum(rat(x[5m]))", wantErr: `unknown function with name "rat"`},
		{name: "experimental function", q: "mad_over_time(x[5m])", wantErr: `function "mad_over_time" is not enabled`},
		{name: "unquoted label value", q: "x{a=b}", wantErr: `unexpected identifier "b" in label matching, expected string`},
		{name: "dangling operator", q: "sum(x) /", wantErr: "unexpected end of input"},
		{name: "bad duration", q: "rate(x[5 m])", wantErr: "parse error"},
		{name: "position on a later line", q: "sum(\n  rate(x)\n)", wantErr: "2:8: parse error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := CheckQuery(tc.q)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckQuery(%q) = %v, want nil", tc.q, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("CheckQuery(%q) = %v, want an error containing %q", tc.q, err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("CheckQuery(%q) = %q, want one line", tc.q, err)
			}
		})
	}
}

func TestExpandGuideTemplate(t *testing.T) {
	t.Parallel()
	q, err := guideMetric().Expand(guideArgs)
	if err != nil {
		t.Fatal(err)
	}
	sel := `{reporter="source",destination_service=~"` + service + `"`
	want := Queries{
		Global: ScopeQueries{
			Value: `sum  (irate(istio_requests_total` + sel + `,response_code!~"5.*"}[40s])) / sum  (irate(istio_requests_total` + sel + `}[40s]))`,
			Count: `sum  (increase(istio_requests_total` + sel + `}[40s]))`,
		},
		Reporting: ScopeQueries{
			Value: `sum by (cluster) (irate(istio_requests_total` + sel + `,response_code!~"5.*"}[40s])) / sum by (cluster) (irate(istio_requests_total` + sel + `}[40s]))`,
			Count: `sum by (cluster) (increase(istio_requests_total` + sel + `}[40s]))`,
		},
		Serving: ScopeQueries{
			Value: `sum by (destination_cluster) (irate(istio_requests_total` + sel + `,response_code!~"5.*"}[40s])) / sum by (destination_cluster) (irate(istio_requests_total` + sel + `}[40s]))`,
			Count: `sum by (destination_cluster) (increase(istio_requests_total` + sel + `}[40s]))`,
		},
	}
	if q != want {
		t.Errorf("got  %+v\nwant %+v", q, want)
	}
}

func TestExpandRatio(t *testing.T) {
	t.Parallel()
	m := Metric{
		Name: "ratio",
		Ratio: &Ratio{
			Good:   `istio_requests_total{destination_service=~"{{args.service}}",response_code!~"5.*"}`,
			Total:  `istio_requests_total{destination_service=~"{{args.service}}"}`,
			Window: "{{args.window}}",
			Func:   "irate",
		},
		Threshold:      Threshold{Op: OpGreaterEqual, Value: 0.95},
		ReportingLabel: "prom_cluster",
		ServingLabel:   "dest",
	}
	q, err := m.Expand(map[string]string{"service": "svc", "window": "1m"})
	if err != nil {
		t.Fatal(err)
	}
	good := `irate(istio_requests_total{destination_service=~"svc",response_code!~"5.*"}[1m])`
	total := `irate(istio_requests_total{destination_service=~"svc"}[1m])`
	wantServing := ScopeQueries{
		Value: `(sum by (dest) (` + good + `) or 0 * sum by (dest) (` + total + `)) / sum by (dest) (` + total + `)`,
		Count: `sum by (dest) (increase(istio_requests_total{destination_service=~"svc"}[1m]))`,
	}
	if q.Serving != wantServing {
		t.Errorf("serving = %+v\nwant      %+v", q.Serving, wantServing)
	}
	if !strings.Contains(q.Reporting.Value, "by (prom_cluster)") || strings.Contains(q.Global.Value, "by (") {
		t.Errorf("reporting %q / global %q grouped wrongly", q.Reporting.Value, q.Global.Value)
	}
	m.Ratio.Func = ""
	if q, err := m.Expand(map[string]string{"service": "svc", "window": "1m"}); err != nil || !strings.Contains(q.Global.Value, "(rate(") {
		t.Errorf("default function: %v, %q; want rate", err, q.Global.Value)
	}
}

func TestMetricValidate(t *testing.T) {
	t.Parallel()
	ratio := func() *Ratio { return &Ratio{Good: `x{ok="1"}`, Total: `x`, Window: "40s"} }
	tests := []struct {
		name    string
		mutate  func(*Metric)
		args    map[string]string
		wantErr string
	}{
		{name: "guide metric is valid", mutate: func(*Metric) {}},
		{name: "ratio form is valid", mutate: func(m *Metric) { m.Query, m.CountQuery, m.Ratio = "", "", ratio() }},
		{name: "unknown argument", mutate: func(*Metric) {}, args: map[string]string{"namespace": "x"}, wantErr: "failed to resolve {{args.service}}"},
		{name: "no name", mutate: func(m *Metric) { m.Name = " " }, wantErr: "no name"},
		{name: "neither form", mutate: func(m *Metric) { m.Query, m.CountQuery = "", "" }, wantErr: "give a query template or a ratio"},
		{name: "both forms", mutate: func(m *Metric) { m.Ratio = ratio() }, wantErr: "not both"},
		{name: "query without scope", mutate: func(m *Metric) { m.Query = "sum(x) / sum(y)" }, wantErr: "query template has no {{scope}}"},
		{name: "count query without scope", mutate: func(m *Metric) { m.CountQuery = "sum(x)" }, wantErr: "count query template has no {{scope}}"},
		{name: "minimum count without count query", mutate: func(m *Metric) { m.CountQuery = "" }, wantErr: "needs a count query"},
		{name: "unbalanced after substitution", mutate: func(m *Metric) { m.Query = "sum {{scope}} (x{a=\"{{args.service}}\"}" }, wantErr: "global query: 1:60: parse error: unclosed left parenthesis"},
		{name: "balanced but not PromQL", mutate: func(m *Metric) { m.Query = "sum {{scope}} (rate(x))" }, wantErr: `serving query: 1:36: parse error: expected type range vector in call to function "rate"`},
		{name: "invalid count query", mutate: func(m *Metric) { m.CountQuery = "sum {{scope}} (increase(x[1m])) by" }, wantErr: "reporting count query: 1:"},
		{name: "an argument with a quote", mutate: func(*Metric) {}, args: map[string]string{"service": `a"b`}, wantErr: `global query: 1:`},
		{name: "an argument that is not PromQL", mutate: func(*Metric) {}, args: map[string]string{"service": `a\q`}, wantErr: "global query: 1:"},
		{name: "ratio selector that is a call", mutate: func(m *Metric) { m.Query, m.CountQuery, m.Ratio = "", "", ratio(); m.Ratio.Good = `sum(x)` }, wantErr: `ratio good selector: "sum(x)" is not a plain series selector`},
		{name: "ratio selector that smuggles an operator", mutate: func(m *Metric) {
			m.Query, m.CountQuery, m.Ratio = "", "", ratio()
			m.Ratio.Good = `x[1m]) or vector(1) or rate(y`
		}, wantErr: "ratio good selector: 1:"},
		{name: "ratio selector with an offset", mutate: func(m *Metric) { m.Query, m.CountQuery, m.Ratio = "", "", ratio(); m.Ratio.Total = `x offset 1m` }, wantErr: "ratio total selector: \"x offset 1m\" is not a plain"},
		{name: "ratio selector from an argument", mutate: func(m *Metric) {
			m.Query, m.CountQuery, m.Ratio = "", "", ratio()
			m.Ratio.Total = `x{a="{{args.service}}"}`
		}},
		{name: "ratio with a broken selector", mutate: func(m *Metric) { m.Query, m.CountQuery, m.Ratio = "", "", ratio(); m.Ratio.Good = `x{ok=1}` }, wantErr: `unexpected character inside braces: '1'`},
		{name: "bad operator", mutate: func(m *Metric) { m.Threshold.Op = "==" }, wantErr: "threshold operator"},
		{name: "a ratio above 1", mutate: func(m *Metric) {
			m.Query, m.CountQuery, m.Ratio = "", "", ratio()
			m.Threshold = Threshold{Op: OpGreater, Value: 1}
		}, wantErr: `threshold "> 1" can never be met by a ratio (0 to 1)`},
		{name: "a ratio below 0", mutate: func(m *Metric) {
			m.Query, m.CountQuery, m.Ratio = "", "", ratio()
			m.Threshold = Threshold{Op: OpLess, Value: 0}
		}, wantErr: `can never be met`},
		{name: "a ratio of at least 1 is meetable", mutate: func(m *Metric) {
			m.Query, m.CountQuery, m.Ratio = "", "", ratio()
			m.Threshold = Threshold{Op: OpGreaterEqual, Value: 1}
		}},
		{name: "negative minimum", mutate: func(m *Metric) { m.MinCount = -1 }, wantErr: "non-negative"},
		{name: "bad label", mutate: func(m *Metric) { m.ServingLabel = "destination-cluster" }, wantErr: "not a label name"},
		{name: "same labels", mutate: func(m *Metric) { m.ServingLabel = "cluster" }, wantErr: "both \"cluster\""},
		{name: "ratio bad window", mutate: func(m *Metric) { m.Query, m.CountQuery, m.Ratio = "", "", ratio(); m.Ratio.Window = "40" }, wantErr: "not a duration"},
		{name: "ratio bad function", mutate: func(m *Metric) { m.Query, m.CountQuery, m.Ratio = "", "", ratio(); m.Ratio.Func = "increase" }, wantErr: "want rate or irate"},
		{name: "ratio empty selector", mutate: func(m *Metric) { m.Query, m.CountQuery, m.Ratio = "", "", ratio(); m.Ratio.Good = "" }, wantErr: "good selector is empty"},
		{name: "ratio selector with scope", mutate: func(m *Metric) {
			m.Query, m.CountQuery, m.Ratio = "", "", ratio()
			m.Ratio.Total = "sum {{ scope }} (x)"
		}, wantErr: "must not use {{scope}}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := guideMetric()
			tc.mutate(&m)
			args := tc.args
			if args == nil {
				args = guideArgs
			}
			err := m.Validate(args)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestThreshold(t *testing.T) {
	t.Parallel()
	parse := map[string]Threshold{
		"> 0.9":            {OpGreater, 0.9},
		">=0.95":           {OpGreaterEqual, 0.95},
		"result[0] > 0.90": {OpGreater, 0.90},
		"result <= 5":      {OpLessEqual, 5},
		"  < 1e-3 ":        {OpLess, 0.001},
		"result[0]>=0.5":   {OpGreaterEqual, 0.5},
	}
	for in, want := range parse {
		got, err := ParseThreshold(in)
		if err != nil || got != want {
			t.Errorf("ParseThreshold(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0.9", "== 1", "> abc", "> NaN", "> +Inf", "result[0] > 0.9 && result[1] > 0.9", "len(result) > 0"} {
		if got, err := ParseThreshold(in); err == nil {
			t.Errorf("ParseThreshold(%q) = %v, want an error", in, got)
		}
	}

	met := []struct {
		th   Threshold
		v    float64
		want bool
	}{
		{Threshold{OpGreater, 0.9}, 0.9, false},
		{Threshold{OpGreater, 0.9}, 0.91, true},
		{Threshold{OpGreaterEqual, 0.9}, 0.9, true},
		{Threshold{OpGreaterEqual, 0.9}, 0.89, false},
		{Threshold{OpLess, 0.1}, 0.1, false},
		{Threshold{OpLess, 0.1}, 0.05, true},
		{Threshold{OpLessEqual, 0.1}, 0.1, true},
		{Threshold{OpLessEqual, 0.1}, 0.2, false},
		{Threshold{"=", 0.1}, 0.1, false},
	}
	for _, c := range met {
		if got := c.th.Met(c.v); got != c.want {
			t.Errorf("%v Met(%v) = %t, want %t", c.th, c.v, got, c.want)
		}
	}
}
