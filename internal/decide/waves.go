package decide

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Wave is one group of members that goes through the canary after the
// groups before it completed and soaked. Its members run the canary in
// lockstep batches of at most the group's parallelism, one batch after the
// other.
type Wave struct {
	// Name identifies the group in messages and status.
	Name string
	// Batches are the group's members, in the order they run: each batch
	// is one lockstep canary (today's barrier and analysis).
	Batches [][]string
	// Soak is how long the group must stay completed, with nothing
	// regressing, before the next group starts.
	Soak time.Duration
	// MaxFailures is how many of the group's clusters may fail (their
	// batch aborted) before the release stops.
	MaxFailures int
	// ApprovalRequired holds the group at its leading pause until a
	// person approves it for the revision (Snapshot.Approvals).
	ApprovalRequired bool
}

// Approval is a person's approval of a wave for a revision.
type Approval struct {
	// Wave or Barrier (a named barrier, Policy.ApprovalBarriers) is what
	// the approval lets go.
	Wave, Barrier, Revision, Approver string
	// Name identifies the approval object.
	Name string
}

// Wave states of a member (WaveStates).
const (
	WaveNotStarted = "NotStarted"
	WaveInCanary   = "InCanary"
	WaveCompleted  = "Completed"
	WaveAborted    = "Aborted"
)

// unit is one batch of one wave, in release order.
type unit struct {
	wave, batch int
	last        bool // the last batch of its wave
	members     []string
}

func units(waves []Wave) []unit {
	var out []unit
	for w, wv := range waves {
		for b, ms := range wv.Batches {
			out = append(out, unit{wave: w, batch: b, last: b == len(wv.Batches)-1, members: ms})
		}
	}
	return out
}

// wavesProblem returns why the waves do not partition the members, or "".
func wavesProblem(s Snapshot) string {
	in := map[string]bool{}
	for _, m := range s.Members {
		in[m.Name] = true
	}
	seen := map[string]string{}
	for _, w := range s.Waves {
		if len(w.Batches) == 0 {
			return fmt.Sprintf("wave %s has no member", w.Name)
		}
		n := 0
		for _, b := range w.Batches {
			if len(b) == 0 {
				return fmt.Sprintf("wave %s has an empty batch", w.Name)
			}
			for _, m := range b {
				if !in[m] {
					return fmt.Sprintf("wave %s names %s, which is not a member", w.Name, m)
				}
				if other, dup := seen[m]; dup {
					return fmt.Sprintf("%s is in wave %s and in wave %s", m, other, w.Name)
				}
				seen[m] = w.Name
				n++
			}
		}
		if w.MaxFailures < 0 || w.MaxFailures > n {
			return fmt.Sprintf("wave %s allows %d failures among %d clusters", w.Name, w.MaxFailures, n)
		}
	}
	for _, m := range s.Members {
		if _, ok := seen[m.Name]; !ok {
			return fmt.Sprintf("member %s is in no wave", m.Name)
		}
	}
	return ""
}

// currentUnit is the batch a fleet status is at for revision rev.
func currentUnit(f FleetStatus, rev string, n int) int {
	if f.Revision != rev {
		return 0
	}
	return min(int(f.Wave), n-1)
}

// WaveStates says, for every member of s's waves, where it stands in the
// release that next describes: completed, in canary, aborted (its batch
// failed, or the release stopped while it ran) or not started.
func WaveStates(s Snapshot, next FleetStatus) map[string]string {
	out := map[string]string{}
	us := units(s.Waves)
	if len(us) == 0 {
		return out
	}
	cur := currentUnit(next, s.Revision, len(us))
	for i, u := range us {
		for _, m := range u.members {
			switch {
			case slices.Contains(next.Failed, m):
				out[m] = WaveAborted
			case i < cur || (i == cur && next.Completed):
				out[m] = WaveCompleted
			case i == cur && next.Aborted:
				out[m] = WaveAborted
			case i == cur:
				out[m] = WaveInCanary
			default:
				out[m] = WaveNotStarted
			}
		}
	}
	return out
}

