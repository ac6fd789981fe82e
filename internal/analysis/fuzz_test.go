package analysis

import (
	"strings"
	"testing"
	"time"

	"lockstep.dev/lockstep/internal/judge"
)

// The seeds are real inputs: the guide's AnalysisTemplate query, the
// FleetRollout's ratio and judge matchers, the thresholds people write.
// `make fuzz` runs each target for a while; plain `go test` runs the seeds.

// guideTemplate is the AnalysisTemplate query of the guide (gitops/), with
// its line breaks.
const guideTemplate = "sum(irate(istio_requests_total{\n  reporter=\"source\",\n  destination_service=~\"{{args.service}}.{{args.namespace}}.svc.cluster.local\",\n  response_code!~\"5.*\"}[40s])\n)\n/\nsum(irate(istio_requests_total{\n  reporter=\"source\",\n  destination_service=~\"{{args.service}}.{{args.namespace}}.svc.cluster.local\"}[40s])\n)\n"

// assertOneLine fails t if err's message spans lines.
func assertOneLine(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil && strings.ContainsAny(err.Error(), "\n\r") {
		t.Fatalf("%s: error spans lines: %q", what, err)
	}
}

func FuzzResolveArgs(f *testing.F) {
	f.Add(guideTemplate, "service", "helloworld-canary")
	f.Add(guideValue, "service", service)
	f.Add(`x{a="{{ args.service }}"}`, "service", "a")
	f.Add(`{{args.a}}`, "a", "{{args.a}}")
	f.Add(`{{args.a}}{`, "a", "{")
	f.Add(`sum {{scope}} (x)`, "scope", "by (x)")
	f.Add(`x{a="{{args.service"}`, "service", "")
	f.Add("{{args.\nx}}", "x", "")
	f.Add("40s", "window", "40s")
	f.Fuzz(func(t *testing.T, tmpl, name, value string) {
		got, err := ResolveArgs(tmpl, map[string]string{name: value})
		assertOneLine(t, "ResolveArgs", err)
		if err != nil {
			return
		}
		if !strings.Contains(tmpl, openTag) && got != tmpl {
			t.Fatalf("ResolveArgs(%q) = %q, want the template unchanged: it has no tag", tmpl, got)
		}
		// Every "{{" of the template opened a tag that was replaced, and
		// values are not re-scanned: a "{{" in the result can only come
		// from a value. (A value with no "{" cannot make one either: a
		// template "{" before a tag would have opened the tag itself.)
		if !strings.Contains(value, "{") && strings.Contains(got, openTag) {
			t.Fatalf("ResolveArgs(%q, %s=%q) = %q: a tag is left", tmpl, name, value, got)
		}
	})
}

func FuzzCheckQuery(f *testing.F) {
	for _, q := range []string{
		`sum by (cluster) (irate(istio_requests_total{reporter="source",destination_service=~"svc",response_code!~"5.*"}[40s])) / sum by (cluster) (irate(istio_requests_total{reporter="source"}[40s]))`,
		`(sum (rate(g[1m])) or 0 * sum (rate(t[1m]))) / sum (rate(t[1m]))`,
		`label_replace(x{a="b",c="d"}, "lockstep_arm", "canary", "", "") or label_replace(x{a="b",c="e"}, "lockstep_arm", "stable", "", "")`,
		`histogram_quantile(0.9, sum by (le) (rate(istio_request_duration_milliseconds_bucket[1m])))`,
		strings.ReplaceAll(strings.ReplaceAll(guideTemplate, "{{args.service}}", "hw"), "{{args.namespace}}", "hw"),
		"sum(rate(x[5m])) by", "rate(x)", "foo bar", "sum(x", `x{a="b"`, "x{a=`raw` }", "sum(x) # (", "", " \n",
		"max_over_time(rate(x[1m])[5m:30s])", "x offset -5m @ start()", `{"utf8.name"}`, "1 + - 2 ^ 3 % 4",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		err := CheckQuery(q)
		assertOneLine(t, "CheckQuery", err)
		// CheckQuery is the parser plus a one-line message: it must refuse
		// exactly what the parser refuses, nothing it accepts.
		_, perr := promQLParser.ParseExpr(q)
		if (err == nil) != (perr == nil) {
			t.Fatalf("CheckQuery(%q) = %v, but the parser says %v", q, err, perr)
		}
	})
}

func FuzzParseThreshold(f *testing.F) {
	for _, s := range []string{"> 0.9", ">=0.95", "result[0] > 0.90", "result <= 5", "  < 1e-3 ", "result[0]>=0.5", "> -0", ">0x1p-2", "> 1_0", "> NaN", "== 1", "len(result) > 0", "result[0] > 0.9 && result[1] > 0.9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		th, err := ParseThreshold(s)
		assertOneLine(t, "ParseThreshold", err)
		if err != nil {
			return
		}
		if err := th.Validate(); err != nil {
			t.Fatalf("ParseThreshold(%q) = %v, which does not validate: %v", s, th, err)
		}
		for _, again := range []string{th.String(), "result[0] " + th.String(), "result" + th.String()} {
			back, err := ParseThreshold(again)
			if err != nil || back != th {
				t.Fatalf("ParseThreshold(%q) = %v; its String %q parses as %v, %v", s, th, again, back, err)
			}
		}
	})
}

