package decide

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Decide applies the coordination rules to a snapshot taken at now. It never
// fails: problems with the input become Refuse or Wait decisions, because
// the hub must always know what (not) to do.
//
// The rules, in order of precedence:
//  1. An unusable snapshot or policy is refused and changes nothing.
//  2. A new wanted revision resets the fleet state, unless a canary is under
//     way and the policy forbids replacing it (then: refuse until a retry).
//  3. A fleet abort is sticky: it is re-issued to members not yet aborted
//     until the revision changes or a new retry token arrives.
//  4. Step lists that differ, or timed pauses, are refused.
//  5. Any failure aborts: a member unreachable past the deadline, a member
//     aborted or Degraded on its own, a failed member or global verdict.
//  6. Otherwise the fleet waits until every member is reachable, runs the
//     wanted revision and is paused at the same pause step; then it holds
//     for the step's hold time and promotes once every verdict passes.
//     Analysis that stays short of passing past the limit pauses the fleet
//     for a person (or aborts it, if the policy says so).
func Decide(s Snapshot, now time.Time) Decision {
	if len(s.Waves) > 0 {
		return decideWaves(s, now)
	}
	d := &decider{s: s, now: now, next: s.Fleet}
	return d.decide()
}

type decider struct {
	s    Snapshot
	now  time.Time
	next FleetStatus
}

func (d *decider) decision(a Action, r Reason, step int32, msg string) Decision {
	return Decision{Action: a, Reason: r, Step: step, Message: msg, Next: d.next}
}

func (d *decider) decide() Decision {
	s := d.s
	if msg := snapshotProblem(s); msg != "" {
		// Nothing is recorded: a malformed snapshot says nothing about the
		// fleet, and a retry token must survive until it can be acted on.
		return Decision{Action: ActionRefuse, Reason: ReasonInvalidSnapshot, Step: NoStep, Message: msg, Next: s.Fleet}
	}
	if err := s.Policy.Validate(); err != nil {
		return Decision{Action: ActionRefuse, Reason: ReasonInvalidPolicy, Step: NoStep, Message: err.Error(), Next: s.Fleet}
	}

	newRetry := s.RetryToken != "" && s.RetryToken != d.next.HandledRetryToken

	if d.next.Revision != s.Revision {
		if d.next.Revision != "" && d.next.inProgress() && !s.Policy.AllowNewRevisionDuringProgress && !newRetry {
			return Decision{
				Action: ActionRefuse, Reason: ReasonRevisionChanged, Step: NoStep,
				Message: fmt.Sprintf("wanted revision changed from %s to %s while its canary was under way; send a retry to accept the new revision", d.next.Revision, s.Revision),
				Next:    s.Fleet,
			}
		}
		d.next = FleetStatus{Revision: s.Revision, HandledRetryToken: d.next.HandledRetryToken}
	}
	if d.next.RevisionSeenAt.IsZero() {
		// A new revision, or a state recorded before the field existed:
		// the deadline counts from now.
		d.next.RevisionSeenAt = d.now
	}
	// A token is consumed whether or not there is an abort to retry: left
	// unconsumed, it would undo the next abort the moment it happened.
	if newRetry {
		d.next.HandledRetryToken = s.RetryToken
	}

	if d.next.Aborted {
		if newRetry {
			return d.retry()
		}
		return d.abort(ReasonFleetAborted, fmt.Sprintf("fleet aborted at %s (%s): %s",
			d.next.AbortedAt.UTC().Format(time.RFC3339), d.next.AbortReason, d.next.AbortMessage))
	}

	if d.next.Completed {
		// A finished revision cannot be aborted or promoted any more; only
		// report whether it is still complete. Editing the steps does not
		// change the revision, so they are not re-checked either.
		return d.progress()
	}

	if err := CheckSteps(d.stepLists()); err != nil {
		return d.decision(ActionRefuse, ReasonStepsNotCoordinable, NoStep, err.Error())
	}

	d.markCanaryStart()
	retryPatches := d.updateRetryPending()

	if dec, ok := d.failures(); ok {
		return dec
	}
	if len(retryPatches) > 0 {
		dec := d.decision(ActionWait, ReasonRetried, NoStep,
			"waiting for retried members to leave the abort: "+strings.Join(d.next.RetryPending, ", "))
		dec.Patches = retryPatches
		return dec
	}
	return d.progress()
}

