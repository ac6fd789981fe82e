package decide

import (
	"fmt"
	"strings"
	"time"
)

// Shadow mode: the analysis runs and its verdicts are recorded, but the
// coordinator acts on nothing. These rules say what an active coordinator
// would have made of the verdicts; they keep only the state the judge's
// window needs.

// ObserveCanary is the fleet state of shadow mode at now: a new revision
// starts afresh, and the canary's first traffic (and the quiet stretch
// before it) is recorded as Decide records it.
func ObserveCanary(s Snapshot, now time.Time) FleetStatus {
	d := &decider{s: s, now: now, next: s.Fleet}
	if d.next.Revision != s.Revision {
		d.next = FleetStatus{Revision: s.Revision}
	}
	if d.next.RevisionSeenAt.IsZero() {
		d.next.RevisionSeenAt = now
	}
	d.markCanaryStart()
	// Once every member runs the revision as stable there is no canary
	// left to judge.
	done := true
	for _, m := range s.Members {
		if ro := observed(m); ro == nil || ro.StableRevision != s.Revision || ro.Phase != PhaseHealthy {
			done = false
		}
	}
	d.next.Completed = done
	return d.next
}

// ShadowVerdict says what an active coordinator would make of s.Analysis
// for s.Revision, with the fleet state f (from ObserveCanary): Fail (it
// would abort every member), Pass (every verdict passes: a barrier could
// be promoted) or Inconclusive, and why. Like Decide's own rules, a
// verdict counts only if it is about this revision and judges only this
// canary's traffic.
func ShadowVerdict(s Snapshot, f FleetStatus) (Verdict, string) {
	d := &decider{s: s, next: f}
	var failed, short []string
	look := func(label string, v *AnalysisVerdict) {
		switch {
		case v == nil:
			short = append(short, label+": no verdict")
		case !d.counts(*v):
			short = append(short, label+": no verdict on this canary yet")
		case v.Verdict == VerdictFail:
			failed = append(failed, label+": "+verdictText(*v))
		case v.Verdict != VerdictPass:
			short = append(short, label+": "+verdictText(*v))
		}
	}
	look("global", s.Analysis.Global)
	for _, m := range s.Members {
		if v, ok := s.Analysis.Members[m.Name]; ok {
			look(m.Name, &v)
		} else {
			look(m.Name, nil)
		}
	}
	switch {
	case len(failed) > 0:
		return VerdictFail, fmt.Sprintf("would abort every member: %s", strings.Join(failed, "; "))
	case len(short) > 0:
		return VerdictInconclusive, "not passing yet: " + strings.Join(short, "; ")
	}
	return VerdictPass, "every verdict passes: a barrier would be promoted"
}
