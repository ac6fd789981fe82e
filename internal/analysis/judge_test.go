package analysis

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/judge"
)

// series is one raw counter: its value at the window's start (-1: born
// after it) and now, and how much it grew in the lookback before the start
// (an earlier canary still serving).
type series struct {
	labels          map[string]string
	start, now, pre float64
	// fn, when set, is the value at d from the start (negative before
	// it); NaN for no scrape.
	fn func(d time.Duration) float64
}

// testArm is the label the tests' series carry to say which version's
// query they answer; the judge never sees it in a selector.
const testArm = "test_arm"

// timeQuerier answers the judge's range queries with raw scrapes every
// 5 s (one of them at start) of series that grow evenly, and counts the
// queries.
type timeQuerier struct {
	mu            sync.Mutex
	start         time.Time
	requests      []series
	buckets       []series
	asked         int
	err           error
	histNoBuckets bool
	// ignoreMatchers answers with every series, as a backend that ignored
	// the reporting-cluster matcher would.
	ignoreMatchers bool
}

func (q *timeQuerier) QuerySamples(_ context.Context, promql string, ts time.Time) (model.Matrix, []string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.asked++
	if q.err != nil {
		return nil, nil, q.err
	}
	src := q.requests
	if strings.Contains(promql, "_bucket") {
		src = q.buckets
	}
	arm := "stable"
	if strings.Contains(promql, "canary") {
		arm = "canary"
	}
	open := strings.LastIndex(promql, "[")
	d, err := model.ParseDuration(strings.TrimSuffix(promql[open+1:], "]"))
	if err != nil {
		return nil, nil, err
	}
	from := ts.Add(-time.Duration(d))
	lookback := judgeSpec.Lookback()
	var out model.Matrix
	for _, s := range src {
		if s.labels[testArm] != arm {
			continue
		}
		m := model.Metric{}
		for k, val := range s.labels {
			m[model.LabelName(k)] = model.LabelValue(val)
		}
		ss := &model.SampleStream{Metric: m}
		if !q.ignoreMatchers && !q.members(promql, s.labels) {
			continue
		}
		for at := ts; !at.Before(from); at = at.Add(-5 * time.Second) {
			var v float64
			switch {
			case s.fn != nil:
				if v = s.fn(at.Sub(q.start)); math.IsNaN(v) {
					continue
				}
			case s.start < 0 && !at.After(q.start):
				continue
			case s.start < 0:
				v = s.now * float64(at.Sub(q.start)) / float64(ts.Sub(q.start))
			case !at.After(q.start):
				v = max(s.start-s.pre*float64(q.start.Sub(at))/float64(lookback), 0)
			default:
				v = s.start + (s.now-s.start)*float64(at.Sub(q.start))/float64(ts.Sub(q.start))
			}
			ss.Values = append([]model.SamplePair{{Timestamp: model.TimeFromUnixNano(at.UnixNano()), Value: model.SampleValue(math.Round(v))}}, ss.Values...)
		}
		if len(ss.Values) > 0 {
			out = append(out, ss)
		}
	}
	return out, nil, nil
}

// members applies the query's matchers on the reporting label, as Thanos
// would: the judge asks only for its members' clusters.
func (q *timeQuerier) members(promql string, labels map[string]string) bool {
	expr, err := promQLParser.ParseExpr(promql)
	if err != nil {
		return false
	}
	for _, m := range expr.(*parser.MatrixSelector).VectorSelector.(*parser.VectorSelector).LabelMatchers {
		if m.Name == "cluster" && !m.Matches(labels["cluster"]) {
			return false
		}
	}
	return true
}

func req(rep, srv, arm, code string, start, now float64) series {
	return series{labels: map[string]string{"__name__": "istio_requests_total", "cluster": rep, "destination_cluster": srv, testArm: arm, "response_code": code}, start: start, now: now}
}

var judgeSpec = JudgeSpec{
	Canary:         `destination_service="hw-canary.hw.svc.cluster.local"`,
	Stable:         `destination_service="hw.hw.svc.cluster.local"`,
	Config:         judge.DefaultConfig(),
	ScrapeInterval: 5 * time.Second,
}

