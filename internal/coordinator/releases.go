package coordinator

import (
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/decide"
)

// Release outcomes (status.releases[].outcome).
const (
	OutcomeInProgress = "InProgress"
	OutcomeCompleted  = "Completed"
	OutcomeAborted    = "Aborted"
	OutcomeSuperseded = "Superseded"
)

// recordRelease keeps status.releases up to date with a decision about
// revision: a new revision starts a record (and supersedes one still in
// progress), an abort or a completion ends it once, and the approvals and
// the fleet's latest evidence are copied while it runs. At most limit
// records are kept, oldest dropped first.
func recordRelease(records []v1alpha1.ReleaseRecord, revision string, next decide.FleetStatus, evidence *v1alpha1.Evidence, now time.Time, limit int) []v1alpha1.ReleaseRecord {
	out := slices.Clone(records)
	n := len(out)
	if n == 0 || out[n-1].Revision != revision {
		if n > 0 && out[n-1].Outcome == OutcomeInProgress {
			end := metav1.NewMicroTime(now)
			out[n-1].Outcome, out[n-1].EndedAt, out[n-1].Reason = OutcomeSuperseded, &end, "NewRevision"
			out[n-1].Message = "revision " + revision + " replaced it"
		}
		out = append(out, v1alpha1.ReleaseRecord{Revision: revision, StartedAt: metav1.NewMicroTime(now), Outcome: OutcomeInProgress})
		n = len(out)
	}
	r := &out[n-1]
	// The evidence that ended a release is its evidence too.
	running := r.Outcome == OutcomeInProgress
	if next.Revision == revision {
		if next.Aborted && !next.AbortedAt.IsZero() {
			// An abort ends the release; a retry (Aborted cleared) takes it
			// up again.
			end := metav1.NewMicroTime(next.AbortedAt)
			r.Outcome, r.EndedAt, r.Reason, r.Message = OutcomeAborted, &end, string(next.AbortReason), truncate(next.AbortMessage, 1024)
		} else if r.Outcome == OutcomeAborted {
			r.Outcome, r.EndedAt, r.Reason, r.Message = OutcomeInProgress, nil, "", ""
		}
		if next.Completed && r.Outcome != OutcomeCompleted {
			end := metav1.NewMicroTime(now)
			r.Outcome, r.EndedAt, r.Reason, r.Message = OutcomeCompleted, &end, string(decide.ReasonCompleted), ""
		}
		if len(next.Approvals) > 0 {
			r.Approvals = approvalsToStatus(next.Approvals)
		}
	}
	if evidence != nil && running {
		r.Evidence = evidence.DeepCopy()
	}
	if limit <= 0 {
		limit = v1alpha1.DefaultReleaseHistory
	}
	if extra := len(out) - limit; extra > 0 {
		out = slices.Clone(out[extra:])
	}
	return out
}

// latestEvidence is the fleet's evidence of the last evaluation of
// revision, if any.
func latestEvidence(st *v1alpha1.FleetRolloutStatus, revision string) *v1alpha1.Evidence {
	if st.Analysis == nil || st.Analysis.Revision != revision {
		return nil
	}
	return st.Analysis.Global.Evidence
}

func releaseLimit(fr *v1alpha1.FleetRollout) int {
	if fr.Spec.ReleaseHistory != nil {
		return int(*fr.Spec.ReleaseHistory)
	}
	return v1alpha1.DefaultReleaseHistory
}

// markAbortedBy names, in the latest record, the person who aborted it,
// from the annotations `lockstep abort` and the dashboard set on fr for the
// revision they aborted (the hub's admission policy holds the name to the
// user who set it).
func markAbortedBy(records []v1alpha1.ReleaseRecord, fr *v1alpha1.FleetRollout) {
	if len(records) == 0 {
		return
	}
	r := &records[len(records)-1]
	by, rev := fr.Annotations[v1alpha1.AnnotationAbortedBy], fr.Annotations[v1alpha1.AnnotationAbortedRevision]
	if r.Outcome == OutcomeAborted && r.AbortedBy == "" && by != "" && rev == r.Revision {
		r.AbortedBy = by
	}
}