// snapshotProblem returns why a snapshot cannot be judged, or "".
func snapshotProblem(s Snapshot) string {
	if s.Revision == "" {
		return "no wanted revision"
	}
	if len(s.Members) == 0 {
		return "no member clusters"
	}
	seen := map[string]bool{}
	for _, m := range s.Members {
		if m.Name == "" {
			return "a member has no name"
		}
		if seen[m.Name] {
			return fmt.Sprintf("member %s is listed twice", m.Name)
		}
		seen[m.Name] = true
	}
	return ""
}

// observed returns the member's Rollout if the member is reachable and has
// one; an unreachable member's last-known state may be stale and is not used.
func observed(m Member) *RolloutState {
	if !m.Reachable {
		return nil
	}
	return m.Rollout
}

// stepLists collects the steps of members running the wanted revision. A
// member still on an older revision may legitimately carry older steps; it is
// waited for, not refused.
func (d *decider) stepLists() map[string][]Step {
	lists := map[string][]Step{}
	for _, m := range d.s.Members {
		if ro := observed(m); ro != nil && ro.Revision == d.s.Revision {
			lists[m.Name] = ro.Steps
		}
	}
	return lists
}

// unreachableFor returns how long m has been unreachable. A zero
// UnreachableSince counts as now: the outage has only just been noticed.
func (d *decider) unreachableFor(m Member) time.Duration {
	if m.UnreachableSince.IsZero() {
		return 0
	}
	return d.now.Sub(m.UnreachableSince)
}

// counts reports whether a verdict bears on this canary: it must be about
// the wanted revision, not predate the last retry, and judge a window that
// holds only this canary's traffic.
func (d *decider) counts(v AnalysisVerdict) bool {
	return v.Revision == d.s.Revision && !v.EvaluatedAt.Before(d.next.RetriedAt) && d.warm(v.EvaluatedAt)
}

// warm reports whether a verdict taken at t judges only this revision's
// canary traffic.
func (d *decider) warm(t time.Time) bool {
	return !d.next.CanaryStartedAt.IsZero() && !t.Before(d.next.CanaryStartedAt.Add(d.s.Policy.AnalysisWarmup))
}

// markCanaryStart records when a member of the wanted revision first
// sends the canary traffic, and before that, when every member was first
// seen on the wanted revision at canary weight 0 (QuietSince).
func (d *decider) markCanaryStart() {
	if !d.next.CanaryStartedAt.IsZero() {
		return
	}
	quiet := true
	for _, m := range d.s.Members {
		ro := m.Rollout
		if !m.Reachable || ro == nil || ro.Revision != d.s.Revision || ro.CurrentStepIndex == nil || ro.Aborted {
			quiet = false
			continue
		}
		if weightBefore(ro.Steps, *ro.CurrentStepIndex) > 0 {
			d.next.CanaryStartedAt = d.now
			return
		}
	}
	if quiet && d.next.QuietSince.IsZero() {
		d.next.QuietSince = d.now
	}
}

// failures returns an Abort decision if anything has failed.
func (d *decider) failures() (Decision, bool) {
	type cause struct {
		reason Reason
		msg    string
	}
	var causes []cause
	add := func(r Reason, format string, args ...any) {
		causes = append(causes, cause{r, fmt.Sprintf(format, args...)})
	}
	deadline := d.s.Policy.UnreachableDeadline
	for _, m := range d.s.Members {
		if !m.Reachable {
			gone := d.unreachableFor(m)
			switch {
			case gone <= deadline:
			case m.Denied != "":
				add(m.Denied, "%s refused the coordinator for %s (deadline %s): %s", m.Name, gone.Round(time.Second), deadline, m.Problem)
			default:
				add(ReasonUnreachableDeadline, "%s unreachable for %s (deadline %s)", m.Name, gone.Round(time.Second), deadline)
			}
			continue
		}
		ro := m.Rollout
		if ro != nil && ro.Revision != d.s.Revision && d.s.Policy.RevisionDeadline > 0 && !d.next.RevisionSeenAt.IsZero() {
			if late := d.now.Sub(d.next.RevisionSeenAt); late > d.s.Policy.RevisionDeadline {
				add(ReasonRevisionNotReceived, "%s did not run revision %s within %s (it runs %s): did Argo CD sync it?", m.Name, d.s.Revision, d.s.Policy.RevisionDeadline, ro.Revision)
			}
		}
		if ro == nil || ro.Revision != d.s.Revision || slices.Contains(d.next.RetryPending, m.Name) {
			continue
		}
		switch {
		case ro.Aborted:
			add(ReasonMemberAborted, "%s aborted its rollout", m.Name)
		case ro.Phase == PhaseDegraded:
			add(ReasonMemberDegraded, "%s is Degraded", m.Name)
		}
	}
	for _, m := range d.s.Members {
		if v, ok := d.s.Analysis.Members[m.Name]; ok && d.counts(v) && v.Verdict == VerdictFail {
			add(ReasonAnalysisFailed, "analysis failed for %s: %s", m.Name, verdictText(v))
		}
	}
	if g := d.s.Analysis.Global; g != nil && d.counts(*g) && g.Verdict == VerdictFail {
		add(ReasonAnalysisFailed, "global analysis failed: %s", verdictText(*g))
	}
	if len(causes) == 0 {
		return Decision{}, false
	}
	msgs := make([]string, len(causes))
	for i, c := range causes {
		msgs[i] = c.msg
	}
	return d.abort(causes[0].reason, strings.Join(msgs, "; ")), true
}

