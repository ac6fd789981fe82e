package coordinator

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/analysis"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/judge"
	"lockstep.dev/lockstep/internal/rollouts"
)

// Defaults for fields the API server did not default (objects created
// before the CRD had defaults, or fake clients in tests).
const (
	defaultHold                = v1alpha1.DefaultHold
	defaultInterval            = 10 * time.Second
	defaultUnreachableDeadline = 2 * time.Minute
	defaultInconclusiveLimit   = 5 * time.Minute
	defaultRevisionDeadline    = 5 * time.Minute
)

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

// supersedes reports whether a new revision replaces a canary under way
// (Supersede, the default, or the former allowNewRevisionDuringProgress).
func supersedes(p v1alpha1.Policy) bool {
	return p.OnNewRevision != v1alpha1.OnNewRevisionRefuse || p.AllowNewRevisionDuringProgress
}

// policyFromSpec converts the spec's hold times and limits.
func policyFromSpec(spec *v1alpha1.FleetRolloutSpec) decide.Policy {
	p := decide.Policy{
		DefaultHold:                    durationOr(spec.Hold.Default, defaultHold),
		UnreachableDeadline:            durationOr(spec.Policy.UnreachableDeadline, defaultUnreachableDeadline),
		InconclusiveLimit:              durationOr(spec.Policy.InconclusiveLimit, defaultInconclusiveLimit),
		AbortOnInconclusive:            spec.Policy.OnInconclusive == "Abort",
		AllowNewRevisionDuringProgress: supersedes(spec.Policy),
		RevisionDeadline:               durationOr(spec.Policy.NewRevisionDeadline, defaultRevisionDeadline),
	}
	if len(spec.Hold.Steps) > 0 {
		p.StepHold = make(map[int32]time.Duration, len(spec.Hold.Steps))
		for _, s := range spec.Hold.Steps {
			p.StepHold[s.Step] = s.Duration.Duration
			if s.Approval == "Required" {
				if p.ApprovalBarriers == nil {
					p.ApprovalBarriers = map[int32]string{}
				}
				p.ApprovalBarriers[s.Step] = s.Name
			}
		}
	}
	if a := spec.Analysis; a != nil {
		p.MinRequests = float64(a.MinRequests)
		p.AnalysisWarmup = analysisWarmup(a)
		if a.Judge != nil || len(a.Metrics) == 0 {
			// The judge runs: hold the leading barrier a scrape, so it
			// counts the canary's first scrape (see decide.Policy).
			var scrape *metav1.Duration
			if a.Judge != nil {
				scrape = a.Judge.ScrapeInterval
			}
			p.QuietHold = durationOr(scrape, analysis.DefaultScrapeInterval) + 2*time.Second
		}
	}
	return p
}

// analysisWarmup is spec.analysis.initialDelay, else the longest ratio
// window: a window that began before the canary had traffic judges other
// traffic (a previous release's canary, for one).
func analysisWarmup(a *v1alpha1.Analysis) time.Duration {
	if a.InitialDelay != nil {
		return a.InitialDelay.Duration
	}
	var longest time.Duration
	for _, m := range a.Metrics {
		if m.Ratio == nil {
			continue
		}
		if d, err := model.ParseDuration(m.Ratio.Window); err == nil && time.Duration(d) > longest {
			longest = time.Duration(d)
		}
	}
	return longest
}

// analysisPlan is the spec's analysis in package analysis' terms.
type analysisPlan struct {
	metrics  []analysis.Metric
	judge    *analysis.JudgeSpec
	args     map[string]string
	interval time.Duration
	labels   map[string]v1alpha1.ClusterLabels
}

// rate parses an optional decimal rate, def when empty.
func rate(field string, v v1alpha1.Rate, def float64) (float64, error) {
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return 0, fmt.Errorf("spec.analysis.judge.%s: %q is not a number", field, v)
	}
	return f, nil
}