func healthyRequests() []series {
	var out []series
	for _, rep := range []string{"data-producer-1", "data-producer-2"} {
		for _, srv := range []string{"argo-rollout1", "argo-rollout2"} {
			// A previous release's canary failed a lot before the start:
			// none of it may count.
			out = append(out,
				req(rep, srv, "canary", "200", 500, 700),
				series{labels: req(rep, srv, "canary", "503", 0, 0).labels, start: 400, now: 400, pre: 400},
				req(rep, srv, "stable", "200", 5000, 7000))
		}
	}
	return out
}

func TestEvaluateJudgeCountsOnlyThisCanary(t *testing.T) {
	start := evalTime.Add(-time.Minute)
	q := &timeQuerier{start: start, requests: healthyRequests()}
	spec := judgeSpec
	spec.Histogram = ""
	res := EvaluateJudge(context.Background(), q, spec, nil, members, JudgeWindow{Since: start}, evalTime)
	if res.Problem != "" {
		t.Fatal(res.Problem)
	}
	if got := res.Global.Evidence.Canary; got != (judge.Counts{Requests: 800, Failures: 0}) {
		t.Errorf("fleet canary counts %+v, want 800 requests, 0 failed (the earlier 400 failures are before the window)", got)
	}
	if res.Global.Verdict != decide.VerdictPass {
		t.Errorf("fleet: %s (%s)", res.Global.Verdict, res.Global.Message)
	}
	for _, m := range res.Members {
		if m.Verdict != decide.VerdictPass || m.Serving.Evidence.Canary.Requests != 400 || m.Reporting.Evidence.Stable.Requests != 4000 {
			t.Errorf("%s: %s, serving %+v reporting %+v", m.Name, m.Verdict, m.Serving.Evidence, m.Reporting.Evidence)
		}
	}
	if q.asked != 2 {
		t.Errorf("%d queries, want 2 without latency", q.asked)
	}
	if !res.Since.Equal(start) {
		t.Errorf("window opened at %s, want %s: an earlier canary failed in the lookback, so only increments after the start count", res.Since, start)
	}
	a := res.Analysis("rev")
	if a.Global.Verdict != decide.VerdictPass || a.Members["west"].Requests != 400 || a.Members["west"].Revision != "rev" {
		t.Errorf("decide's view: %+v %+v", a.Global, a.Members["west"])
	}
}

func TestEvaluateJudgeNamesTheBadCluster(t *testing.T) {
	start := evalTime.Add(-time.Minute)
	reqs := healthyRequests()
	// argo-rollout2's canary pods fail 40 of 100 requests, from either
	// cluster's clients.
	reqs = append(reqs, req("data-producer-1", "argo-rollout2", "canary", "500", 0, 40), req("data-producer-2", "argo-rollout2", "canary", "500", 0, 40))
	q := &timeQuerier{start: start, requests: reqs}
	spec := judgeSpec
	spec.Histogram = ""
	res := EvaluateJudge(context.Background(), q, spec, nil, members, JudgeWindow{Since: start}, evalTime)
	east, west := res.Members[0], res.Members[1]
	if west.Verdict != decide.VerdictFail || !strings.HasPrefix(west.Reason, string(ReasonServingFailed)) {
		t.Errorf("west: %s %s (%s)", west.Verdict, west.Reason, west.Message)
	}
	if east.Serving.Verdict != decide.VerdictPass {
		t.Errorf("east's own pods: %s (%s)", east.Serving.Verdict, east.Serving.Message)
	}
	if c := west.Serving.Evidence.Canary; c.Failures != 80 || c.Requests != 480 {
		t.Errorf("west canary counts %+v", c)
	}
}