func verdictText(v AnalysisVerdict) string {
	text := string(v.Verdict)
	if v.Reason != "" {
		text += " (" + v.Reason + ")"
	}
	if v.Message != "" {
		text += ": " + v.Message
	}
	return text
}

// abort records the abort (first time only, so the original cause is kept)
// and patches every member that may still need it.
func (d *decider) abort(reason Reason, msg string) Decision {
	if !d.next.Aborted {
		d.next.Aborted = true
		d.next.AbortReason = reason
		d.next.AbortMessage = msg
		d.next.AbortedAt = d.now
		d.next.RetryPending = nil
	}
	var patches []Patch
	var done, finished []string
	for _, m := range d.s.Members {
		if !m.Reachable {
			// Its state is unknown; the patch's test makes it safe to send.
			patches = append(patches, AbortPatch(m.Name, d.s.Revision))
			continue
		}
		ro := m.Rollout
		switch {
		case ro == nil || ro.Revision != d.s.Revision:
			// Not running the revision: nothing to abort yet. If it starts
			// the revision later, the sticky abort catches it then.
		case ro.Aborted:
			done = append(done, m.Name)
		case ro.StableRevision == d.s.Revision:
			// Aborting a finished rollout cannot roll it back.
			finished = append(finished, m.Name)
		default:
			patches = append(patches, AbortPatch(m.Name, d.s.Revision))
		}
	}
	var b strings.Builder
	b.WriteString(msg)
	if len(patches) > 0 {
		names := make([]string, len(patches))
		for i, p := range patches {
			names[i] = p.Member
		}
		fmt.Fprintf(&b, "; aborting %s", strings.Join(names, ", "))
	}
	if len(done) > 0 {
		fmt.Fprintf(&b, "; already aborted: %s", strings.Join(done, ", "))
	}
	if len(finished) > 0 {
		fmt.Fprintf(&b, "; already completed, cannot be aborted: %s", strings.Join(finished, ", "))
	}
	dec := d.decision(ActionAbort, reason, NoStep, b.String())
	dec.Patches = patches
	return dec
}

// retry clears a fleet abort and asks aborted members to retry.
func (d *decider) retry() Decision {
	var patches []Patch
	var pending []string
	for _, m := range d.s.Members {
		ro := observed(m)
		if m.Reachable && (ro == nil || ro.Revision != d.s.Revision || !ro.Aborted) {
			continue
		}
		patches = append(patches, RetryPatch(m.Name, d.s.Revision))
		pending = append(pending, m.Name)
	}
	d.next = FleetStatus{
		Revision:          d.s.Revision,
		HandledRetryToken: d.next.HandledRetryToken,
		RetriedAt:         d.now,
		RetryPending:      pending,
	}
	dec := d.decision(ActionWait, ReasonRetried, NoStep, "retry requested; clearing the fleet abort")
	if len(pending) > 0 {
		dec.Message += " and retrying " + strings.Join(pending, ", ")
	}
	dec.Patches = patches
	return dec
}

