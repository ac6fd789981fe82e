package decide

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// progress handles a fleet with no failure: wait, hold, promote or
// complete. Its rules run in order and the first that decides ends it;
// a fleet that passes them all is paused together at a barrier.
func (d *decider) progress() Decision {
	if dec, ok := d.waitForMembers(); ok {
		return dec
	}
	if dec, ok := d.completeWhenStable(); ok {
		return dec
	}
	at, dec, ok := d.positions()
	if ok {
		return dec
	}
	for _, rule := range []func(position) (Decision, bool){d.resumePromotion, d.waitForStepSkew, d.waitOffBarrier, d.waitForPause} {
		if dec, ok := rule(at); ok {
			return dec
		}
	}
	return d.barrier(at.lo)
}

// position is where the members stand: each one's step index, the lowest
// and the highest.
type position struct {
	idx    map[string]int32
	lo, hi int32
}

// waitForMembers waits while a member refuses the coordinator, cannot be
// reached (until the deadline, decided elsewhere), has no Rollout, has
// not observed its spec, or does not run the wanted revision yet.
func (d *decider) waitForMembers() (Decision, bool) {
	s := d.s
	var unreachable, denied, missing, stale, pending []string
	var deniedReason Reason
	var requeue time.Duration
	for _, m := range s.Members {
		ro := observed(m)
		switch {
		case !m.Reachable:
			if m.Denied != "" {
				denied = append(denied, m.Name+" ("+string(m.Denied)+": "+m.Problem+")")
				deniedReason = cmp.Or(deniedReason, m.Denied)
			} else {
				unreachable = append(unreachable, m.Name)
			}
			left := s.Policy.UnreachableDeadline - d.unreachableFor(m)
			if requeue == 0 || left < requeue {
				requeue = left
			}
		case ro == nil:
			missing = append(missing, m.Name)
		case ro.ObservedGeneration < ro.Generation:
			stale = append(stale, m.Name)
		case ro.Revision != s.Revision:
			pending = append(pending, fmt.Sprintf("%s (at %q)", m.Name, ro.Revision))
		}
	}
	switch {
	case len(denied) > 0:
		dec := d.decision(ActionWait, deniedReason, NoStep, "waiting for members that refuse the coordinator: "+strings.Join(denied, "; "))
		dec.RequeueAfter = requeue + time.Second
		return dec, true
	case len(unreachable) > 0:
		dec := d.decision(ActionWait, ReasonMemberUnreachable, NoStep, "waiting for unreachable members: "+strings.Join(unreachable, ", "))
		// One tick past the deadline, so the next decision sees it exceeded.
		dec.RequeueAfter = requeue + time.Second
		return dec, true
	case len(missing) > 0:
		return d.decision(ActionWait, ReasonRolloutMissing, NoStep, "no Rollout on: "+strings.Join(missing, ", ")), true
	case len(stale) > 0:
		return d.decision(ActionWait, ReasonStatusStale, NoStep, "Rollout status not yet observed for the current spec on: "+strings.Join(stale, ", ")), true
	case len(pending) > 0:
		return d.decision(ActionWait, ReasonRevisionPending, NoStep, fmt.Sprintf("waiting for revision %q on: %s", s.Revision, strings.Join(pending, ", "))), true
	}
	return Decision{}, false
}

// completeWhenStable completes the release once every member runs the
// revision as stable and is Healthy.
func (d *decider) completeWhenStable() (Decision, bool) {
	for _, m := range d.s.Members {
		if m.Rollout.StableRevision != d.s.Revision || m.Rollout.Phase != PhaseHealthy {
			return Decision{}, false
		}
	}
	d.next.Completed = true
	return d.decision(ActionComplete, ReasonCompleted, NoStep, fmt.Sprintf("every member runs revision %q as stable", d.s.Revision)), true
}

