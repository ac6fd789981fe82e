package analysis

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"lockstep.dev/lockstep/internal/decide"
)

var (
	evalTime = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	members  = []Member{
		{Name: "east", Reporting: "data-producer-1", Serving: "argo-rollout1"},
		{Name: "west", Reporting: "data-producer-2", Serving: "argo-rollout2"},
	}
)

// answer is a canned reply for one query.
type answer struct {
	vec      model.Vector
	warnings []string
	err      error
}

// fakeQuerier answers by scope and kind (value or count), recognised from
// the expanded guide queries, and records what it was asked.
type fakeQuerier struct {
	mu      sync.Mutex
	answers map[string]answer // key: "<scope>/<value|count>"
	asked   []string
	times   []time.Time
}

func queryKey(promql string) string {
	scope := string(ScopeGlobal)
	switch {
	case strings.Contains(promql, "by (cluster)"):
		scope = string(ScopeReporting)
	case strings.Contains(promql, "by (destination_cluster)"):
		scope = string(ScopeServing)
	}
	if strings.Contains(promql, "increase(") {
		return scope + "/count"
	}
	return scope + "/value"
}

func (f *fakeQuerier) Query(_ context.Context, promql string, ts time.Time) (model.Vector, []string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, promql)
	f.times = append(f.times, ts)
	a, ok := f.answers[queryKey(promql)]
	if !ok {
		return nil, nil, errors.New("fake: no answer for " + queryKey(promql))
	}
	return a.vec, a.warnings, a.err
}

func sample(label, value string, v float64) *model.Sample {
	m := model.Metric{}
	if label != "" {
		m[model.LabelName(label)] = model.LabelValue(value)
	}
	return &model.Sample{Metric: m, Value: model.SampleValue(v), Timestamp: model.TimeFromUnix(evalTime.Unix())}
}

func global(v float64) answer { return answer{vec: model.Vector{sample("", "", v)}} }

func reporting(v1, v2 float64) answer {
	return answer{vec: model.Vector{sample("cluster", "data-producer-1", v1), sample("cluster", "data-producer-2", v2)}}
}

func serving(v1, v2 float64) answer {
	return answer{vec: model.Vector{sample("destination_cluster", "argo-rollout1", v1), sample("destination_cluster", "argo-rollout2", v2)}}
}

// healthy is a fleet where everything passes with plenty of traffic.
func healthy() map[string]answer {
	return map[string]answer{
		"global/value":    global(0.99),
		"global/count":    global(2000),
		"reporting/value": reporting(0.99, 0.98),
		"reporting/count": reporting(1000, 1000),
		"serving/value":   serving(0.99, 0.97),
		"serving/count":   serving(1100, 900),
	}
}