// judgeFromSpec converts spec.analysis.judge (nil: every default). The
// canary and stable matchers may stay empty here: the reconciler fills
// them from the Rollout's services.
func judgeFromSpec(j *v1alpha1.Judge) (*analysis.JudgeSpec, error) {
	if j == nil {
		j = &v1alpha1.Judge{}
	}
	def := judge.DefaultConfig()
	spec := &analysis.JudgeSpec{
		Requests: j.Requests, Canary: j.Canary, Stable: j.Stable,
		FailureLabel: j.FailureLabel, FailureCodes: j.FailureCodes,
		ReportingLabel: j.ReportingLabel, ServingLabel: j.ServingLabel,
		Histogram:      analysis.DefaultJudgeHistogram,
		ScrapeInterval: durationOr(j.ScrapeInterval, analysis.DefaultScrapeInterval),
	}
	var errs []error
	parse := func(field string, v v1alpha1.Rate, def float64, into *float64) {
		f, err := rate(field, v, def)
		if err != nil {
			errs = append(errs, err)
		}
		*into = f
	}
	c := &spec.Config
	c.Zone = judge.Zone(j.Zone)
	parse("maxFailureRate", j.MaxFailureRate, def.MaxFailureRate, &c.MaxFailureRate)
	parse("minEffect", j.MinEffect, def.MinEffect, &c.MinEffect)
	parse("falseAbortRate", j.FalseAbortRate, def.FalseAbortRate, &c.FalseAbortRate)
	parse("falsePromoteRate", j.FalsePromoteRate, def.FalsePromoteRate, &c.FalsePromoteRate)
	c.LatencyQuantile, c.LatencyMinEffect = def.LatencyQuantile, def.LatencyMinEffect
	if l := j.Latency; l != nil {
		if l.Histogram != "" {
			spec.Histogram = l.Histogram
		}
		parse("latency.quantile", l.Quantile, def.LatencyQuantile, &c.LatencyQuantile)
		parse("latency.minEffect", l.MinEffect, def.LatencyMinEffect, &c.LatencyMinEffect)
		if l.Disabled {
			spec.Histogram, c.LatencyQuantile = "", 0
		}
	}
	return spec, errors.Join(errs...)
}

// judgeMatchersFor fills the canary and stable matchers the spec left
// empty from the Rollout's Services, as Istio names them in
// destination_service. Without a Service the matcher stays empty, which
// the judge reports as a problem naming the field.
func judgeMatchersFor(spec analysis.JudgeSpec, namespace string, svc rollouts.Services) analysis.JudgeSpec {
	host := func(name string) string {
		if name == "" {
			return ""
		}
		return fmt.Sprintf("destination_service=%q", name+"."+namespace+".svc.cluster.local")
	}
	spec.Canary = cmp.Or(spec.Canary, host(svc.Canary))
	spec.Stable = cmp.Or(spec.Stable, host(svc.Stable))
	return spec
}

// planFromSpec converts and validates the analysis; nil without analysis.
func planFromSpec(a *v1alpha1.Analysis) (*analysisPlan, error) {
	if a == nil {
		return nil, nil
	}
	plan := &analysisPlan{
		args:     map[string]string{},
		interval: durationOr(a.Interval, defaultInterval),
		labels:   map[string]v1alpha1.ClusterLabels{},
	}
	for _, arg := range a.Args {
		plan.args[arg.Name] = arg.Value
	}
	for _, c := range a.Clusters {
		plan.labels[c.Member] = c
	}
	var errs []error
	for _, m := range a.Metrics {
		v, err := strconv.ParseFloat(m.Threshold.Value, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("metric %q: threshold value %q is not a number", m.Name, m.Threshold.Value))
			continue
		}
		am := analysis.Metric{
			Name: m.Name, Query: m.Query, CountQuery: m.CountQuery,
			Threshold:      analysis.Threshold{Op: analysis.Op(m.Threshold.Op), Value: v},
			MinCount:       float64(a.MinRequests),
			ReportingLabel: m.ReportingLabel, ServingLabel: m.ServingLabel,
		}
		if m.Ratio != nil {
			am.Ratio = &analysis.Ratio{Good: m.Ratio.Good, Total: m.Ratio.Total, Window: m.Ratio.Window, Func: m.Ratio.Func}
		}
		if err := am.Validate(plan.args); err != nil {
			errs = append(errs, err)
			continue
		}
		plan.metrics = append(plan.metrics, am)
	}
	if a.Judge != nil || len(a.Metrics) == 0 {
		j, err := judgeFromSpec(a.Judge)
		if err == nil {
			// Matchers are checked with placeholders until the Rollout's
			// services are known.
			probe := *j
			if probe.Canary == "" {
				probe.Canary = `destination_service="canary"`
			}
			if probe.Stable == "" {
				probe.Stable = `destination_service="stable"`
			}
			err = probe.Validate(plan.args)
		}
		if err != nil {
			errs = append(errs, err)
		}
		plan.judge = j
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return plan, nil
}

