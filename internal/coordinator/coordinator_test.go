package coordinator

import (
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/decide"
)

func TestFleetStatusRoundTrip(t *testing.T) {
	t.Parallel()
	two, three := int32(2), int32(3)
	// Microseconds survive the round trip (MicroTime); it must be exact for
	// decide to reach the same decision after a restart.
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	in := decide.FleetStatus{
		Revision: "abc", BarrierStep: &three, StepEnteredAt: at, InconclusiveSince: at.Add(time.Second),
		LastPromotedStep: &two, Aborted: true, AbortReason: decide.ReasonAnalysisFailed, AbortMessage: "bad",
		AbortedAt: at.Add(2 * time.Second), HandledRetryToken: "t1", RetriedAt: at.Add(-time.Hour),
		RetryPending: []string{"argo-rollout2"}, RevisionSeenAt: at.Add(-time.Minute), QuietSince: at.Add(-30 * time.Second),
		Approvals: []decide.ApprovalRecord{{Wave: "rest", Approver: "alice", Name: "go", At: at.Add(time.Minute)}},
		Wave:      2, WaveStartedAt: at.Add(3 * time.Second), WaveCompletedAt: at.Add(4 * time.Second), Failed: []string{"argo-rollout3"},
	}
	out := fleetFromStatus(fleetToStatus(in))
	for i := range out.Approvals {
		out.Approvals[i].At = out.Approvals[i].At.UTC()
	}
	for _, p := range []*time.Time{&out.StepEnteredAt, &out.InconclusiveSince, &out.AbortedAt, &out.RetriedAt, &out.RevisionSeenAt, &out.WaveStartedAt, &out.WaveCompletedAt} {
		*p = p.UTC()
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip changed the state:\n in  %+v\n out %+v", in, out)
	}
	if got := fleetFromStatus(fleetToStatus(decide.FleetStatus{})); !reflect.DeepEqual(got, decide.FleetStatus{}) {
		t.Errorf("zero state round trip = %+v", got)
	}
}

func obs(name string, reachable bool, rev, stable string) memberObservation {
	o := memberObservation{member: decide.Member{Name: name, Reachable: reachable}}
	if rev != "" || stable != "" {
		o.member.Rollout = &decide.RolloutState{Revision: rev, StableRevision: stable}
	}
	return o
}