// decideWaves runs the release one batch at a time: the current batch
// through today's lockstep rules, earlier ones watched for regressions,
// later ones left alone at their leading pause.
func decideWaves(s Snapshot, now time.Time) Decision {
	if msg := snapshotProblem(s); msg != "" {
		return Decision{Action: ActionRefuse, Reason: ReasonInvalidSnapshot, Step: NoStep, Message: msg, Next: s.Fleet}
	}
	if msg := wavesProblem(s); msg != "" {
		return Decision{Action: ActionRefuse, Reason: ReasonInvalidWaves, Step: NoStep, Message: msg, Next: s.Fleet}
	}
	// Later waves wait at the Rollout's first step: it must hold them.
	for _, m := range s.Members {
		if ro := observed(m); ro != nil && ro.Revision == s.Revision && len(ro.Steps) > 0 && !ro.Steps[0].IsIndefinitePause() {
			return Decision{Action: ActionRefuse, Reason: ReasonStepsNotCoordinable, Step: NoStep, Next: s.Fleet,
				Message: fmt.Sprintf("with waves the Rollout's first step must be pause: {} so that later waves wait; %s starts with %s", m.Name, ro.Steps[0])}
		}
	}
	us := units(s.Waves)
	cur := currentUnit(s.Fleet, s.Revision, len(us))
	u := us[cur]
	wave := s.Waves[u.wave]

	failed := s.Fleet.Failed
	if s.Fleet.Revision != s.Revision {
		failed = nil
	}

	// A completed batch that regresses stops the release. Aborting it
	// would not roll it back (it runs the revision as stable); the batch in
	// canary is aborted, later ones are left alone.
	if s.Fleet.Revision == s.Revision && !s.Fleet.Aborted {
		done := us[:cur]
		if s.Fleet.Completed {
			// The current batch completed and soaks: watched the same way.
			done = us[:cur+1]
		}
		if regressed := regressions(s, done, failed); len(regressed) > 0 {
			d := &decider{s: subSnapshot(s, u.members), now: now, next: s.Fleet}
			return d.abort(ReasonWaveRegression, "a completed wave regressed: "+strings.Join(regressed, "; "))
		}
	}

	sub := subSnapshot(s, u.members)
	approval, approved := approvalOf(s, wave)
	if wave.ApprovalRequired && u.batch == 0 && !approved {
		sub.Policy.AwaitApproval = fmt.Sprintf("wave %s of revision %s needs a person's approval (lockstep approve --wave %s)", wave.Name, s.Revision, wave.Name)
	}
	dec := Decide(sub, now)
	if approved && wave.ApprovalRequired && dec.Next.Revision == s.Revision {
		dec.Next.Approvals = recordApproval(dec.Next.Approvals, approval, now)
	}
	dec.Message = fmt.Sprintf("wave %s (%d/%d), batch %d/%d [%s]: %s", wave.Name, u.wave+1, len(s.Waves), u.batch+1, len(wave.Batches), strings.Join(u.members, ", "), dec.Message)
	next := dec.Next
	if next.Revision != s.Revision || dec.Action == ActionRefuse {
		return dec
	}

	// A batch that aborted on its own: tolerated while the wave's failures
	// stay within MaxFailures (the batch's clusters stay aborted, the
	// release goes on), otherwise the release stops there.
	if next.Aborted && !s.Fleet.Aborted {
		inWave := 0
		for _, b := range wave.Batches {
			for _, m := range b {
				if slices.Contains(failed, m) {
					inWave++
				}
			}
		}
		if inWave+len(u.members) <= wave.MaxFailures {
			dec.Next = advance(next, cur+1, append(slices.Clone(failed), u.members...), now)
			dec.Reason = ReasonFailureTolerated
			dec.Message += fmt.Sprintf("; %d of at most %d clusters of wave %s failed, the release goes on", inWave+len(u.members), wave.MaxFailures, wave.Name)
			dec.RequeueAfter = time.Second
			return dec
		}
		return dec
	}
	if !next.Completed {
		return dec
	}
	if cur == len(us)-1 {
		return dec
	}
	// The batch completed; the release is not.
	next.Completed = false
	if !u.last {
		dec.Next = advance(next, cur+1, failed, now)
		dec.Action, dec.Reason = ActionWait, ReasonWaveStarted
		dec.Message = fmt.Sprintf("wave %s, batch %d/%d [%s] completed; batch %d [%s] starts", wave.Name, u.batch+1, len(wave.Batches), strings.Join(u.members, ", "), u.batch+2, strings.Join(us[cur+1].members, ", "))
		dec.RequeueAfter = time.Second
		return dec
	}
	if next.WaveCompletedAt.IsZero() {
		next.WaveCompletedAt = now
	}
	if left := wave.Soak - now.Sub(next.WaveCompletedAt); left > 0 {
		dec.Next = next
		dec.Action, dec.Reason = ActionHold, ReasonSoaking
		dec.Message = fmt.Sprintf("wave %s completed; soaking for %s more before wave %s", wave.Name, left.Round(time.Second), s.Waves[u.wave+1].Name)
		dec.RequeueAfter = left
		return dec
	}
	dec.Next = advance(next, cur+1, failed, now)
	dec.Action, dec.Reason = ActionWait, ReasonWaveStarted
	dec.Message = fmt.Sprintf("wave %s completed and soaked; wave %s [%s] starts", wave.Name, s.Waves[u.wave+1].Name, strings.Join(us[cur+1].members, ", "))
	dec.RequeueAfter = time.Second
	return dec
}