func timePtr(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t)
	return &mt
}

func microPtr(t time.Time) *metav1.MicroTime {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewMicroTime(t)
	return &mt
}

func timeOf(t *metav1.MicroTime) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.Time
}

func int32Ptr(p *int32) *int32 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// fleetFromStatus reads decide's memory back from the status.
func fleetFromStatus(s v1alpha1.FleetState) decide.FleetStatus {
	return decide.FleetStatus{
		Revision:          s.Revision,
		BarrierStep:       int32Ptr(s.BarrierStep),
		StepEnteredAt:     timeOf(s.StepEnteredAt),
		InconclusiveSince: timeOf(s.InconclusiveSince), InconclusivePaused: s.InconclusivePaused,
		LastPromotedStep: int32Ptr(s.LastPromotedStep),
		CanaryStartedAt:  timeOf(s.CanaryStartedAt), QuietSince: timeOf(s.QuietSince),
		Aborted:           s.Aborted,
		AbortReason:       decide.Reason(s.AbortReason),
		AbortMessage:      s.AbortMessage,
		AbortedAt:         timeOf(s.AbortedAt),
		Completed:         s.Completed,
		HandledRetryToken: s.HandledRetryToken,
		RetriedAt:         timeOf(s.RetriedAt),
		RetryPending:      append([]string(nil), s.RetryPending...),
		RevisionSeenAt:    timeOf(s.RevisionSeenAt),
		Wave:              s.Wave,
		WaveStartedAt:     timeOf(s.WaveStartedAt),
		WaveCompletedAt:   timeOf(s.WaveCompletedAt),
		Failed:            append([]string(nil), s.Failed...),
		Approvals:         approvalsFromStatus(s.Approvals),
	}
}

func approvalsFromStatus(in []v1alpha1.WaveApproval) []decide.ApprovalRecord {
	var out []decide.ApprovalRecord
	for _, a := range in {
		out = append(out, decide.ApprovalRecord{Wave: a.Wave, Barrier: a.Barrier, Approver: a.Approver, Name: a.Approval, At: a.At.Time})
	}
	return out
}

func approvalsToStatus(in []decide.ApprovalRecord) []v1alpha1.WaveApproval {
	var out []v1alpha1.WaveApproval
	for _, a := range in {
		out = append(out, v1alpha1.WaveApproval{Wave: a.Wave, Barrier: a.Barrier, Approver: a.Approver, Approval: a.Name, At: metav1.NewMicroTime(a.At)})
	}
	return out
}

