package coordinator

import (
	"fmt"
	"slices"
	"strings"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/decide"
)

// Event reasons of a release's milestones. Each fires the notification
// trigger of the same name in kebab case (package notify): ReleaseAborted
// -> on-release-aborted.
const (
	ReasonReleaseStarted   = "ReleaseStarted"
	ReasonWaveCompleted    = "WaveCompleted"
	ReasonAwaitingApproval = string(decide.ReasonAwaitingApproval)
	ReasonReleaseAborted   = "ReleaseAborted"
	ReasonReleaseCompleted = "ReleaseCompleted"
)

// milestone is one Event a persisted status change earns.
type milestone struct {
	typ, reason, message string
}

// milestones compares the status a reconcile started from with the one it
// persisted and names the release's milestones reached in between: a
// release started, a wave completed, a wave waiting for approval, the
// release aborted (its message carries the verdict's evidence) or
// completed. Being
// derived from persisted status, each is said once, after the write; a
// crash between the write and the Event loses it rather than repeating it.
func milestones(orig, st *v1alpha1.FleetRolloutStatus) []milestone {
	var out []milestone
	was, is := lastRelease(orig), lastRelease(st)
	if is == nil || was == nil && is.Outcome == OutcomeCompleted {
		// A FleetRollout put on a fleet at rest records its revision as
		// completed at once: nothing was released.
		return nil
	}
	if was == nil || was.Revision != is.Revision {
		msg := fmt.Sprintf("revision %s started on %s", is.Revision, clusterList(st.Members))
		if was != nil && was.Outcome == OutcomeInProgress {
			msg += fmt.Sprintf(", superseding revision %s", was.Revision)
		}
		out = append(out, milestone{"Normal", ReasonReleaseStarted, msg})
		was = nil
	}
	out = append(out, waveMilestones(orig, st)...)
	if st.Reason == ReasonAwaitingApproval && (orig.Reason != ReasonAwaitingApproval || orig.Fleet.Revision != st.Fleet.Revision) {
		out = append(out, milestone{"Normal", ReasonAwaitingApproval, fmt.Sprintf("revision %s: %s", is.Revision, st.Message)})
	}
	ended := was == nil || was.Outcome != is.Outcome
	switch {
	case ended && is.Outcome == OutcomeAborted:
		by := ""
		if is.AbortedBy != "" {
			by = " by " + is.AbortedBy
		}
		out = append(out, milestone{"Warning", ReasonReleaseAborted, fmt.Sprintf("revision %s aborted%s: %s: %s", is.Revision, by, is.Reason, is.Message)})
	case ended && is.Outcome == OutcomeCompleted:
		out = append(out, milestone{"Normal", ReasonReleaseCompleted, fmt.Sprintf("revision %s completed on %s", is.Revision, clusterList(st.Members))})
	}
	return out
}

// waveMilestones names the waves all of whose members became Completed.
func waveMilestones(orig, st *v1alpha1.FleetRolloutStatus) []milestone {
	done := func(s *v1alpha1.FleetRolloutStatus) map[string]bool {
		out := map[string]bool{}
		for _, m := range s.Members {
			if m.Wave == "" {
				continue
			}
			if _, seen := out[m.Wave]; !seen {
				out[m.Wave] = true
			}
			out[m.Wave] = out[m.Wave] && m.WaveState == decide.WaveCompleted
		}
		return out
	}
	before, after := done(orig), done(st)
	sameRelease := orig.Fleet.Revision == st.Fleet.Revision
	var out []milestone
	for _, m := range st.Members {
		w := m.Wave
		if w == "" || !after[w] || (sameRelease && before[w]) {
			continue
		}
		after[w] = false // once per wave
		var names []string
		for _, o := range st.Members {
			if o.Wave == w {
				names = append(names, o.Name)
			}
		}
		out = append(out, milestone{"Normal", ReasonWaveCompleted, fmt.Sprintf("wave %s of revision %s completed on %s", w, st.Fleet.Revision, strings.Join(names, ", "))})
	}
	return out
}

func lastRelease(st *v1alpha1.FleetRolloutStatus) *v1alpha1.ReleaseRecord {
	if len(st.Releases) == 0 {
		return nil
	}
	return &st.Releases[len(st.Releases)-1]
}

func clusterList(ms []v1alpha1.MemberStatus) string {
	names := make([]string, 0, len(ms))
	for _, m := range ms {
		names = append(names, m.Name)
	}
	slices.Sort(names)
	return fmt.Sprintf("%d clusters (%s)", len(names), strings.Join(names, ", "))
}

// emitMilestones records the milestones' Events (and so their
// notifications) after the status that earned them is persisted.
func (r *Reconciler) emitMilestones(fr *v1alpha1.FleetRollout, orig *v1alpha1.FleetRolloutStatus) {
	for _, m := range milestones(orig, &fr.Status) {
		r.event(fr, m.typ, m.reason, "", "%s", truncate(m.message, 1024))
	}
}
