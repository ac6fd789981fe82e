package decide

import (
	"maps"
	"slices"
	"time"
)

// Verdict is the outcome of one analysis evaluation.
type Verdict string

// Verdicts, from best to worst.
const (
	VerdictPass         Verdict = "Pass"
	VerdictInconclusive Verdict = "Inconclusive"
	VerdictFail         Verdict = "Fail"
)

// severity orders verdicts so that combining keeps the worst one. Unknown
// strings rank as inconclusive: an unrecognised verdict is not a pass.
func (v Verdict) severity() int {
	switch v {
	case VerdictPass:
		return 0
	case VerdictFail:
		return 2
	default:
		return 1
	}
}

// Worst returns the more severe of two verdicts (Fail over Inconclusive over
// Pass).
// Unknown strings come back as VerdictInconclusive, so callers only ever see
// the constants.
func Worst(a, b Verdict) Verdict {
	switch max(a.severity(), b.severity()) {
	case 0:
		return VerdictPass
	case 2:
		return VerdictFail
	default:
		return VerdictInconclusive
	}
}

// VerdictReasonMissing is the AnalysisVerdict.Reason given to a verdict that
// CombineAnalysis or Decide had to assume because none was supplied.
const VerdictReasonMissing = "VerdictMissing"

// AnalysisVerdict is one verdict together with what it was taken about.
type AnalysisVerdict struct {
	Verdict Verdict
	// Reason is the producer's machine-readable cause (package analysis
	// supplies its own constants).
	Reason string
	// Message explains the verdict to a human.
	Message string
	// Revision is the revision the analysis was taken for. A verdict about
	// another revision is ignored: it says nothing about this canary.
	Revision string
	// EvaluatedAt is when the analysis queried its data. A Pass counts at a
	// barrier only if taken after the barrier was reached, and permits a
	// promotion only if taken after the hold ended.
	EvaluatedAt time.Time
	// Requests is the number of requests behind the verdict, when known.
	Requests      float64
	RequestsKnown bool
}

// Analysis is the latest set of verdicts: one for the whole fleet and one
// per member name. A member without an entry, or a nil Global, counts as
// not passing.
type Analysis struct {
	Global  *AnalysisVerdict
	Members map[string]AnalysisVerdict
}

// CombineAnalysis merges the verdicts of several metrics into one Analysis,
// keeping for each key the worst verdict, the oldest evaluation time and the
// smallest request count. A key missing from any part becomes Inconclusive,
// because a metric that said nothing about a member did not pass it.
func CombineAnalysis(parts ...Analysis) Analysis {
	if len(parts) == 0 {
		return Analysis{}
	}
	out := Analysis{Members: map[string]AnalysisVerdict{}}

	globals := make([]*AnalysisVerdict, len(parts))
	for i, p := range parts {
		globals[i] = p.Global
	}
	g := combineVerdicts(globals)
	out.Global = &g

	names := map[string]bool{}
	for _, p := range parts {
		for name := range p.Members {
			names[name] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		vs := make([]*AnalysisVerdict, len(parts))
		for i, p := range parts {
			if v, ok := p.Members[name]; ok {
				vs[i] = &v
			}
		}
		out.Members[name] = combineVerdicts(vs)
	}
	return out
}

func combineVerdicts(vs []*AnalysisVerdict) AnalysisVerdict {
	var out AnalysisVerdict
	for i, v := range vs {
		if v == nil {
			missing := AnalysisVerdict{
				Verdict: VerdictInconclusive,
				Reason:  VerdictReasonMissing,
				Message: "a metric produced no verdict",
			}
			v = &missing
		}
		if i == 0 {
			out = *v
			out.Verdict = Worst(v.Verdict, v.Verdict)
			continue
		}
		if v.Verdict.severity() > out.Verdict.severity() {
			out.Verdict = Worst(out.Verdict, v.Verdict)
			out.Reason, out.Message = v.Reason, v.Message
		}
		if out.Revision != v.Revision {
			// Mixed revisions cannot be attributed to either; an empty
			// revision matches nothing and so counts as missing.
			out.Revision = ""
		}
		if v.EvaluatedAt.IsZero() || v.EvaluatedAt.Before(out.EvaluatedAt) {
			out.EvaluatedAt = v.EvaluatedAt
		}
		switch {
		case !v.RequestsKnown:
			out.RequestsKnown = false
			out.Requests = 0
		case out.RequestsKnown && v.Requests < out.Requests:
			out.Requests = v.Requests
		}
	}
	return out
}
