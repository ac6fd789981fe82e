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
	ok := []string{
		`sum by (cluster) (rate(x{a=~"b{2}"}[1m]))`,
		`x{a="unbalanced ( in a string"}`,
		`x{a='single \' quoted )'}`,
		"x{a=`raw \\` }",
		"sum(x) # a comment with (",
	}
	for _, q := range ok {
		if err := CheckQuery(q); err != nil {
			t.Errorf("CheckQuery(%q) = %v, want nil", q, err)
		}
	}
	bad := map[string]string{
		"":                     "empty",
		"   ":                  "empty",
		"sum(x":                `unclosed '('`,
		"sum(x))":              `unbalanced ')'`,
		"x{a=\"b\"":            `unclosed '{'`,
		"rate(x[1m)]":          `unbalanced ')'`,
		`x{a="unterminated}`:   "unterminated string",
		"sum by (cluster] (x)": `unbalanced ']'`,
	}
	for q, want := range bad {
		if err := CheckQuery(q); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckQuery(%q) = %v, want an error containing %q", q, err, want)
		}
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
		{name: "unbalanced after substitution", mutate: func(m *Metric) { m.Query = "sum {{scope}} (x{a=\"{{args.service}}\"}" }, wantErr: "global query: unclosed '('"},
		{name: "bad operator", mutate: func(m *Metric) { m.Threshold.Op = "==" }, wantErr: "threshold operator"},
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