func TestWantedRevision(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name      string
		obs       []memberObservation
		recorded  string
		supersede bool
		want      string
		wantErr   string
	}{
		{name: "nothing known", obs: []memberObservation{obs("a", true, "", "")}},
		{name: "nothing known keeps the record", obs: []memberObservation{obs("a", false, "", "")}, recorded: "r1", want: "r1"},
		{name: "all agree", obs: []memberObservation{obs("a", true, "r2", "r1"), obs("b", true, "r2", "r1")}, want: "r2"},
		{name: "one member updated first", obs: []memberObservation{obs("a", true, "r2", "r1"), obs("b", true, "r1", "r1")}, want: "r2"},
		{name: "unreachable member ignored", obs: []memberObservation{obs("a", true, "r2", "r1"), obs("b", false, "r3", "r1")}, want: "r2"},
		{name: "two new revisions, recorded wins when refusing", obs: []memberObservation{obs("a", true, "r2", "r1"), obs("b", true, "r3", "r1")}, recorded: "r3", want: "r3"},
		{name: "a hotfix beside the recorded canary supersedes it", obs: []memberObservation{obs("a", true, "r2", "r1"), obs("b", true, "r3", "r1")}, recorded: "r3", supersede: true, want: "r2"},
		{name: "three new revisions stay ambiguous", obs: []memberObservation{obs("a", true, "r2", "r1"), obs("b", true, "r3", "r1"), obs("c", true, "r4", "r1")}, recorded: "r3", supersede: true, want: "r3"},
		{name: "two new revisions, nothing recorded", obs: []memberObservation{obs("a", true, "r2", "r1"), obs("b", true, "r3", "r1")}, wantErr: "r2 on a; r3 on b"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := wantedRevision(c.obs, c.recorded, c.supersede)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("wantedRevision = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func TestAddHistory(t *testing.T) {
	t.Parallel()
	var st v1alpha1.FleetRolloutStatus
	now := time.Now()
	addHistory(&st, now, "Wait", "Progressing", decide.NoStep, "r", "a")
	addHistory(&st, now, "Wait", "Progressing", decide.NoStep, "r", "b (same decision, other words)")
	if len(st.History) != 1 {
		t.Fatalf("a repeated decision was recorded again: %d entries", len(st.History))
	}
	for i := range 3 * v1alpha1.MaxHistory {
		addHistory(&st, now, "Promote", "BarrierPassed", int32(i), "r", "promote")
	}
	if len(st.History) != v1alpha1.MaxHistory {
		t.Fatalf("history has %d entries, want %d", len(st.History), v1alpha1.MaxHistory)
	}
	if last := st.History[len(st.History)-1]; *last.Step != int32(3*v1alpha1.MaxHistory-1) {
		t.Errorf("newest entry is step %d", *last.Step)
	}
}

func TestPlanFromSpec(t *testing.T) {
	t.Parallel()
	good := v1alpha1.Metric{
		Name:      "success-rate",
		Ratio:     &v1alpha1.Ratio{Good: `istio_requests_total{response_code!~"5.*"}`, Total: `istio_requests_total`, Window: "{{args.window}}"},
		Threshold: v1alpha1.Threshold{Op: v1alpha1.OpGreater, Value: "0.9"},
	}
	for _, c := range []struct {
		name      string
		a         *v1alpha1.Analysis
		wantErr   string
		wantJudge bool
	}{
		{name: "no analysis"},
		{name: "ratio with args", a: &v1alpha1.Analysis{Args: []v1alpha1.Arg{{Name: "window", Value: "40s"}}, Metrics: []v1alpha1.Metric{good}}},
		{name: "missing arg", a: &v1alpha1.Analysis{Metrics: []v1alpha1.Metric{good}}, wantErr: "failed to resolve {{args.window}}"},
		{name: "bad PromQL", a: &v1alpha1.Analysis{Metrics: []v1alpha1.Metric{{
			Name: "m", Query: "sum {{scope}} (rate(x[1m])", Threshold: v1alpha1.Threshold{Op: ">", Value: "1"},
		}}}, wantErr: "unclosed"},
		{name: "no metrics: the judge with its defaults", a: &v1alpha1.Analysis{}, wantJudge: true},
		{name: "judge and metrics", a: &v1alpha1.Analysis{Args: []v1alpha1.Arg{{Name: "window", Value: "40s"}}, Metrics: []v1alpha1.Metric{good}, Judge: &v1alpha1.Judge{}}, wantJudge: true},
		{name: "impossible confidence", a: &v1alpha1.Analysis{Judge: &v1alpha1.Judge{FalseAbortRate: "1.5"}}, wantErr: "spec.analysis.judge.falseAbortRate"},
		{name: "zero confidence", a: &v1alpha1.Analysis{Judge: &v1alpha1.Judge{FalsePromoteRate: "0"}}, wantErr: "spec.analysis.judge.falsePromoteRate"},
		{name: "min effect above threshold", a: &v1alpha1.Analysis{Judge: &v1alpha1.Judge{MinEffect: "0.2"}}, wantErr: "spec.analysis.judge.minEffect"},
		{name: "histogram that is not one", a: &v1alpha1.Analysis{Judge: &v1alpha1.Judge{Latency: &v1alpha1.LatencyJudge{Histogram: "istio_request_duration_milliseconds_sum"}}}, wantErr: "spec.analysis.judge.latency.histogram"},
		{name: "unresolved arg in matchers", a: &v1alpha1.Analysis{Judge: &v1alpha1.Judge{Canary: `destination_service="{{args.svc}}"`}}, wantErr: "spec.analysis.judge.canary"},
		{name: "bad failure codes", a: &v1alpha1.Analysis{Judge: &v1alpha1.Judge{FailureCodes: "5(("}}, wantErr: "spec.analysis.judge.failureCodes"},
		{name: "latency off", a: &v1alpha1.Analysis{Judge: &v1alpha1.Judge{Latency: &v1alpha1.LatencyJudge{Disabled: true}}}, wantJudge: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			plan, err := planFromSpec(c.a)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (plan == nil) != (c.a == nil) {
				t.Errorf("plan = %v for analysis %v", plan, c.a)
			}
			if plan != nil && plan.interval != defaultInterval {
				t.Errorf("interval = %s, want the default", plan.interval)
			}
			if plan != nil && (plan.judge != nil) != c.wantJudge {
				t.Errorf("judge = %+v, want one: %t", plan.judge, c.wantJudge)
			}
		})
	}
}

func TestPolicyFromSpec(t *testing.T) {
	t.Parallel()
	spec := v1alpha1.FleetRolloutSpec{
		Hold: v1alpha1.Hold{Default: &metav1.Duration{Duration: 5 * time.Second}, Steps: []v1alpha1.StepHold{{Step: 3, Duration: metav1.Duration{Duration: time.Minute}}}},
	}
	p := policyFromSpec(&spec)
	if p.HoldFor(1) != 5*time.Second || p.HoldFor(3) != time.Minute || p.UnreachableDeadline != defaultUnreachableDeadline || p.Validate() != nil {
		t.Errorf("policy = %+v", p)
	}
	// The dashboard's countdown (Hold.For) holds as long as the coordinator
	// does, with and without a default.
	for _, h := range []v1alpha1.Hold{spec.Hold, {Steps: spec.Hold.Steps}} {
		p := policyFromSpec(&v1alpha1.FleetRolloutSpec{Hold: h})
		for step := int32(0); step < 5; step++ {
			if got, want := h.For(step), p.HoldFor(step); got != want {
				t.Errorf("hold %+v, step %d: Hold.For %s, the coordinator holds %s", h, step, got, want)
			}
		}
	}
}
