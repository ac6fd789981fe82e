package coordinator

import (
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/analysis"
	"lockstep.dev/lockstep/internal/judge"
)

// evidenceOf converts the judge's result into status evidence, keyed by
// member name; "" is the fleet. A member's evidence is its serving side:
// how its own pods did, the side that names a culprit.
func evidenceOf(res *analysis.JudgeResult) map[string]*v1alpha1.Evidence {
	out := map[string]*v1alpha1.Evidence{"": scopeEvidence(res.Since, res.Global)}
	for _, m := range res.Members {
		e := scopeEvidence(res.Since, m.Serving)
		if e != nil {
			e.Decision = m.Reason
		}
		out[m.Name] = e
	}
	return out
}

func scopeEvidence(since time.Time, s analysis.ScopeJudgement) *v1alpha1.Evidence {
	f := s.Finding
	if f.Reason == "" {
		// Not judged (no data, a query error): nothing was counted.
		return nil
	}
	e := &v1alpha1.Evidence{
		Canary:             counts(s.Evidence.Canary),
		Stable:             counts(s.Evidence.Stable),
		Zone:               string(f.Zone),
		LogLikelihoodRatio: num(f.LogLR), AbortAt: num(f.AbortAt), PassAt: num(f.PassAt),
		LogEValue: num(f.LogE), Strata: int32(f.Strata),
		CanaryFailureRate: interval(f.CanaryInterval), StableFailureRate: interval(f.StableInterval),
		Decision: f.Reason,
	}
	if !since.IsZero() {
		t := metav1.NewMicroTime(since)
		e.Since = &t
	}
	if l := f.Latency; l != nil && l.Applicable {
		e.Latency = &v1alpha1.LatencyEvidence{Bound: num(l.Bound), CanarySlow: counts(l.CanarySlow), StableSlow: counts(l.StableSlow),
			LogEValue: num(l.LogE), AbortAt: num(l.AbortAt)}
	}
	return e
}

func counts(c judge.Counts) v1alpha1.RequestCounts {
	return v1alpha1.RequestCounts{Requests: c.Requests, Failures: c.Failures}
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', 3, 64) }

func interval(i judge.Interval) string {
	return "[" + strconv.FormatFloat(i.Lo, 'f', 4, 64) + ", " + strconv.FormatFloat(i.Hi, 'f', 4, 64) + "]"
}

// evidenceFromStatus keeps the evidence of the last evaluation when this
// reconcile did not evaluate.
func evidenceFromStatus(st *v1alpha1.FleetRolloutStatus) map[string]*v1alpha1.Evidence {
	out := map[string]*v1alpha1.Evidence{}
	if st.Analysis != nil {
		out[""] = st.Analysis.Global.Evidence
	}
	for _, m := range st.Members {
		if m.Verdict != nil {
			out[m.Name] = m.Verdict.Evidence
		}
	}
	return out
}

// setAnalysisCondition records whether the judge found its data.
func setAnalysisCondition(fr *v1alpha1.FleetRollout, problem string) {
	c := metav1.Condition{Type: v1alpha1.ConditionAnalysisValid, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAnalysisData,
		Message: "the judge's counters are in Thanos", ObservedGeneration: fr.Generation}
	if problem != "" {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonAnalysisDataMissing, truncate(problem, 1024)
	}
	meta.SetStatusCondition(&fr.Status.Conditions, c)
}