type want struct {
	global           decide.Verdict
	globalReason     Reason
	east, west       decide.Verdict
	eastReason       Reason
	westReason       Reason
	culprits         []string
	messageSubstring string // in east's message
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	pass, fail, inconc := decide.VerdictPass, decide.VerdictFail, decide.VerdictInconclusive
	tests := []struct {
		name   string
		metric func() Metric
		args   map[string]string
		edit   func(map[string]answer)
		want   want
	}{
		{
			name: "everything passes",
			edit: func(map[string]answer) {},
			want: want{global: pass, globalReason: ReasonThresholdMet, east: pass, west: pass, eastReason: ReasonThresholdMet, westReason: ReasonThresholdMet},
		},
		{
			name: "bad canary in east lowers every gateway: only east is the culprit",
			edit: func(a map[string]answer) {
				a["global/value"] = global(0.75)
				a["reporting/value"] = reporting(0.74, 0.76)
				a["serving/value"] = serving(0.5, 0.99)
			},
			want: want{global: fail, globalReason: ReasonThresholdNotMet, east: fail, west: fail,
				eastReason: ReasonServingFailed, westReason: ReasonReportingFailed, culprits: []string{"east"}},
		},
		{
			name: "bad canary diluted at the gateways still fails its serving cluster",
			edit: func(a map[string]answer) { a["serving/value"] = serving(0.85, 0.99) },
			want: want{global: pass, globalReason: ReasonThresholdMet, east: fail, west: pass,
				eastReason: ReasonServingFailed, westReason: ReasonThresholdMet, culprits: []string{"east"}, messageSubstring: "not 0.85 > 0.9"},
		},
		{
			name: "query error makes that scope inconclusive",
			edit: func(a map[string]answer) { a["reporting/value"] = answer{err: errors.New("store unavailable")} },
			want: want{global: pass, globalReason: ReasonThresholdMet, east: inconc, west: inconc,
				eastReason: ReasonQueryError, westReason: ReasonQueryError, messageSubstring: "store unavailable"},
		},
		{
			name: "a warning makes even a failing value inconclusive",
			edit: func(a map[string]answer) {
				a["global/value"] = answer{vec: model.Vector{sample("", "", 0.1)}, warnings: []string{"partial data"}}
			},
			want: want{global: inconc, globalReason: ReasonQueryWarning, east: pass, west: pass, eastReason: ReasonThresholdMet, westReason: ReasonThresholdMet},
		},
		{
			name: "empty global vector",
			edit: func(a map[string]answer) { a["global/value"] = answer{} },
			want: want{global: inconc, globalReason: ReasonEmptyResult, east: pass, west: pass, eastReason: ReasonThresholdMet, westReason: ReasonThresholdMet},
		},
		{
			name: "two series where the global scope expects one",
			edit: func(a map[string]answer) { a["global/value"] = reporting(0.99, 0.99) },
			want: want{global: inconc, globalReason: ReasonAmbiguousResult, east: pass, west: pass, eastReason: ReasonThresholdMet, westReason: ReasonThresholdMet},
		},
		{
			name: "NaN (no traffic: 0/0) is inconclusive",
			edit: func(a map[string]answer) { a["serving/value"] = serving(math.NaN(), 0.99) },
			want: want{global: pass, globalReason: ReasonThresholdMet, east: inconc, west: pass, eastReason: ReasonNotANumber, westReason: ReasonThresholdMet},
		},
		{
			name: "+Inf is inconclusive, not a pass of > 0.9",
			edit: func(a map[string]answer) { a["global/value"] = global(math.Inf(1)) },
			want: want{global: inconc, globalReason: ReasonNotANumber, east: pass, west: pass, eastReason: ReasonThresholdMet, westReason: ReasonThresholdMet},
		},
		{
			name: "member missing from the serving vector",
			edit: func(a map[string]answer) {
				a["serving/value"] = answer{vec: model.Vector{sample("destination_cluster", "argo-rollout1", 0.99)}}
			},
			want: want{global: pass, globalReason: ReasonThresholdMet, east: pass, west: inconc, eastReason: ReasonThresholdMet, westReason: ReasonMemberMissing},
		},
		{
			name: "member missing from the reporting vector (its Prometheus is not in Thanos)",
			edit: func(a map[string]answer) {
				a["reporting/value"] = answer{vec: model.Vector{sample("cluster", "data-producer-1", 0.99)}}
			},
			want: want{global: pass, globalReason: ReasonThresholdMet, east: pass, west: inconc, eastReason: ReasonThresholdMet, westReason: ReasonMemberMissing},
		},
		{
			name: "duplicate series for a member",
			edit: func(a map[string]answer) {
				a["serving/value"] = answer{vec: append(serving(0.99, 0.99).vec, sample("destination_cluster", "argo-rollout1", 0.2))}
			},
			want: want{global: pass, globalReason: ReasonThresholdMet, east: inconc, west: pass, eastReason: ReasonAmbiguousResult, westReason: ReasonThresholdMet},
		},
		{
			name: "too few requests",
			edit: func(a map[string]answer) { a["serving/count"] = serving(3, 900) },
			want: want{global: pass, globalReason: ReasonThresholdMet, east: inconc, west: pass, eastReason: ReasonTooFewRequests, westReason: ReasonThresholdMet, messageSubstring: "3 requests, need 10"},
		},
		{
			name: "too few requests outranks a failing value",
			edit: func(a map[string]answer) {
				a["serving/value"] = serving(0.1, 0.99)
				a["serving/count"] = serving(2, 900)
			},
			want: want{global: pass, globalReason: ReasonThresholdMet, east: inconc, west: pass, eastReason: ReasonTooFewRequests, westReason: ReasonThresholdMet},
		},
		{
			name: "count missing for a member",
			edit: func(a map[string]answer) {
				a["reporting/count"] = answer{vec: model.Vector{sample("cluster", "data-producer-2", 1000)}}
			},
			want: want{global: pass, globalReason: ReasonThresholdMet, east: inconc, west: pass, eastReason: ReasonMemberMissing, westReason: ReasonThresholdMet, messageSubstring: "request count"},
		},
		{
			name: "histogram sample",
			edit: func(a map[string]answer) {
				s := sample("", "", 0)
				s.Histogram = &model.SampleHistogram{Count: 1}
				a["global/value"] = answer{vec: model.Vector{s}}
			},
			want: want{global: inconc, globalReason: ReasonNotANumber, east: pass, west: pass, eastReason: ReasonThresholdMet, westReason: ReasonThresholdMet},
		},
		{
			name: "unknown argument: nothing is queried and nothing passes",
			args: map[string]string{"namespace": "helloworld"},
			edit: func(map[string]answer) {},
			want: want{global: inconc, globalReason: ReasonInvalidMetric, east: inconc, west: inconc, eastReason: ReasonInvalidMetric, westReason: ReasonInvalidMetric, messageSubstring: "failed to resolve {{args.service}}"},
		},
		{
			name:   "no minimum count: counts are optional",
			metric: func() Metric { m := guideMetric(); m.MinCount, m.CountQuery = 0, ""; return m },
			edit:   func(a map[string]answer) { a["serving/count"] = answer{err: errors.New("must not be asked")} },
			want:   want{global: pass, globalReason: ReasonThresholdMet, east: pass, west: pass, eastReason: ReasonThresholdMet, westReason: ReasonThresholdMet},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			answers := healthy()
			tc.edit(answers)
			q := &fakeQuerier{answers: answers}
			m := guideMetric()
			if tc.metric != nil {
				m = tc.metric()
			}
			args := tc.args
			if args == nil {
				args = guideArgs
			}
			r := Evaluate(context.Background(), q, m, args, members, evalTime)

			if r.Global.Verdict != tc.want.global || r.Global.Reason != tc.want.globalReason {
				t.Errorf("global = %s/%s (%s), want %s/%s", r.Global.Verdict, r.Global.Reason, r.Global.Message, tc.want.global, tc.want.globalReason)
			}
			if len(r.Members) != 2 || r.Members[0].Name != "east" || r.Members[1].Name != "west" {
				t.Fatalf("members = %+v", r.Members)
			}
			east, west := r.Members[0], r.Members[1]
			if east.Verdict != tc.want.east || east.Reason != tc.want.eastReason {
				t.Errorf("east = %s/%s (%s), want %s/%s", east.Verdict, east.Reason, east.Message, tc.want.east, tc.want.eastReason)
			}
			if west.Verdict != tc.want.west || west.Reason != tc.want.westReason {
				t.Errorf("west = %s/%s (%s), want %s/%s", west.Verdict, west.Reason, west.Message, tc.want.west, tc.want.westReason)
			}
			if got := r.Culprits(); strings.Join(got, ",") != strings.Join(tc.want.culprits, ",") {
				t.Errorf("culprits = %v, want %v", got, tc.want.culprits)
			}
			if tc.want.messageSubstring != "" && !strings.Contains(east.Message, tc.want.messageSubstring) {
				t.Errorf("east message = %q, want it to contain %q", east.Message, tc.want.messageSubstring)
			}
			if tc.want.globalReason == ReasonInvalidMetric && len(q.asked) != 0 {
				t.Errorf("queried %v with an invalid metric", q.asked)
			}
			for _, ts := range q.times {
				if !ts.Equal(evalTime) {
					t.Errorf("query evaluated at %s, want %s", ts, evalTime)
				}
			}
			// The rule that matters most: no Pass without a value.
			for _, o := range []Outcome{r.Global, east.Reporting, east.Serving, west.Reporting, west.Serving} {
				if o.Verdict == decide.VerdictPass && !o.HasValue {
					t.Errorf("pass without a value: %+v", o)
				}
			}
		})
	}
}