// FuzzMetric expands fuzzed query templates, ratio selectors and argument
// values the way a FleetRollout's spec.analysis.metrics gives them.
func FuzzMetric(f *testing.F) {
	f.Add(guideValue, guideCount, "", "", "", service, "> 0.9")
	f.Add(`sum {{scope}} (rate(x[1m])`, "", "", "", "", "", ">= 0.5")
	f.Add(`sum {{scope}} (rate(x))`, "", "", "", "", "svc", "< 1")
	f.Add("", "", `istio_requests_total{destination_service=~"{{args.service}}",response_code!~"5.*"}`, `istio_requests_total{destination_service=~"{{args.service}}"}`, "40s", "svc", "> 0.9")
	f.Add("", "", `x[1m]) or vector(1) or rate(y`, `y`, "40s", "", "> 0.9")
	f.Add("", "", `sum(x)`, `x`, "1m30s", "", "> 0.9")
	f.Add("", "", `x{ok="1"}`, `x offset 1m`, "40s", "", "> 0.9")
	f.Add(`sum {{scope}} (x{a="{{args.service}}"})`, "", "", "", "", `a"} or vector(1) or x{b="`, "> 0.9")
	f.Fuzz(func(t *testing.T, query, count, good, total, window, arg, threshold string) {
		th, err := ParseThreshold(threshold)
		if err != nil {
			return
		}
		m := Metric{Name: "fuzz", Query: query, CountQuery: count, Threshold: th}
		if good != "" || total != "" || window != "" {
			m.Ratio = &Ratio{Good: good, Total: total, Window: window}
		}
		args := map[string]string{"service": arg}
		q, err := m.Expand(args)
		if err != nil {
			if !strings.HasPrefix(err.Error(), `metric "fuzz": `) {
				t.Fatalf("error %q does not name the metric", err)
			}
			return
		}
		for scope, sq := range map[Scope]ScopeQueries{ScopeGlobal: q.Global, ScopeReporting: q.Reporting, ScopeServing: q.Serving} {
			for _, text := range []string{sq.Value, sq.Count} {
				if text == "" && (sq.Value == "" || m.Ratio != nil) {
					t.Fatalf("%s: empty query in %+v", scope, sq)
				}
				if text == "" {
					continue
				}
				if err := CheckQuery(text); err != nil {
					t.Fatalf("%s query %q was expanded but does not parse: %v", scope, text, err)
				}
				// A tag left in would be sent to Prometheus as text.
				if !strings.Contains(arg, "{") && strings.Contains(text, openTag) {
					t.Fatalf("%s query %q still has a tag", scope, text)
				}
			}
		}
		// Each per-cluster scope groups by its own label.
		if !strings.Contains(q.Reporting.Value, "by ("+DefaultReportingLabel+")") || !strings.Contains(q.Serving.Value, "by ("+DefaultServingLabel+")") {
			t.Fatalf("per-cluster queries do not group by cluster: %+v", q)
		}
		if m.Ratio != nil {
			for _, sel := range []string{good, total} {
				if err := plainSelector(sel); err != nil {
					t.Fatalf("ratio selector %q was accepted but is not a plain selector: %v", sel, err)
				}
			}
		}
	})
}

// FuzzJudgeSpec validates fuzzed judge fields as a FleetRollout's
// spec.analysis.judge gives them (canary and stable matchers, the request
// counter and histogram selectors, the failure codes).
func FuzzJudgeSpec(f *testing.F) {
	f.Add(`destination_service="hw-canary.hw.svc.cluster.local"`, `destination_service="hw.hw.svc.cluster.local"`, "", DefaultJudgeHistogram, "", "svc")
	f.Add(`destination_service=~"{{args.service}}"`, `destination_service!~"{{args.service}}"`, `istio_requests_total{reporter="source",}`, "", "5..|429", "hw-canary.*")
	f.Add(`destination_service=canary`, `a="b"} or vector(1) or x{c="d"`, `istio_requests_total{reporter=source}`, `x_sum`, "5((", "")
	f.Add(`a="b"`, `a="c"`, `{__name__="istio_requests_total"}`, `{__name__="x_bucket"}`, "(\n", "a\"b")
	f.Fuzz(func(t *testing.T, canary, stable, requests, histogram, codes, arg string) {
		s := JudgeSpec{Canary: canary, Stable: stable, Requests: requests, Histogram: histogram, FailureCodes: codes, Config: judge.DefaultConfig(), ScrapeInterval: time.Second}
		q, err := s.expand(map[string]string{"service": arg})
		assertOneLine(t, "JudgeSpec.Validate", err)
		if err != nil {
			if !strings.HasPrefix(err.Error(), judgeField+".") {
				t.Fatalf("error %q does not start with a field", err)
			}
			return
		}
		families := []armSelectors{q.requests}
		if histogram != "" {
			families = append(families, q.histogram)
		}
		for _, a := range families {
			c, st := a.ranges(time.Minute)
			for _, query := range []string{c, st} {
				if err := CheckQuery(query); err != nil {
					t.Fatalf("judge query %q was accepted but does not parse: %v", query, err)
				}
			}
			if a.canary == a.stable {
				t.Fatalf("canary and stable select the same series: %q", a.canary)
			}
		}
		if codes == "" && !q.failure.MatchString("503") {
			t.Fatalf("the default failure codes do not match 503")
		}
	})
}