func TestEvaluateJudgeLatency(t *testing.T) {
	start := evalTime.Add(-time.Minute)
	var buckets []series
	bucket := func(srv, arm, le string, now float64) series {
		return series{labels: map[string]string{"cluster": "data-producer-1", "destination_cluster": srv, testArm: arm, "le": le}, start: 0, now: now}
	}
	for _, srv := range []string{"argo-rollout1", "argo-rollout2"} {
		buckets = append(buckets, bucket(srv, "stable", "5", 900), bucket(srv, "stable", "250", 1000), bucket(srv, "stable", "+Inf", 1000))
	}
	// argo-rollout1's canary takes 200 ms more.
	buckets = append(buckets, bucket("argo-rollout1", "canary", "5", 0), bucket("argo-rollout1", "canary", "250", 400), bucket("argo-rollout1", "canary", "+Inf", 400))
	buckets = append(buckets, bucket("argo-rollout2", "canary", "5", 380), bucket("argo-rollout2", "canary", "250", 400), bucket("argo-rollout2", "canary", "+Inf", 400))
	q := &timeQuerier{start: start, requests: healthyRequests(), buckets: buckets}
	spec := judgeSpec
	spec.Histogram = DefaultJudgeHistogram
	res := EvaluateJudge(context.Background(), q, spec, nil, members, JudgeWindow{Since: start}, evalTime)
	if east := res.Members[0]; east.Verdict != decide.VerdictFail || !strings.Contains(east.Reason, judge.ReasonSlowerThanStable) {
		t.Errorf("east: %s %s (%s); latency %+v", east.Verdict, east.Reason, east.Message, east.Serving.Finding.Latency)
	}
	if west := res.Members[1]; west.Verdict != decide.VerdictPass {
		t.Errorf("west: %s (%s)", west.Verdict, west.Message)
	}
	if q.asked != 4 {
		t.Errorf("%d queries, want 4", q.asked)
	}
}

func TestEvaluateJudgeIncompleteOrBadData(t *testing.T) {
	start := evalTime.Add(-time.Minute)
	spec := judgeSpec
	spec.Histogram = ""
	t.Run("a member's Prometheus is missing", func(t *testing.T) {
		var reqs []series
		for _, s := range healthyRequests() {
			if s.labels["cluster"] == "data-producer-1" {
				reqs = append(reqs, s)
			}
		}
		res := EvaluateJudge(context.Background(), &timeQuerier{start: start, requests: reqs}, spec, nil, members, JudgeWindow{Since: start}, evalTime)
		if res.Global.Verdict != decide.VerdictInconclusive || res.Global.Reason != string(ReasonMemberMissing) {
			t.Errorf("fleet on partial data: %s %s (%s)", res.Global.Verdict, res.Global.Reason, res.Global.Message)
		}
		if w := res.Members[1]; w.Verdict == decide.VerdictPass {
			t.Errorf("west passed without its reporting side: %s", w.Message)
		}
	})
	t.Run("no series at all names the field", func(t *testing.T) {
		res := EvaluateJudge(context.Background(), &timeQuerier{start: start}, spec, nil, members, JudgeWindow{Since: start}, evalTime)
		if !strings.Contains(res.Problem, "spec.analysis.judge.requests") || res.Global.Verdict != decide.VerdictInconclusive {
			t.Errorf("problem %q verdict %s", res.Problem, res.Global.Verdict)
		}
	})
	t.Run("histogram without buckets names the field", func(t *testing.T) {
		s := spec
		s.Histogram = "istio_request_duration_milliseconds_bucket"
		q := &timeQuerier{start: start, requests: healthyRequests(), buckets: []series{{labels: map[string]string{"cluster": "x"}, now: 3}}}
		res := EvaluateJudge(context.Background(), q, s, nil, members, JudgeWindow{Since: start}, evalTime)
		if !strings.Contains(res.Problem, "spec.analysis.judge.latency.histogram") || res.Global.Verdict != decide.VerdictInconclusive {
			t.Errorf("problem %q verdict %s", res.Problem, res.Global.Verdict)
		}
	})
	t.Run("no canary traffic yet", func(t *testing.T) {
		q := &timeQuerier{start: start, requests: healthyRequests()}
		res := EvaluateJudge(context.Background(), q, spec, nil, members, JudgeWindow{}, evalTime)
		if res.Global.Reason != judge.ReasonNoCanaryRequests || q.asked != 0 {
			t.Errorf("%s after %d queries", res.Global.Reason, q.asked)
		}
	})
	t.Run("a query error is never a verdict", func(t *testing.T) {
		q := &timeQuerier{start: start, requests: healthyRequests(), err: context.DeadlineExceeded}
		res := EvaluateJudge(context.Background(), q, spec, nil, members, JudgeWindow{Since: start}, evalTime)
		if res.Global.Verdict != decide.VerdictInconclusive || res.Members[0].Verdict != decide.VerdictInconclusive {
			t.Errorf("%s / %s", res.Global.Verdict, res.Members[0].Verdict)
		}
	})
	t.Run("a member whose canary got no traffic is not passed", func(t *testing.T) {
		var reqs []series
		for _, s := range healthyRequests() {
			if s.labels["destination_cluster"] == "argo-rollout2" && s.labels[testArm] == "canary" {
				s.now = s.start
			}
			reqs = append(reqs, s)
		}
		res := EvaluateJudge(context.Background(), &timeQuerier{start: start, requests: reqs}, spec, nil, members, JudgeWindow{Since: start}, evalTime)
		if w := res.Members[1]; w.Verdict == decide.VerdictPass {
			t.Errorf("west passed with no canary requests: %s", w.Message)
		}
	})
}