func TestEvaluateInvalidMembers(t *testing.T) {
	t.Parallel()
	for name, ms := range map[string][]Member{
		"shared serving label": {members[0], {Name: "west", Reporting: "data-producer-2", Serving: "argo-rollout1"}},
		"duplicate name":       {members[0], {Name: "east", Reporting: "data-producer-2", Serving: "argo-rollout2"}},
		"missing label value":  {members[0], {Name: "west", Reporting: "data-producer-2"}},
	} {
		q := &fakeQuerier{answers: healthy()}
		r := Evaluate(context.Background(), q, guideMetric(), guideArgs, ms, evalTime)
		if r.Verdict() != decide.VerdictInconclusive || r.Global.Reason != ReasonInvalidMembers || len(q.asked) != 0 {
			t.Errorf("%s: verdict %s reason %s, %d queries; want inconclusive without querying", name, r.Verdict(), r.Global.Reason, len(q.asked))
		}
	}
}

func TestEvaluateRatioAgainstFake(t *testing.T) {
	t.Parallel()
	m := Metric{
		Name: "ratio",
		Ratio: &Ratio{
			Good:   `istio_requests_total{destination_service=~"{{args.service}}",response_code!~"5.*"}`,
			Total:  `istio_requests_total{destination_service=~"{{args.service}}"}`,
			Window: "40s",
		},
		Threshold: Threshold{Op: OpGreater, Value: 0.9},
		MinCount:  10,
	}
	q := &fakeQuerier{answers: healthy()}
	r := Evaluate(context.Background(), q, m, guideArgs, members, evalTime)
	if r.Verdict() != decide.VerdictPass {
		t.Fatalf("verdict = %s: %+v", r.Verdict(), r)
	}
	if len(q.asked) != 6 {
		t.Errorf("asked %d queries, want value and count for 3 scopes", len(q.asked))
	}
}