// positions reads every member's step index; a member that reports none
// is waited for.
func (d *decider) positions() (position, Decision, bool) {
	at := position{idx: map[string]int32{}, lo: -1, hi: -1}
	var stale []string
	for _, m := range d.s.Members {
		if m.Rollout.CurrentStepIndex == nil {
			stale = append(stale, m.Name)
			continue
		}
		i := *m.Rollout.CurrentStepIndex
		at.idx[m.Name] = i
		if at.lo == -1 || i < at.lo {
			at.lo = i
		}
		at.hi = max(at.hi, i)
	}
	if len(stale) > 0 {
		return at, d.decision(ActionWait, ReasonStatusStale, NoStep, "no currentStepIndex reported by: "+strings.Join(stale, ", ")), true
	}
	return at, Decision{}, false
}

// resumePromotion finishes a promotion that was decided and recorded
// (LastPromotedStep) for the members still paused there: they did not
// get, or apply, their patch. Members past it are never promoted again.
func (d *decider) resumePromotion(at position) (Decision, bool) {
	lp := d.next.LastPromotedStep
	if lp == nil || at.lo < *lp {
		return Decision{}, false
	}
	var resume []Patch
	var names []string
	for _, m := range d.s.Members {
		if pausedAt(m.Rollout, *lp) {
			resume = append(resume, PromotePatch(m.Name, d.s.Revision, *lp))
			names = append(names, m.Name)
		}
	}
	if len(resume) == 0 {
		return Decision{}, false
	}
	dec := d.decision(ActionPromote, ReasonPromotionResumed, *lp,
		fmt.Sprintf("step %d was already promoted; finishing it for %s", *lp, strings.Join(names, ", ")))
	dec.Patches = resume
	return dec, true
}

// waitForStepSkew waits for the members behind while they are at
// different steps; the ones ahead are not promoted.
func (d *decider) waitForStepSkew(at position) (Decision, bool) {
	if at.lo == at.hi {
		return Decision{}, false
	}
	var where []string
	for _, m := range d.s.Members {
		where = append(where, fmt.Sprintf("%s at %d", m.Name, at.idx[m.Name]))
	}
	return d.decision(ActionWait, ReasonStepSkew, NoStep,
		fmt.Sprintf("members are at different steps (%s); waiting for the ones behind, the ones ahead are not promoted", strings.Join(where, ", "))), true
}

// waitOffBarrier waits while the members, together at step n, are not at
// a barrier: past the last step, at a step that is no indefinite pause,
// or at a pause already promoted.
func (d *decider) waitOffBarrier(at position) (Decision, bool) {
	n, steps := at.lo, d.s.Members[0].Rollout.Steps
	switch {
	case int(n) >= len(steps):
		return d.decision(ActionWait, ReasonProgressing, NoStep, "all steps done; waiting for members to become Healthy on the new revision"), true
	case !steps[n].IsIndefinitePause():
		return d.decision(ActionWait, ReasonProgressing, NoStep, fmt.Sprintf("members are at step %d (%s)", n, steps[n])), true
	}
	if lp := d.next.LastPromotedStep; lp != nil && *lp >= n {
		return d.decision(ActionWait, ReasonPromoted, NoStep, fmt.Sprintf("step %d was promoted; waiting for members to move on", n)), true
	}
	return Decision{}, false
}

// waitForPause waits until every member is paused at pause step n by its
// controller, for the step, and by nothing else.
func (d *decider) waitForPause(at position) (Decision, bool) {
	n := at.lo
	var other, moving []string
	for _, m := range d.s.Members {
		ro := m.Rollout
		switch {
		case pausedAt(ro, n):
		case ro.SpecPaused || len(ro.PauseReasons) > 0 && !slices.Equal(ro.PauseReasons, []string{PauseReasonCanaryPauseStep}):
			other = append(other, fmt.Sprintf("%s (spec.paused=%t, pause reasons %v)", m.Name, ro.SpecPaused, ro.PauseReasons))
		default:
			moving = append(moving, m.Name)
		}
	}
	switch {
	case len(other) > 0:
		return d.decision(ActionWait, ReasonPausedOtherwise, NoStep, "paused by something other than Lockstep's step: "+strings.Join(other, ", ")), true
	case len(moving) > 0:
		return d.decision(ActionWait, ReasonProgressing, NoStep, fmt.Sprintf("waiting for %s to pause at step %d", strings.Join(moving, ", "), n)), true
	}
	return Decision{}, false
}