func TestWithMatchers(t *testing.T) {
	more, _ := promQLParser.ParseMetricSelector(`{a="b"}`)
	for in, want := range map[string]string{
		`istio_requests_total{reporter="source"}`:   `istio_requests_total{a="b",reporter="source"}`,
		`istio_requests_total`:                      `istio_requests_total{a="b"}`,
		`istio_requests_total{}`:                    `istio_requests_total{a="b"}`,
		` istio_requests_total{reporter="source",}`: `istio_requests_total{a="b",reporter="source"}`,
	} {
		vs, err := seriesSelector(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := withMatchers(vs, more); got != want {
			t.Errorf("withMatchers(%q) = %q; want %q", in, got, want)
		}
	}
	// A regular expression (the parser's own check) is one selector; two
	// selectors joined by or, a function or an offset are not.
	for _, bad := range []string{`rate(x[1m])`, `sum(x)`, ``, `x{a="b"} or y{}`, `x offset 5m`, `x[5m]`} {
		if _, err := seriesSelector(bad); err == nil {
			t.Errorf("%q accepted as a selector", bad)
		}
	}
}

func TestJudgeSpecValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(*JudgeSpec)
		args    map[string]string
		wantErr string
	}{
		{name: "defaults with latency", mutate: func(s *JudgeSpec) { s.Histogram = DefaultJudgeHistogram }},
		{name: "matchers from arguments", mutate: func(s *JudgeSpec) { s.Canary = `destination_service=~"{{args.svc}}",version!="v1"` }, args: map[string]string{"svc": "hw-canary.*"}},
		{name: "a selector with a trailing comma", mutate: func(s *JudgeSpec) { s.Requests = `istio_requests_total{reporter="source",}` }},
		{name: "unquoted matcher value", mutate: func(s *JudgeSpec) { s.Canary = `destination_service=canary` },
			wantErr: `spec.analysis.judge.canary: label matchers {destination_service=canary}: 1:22: parse error: unexpected identifier "canary" in label matching, expected string`},
		{name: "matchers that leave the braces", mutate: func(s *JudgeSpec) { s.Stable = `a="b"} or vector(1) or x{c="d"` }, wantErr: "spec.analysis.judge.stable: label matchers"},
		{name: "an argument that breaks a matcher", mutate: func(s *JudgeSpec) { s.Canary = `destination_service="{{args.svc}}"` }, args: map[string]string{"svc": `a"b`}, wantErr: "spec.analysis.judge.canary: label matchers"},
		{name: "the same matchers for both versions", mutate: func(s *JudgeSpec) { s.Stable = " " + s.Canary }, wantErr: "spec.analysis.judge.stable: the same label matchers as canary"},
		{name: "a line break in an unknown tag", mutate: func(s *JudgeSpec) { s.Canary = "a=\"{{args.\nx}}\"" }, wantErr: `spec.analysis.judge.canary: failed to resolve {{args.\nx}}`},
		{name: "bad matcher in the counter selector", mutate: func(s *JudgeSpec) { s.Requests = `istio_requests_total{reporter=source}` }, wantErr: `spec.analysis.judge.requests: "istio_requests_total{reporter=source}": 1:31: parse error`},
		{name: "two selectors joined by or", mutate: func(s *JudgeSpec) { s.Requests = `x{a="b"} or y{}` }, wantErr: "spec.analysis.judge.requests: \"x{a=\\\"b\\\"} or y{}\" is not a single series selector"},
		{name: "histogram selector with an unknown operator", mutate: func(s *JudgeSpec) {
			s.Histogram = `istio_request_duration_milliseconds_bucket{reporter=="source"}`
		}, wantErr: `spec.analysis.judge.latency.histogram: "istio_request_duration_milliseconds_bucket{reporter==\"source\"}": 1:53: parse error`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := judgeSpec
			tc.mutate(&s)
			err := s.Validate(tc.args)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %q, want one line", err)
			}
		})
	}
}