// updateRetryPending drops members that have left their abort and returns
// the retry patches to re-send to the others. Members stop being excused once
// the unreachable deadline has passed since the retry, so a member that
// aborts again right away is not excused forever.
func (d *decider) updateRetryPending() []Patch {
	if len(d.next.RetryPending) == 0 {
		return nil
	}
	if d.now.Sub(d.next.RetriedAt) > d.s.Policy.UnreachableDeadline {
		d.next.RetryPending = nil
		return nil
	}
	byName := map[string]Member{}
	for _, m := range d.s.Members {
		byName[m.Name] = m
	}
	var still []string
	var patches []Patch
	for _, name := range d.next.RetryPending {
		m, ok := byName[name]
		if !ok {
			continue
		}
		if ro := observed(m); m.Reachable && (ro == nil || ro.Revision != d.s.Revision || (!ro.Aborted && ro.Phase != PhaseDegraded)) {
			continue
		}
		still = append(still, name)
		if ro := observed(m); ro == nil || ro.Aborted {
			patches = append(patches, RetryPatch(name, d.s.Revision))
		}
	}
	d.next.RetryPending = still
	return patches
}

// pausedAt reports whether the Rollout stopped at pause step `step` and is
// waiting for exactly the promotion Lockstep gives: the controller paused it
// for the canary pause step and nobody else paused it.
func pausedAt(ro *RolloutState, step int32) bool {
	return ro.CurrentStepIndex != nil && *ro.CurrentStepIndex == step &&
		ro.ControllerPause && !ro.SpecPaused && !ro.Aborted &&
		len(ro.PauseReasons) == 1 && ro.PauseReasons[0] == PauseReasonCanaryPauseStep
}

// barrier handles a fleet paused together at pause step n.
func (d *decider) barrier(n int32) Decision {
	s := d.s
	if d.next.BarrierStep == nil || *d.next.BarrierStep != n {
		d.next.BarrierStep = &n
		d.next.StepEnteredAt = d.now
		d.next.InconclusiveSince = time.Time{}
		d.next.InconclusivePaused = false
	}
	holdEnd := d.next.StepEnteredAt.Add(d.holdFor(n))

	var short, early []string
	check := func(label string, v *AnalysisVerdict) {
		switch {
		case v == nil:
			short = append(short, label+": no verdict")
		case v.Revision != s.Revision:
			short = append(short, fmt.Sprintf("%s: verdict is for revision %q", label, v.Revision))
		case v.EvaluatedAt.Before(d.next.StepEnteredAt) || v.EvaluatedAt.Before(d.next.RetriedAt):
			short = append(short, label+": no verdict since the barrier was reached")
		case v.Verdict != VerdictPass:
			short = append(short, label+": "+verdictText(*v))
		case s.Policy.MinRequests > 0 && !v.RequestsKnown:
			short = append(short, label+": request count unknown")
		case s.Policy.MinRequests > 0 && v.Requests < s.Policy.MinRequests:
			short = append(short, fmt.Sprintf("%s: %g requests, need %g", label, v.Requests, s.Policy.MinRequests))
		case v.EvaluatedAt.Before(holdEnd) || !d.warm(v.EvaluatedAt):
			early = append(early, label)
		}
	}
	// A barrier before the first setWeight (a leading pause that lines the
	// members up) sends the canary no traffic: there is nothing to judge,
	// only the hold applies.
	if d.weightAt(n) > 0 {
		check("global", s.Analysis.Global)
		for _, m := range s.Members {
			if v, ok := s.Analysis.Members[m.Name]; ok {
				check(m.Name, &v)
			} else {
				check(m.Name, nil)
			}
		}
	}

	if d.next.InconclusivePaused && len(short) > 0 {
		return d.inconclusivePaused(n, short)
	}
	var inconclusiveLeft time.Duration
	if len(short) > 0 {
		if d.next.InconclusiveSince.IsZero() {
			d.next.InconclusiveSince = d.now
		}
		if since := d.now.Sub(d.next.InconclusiveSince); since > s.Policy.InconclusiveLimit {
			msg := fmt.Sprintf("analysis at step %d short of passing for %s (limit %s): %s",
				n, since.Round(time.Second), s.Policy.InconclusiveLimit, strings.Join(short, "; "))
			if s.Policy.AbortOnInconclusive {
				return d.abort(ReasonInconclusiveLimit, msg)
			}
			d.next.InconclusivePaused = true
			return d.inconclusivePaused(n, short)
		}
		inconclusiveLeft = d.next.InconclusiveSince.Add(s.Policy.InconclusiveLimit).Sub(d.now) + time.Second
	} else {
		// Evidence that arrived later settles it: the pause (if any)
		// ends, and the barrier goes on as if it had passed in time.
		d.next.InconclusiveSince = time.Time{}
		d.next.InconclusivePaused = false
	}

	if msg := s.Policy.AwaitApproval; msg != "" && d.weightAt(n) == 0 {
		return d.decision(ActionHold, ReasonAwaitingApproval, n, fmt.Sprintf("all members paused at step %d; %s", n, msg))
	}
	if dec, wait := d.barrierApproval(n, holdEnd); wait {
		return dec
	}
	if d.now.Before(holdEnd) {
		dec := d.decision(ActionHold, ReasonHolding, n, fmt.Sprintf("all members paused at step %d; holding until %s", n, holdEnd.UTC().Format(time.RFC3339)))
		if len(short) > 0 {
			dec.Message += "; not passing yet: " + strings.Join(short, "; ")
		}
		dec.RequeueAfter = holdEnd.Sub(d.now)
		if inconclusiveLeft > 0 && inconclusiveLeft < dec.RequeueAfter {
			dec.RequeueAfter = inconclusiveLeft
		}
		return dec
	}
	if len(short) > 0 {
		dec := d.decision(ActionHold, ReasonAnalysisInconclusive, n, fmt.Sprintf("hold at step %d is over but analysis is not passing: %s", n, strings.Join(short, "; ")))
		dec.RequeueAfter = inconclusiveLeft
		return dec
	}
	if len(early) > 0 {
		return d.decision(ActionHold, ReasonAwaitingFreshAnalysis, n, fmt.Sprintf("hold at step %d is over; waiting for verdicts taken after it for: %s", n, strings.Join(early, ", ")))
	}

	patches := make([]Patch, 0, len(s.Members))
	for _, m := range s.Members {
		patches = append(patches, PromotePatch(m.Name, s.Revision, n))
	}
	d.next.LastPromotedStep = &n
	dec := d.decision(ActionPromote, ReasonBarrierPassed, n, fmt.Sprintf("all members paused at step %d, held %s, analysis passed; promoting", n, d.holdFor(n)))
	dec.Patches = patches
	return dec
}

