package coordinator

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/analysis"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/fleet"
	"lockstep.dev/lockstep/internal/rollouts"
)

// analysis returns the verdicts to decide on, evaluating the metrics when
// the last evaluation is older than the interval, and reports whether it
// evaluated. Without analysis every member and the fleet pass at now: the
// barrier then only waits for the hold time.
func (r *Reconciler) analysis(ctx context.Context, log logr.Logger, fr *v1alpha1.FleetRollout, plan *analysisPlan, obs []memberObservation, members []fleet.Member, revision string, now time.Time) (decide.Analysis, *analysis.JudgeResult, bool) {
	if plan == nil {
		pass := decide.AnalysisVerdict{Verdict: decide.VerdictPass, Reason: "NoAnalysis", Revision: revision, EvaluatedAt: now}
		out := decide.Analysis{Global: &pass, Members: map[string]decide.AnalysisVerdict{}}
		for _, o := range obs {
			out.Members[o.member.Name] = pass
		}
		return out, nil, false
	}
	st := &fr.Status
	done := st.Fleet.Revision == revision && (st.Fleet.Aborted || st.Fleet.Completed)
	due := st.Analysis == nil || st.Analysis.Revision != revision || now.Sub(st.Analysis.EvaluatedAt.Time) >= plan.interval
	// A barrier's hold that ended after the last evaluation needs a
	// verdict taken after it to promote: take it now rather than up to an
	// interval later.
	if f := st.Fleet; !due && f.Revision == revision && f.BarrierStep != nil && f.StepEnteredAt != nil {
		holdEnd := f.StepEnteredAt.Add(policyFromSpec(&fr.Spec).HoldFor(*f.BarrierStep))
		due = !now.Before(holdEnd) && st.Analysis.EvaluatedAt.Time.Before(holdEnd)
	}
	if done || !due {
		return analysisFromStatus(st), nil, false
	}
	am := make([]analysis.Member, len(members))
	for i, m := range members {
		l := plan.labels[m.Name]
		am[i] = analysis.Member{Name: m.Name, Reporting: l.Reporting, Serving: l.Serving}
		if am[i].Reporting == "" {
			am[i].Reporting = m.Reporting
		}
		if am[i].Reporting == "" {
			am[i].Reporting = m.Name
		}
		if am[i].Serving == "" {
			am[i].Serving = m.Name
		}
	}
	timeout := r.EvaluationTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	parts := make([]decide.Analysis, 0, len(plan.metrics)+1)
	var judged *analysis.JudgeResult
	if plan.judge != nil {
		res := r.judge(ctx, fr, plan, obs, am, revision, now)
		log.V(1).Info("Judge evaluated", "global", res.Global.Verdict, "message", res.Global.Message, "problem", res.Problem)
		for _, mj := range res.Members {
			log.V(1).Info("Judge member verdict", "cluster", mj.Name, "verdict", mj.Verdict, "reason", mj.Reason)
		}
		parts = append(parts, res.Analysis(revision))
		judged = &res
	}
	for _, m := range plan.metrics {
		res := analysis.Evaluate(ctx, r.Querier, m, plan.args, am, now)
		log.V(1).Info("Analysis evaluated", "metric", m.Name, "verdict", res.Verdict(), "global", res.Global.Message)
		for _, mr := range res.Members {
			log.V(1).Info("Analysis member verdict", "cluster", mr.Name, "metric", m.Name, "verdict", mr.Verdict, "reason", mr.Reason)
		}
		r.recordValues(fr, m.Name, res)
		parts = append(parts, res.Analysis(revision))
	}
	return decide.CombineAnalysis(parts...), judged, true
}

// judge runs the sequential judge over the window that opened when the
// revision's canary first got traffic (recorded in status by decide).
func (r *Reconciler) judge(ctx context.Context, fr *v1alpha1.FleetRollout, plan *analysisPlan, obs []memberObservation, am []analysis.Member, revision string, now time.Time) analysis.JudgeResult {
	var win analysis.JudgeWindow
	if f := fr.Status.Fleet; f.Revision == revision && f.CanaryStartedAt != nil {
		win.Since = f.CanaryStartedAt.Time
		if f.QuietSince != nil {
			win.QuietSince = f.QuietSince.Time
		}
	}
	var svc rollouts.Services
	for _, o := range obs {
		if o.member.Rollout != nil && o.member.Rollout.Revision == revision && o.services.Canary != "" {
			svc = o.services
			break
		}
	}
	spec := judgeMatchersFor(*plan.judge, fr.Spec.Rollout.Namespace, svc)
	// The Prometheus querier reads raw scrapes; a Querier that cannot gets
	// an Inconclusive verdict that says so.
	sq, _ := r.Querier.(analysis.SampleQuerier)
	return analysis.EvaluateJudge(ctx, sq, spec, plan.args, am, win, now)
}

func analysisFromStatus(st *v1alpha1.FleetRolloutStatus) decide.Analysis {
	out := decide.Analysis{Members: map[string]decide.AnalysisVerdict{}}
	if st.Analysis != nil {
		g := verdictFromStatus(&st.Analysis.Global)
		out.Global = &g
	}
	for _, m := range st.Members {
		if m.Verdict != nil {
			out.Members[m.Name] = verdictFromStatus(m.Verdict)
		}
	}
	return out
}

// recordAnalysis puts the verdicts and the judge's evidence in status
// (members' and the fleet's), keeping the last evidence when this
// reconcile did not evaluate.
func recordAnalysis(fr *v1alpha1.FleetRollout, orig *v1alpha1.FleetRolloutStatus, plan *analysisPlan, in decide.Analysis, judged *analysis.JudgeResult, evaluated bool, revision string) {
	st := &fr.Status
	if plan == nil {
		st.Analysis = nil
		return
	}
	var evidence map[string]*v1alpha1.Evidence
	if judged != nil {
		evidence = evidenceOf(judged)
	} else {
		evidence = evidenceFromStatus(orig)
	}
	for i := range st.Members {
		if v, ok := in.Members[st.Members[i].Name]; ok && !v.EvaluatedAt.IsZero() {
			st.Members[i].Verdict = verdictToStatus(v)
			st.Members[i].Verdict.Evidence = evidence[st.Members[i].Name]
		}
	}
	if evaluated && in.Global != nil {
		st.Analysis = &v1alpha1.AnalysisStatus{
			EvaluatedAt: metav1.NewMicroTime(in.Global.EvaluatedAt), Revision: revision,
			Global: *verdictToStatus(*in.Global),
		}
		st.Analysis.Global.Evidence = evidence[""]
	}
	if judged != nil && (judged.Problem != "" || len(judged.Queries) > 0) {
		setAnalysisCondition(fr, judged.Problem)
	}
}