// TestJudgeQueriesParse checks the queries the judge sends, for both
// series families, with the matchers the coordinator defaults to.
func TestJudgeQueriesParse(t *testing.T) {
	t.Parallel()
	s := judgeSpec
	s.Histogram = DefaultJudgeHistogram
	q, err := s.expand(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []armSelectors{q.requests, q.histogram} {
		c, st := a.ranges(90 * time.Second)
		for _, query := range []string{c, st} {
			if err := CheckQuery(query); err != nil {
				t.Errorf("%s: %v", query, err)
			}
		}
	}
}

// TestEvaluateJudgeQueriesDoNotGrowWithMembers: one evaluation asks Thanos
// the same number of queries for 2 members as for 50 (by-cluster series in
// one answer), so a fleet's analysis costs no more per member.
func TestEvaluateJudgeQueriesDoNotGrowWithMembers(t *testing.T) {
	start := evalTime.Add(-time.Minute)
	asked := map[int]int{}
	for _, n := range []int{2, 50} {
		var ms []Member
		var reqs, buckets []series
		for i := 1; i <= n; i++ {
			rep, srv := fmt.Sprintf("data-producer-%d", i), fmt.Sprintf("argo-rollout%d", i)
			ms = append(ms, Member{Name: srv, Reporting: rep, Serving: srv})
			reqs = append(reqs, req(rep, srv, "canary", "200", 0, 100), req(rep, srv, "stable", "200", 0, 900))
			for _, le := range []string{"5", "+Inf"} {
				buckets = append(buckets,
					series{labels: map[string]string{"cluster": rep, "destination_cluster": srv, testArm: "canary", "le": le}, start: 0, now: 100},
					series{labels: map[string]string{"cluster": rep, "destination_cluster": srv, testArm: "stable", "le": le}, start: 0, now: 900})
			}
		}
		q := &timeQuerier{start: start, requests: reqs, buckets: buckets}
		spec := judgeSpec
		spec.Histogram = DefaultJudgeHistogram
		res := EvaluateJudge(context.Background(), q, spec, nil, ms, JudgeWindow{Since: start}, evalTime)
		if res.Problem != "" || len(res.Members) != n {
			t.Fatalf("%d members: problem %q, %d member results", n, res.Problem, len(res.Members))
		}
		asked[n] = q.asked
	}
	if asked[2] != asked[50] || asked[2] != 4 {
		t.Errorf("queries per evaluation: %v, want 4 whatever the number of members", asked)
	}
}

// TestEvaluateJudgeForeignClusterChangesNothing: a staging fleet reporting
// the same service into the same Thanos, failing every request, changes no
// verdict and no count: the queries ask only for the members' clusters,
// and a stray series is kept out all the same.
func TestEvaluateJudgeForeignClusterChangesNothing(t *testing.T) {
	start := evalTime.Add(-time.Minute)
	spec := judgeSpec
	spec.Histogram = ""
	base := EvaluateJudge(context.Background(), &timeQuerier{start: start, requests: healthyRequests()}, spec, nil, members, JudgeWindow{Since: start}, evalTime)
	reqs := append(healthyRequests(), req("staging-1", "argo-rollout1", "canary", "503", -1, 900), req("staging-1", "staging-1", "canary", "503", -1, 900))
	q := &timeQuerier{start: start, requests: reqs}
	res := EvaluateJudge(context.Background(), q, spec, nil, members, JudgeWindow{Since: start}, evalTime)
	if res.Global.Verdict != base.Global.Verdict || res.Global.Evidence.Canary != base.Global.Evidence.Canary {
		t.Errorf("fleet with a foreign cluster: %s %+v, without: %s %+v", res.Global.Verdict, res.Global.Evidence.Canary, base.Global.Verdict, base.Global.Evidence.Canary)
	}
	for i := range res.Members {
		if res.Members[i].Verdict != base.Members[i].Verdict {
			t.Errorf("%s: %s with a foreign cluster, %s without", res.Members[i].Name, res.Members[i].Verdict, base.Members[i].Verdict)
		}
	}
	if !strings.Contains(res.Queries[0], `cluster=~"data-producer-1|data-producer-2"`) {
		t.Errorf("query %s is not restricted to the members", res.Queries[0])
	}
	// Even if the backend ignored the matcher, the tally keeps a
	// non-member out of the fleet's counts.
	q = &timeQuerier{start: start, requests: reqs, ignoreMatchers: true}
	res = EvaluateJudge(context.Background(), q, spec, nil, members, JudgeWindow{Since: start}, evalTime)
	if res.Global.Evidence.Canary != base.Global.Evidence.Canary {
		t.Errorf("a stray series fed the fleet: %+v, want %+v", res.Global.Evidence.Canary, base.Global.Evidence.Canary)
	}
}

// TestEvaluateJudgeFirstScrapeCounts: when no earlier canary served in the
// lookback, the window opens at the scrape before the canary's first
// traffic, so the first scrape after it already carries evidence: a canary
// failing 20 of its first 20 requests fails at that scrape.
func TestEvaluateJudgeFirstScrapeCounts(t *testing.T) {
	start := evalTime.Add(-time.Minute)
	spec := judgeSpec
	spec.Histogram = ""
	var reqs []series
	for _, rep := range []string{"data-producer-1", "data-producer-2"} {
		for _, srv := range []string{"argo-rollout1", "argo-rollout2"} {
			// An old canary version's series that stopped growing long ago.
			reqs = append(reqs, req(rep, srv, "canary", "200", 500, 500))
			// The stable serves 18 requests a second, throughout.
			st := req(rep, srv, "stable", "200", 0, 0)
			st.fn = func(d time.Duration) float64 { return 5000 + 18*d.Seconds() }
			reqs = append(reqs, st)
			// The new canary's failures: they began a moment before the
			// coordinator saw the weight (start), and are scraped at
			// start and 5 s later.
			s := req(rep, srv, "canary", "503", 0, 0)
			s.fn = func(d time.Duration) float64 {
				switch {
				case d < -3*time.Second:
					return math.NaN()
				case d <= 0:
					return 4
				}
				return 10
			}
			reqs = append(reqs, s)
		}
	}
	now := start.Add(5 * time.Second)
	// The fleet sat at the leading pause (weight 0) for 30 s before.
	win := JudgeWindow{Since: start, QuietSince: start.Add(-30 * time.Second)}
	res := EvaluateJudge(context.Background(), &timeQuerier{start: start, requests: reqs}, spec, nil, members, win, now)
	if !res.Since.Before(start) {
		t.Errorf("window opened at %s, want before the start %s (no earlier canary in the lookback)", res.Since, start)
	}
	if c := res.Global.Evidence.Canary; c.Failures != 40 {
		t.Errorf("fleet canary %+v, want all 40 failures of the first scrapes", c)
	}
	if res.Global.Verdict != decide.VerdictFail {
		t.Errorf("fleet: %s (%s), want a failure at the first scrape", res.Global.Verdict, res.Global.Message)
	}
	// Without the quiet stretch, an earlier canary may have served just
	// before: a series born in the first scrape interval is no evidence,
	// and only increments from the start count.
	res = EvaluateJudge(context.Background(), &timeQuerier{start: start, requests: reqs}, spec, nil, members, JudgeWindow{Since: start}, now)
	if c := res.Global.Evidence.Canary; c.Failures != 24 {
		t.Errorf("not quiet: fleet canary %+v, want only the 24 failures after the start", c)
	}
}

// TestEvaluateJudgeEarlierCanaryNotCounted is the fleet test's case: a bad
// release aborted a moment before the next one started had failures whose
// series were first scraped after the new canary's first traffic. They
// are not the new canary's: unless the fleet was quiet for a scrape
// interval before, a series born that early is a baseline, not evidence.
func TestEvaluateJudgeEarlierCanaryNotCounted(t *testing.T) {
	start := evalTime.Add(-time.Minute)
	spec := judgeSpec
	spec.Histogram = ""
	reqs := healthyRequests()
	for _, rep := range []string{"data-producer-1", "data-producer-2"} {
		old := req(rep, "argo-rollout1", "canary", "503", 0, 0)
		// Failed 20 requests just before the start, then nothing; first
		// scraped at the start.
		old.fn = func(d time.Duration) float64 {
			if d < 0 {
				return math.NaN()
			}
			return 20
		}
		reqs = append(reqs, old)
	}
	for _, win := range []JudgeWindow{{Since: start}, {Since: start, QuietSince: start.Add(-2 * time.Second)}} {
		res := EvaluateJudge(context.Background(), &timeQuerier{start: start, requests: reqs}, spec, nil, members, win, evalTime)
		if c := res.Global.Evidence.Canary; c.Failures != 0 {
			t.Errorf("%+v: the earlier canary's failures counted: %+v", win, c)
		}
		if res.Global.Verdict == decide.VerdictFail {
			t.Errorf("%+v: the good canary failed on the earlier one's evidence: %s", win, res.Global.Message)
		}
	}
}

// TestEvaluateJudgeCrashLoopingCanary: a canary pod that restarts between
// scrapes, each time failing a few requests before the crash, is counted
// at every scrape; two readings (start and now) would have seen 3
// failures.
func TestEvaluateJudgeCrashLoopingCanary(t *testing.T) {
	start := evalTime.Add(-time.Minute)
	spec := judgeSpec
	spec.Histogram = ""
	reqs := healthyRequests()
	for _, rep := range []string{"data-producer-1", "data-producer-2"} {
		s := req(rep, "argo-rollout1", "canary", "503", 0, 0)
		// Restarted between scrapes, it reads 2, 3, 2, 3...: a reset
		// wherever it went down.
		s.fn = func(d time.Duration) float64 {
			if d <= 0 {
				return math.NaN()
			}
			if int(d/(5*time.Second))%2 == 0 {
				return 2
			}
			return 3
		}
		reqs = append(reqs, s)
	}
	res := EvaluateJudge(context.Background(), &timeQuerier{start: start, requests: reqs}, spec, nil, members, JudgeWindow{Since: start}, evalTime)
	east := res.Members[0]
	// 12 scrapes after the start: 3 (born), then 2, 3, 2, ...: a reset at
	// every 2 (counted 2) and growth of 1 at every 3.
	if c := east.Serving.Evidence.Canary; c.Failures < 2*18 {
		t.Errorf("crash-looping canary counted %+v failures from both reporters, want every scrape's (>= 36)", c)
	}
	if east.Verdict != decide.VerdictFail {
		t.Errorf("east: %s (%s)", east.Verdict, east.Message)
	}
}