// regressions says which members of the completed batches done (other
// than the tolerated failures) aborted, degraded, left the revision or
// fail analysis.
func regressions(s Snapshot, done []unit, failed []string) []string {
	byName := map[string]Member{}
	for _, m := range s.Members {
		byName[m.Name] = m
	}
	var out []string
	for _, u := range done {
		for _, name := range u.members {
			m := byName[name]
			if slices.Contains(failed, name) || !m.Reachable || m.Rollout == nil {
				continue
			}
			switch ro := m.Rollout; {
			case ro.Aborted:
				out = append(out, name+" aborted")
			case ro.Phase == PhaseDegraded:
				out = append(out, name+" is Degraded")
			case ro.Revision != s.Revision:
				out = append(out, fmt.Sprintf("%s left revision %s for %s", name, s.Revision, ro.Revision))
			}
			if v, ok := s.Analysis.Members[name]; ok && v.Verdict == VerdictFail && v.Revision == s.Revision {
				out = append(out, name+" fails analysis: "+verdictText(v))
			}
		}
	}
	return out
}

// advance moves the release to batch n: the barrier state starts afresh,
// the revision, retry token and tolerated failures are kept.
func advance(f FleetStatus, n int, failed []string, now time.Time) FleetStatus {
	return FleetStatus{Revision: f.Revision, HandledRetryToken: f.HandledRetryToken, RetriedAt: f.RetriedAt,
		Wave: int32(n), WaveStartedAt: now, Failed: failed, Approvals: f.Approvals}
}

// approvalOf is the first approval of wave for the snapshot's revision;
// an approval of another revision does not count.
func approvalOf(s Snapshot, wave Wave) (Approval, bool) {
	return approvalFor(s, func(a Approval) bool { return a.Wave == wave.Name && a.Barrier == "" })
}

// barrierApproval is the first approval of the named barrier for the
// snapshot's revision.
func barrierApproval(s Snapshot, barrier string) (Approval, bool) {
	return approvalFor(s, func(a Approval) bool { return a.Barrier == barrier && a.Wave == "" })
}

func approvalFor(s Snapshot, match func(Approval) bool) (Approval, bool) {
	for _, a := range s.Approvals {
		if match(a) && a.Revision == s.Revision && a.Approver != "" {
			return a, true
		}
	}
	return Approval{}, false
}

// recordApproval adds a's record once, when it was first seen.
func recordApproval(records []ApprovalRecord, a Approval, now time.Time) []ApprovalRecord {
	for _, r := range records {
		if r.Wave == a.Wave && r.Barrier == a.Barrier {
			return records
		}
	}
	return append(slices.Clone(records), ApprovalRecord{Wave: a.Wave, Barrier: a.Barrier, Approver: a.Approver, Name: a.Name, At: now})
}

// subSnapshot is s restricted to members (in s's order), without waves.
func subSnapshot(s Snapshot, members []string) Snapshot {
	sub := s
	sub.Waves = nil
	sub.Members = nil
	for _, m := range s.Members {
		if slices.Contains(members, m.Name) {
			sub.Members = append(sub.Members, m)
		}
	}
	sub.Analysis.Members = map[string]AnalysisVerdict{}
	for name, v := range s.Analysis.Members {
		if slices.Contains(members, name) {
			sub.Analysis.Members[name] = v
		}
	}
	return sub
}