func TestResultAnalysis(t *testing.T) {
	t.Parallel()
	answers := healthy()
	answers["serving/value"] = serving(0.5, 0.99)
	r := Evaluate(context.Background(), &fakeQuerier{answers: answers}, guideMetric(), guideArgs, members, evalTime)
	a := r.Analysis("rev-1")

	if a.Global == nil || a.Global.Verdict != decide.VerdictPass || a.Global.Revision != "rev-1" ||
		!a.Global.EvaluatedAt.Equal(evalTime) || !a.Global.RequestsKnown || a.Global.Requests != 2000 {
		t.Errorf("global = %+v", a.Global)
	}
	east, ok := a.Members["east"]
	if !ok || east.Verdict != decide.VerdictFail || east.Reason != string(ReasonServingFailed) || !strings.HasPrefix(east.Message, "success-rate: ") {
		t.Errorf("east = %+v", east)
	}
	if west := a.Members["west"]; west.Verdict != decide.VerdictPass || west.Requests != 900 || !west.RequestsKnown {
		t.Errorf("west = %+v, want pass with the smaller side's 900 requests", west)
	}

	// The produced verdicts drive decide: a failing member aborts the fleet.
	d := decide.Decide(decide.Snapshot{
		Revision: "rev-1",
		Members: []decide.Member{
			{Name: "east", Reachable: true, Rollout: &decide.RolloutState{Revision: "rev-1", Phase: decide.PhasePaused}},
			{Name: "west", Reachable: true, Rollout: &decide.RolloutState{Revision: "rev-1", Phase: decide.PhasePaused}},
		},
		Analysis: a,
		Policy:   decide.Policy{UnreachableDeadline: time.Minute, InconclusiveLimit: time.Minute},
		// The canary has had traffic for a while: the verdicts count.
		Fleet: decide.FleetStatus{Revision: "rev-1", CanaryStartedAt: evalTime.Add(-time.Minute)},
	}, evalTime)
	if d.Action != decide.ActionAbort || d.Reason != decide.ReasonAnalysisFailed {
		t.Errorf("decision = %s/%s (%s), want abort on analysis failure", d.Action, d.Reason, d.Message)
	}
}