// inconclusivePaused holds a barrier whose analysis stayed short of
// passing past the limit, at the weight it has: no timer aborts it. A
// person decides (lockstep promote, or lockstep abort); evidence that
// arrives first decides too: a failing verdict aborts (failures come
// first), every verdict passing ends the pause. Members promoted by hand
// leave the barrier, which clears it.
func (d *decider) inconclusivePaused(n int32, short []string) Decision {
	msg := fmt.Sprintf("paused at step %d: analysis stayed short of passing for longer than %s since %s; a person decides (lockstep promote, or lockstep abort), or the evidence does: %s",
		n, d.s.Policy.InconclusiveLimit, d.next.InconclusiveSince.UTC().Format(time.RFC3339), strings.Join(short, "; "))
	return d.decision(ActionHold, ReasonInconclusivePaused, n, msg)
}

// holdFor is the hold at barrier n: the policy's, and at a barrier before
// any canary traffic at least QuietHold, so the canary's first traffic
// comes after a quiet stretch the judge can count from.
func (d *decider) holdFor(n int32) time.Duration {
	h := d.s.Policy.HoldFor(n)
	if d.weightAt(n) == 0 {
		h = max(h, d.s.Policy.QuietHold)
	}
	return h
}

// weightAt is the canary weight in force at step n (step lists are
// identical across members by now).
func (d *decider) weightAt(n int32) int32 {
	for _, m := range d.s.Members {
		if m.Rollout != nil {
			return weightBefore(m.Rollout.Steps, n)
		}
	}
	return 0
}

// weightBefore is the weight of the last setWeight before step n.
func weightBefore(steps []Step, n int32) int32 {
	var w int32
	for i, st := range steps {
		if int32(i) >= n {
			break
		}
		if st.Kind == StepSetWeight {
			w = st.Weight
		}
	}
	return w
}

// barrierApproval holds a named barrier (Policy.ApprovalBarriers) whose
// hold is over until a person approved it for the revision, and records
// the approval once it is there.
func (d *decider) barrierApproval(n int32, holdEnd time.Time) (Decision, bool) {
	name, ok := d.s.Policy.ApprovalBarriers[n]
	if !ok || d.now.Before(holdEnd) {
		return Decision{}, false
	}
	a, approved := barrierApproval(d.s, name)
	if !approved {
		return d.decision(ActionHold, ReasonAwaitingApproval, n, fmt.Sprintf("all members paused at step %d; barrier %s of revision %s needs a person's approval (lockstep approve --barrier %s)", n, name, d.s.Revision, name)), true
	}
	d.next.Approvals = recordApproval(d.next.Approvals, a, d.now)
	return Decision{}, false
}