// fleetToStatus writes decide's memory into the status.
func fleetToStatus(f decide.FleetStatus) v1alpha1.FleetState {
	return v1alpha1.FleetState{
		Revision:          f.Revision,
		BarrierStep:       int32Ptr(f.BarrierStep),
		StepEnteredAt:     microPtr(f.StepEnteredAt),
		InconclusiveSince: microPtr(f.InconclusiveSince), InconclusivePaused: f.InconclusivePaused,
		LastPromotedStep: int32Ptr(f.LastPromotedStep),
		CanaryStartedAt:  microPtr(f.CanaryStartedAt), QuietSince: microPtr(f.QuietSince),
		Aborted:           f.Aborted,
		AbortReason:       string(f.AbortReason),
		AbortMessage:      truncate(f.AbortMessage, 1024),
		AbortedAt:         microPtr(f.AbortedAt),
		Completed:         f.Completed,
		HandledRetryToken: f.HandledRetryToken,
		RetriedAt:         microPtr(f.RetriedAt),
		RetryPending:      append([]string(nil), f.RetryPending...),
		RevisionSeenAt:    microPtr(f.RevisionSeenAt),
		Wave:              f.Wave,
		WaveStartedAt:     microPtr(f.WaveStartedAt),
		WaveCompletedAt:   microPtr(f.WaveCompletedAt),
		Failed:            append([]string(nil), f.Failed...),
		Approvals:         approvalsToStatus(f.Approvals),
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func verdictToStatus(v decide.AnalysisVerdict) *v1alpha1.Verdict {
	out := &v1alpha1.Verdict{
		Verdict: string(v.Verdict), Reason: v.Reason, Message: truncate(v.Message, 2048),
		Revision: v.Revision, EvaluatedAt: microPtr(v.EvaluatedAt),
	}
	if out.Verdict != string(decide.VerdictPass) && out.Verdict != string(decide.VerdictFail) {
		out.Verdict = string(decide.VerdictInconclusive)
	}
	if v.RequestsKnown {
		out.Requests = strconv.FormatFloat(v.Requests, 'g', -1, 64)
	}
	return out
}

func verdictFromStatus(v *v1alpha1.Verdict) decide.AnalysisVerdict {
	out := decide.AnalysisVerdict{
		Verdict: decide.Verdict(v.Verdict), Reason: v.Reason, Message: v.Message,
		Revision: v.Revision, EvaluatedAt: timeOf(v.EvaluatedAt),
	}
	if v.Requests != "" {
		if n, err := strconv.ParseFloat(v.Requests, 64); err == nil {
			out.Requests, out.RequestsKnown = n, true
		}
	}
	return out
}

// budgetCondition says whether the judge's falseAbortRate covers every
// analysis that can abort the fleet. Threshold metrics do not: each one
// aborts on a single failing look, with no correction for looking again
// every interval, so with them configured the stated rate is only the
// judge's share.
func budgetCondition(spec *v1alpha1.FleetRolloutSpec, gen int64) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionFalseAbortRateCovered, ObservedGeneration: gen}
	a := spec.Analysis
	if a == nil {
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1alpha1.ReasonNoAnalysis, "no analysis: nothing but a person or a member can abort the fleet"
		return c
	}
	rateText := cmp.Or(func() string {
		if a.Judge != nil {
			return string(a.Judge.FalseAbortRate)
		}
		return ""
	}(), strconv.FormatFloat(judge.DefaultConfig().FalseAbortRate, 'f', -1, 64))
	if len(a.Metrics) == 0 {
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonJudgeOnly
		c.Message = "the judge is the only analysis: a good release is aborted by it with probability at most falseAbortRate (" + rateText + ")"
		return c
	}
	names := make([]string, len(a.Metrics))
	for i, m := range a.Metrics {
		names[i] = m.Name
	}
	c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonThresholdMetrics
	if a.Judge == nil {
		c.Message = truncate("no judge runs and no false-abort rate holds: the threshold metrics "+strings.Join(names, ", ")+
			" abort on a single failing look, with no correction for repeated looks", 1024)
		return c
	}
	c.Message = truncate("falseAbortRate ("+rateText+") covers the judge only: the threshold metrics "+strings.Join(names, ", ")+
		" abort on a single failing look, with no correction for repeated looks, and are outside it", 1024)
	return c
}
