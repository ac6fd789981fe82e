package decide

import (
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	rev    = "rev-new"
	oldRev = "rev-old"
)

var (
	t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	// Indices: 0 setWeight 20, 1 pause, 2 setWeight 50, 3 pause,
	// 4 setWeight 80, 5 pause.
	guideSteps = []Step{SetWeight(20), Pause(), SetWeight(50), Pause(), SetWeight(80), Pause()}
)

func at(d time.Duration) time.Time { return t0.Add(d) }

func step(i int32) *int32 { return &i }

// inconclusivePaused is a fleet paused for a person at barrier 3.
func inconclusivePaused() FleetStatus {
	f := atBarrier()
	f.InconclusiveSince, f.InconclusivePaused = at(time.Minute), true
	return f
}

func policy() Policy {
	return Policy{
		DefaultHold:         5 * time.Minute,
		UnreachableDeadline: 2 * time.Minute,
		InconclusiveLimit:   10 * time.Minute,
	}
}

// paused is a member stopped by Argo at pause step i of rev.
func paused(name string, i int32) Member {
	return Member{Name: name, Reachable: true, Rollout: &RolloutState{
		Generation: 2, ObservedGeneration: 2,
		Revision: rev, StableRevision: oldRev,
		CurrentStepIndex: step(i), Steps: guideSteps,
		ControllerPause: true, PauseReasons: []string{PauseReasonCanaryPauseStep},
		Phase: PhasePaused,
	}}
}

// moving is a member at step i of rev that is not paused.
func moving(name string, i int32) Member {
	return Member{Name: name, Reachable: true, Rollout: &RolloutState{
		Generation: 2, ObservedGeneration: 2,
		Revision: rev, StableRevision: oldRev,
		CurrentStepIndex: step(i), Steps: guideSteps,
		Phase: PhaseProgressing,
	}}
}

func completed(name string) Member {
	return Member{Name: name, Reachable: true, Rollout: &RolloutState{
		Generation: 2, ObservedGeneration: 2,
		Revision: rev, StableRevision: rev,
		CurrentStepIndex: step(int32(len(guideSteps))), Steps: guideSteps,
		Phase: PhaseHealthy,
	}}
}

func unreachable(name string, since time.Time) Member {
	m := paused(name, 3)
	m.Reachable = false
	m.UnreachableSince = since
	return m
}

// denied marks an unreachable member as refusing the coordinator.
func denied(m Member, why Reason, problem string) Member {
	m.Denied, m.Problem = why, problem
	return m
}

// with returns m after applying f to a copy of its Rollout.
func with(m Member, f func(*RolloutState)) Member {
	ro := *m.Rollout
	f(&ro)
	m.Rollout = &ro
	return m
}

func verdict(v Verdict, evaluated time.Time) AnalysisVerdict {
	return AnalysisVerdict{Verdict: v, Reason: "Test", Message: "test verdict", Revision: rev, EvaluatedAt: evaluated, Requests: 500, RequestsKnown: true}
}

// analysisAll gives every named member and the global scope verdict v.
func analysisAll(v AnalysisVerdict, names ...string) Analysis {
	g := v
	a := Analysis{Global: &g, Members: map[string]AnalysisVerdict{}}
	for _, n := range names {
		a.Members[n] = v
	}
	return a
}

// atBarrier is the fleet state once step 3 was first seen paused at t0.
func atBarrier() FleetStatus {
	return FleetStatus{Revision: rev, BarrierStep: step(3), StepEnteredAt: t0, LastPromotedStep: step(1), CanaryStartedAt: t0.Add(-time.Hour)}
}

func abortedFleet() FleetStatus {
	f := atBarrier()
	f.Aborted, f.AbortReason, f.AbortMessage, f.AbortedAt = true, ReasonAnalysisFailed, "analysis failed for b", at(time.Minute)
	return f
}

// patchSummary renders patches as "kind:member" for comparison.
func patchSummary(ps []Patch) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p.Kind) + ":" + p.Member
	}
	return out
}

func TestDecide(t *testing.T) {
	t.Parallel()
	pass := func(evaluated time.Time) Analysis { return analysisAll(verdict(VerdictPass, evaluated), "a", "b") }

	tests := []struct {
		name        string
		snap        Snapshot
		now         time.Time
		wantAction  Action
		wantReason  Reason
		wantStep    int32
		wantPatches []string
		wantMsg     string // substring of Message, when set
		check       func(t *testing.T, d Decision)
	}{
		// Input the rules cannot judge.
		{
			name:       "no wanted revision",
			snap:       Snapshot{Members: []Member{paused("a", 3)}, Policy: policy()},
			now:        t0,
			wantAction: ActionRefuse, wantReason: ReasonInvalidSnapshot, wantStep: NoStep,
		},
		{
			name:       "no members",
			snap:       Snapshot{Revision: rev, Policy: policy()},
			now:        t0,
			wantAction: ActionRefuse, wantReason: ReasonInvalidSnapshot, wantStep: NoStep,
		},
		{
			name:       "duplicate member",
			snap:       Snapshot{Revision: rev, Members: []Member{paused("a", 3), paused("a", 3)}, Policy: policy()},
			now:        t0,
			wantAction: ActionRefuse, wantReason: ReasonInvalidSnapshot, wantStep: NoStep, wantMsg: "a is listed twice",
		},
		{
			name:       "zero inconclusive limit is refused, not read as abort-at-once",
			snap:       Snapshot{Revision: rev, Members: []Member{paused("a", 3)}, Policy: Policy{UnreachableDeadline: time.Minute}},
			now:        t0,
			wantAction: ActionRefuse, wantReason: ReasonInvalidPolicy, wantStep: NoStep, wantMsg: "inconclusive limit",
		},

		// Steps that cannot be coordinated.
		{
			name: "step lists differ",
			snap: Snapshot{Revision: rev, Policy: policy(), Members: []Member{
				paused("a", 3),
				with(paused("b", 3), func(r *RolloutState) {
					r.Steps = []Step{SetWeight(20), Pause(), SetWeight(40), Pause(), SetWeight(80), Pause()}
				}),
			}},
			now:        t0,
			wantAction: ActionRefuse, wantReason: ReasonStepsNotCoordinable, wantStep: NoStep, wantMsg: "steps of b differ from a: step 2",
		},
		{
			name: "timed pause",
			snap: Snapshot{Revision: rev, Policy: policy(), Members: []Member{
				with(paused("a", 3), func(r *RolloutState) {
					r.Steps = []Step{SetWeight(20), TimedPause("1m"), SetWeight(50), Pause(), SetWeight(80), Pause()}
				}),
				with(paused("b", 3), func(r *RolloutState) {
					r.Steps = []Step{SetWeight(20), TimedPause("1m"), SetWeight(50), Pause(), SetWeight(80), Pause()}
				}),
			}},
			now:        t0,
			wantAction: ActionRefuse, wantReason: ReasonStepsNotCoordinable, wantStep: NoStep, wantMsg: "timed pause",
		},
		{
			name: "member still on the old revision with old steps is waited for, not refused",
			snap: Snapshot{Revision: rev, Policy: policy(), Members: []Member{
				paused("a", 1),
				with(completed("b"), func(r *RolloutState) {
					r.Revision, r.StableRevision, r.Steps = oldRev, oldRev, []Step{SetWeight(50), Pause()}
				}),
			}},
			now:        t0,
			wantAction: ActionWait, wantReason: ReasonRevisionPending, wantStep: NoStep, wantMsg: `b (at "rev-old")`,
		},

		// Reachability.
		{
			name:       "unreachable within deadline waits",
			snap:       Snapshot{Revision: rev, Policy: policy(), Fleet: atBarrier(), Analysis: pass(at(6 * time.Minute)), Members: []Member{paused("a", 3), unreachable("b", at(5*time.Minute))}},
			now:        at(6 * time.Minute),
			wantAction: ActionWait, wantReason: ReasonMemberUnreachable, wantStep: NoStep, wantMsg: "b",
			check: func(t *testing.T, d Decision) {
				if d.RequeueAfter != time.Minute+time.Second {
					t.Errorf("RequeueAfter = %s, want just past the remaining minute", d.RequeueAfter)
				}
				if d.Next.Aborted {
					t.Error("aborted within the deadline")
				}
			},
		},
		{
			name:       "unreachable with no recorded start counts from now",
			snap:       Snapshot{Revision: rev, Policy: policy(), Fleet: atBarrier(), Members: []Member{paused("a", 3), unreachable("b", time.Time{})}},
			now:        at(time.Hour),
			wantAction: ActionWait, wantReason: ReasonMemberUnreachable, wantStep: NoStep,
			check: func(t *testing.T, d Decision) {
				if d.RequeueAfter != 2*time.Minute+time.Second {
					t.Errorf("RequeueAfter = %s, want the whole deadline", d.RequeueAfter)
				}
			},
		},
		{
			name:       "unreachable exactly at the deadline still waits",
			snap:       Snapshot{Revision: rev, Policy: policy(), Fleet: atBarrier(), Members: []Member{paused("a", 3), unreachable("b", at(4*time.Minute))}},
			now:        at(6 * time.Minute),
			wantAction: ActionWait, wantReason: ReasonMemberUnreachable, wantStep: NoStep,
		},
		{
			name:        "unreachable past deadline aborts everyone, including the unreachable member",
			snap:        Snapshot{Revision: rev, Policy: policy(), Fleet: atBarrier(), Members: []Member{paused("a", 3), unreachable("b", at(3*time.Minute))}},
			now:         at(6 * time.Minute),
			wantAction:  ActionAbort,
			wantReason:  ReasonUnreachableDeadline,
			wantStep:    NoStep,
			wantPatches: []string{"Abort:a", "Abort:b"},
			check: func(t *testing.T, d Decision) {
				if !d.Next.Aborted || d.Next.AbortReason != ReasonUnreachableDeadline || !d.Next.AbortedAt.Equal(at(6*time.Minute)) {
					t.Errorf("Next = %+v, want abort recorded", d.Next)
				}
			},
		},
		{
			name: "a member that refuses the coordinator waits, named with the verb, ahead of outages",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: atBarrier(), Members: []Member{paused("a", 3),
				denied(unreachable("b", at(5*time.Minute)), ReasonForbidden, "get rollouts.argoproj.io hw/hw"), unreachable("c", at(5*time.Minute))}},
			now:        at(6 * time.Minute),
			wantAction: ActionWait, wantReason: ReasonForbidden, wantStep: NoStep, wantMsg: "b (Forbidden: get rollouts.argoproj.io hw/hw)",
			check: func(t *testing.T, d Decision) {
				if d.Next.Aborted || len(d.Patches) > 0 {
					t.Errorf("acted within the deadline: %+v", d)
				}
			},
		},
		{
			name: "a refusal past the deadline aborts everyone with its own reason",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: atBarrier(), Members: []Member{paused("a", 3),
				denied(unreachable("b", at(3*time.Minute)), ReasonUnauthorized, "GET /readyz: Unauthorized")}},
			now:         at(6 * time.Minute),
			wantAction:  ActionAbort,
			wantReason:  ReasonUnauthorized,
			wantStep:    NoStep,
			wantMsg:     "b refused the coordinator for 3m0s (deadline 2m0s): GET /readyz: Unauthorized",
			wantPatches: []string{"Abort:a", "Abort:b"},
			check: func(t *testing.T, d Decision) {
				if !d.Next.Aborted || d.Next.AbortReason != ReasonUnauthorized {
					t.Errorf("Next = %+v, want an Unauthorized abort", d.Next)
				}
			},
		},
		{
			name: "a member that never receives the new revision stops the release after the deadline, named",
			snap: Snapshot{Revision: rev, Policy: func() Policy { p := policy(); p.RevisionDeadline = 5 * time.Minute; return p }(),
				Fleet:   FleetStatus{Revision: rev, RevisionSeenAt: t0, BarrierStep: step(1), StepEnteredAt: t0, CanaryStartedAt: t0},
				Members: []Member{paused("a", 1), with(paused("b", 3), func(ro *RolloutState) { ro.Revision = "rev-older" })}},
			now:         at(6 * time.Minute),
			wantAction:  ActionAbort,
			wantReason:  ReasonRevisionNotReceived,
			wantStep:    NoStep,
			wantMsg:     "b did not run revision rev-new within 5m0s (it runs rev-older)",
			wantPatches: []string{"Abort:a"},
		},
		{
			name: "within the new-revision deadline a member still on another revision is waited for",
			snap: Snapshot{Revision: rev, Policy: func() Policy { p := policy(); p.RevisionDeadline = 5 * time.Minute; return p }(),
				Fleet:   FleetStatus{Revision: rev, RevisionSeenAt: t0},
				Members: []Member{paused("a", 1), with(paused("b", 3), func(ro *RolloutState) { ro.Revision = "rev-older" })}},
			now:        at(4 * time.Minute),
			wantAction: ActionWait, wantReason: ReasonRevisionPending, wantStep: NoStep, wantMsg: `b (at "rev-older")`,
		},
		{
			name: "a new revision records when it was first wanted",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: FleetStatus{Revision: oldRev, Completed: true},
				Members: []Member{paused("a", 1)}},
			now:        at(time.Minute),
			wantAction: ActionHold, wantReason: ReasonHolding, wantStep: 1,
			check: func(t *testing.T, d Decision) {
				if !d.Next.RevisionSeenAt.Equal(at(time.Minute)) {
					t.Errorf("RevisionSeenAt = %s", d.Next.RevisionSeenAt)
				}
			},
		},
		{
			name:       "reachable member without Rollout waits",
			snap:       Snapshot{Revision: rev, Policy: policy(), Members: []Member{paused("a", 3), {Name: "b", Reachable: true}}},
			now:        t0,
			wantAction: ActionWait, wantReason: ReasonRolloutMissing, wantStep: NoStep,
		},
		{
			name: "status behind spec waits",
			snap: Snapshot{Revision: rev, Policy: policy(), Members: []Member{
				paused("a", 3), with(paused("b", 3), func(r *RolloutState) { r.Generation = 3 }),
			}},
			now:        t0,
			wantAction: ActionWait, wantReason: ReasonStatusStale, wantStep: NoStep,
		},
		{
			name: "missing step index waits",
			snap: Snapshot{Revision: rev, Policy: policy(), Members: []Member{
				paused("a", 3), with(moving("b", 0), func(r *RolloutState) { r.CurrentStepIndex = nil }),
			}},
			now:        t0,
			wantAction: ActionWait, wantReason: ReasonStatusStale, wantStep: NoStep, wantMsg: "currentStepIndex",
		},

		// Failures abort.
		{
			name: "member aborted on its own",
			snap: Snapshot{Revision: rev, Policy: policy(), Members: []Member{
				paused("a", 3), with(moving("b", 3), func(r *RolloutState) { r.Aborted, r.Phase = true, PhaseDegraded }),
			}},
			now:         t0,
			wantAction:  ActionAbort,
			wantReason:  ReasonMemberAborted,
			wantStep:    NoStep,
			wantPatches: []string{"Abort:a"},
			wantMsg:     "already aborted: b",
		},
		{
			name: "member Degraded",
			snap: Snapshot{Revision: rev, Policy: policy(), Members: []Member{
				paused("a", 3), with(moving("b", 2), func(r *RolloutState) { r.Phase = PhaseDegraded }),
			}},
			now:         t0,
			wantAction:  ActionAbort,
			wantReason:  ReasonMemberDegraded,
			wantStep:    NoStep,
			wantPatches: []string{"Abort:a", "Abort:b"},
		},
		{
			name: "member analysis fails before the barrier",
			snap: Snapshot{Revision: rev, Policy: policy(), Members: []Member{paused("a", 3), moving("b", 2)},
				Analysis: Analysis{Members: map[string]AnalysisVerdict{"b": verdict(VerdictFail, t0)}}},
			now:         t0,
			wantAction:  ActionAbort,
			wantReason:  ReasonAnalysisFailed,
			wantStep:    NoStep,
			wantPatches: []string{"Abort:a", "Abort:b"},
			wantMsg:     "analysis failed for b",
		},
		{
			name: "global analysis fails while members pass",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: atBarrier(), Members: []Member{paused("a", 3), paused("b", 3)},
				Analysis: func() Analysis {
					a := pass(at(6 * time.Minute))
					g := verdict(VerdictFail, at(6*time.Minute))
					a.Global = &g
					return a
				}()},
			now:         at(6 * time.Minute),
			wantAction:  ActionAbort,
			wantReason:  ReasonAnalysisFailed,
			wantStep:    NoStep,
			wantPatches: []string{"Abort:a", "Abort:b"},
			wantMsg:     "global analysis failed",
		},
		{
			name: "a failure about another revision is ignored",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: atBarrier(), Members: []Member{paused("a", 3), paused("b", 3)},
				Analysis: func() Analysis {
					a := pass(at(6 * time.Minute))
					old := verdict(VerdictFail, at(6*time.Minute))
					old.Revision = oldRev
					a.Global = &old
					return a
				}()},
			now:        at(6 * time.Minute),
			wantAction: ActionHold, wantReason: ReasonAnalysisInconclusive, wantStep: 3, wantMsg: `global: verdict is for revision "rev-old"`,
		},

		// Sticky abort and retry.
		{
			name: "aborted fleet stays aborted even when everything passes",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: abortedFleet(), Analysis: pass(at(9 * time.Minute)), Members: []Member{
				with(paused("a", 3), func(r *RolloutState) { r.Aborted = true }), paused("b", 3),
			}},
			now:         at(10 * time.Minute),
			wantAction:  ActionAbort,
			wantReason:  ReasonFleetAborted,
			wantStep:    NoStep,
			wantPatches: []string{"Abort:b"},
			wantMsg:     "analysis failed for b",
			check: func(t *testing.T, d Decision) {
				if d.Next.AbortReason != ReasonAnalysisFailed || !d.Next.AbortedAt.Equal(at(time.Minute)) {
					t.Errorf("original abort cause lost: %+v", d.Next)
				}
			},
		},
		{
			name: "aborted fleet does not try to abort a member that already completed",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: abortedFleet(), Members: []Member{
				with(paused("a", 3), func(r *RolloutState) { r.Aborted = true }), completed("b"),
			}},
			now:        at(10 * time.Minute),
			wantAction: ActionAbort, wantReason: ReasonFleetAborted, wantStep: NoStep,
			wantMsg: "already completed, cannot be aborted: b",
		},
		{
			name: "an already handled retry token does not clear the abort",
			snap: Snapshot{Revision: rev, Policy: policy(), RetryToken: "r1", Fleet: func() FleetStatus {
				f := abortedFleet()
				f.HandledRetryToken = "r1"
				return f
			}(), Members: []Member{paused("a", 3), paused("b", 3)}},
			now:         at(10 * time.Minute),
			wantAction:  ActionAbort,
			wantReason:  ReasonFleetAborted,
			wantStep:    NoStep,
			wantPatches: []string{"Abort:a", "Abort:b"},
		},
		{
			name: "new retry token clears the abort and retries aborted members",
			snap: Snapshot{Revision: rev, Policy: policy(), RetryToken: "r2", Fleet: abortedFleet(), Members: []Member{
				with(paused("a", 3), func(r *RolloutState) { r.Aborted, r.Phase = true, PhaseDegraded }),
				with(paused("b", 3), func(r *RolloutState) { r.Aborted, r.Phase = true, PhaseDegraded }),
			}},
			now:         at(10 * time.Minute),
			wantAction:  ActionWait,
			wantReason:  ReasonRetried,
			wantStep:    NoStep,
			wantPatches: []string{"Retry:a", "Retry:b"},
			check: func(t *testing.T, d Decision) {
				n := d.Next
				if n.Aborted || n.LastPromotedStep != nil || n.BarrierStep != nil || n.HandledRetryToken != "r2" ||
					!n.RetriedAt.Equal(at(10*time.Minute)) || !slices.Equal(n.RetryPending, []string{"a", "b"}) {
					t.Errorf("Next = %+v, want a fresh fleet with retry recorded", n)
				}
			},
		},
		{
			name: "retried member still shown aborted (stale cache) is retried again, not a new abort",
			snap: Snapshot{Revision: rev, Policy: policy(),
				Fleet: FleetStatus{Revision: rev, HandledRetryToken: "r2", RetriedAt: at(10 * time.Minute), RetryPending: []string{"a", "b"}},
				// The failure that caused the abort is older than the retry.
				Analysis: analysisAll(verdict(VerdictFail, at(9*time.Minute)), "a", "b"),
				Members: []Member{
					with(paused("a", 3), func(r *RolloutState) { r.Aborted, r.Phase = true, PhaseDegraded }),
					with(moving("b", 0), func(r *RolloutState) { r.Phase = PhaseDegraded }),
				}},
			now:         at(10*time.Minute + 5*time.Second),
			wantAction:  ActionWait,
			wantReason:  ReasonRetried,
			wantStep:    NoStep,
			wantPatches: []string{"Retry:a"},
			check: func(t *testing.T, d Decision) {
				if d.Next.Aborted || !slices.Equal(d.Next.RetryPending, []string{"a", "b"}) {
					t.Errorf("Next = %+v", d.Next)
				}
			},
		},
		{
			name: "retried members that left the abort are no longer excused",
			snap: Snapshot{Revision: rev, Policy: policy(),
				Fleet: FleetStatus{Revision: rev, HandledRetryToken: "r2", RetriedAt: at(10 * time.Minute), RetryPending: []string{"a"}},
				Members: []Member{
					moving("a", 0),
					moving("b", 0),
				}},
			now:        at(11 * time.Minute),
			wantAction: ActionWait, wantReason: ReasonProgressing, wantStep: NoStep,
			check: func(t *testing.T, d Decision) {
				if len(d.Next.RetryPending) != 0 {
					t.Errorf("RetryPending = %v, want empty", d.Next.RetryPending)
				}
			},
		},
		{
			name: "a member still aborted long after the retry aborts the fleet again",
			snap: Snapshot{Revision: rev, Policy: policy(),
				Fleet: FleetStatus{Revision: rev, HandledRetryToken: "r2", RetriedAt: at(10 * time.Minute), RetryPending: []string{"a"}},
				Members: []Member{
					with(paused("a", 3), func(r *RolloutState) { r.Aborted = true }),
					moving("b", 0),
				}},
			now:         at(13 * time.Minute),
			wantAction:  ActionAbort,
			wantReason:  ReasonMemberAborted,
			wantStep:    NoStep,
			wantPatches: []string{"Abort:b"},
		},
		{
			name: "a new revision ends the abort",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: func() FleetStatus {
				f := abortedFleet()
				f.Revision = oldRev
				return f
			}(), Members: []Member{moving("a", 0), moving("b", 0)}},
			now:        at(10 * time.Minute),
			wantAction: ActionWait, wantReason: ReasonProgressing, wantStep: NoStep,
			check: func(t *testing.T, d Decision) {
				if d.Next.Aborted || d.Next.Revision != rev || d.Next.LastPromotedStep != nil {
					t.Errorf("Next = %+v, want a fresh fleet for %s", d.Next, rev)
				}
			},
		},

		// A new revision in the middle of a canary.
		{
			name: "new revision during progress is refused by default and the old state kept",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: func() FleetStatus {
				f := atBarrier()
				f.Revision = oldRev
				return f
			}(), Members: []Member{moving("a", 0), moving("b", 0)}},
			now:        t0,
			wantAction: ActionRefuse, wantReason: ReasonRevisionChanged, wantStep: NoStep,
			check: func(t *testing.T, d Decision) {
				if d.Next.Revision != oldRev || d.Next.LastPromotedStep == nil {
					t.Errorf("Next = %+v, want the old fleet state kept", d.Next)
				}
			},
		},
		{
			name: "new revision during progress is followed when the policy allows it",
			snap: Snapshot{Revision: rev, Policy: func() Policy { p := policy(); p.AllowNewRevisionDuringProgress = true; return p }(),
				Fleet:   func() FleetStatus { f := atBarrier(); f.Revision = oldRev; return f }(),
				Members: []Member{moving("a", 0), moving("b", 0)}},
			now:        t0,
			wantAction: ActionWait, wantReason: ReasonProgressing, wantStep: NoStep,
			check: func(t *testing.T, d Decision) {
				if d.Next.Revision != rev || d.Next.LastPromotedStep != nil || d.Next.BarrierStep != nil {
					t.Errorf("Next = %+v, want reset to %s", d.Next, rev)
				}
			},
		},
		{
			name: "a retry token accepts a new revision during progress",
			snap: Snapshot{Revision: rev, Policy: policy(), RetryToken: "accept",
				Fleet:   func() FleetStatus { f := atBarrier(); f.Revision = oldRev; return f }(),
				Members: []Member{moving("a", 0), moving("b", 0)}},
			now:        t0,
			wantAction: ActionWait, wantReason: ReasonProgressing, wantStep: NoStep,
			check: func(t *testing.T, d Decision) {
				if d.Next.Revision != rev || d.Next.HandledRetryToken != "accept" {
					t.Errorf("Next = %+v", d.Next)
				}
			},
		},

		// Skew and progress.
		{
			name:       "skew: one member at step 2, the other paused at step 3",
			snap:       Snapshot{Revision: rev, Policy: policy(), Fleet: FleetStatus{Revision: rev, LastPromotedStep: step(1)}, Analysis: pass(t0), Members: []Member{moving("a", 2), paused("b", 3)}},
			now:        t0,
			wantAction: ActionWait, wantReason: ReasonStepSkew, wantStep: NoStep, wantMsg: "a at 2, b at 3",
		},
		{
			name:       "skew: both paused at different pause steps, the one ahead is not promoted",
			snap:       Snapshot{Revision: rev, Policy: policy(), Analysis: pass(t0), Members: []Member{paused("a", 1), paused("b", 3)}},
			now:        t0,
			wantAction: ActionWait, wantReason: ReasonStepSkew, wantStep: NoStep,
		},
		{
			name:       "all at a setWeight step",
			snap:       Snapshot{Revision: rev, Policy: policy(), Members: []Member{moving("a", 2), moving("b", 2)}},
			now:        t0,
			wantAction: ActionWait, wantReason: ReasonProgressing, wantStep: NoStep, wantMsg: "setWeight: 50",
		},
		{
			name:       "one member at the pause step but not paused yet",
			snap:       Snapshot{Revision: rev, Policy: policy(), Members: []Member{paused("a", 3), moving("b", 3)}},
			now:        t0,
			wantAction: ActionWait, wantReason: ReasonProgressing, wantStep: NoStep, wantMsg: "waiting for b to pause at step 3",
		},
		{
			name: "member paused by a human",
			snap: Snapshot{Revision: rev, Policy: policy(), Members: []Member{
				paused("a", 3), with(paused("b", 3), func(r *RolloutState) { r.SpecPaused = true }),
			}},
			now:        t0,
			wantAction: ActionWait, wantReason: ReasonPausedOtherwise, wantStep: NoStep,
		},
		{
			name: "member paused for an inconclusive Argo analysis",
			snap: Snapshot{Revision: rev, Policy: policy(), Members: []Member{
				paused("a", 3), with(paused("b", 3), func(r *RolloutState) { r.PauseReasons = []string{"InconclusiveAnalysis"} }),
			}},
			now:        t0,
			wantAction: ActionWait, wantReason: ReasonPausedOtherwise, wantStep: NoStep,
		},

		// The barrier, hold and promotion.
		{
			name:       "barrier reached for the first time starts the hold",
			snap:       Snapshot{Revision: rev, Policy: policy(), Fleet: FleetStatus{Revision: rev, LastPromotedStep: step(1), BarrierStep: step(1), StepEnteredAt: at(-time.Hour)}, Members: []Member{paused("a", 3), paused("b", 3)}},
			now:        t0,
			wantAction: ActionHold, wantReason: ReasonHolding, wantStep: 3,
			check: func(t *testing.T, d Decision) {
				n := d.Next
				if n.BarrierStep == nil || *n.BarrierStep != 3 || !n.StepEnteredAt.Equal(t0) || !n.InconclusiveSince.Equal(t0) {
					t.Errorf("Next = %+v, want barrier 3 entered and inconclusive since t0", n)
				}
				if d.RequeueAfter != 5*time.Minute {
					t.Errorf("RequeueAfter = %s, want the hold time", d.RequeueAfter)
				}
			},
		},
		{
			name:       "passing analysis during the hold keeps holding",
			snap:       Snapshot{Revision: rev, Policy: policy(), Fleet: atBarrier(), Analysis: pass(at(2 * time.Minute)), Members: []Member{paused("a", 3), paused("b", 3)}},
			now:        at(2 * time.Minute),
			wantAction: ActionHold, wantReason: ReasonHolding, wantStep: 3,
			check: func(t *testing.T, d Decision) {
				if d.RequeueAfter != 3*time.Minute {
					t.Errorf("RequeueAfter = %s, want the rest of the hold", d.RequeueAfter)
				}
			},
		},
		{
			name:        "hold over and fresh passes promote every member",
			snap:        Snapshot{Revision: rev, Policy: policy(), Fleet: atBarrier(), Analysis: pass(at(5 * time.Minute)), Members: []Member{paused("a", 3), paused("b", 3)}},
			now:         at(5*time.Minute + time.Second),
			wantAction:  ActionPromote,
			wantReason:  ReasonBarrierPassed,
			wantStep:    3,
			wantPatches: []string{"Promote:a", "Promote:b"},
			check: func(t *testing.T, d Decision) {
				if d.Next.LastPromotedStep == nil || *d.Next.LastPromotedStep != 3 {
					t.Errorf("LastPromotedStep = %v, want 3", d.Next.LastPromotedStep)
				}
				want := string(PromotePatch("a", rev, 3).Body)
				if got := string(d.Patches[0].Body); got != want {
					t.Errorf("patch body = %s, want %s", got, want)
				}
			},
		},
		{
			name: "a leading pause before any weight needs only the hold, no verdict",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: func() FleetStatus { f := atBarrier(); f.BarrierStep, f.LastPromotedStep = step(0), nil; return f }(),
				Members: []Member{
					with(paused("a", 0), func(r *RolloutState) { r.Steps = append([]Step{Pause()}, guideSteps...) }),
					with(paused("b", 0), func(r *RolloutState) { r.Steps = append([]Step{Pause()}, guideSteps...) }),
				}},
			now:         at(5*time.Minute + time.Second),
			wantAction:  ActionPromote,
			wantReason:  ReasonBarrierPassed,
			wantStep:    0,
			wantPatches: []string{"Promote:a", "Promote:b"},
		},
		{
			name: "a leading pause holds at least the quiet hold, and records the quiet stretch",
			snap: Snapshot{Revision: rev, Policy: func() Policy { p := policy(); p.DefaultHold, p.QuietHold = time.Second, 7*time.Second; return p }(),
				Fleet: func() FleetStatus {
					f := atBarrier()
					f.BarrierStep, f.LastPromotedStep, f.CanaryStartedAt = step(0), nil, time.Time{}
					return f
				}(),
				Members: []Member{
					with(paused("a", 0), func(r *RolloutState) { r.Steps = append([]Step{Pause()}, guideSteps...) }),
					with(paused("b", 0), func(r *RolloutState) { r.Steps = append([]Step{Pause()}, guideSteps...) }),
				}},
			now:        at(5 * time.Second),
			wantAction: ActionHold, wantReason: ReasonHolding, wantStep: 0,
			check: func(t *testing.T, d Decision) {
				if !d.Next.QuietSince.Equal(at(5*time.Second)) || !d.Next.CanaryStartedAt.IsZero() {
					t.Errorf("quiet since %s, canary started %s; want quiet from now, no canary yet", d.Next.QuietSince, d.Next.CanaryStartedAt)
				}
				if d.RequeueAfter != 2*time.Second {
					t.Errorf("requeue after %s, want the 7 s quiet hold's end", d.RequeueAfter)
				}
			},
		},
		{
			name: "the quiet stretch is not started while a member still runs another revision",
			snap: Snapshot{Revision: rev, Policy: policy(),
				Fleet: FleetStatus{Revision: rev, RevisionSeenAt: at(0)},
				Members: []Member{
					with(paused("a", 0), func(r *RolloutState) { r.Steps = append([]Step{Pause()}, guideSteps...) }),
					with(paused("b", 3), func(r *RolloutState) { r.Revision = oldRev }),
				}},
			now:        at(5 * time.Second),
			wantAction: ActionWait, wantReason: ReasonRevisionPending, wantStep: NoStep,
			check: func(t *testing.T, d Decision) {
				if !d.Next.QuietSince.IsZero() {
					t.Errorf("quiet since %s while b may still serve the old canary", d.Next.QuietSince)
				}
			},
		},
		{
			name: "after the first weight the same barrier without verdicts holds",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: func() FleetStatus { f := atBarrier(); f.BarrierStep = step(2); return f }(),
				Members: []Member{
					with(paused("a", 2), func(r *RolloutState) { r.Steps = append([]Step{Pause()}, guideSteps...) }),
					with(paused("b", 2), func(r *RolloutState) { r.Steps = append([]Step{Pause()}, guideSteps...) }),
				}},
			now:        at(5*time.Minute + time.Second),
			wantAction: ActionHold, wantReason: ReasonAnalysisInconclusive, wantStep: 2,
		},
		{
			name: "per-step hold time",
			snap: Snapshot{Revision: rev, Fleet: atBarrier(), Analysis: pass(at(time.Minute)), Members: []Member{paused("a", 3), paused("b", 3)},
				Policy: func() Policy { p := policy(); p.StepHold = map[int32]time.Duration{3: time.Minute}; return p }()},
			now:         at(time.Minute),
			wantAction:  ActionPromote,
			wantReason:  ReasonBarrierPassed,
			wantStep:    3,
			wantPatches: []string{"Promote:a", "Promote:b"},
		},
		{
			name:       "hold over but the passes were taken during the hold",
			snap:       Snapshot{Revision: rev, Policy: policy(), Fleet: atBarrier(), Analysis: pass(at(4 * time.Minute)), Members: []Member{paused("a", 3), paused("b", 3)}},
			now:        at(6 * time.Minute),
			wantAction: ActionHold, wantReason: ReasonAwaitingFreshAnalysis, wantStep: 3,
			check: func(t *testing.T, d Decision) {
				if !d.Next.InconclusiveSince.IsZero() {
					t.Errorf("InconclusiveSince = %s, want cleared while verdicts pass", d.Next.InconclusiveSince)
				}
			},
		},
		{
			name:       "a pass from before the barrier counts as missing",
			snap:       Snapshot{Revision: rev, Policy: policy(), Fleet: atBarrier(), Analysis: pass(at(-time.Second)), Members: []Member{paused("a", 3), paused("b", 3)}},
			now:        at(6 * time.Minute),
			wantAction: ActionHold, wantReason: ReasonAnalysisInconclusive, wantStep: 3, wantMsg: "no verdict since the barrier",
		},
		{
			name: "missing member verdict is never a pass",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: atBarrier(), Members: []Member{paused("a", 3), paused("b", 3)},
				Analysis: analysisAll(verdict(VerdictPass, at(6*time.Minute)), "a")},
			now:        at(6 * time.Minute),
			wantAction: ActionHold, wantReason: ReasonAnalysisInconclusive, wantStep: 3, wantMsg: "b: no verdict",
		},
		{
			name: "missing global verdict is never a pass",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: atBarrier(), Members: []Member{paused("a", 3), paused("b", 3)},
				Analysis: Analysis{Members: pass(at(6 * time.Minute)).Members}},
			now:        at(6 * time.Minute),
			wantAction: ActionHold, wantReason: ReasonAnalysisInconclusive, wantStep: 3, wantMsg: "global: no verdict",
		},
		{
			name: "unknown verdict string is not a pass",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: atBarrier(), Members: []Member{paused("a", 3), paused("b", 3)},
				Analysis: analysisAll(verdict("Passed", at(6*time.Minute)), "a", "b")},
			now:        at(6 * time.Minute),
			wantAction: ActionHold, wantReason: ReasonAnalysisInconclusive, wantStep: 3,
		},
		{
			name: "inconclusive within the limit holds and starts the clock",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: atBarrier(), Members: []Member{paused("a", 3), paused("b", 3)},
				Analysis: analysisAll(verdict(VerdictInconclusive, at(6*time.Minute)), "a", "b")},
			now:        at(6 * time.Minute),
			wantAction: ActionHold, wantReason: ReasonAnalysisInconclusive, wantStep: 3,
			check: func(t *testing.T, d Decision) {
				if !d.Next.InconclusiveSince.Equal(at(6 * time.Minute)) {
					t.Errorf("InconclusiveSince = %s, want now", d.Next.InconclusiveSince)
				}
				if d.RequeueAfter != 10*time.Minute+time.Second {
					t.Errorf("RequeueAfter = %s, want just past the limit", d.RequeueAfter)
				}
			},
		},
		{
			name: "inconclusive past the limit pauses for a person",
			snap: Snapshot{Revision: rev, Policy: policy(),
				Fleet:    func() FleetStatus { f := atBarrier(); f.InconclusiveSince = at(time.Minute); return f }(),
				Members:  []Member{paused("a", 3), paused("b", 3)},
				Analysis: analysisAll(verdict(VerdictInconclusive, at(12*time.Minute)), "a", "b")},
			now:        at(11*time.Minute + time.Second),
			wantAction: ActionHold, wantReason: ReasonInconclusivePaused, wantStep: 3,
			check: func(t *testing.T, d Decision) {
				if !d.Next.InconclusivePaused || len(d.Patches) > 0 || !strings.Contains(d.Message, "a person decides") {
					t.Errorf("paused %t, patches %v, message %q", d.Next.InconclusivePaused, d.Patches, d.Message)
				}
			},
		},
		{
			name: "an inconclusive pause holds while analysis stays short",
			snap: Snapshot{Revision: rev, Policy: policy(),
				Fleet:    inconclusivePaused(),
				Members:  []Member{paused("a", 3), paused("b", 3)},
				Analysis: analysisAll(verdict(VerdictInconclusive, at(20*time.Minute)), "a", "b")},
			now:        at(20 * time.Minute),
			wantAction: ActionHold, wantReason: ReasonInconclusivePaused, wantStep: 3,
		},
		{
			name: "evidence that passes later ends an inconclusive pause",
			snap: Snapshot{Revision: rev, Policy: policy(),
				Fleet:    inconclusivePaused(),
				Members:  []Member{paused("a", 3), paused("b", 3)},
				Analysis: pass(at(20 * time.Minute))},
			now:         at(20 * time.Minute),
			wantAction:  ActionPromote,
			wantReason:  ReasonBarrierPassed,
			wantStep:    3,
			wantPatches: []string{"Promote:a", "Promote:b"},
			check: func(t *testing.T, d Decision) {
				if d.Next.InconclusivePaused {
					t.Error("still paused after the analysis passed")
				}
			},
		},
		{
			name: "a failing verdict aborts an inconclusive pause",
			snap: Snapshot{Revision: rev, Policy: policy(),
				Fleet:    inconclusivePaused(),
				Members:  []Member{paused("a", 3), paused("b", 3)},
				Analysis: analysisAll(verdict(VerdictFail, at(20*time.Minute)), "a", "b")},
			now:         at(20 * time.Minute),
			wantAction:  ActionAbort,
			wantReason:  ReasonAnalysisFailed,
			wantStep:    NoStep,
			wantPatches: []string{"Abort:a", "Abort:b"},
		},
		{
			name: "members promoted by a person leave the pause behind",
			snap: Snapshot{Revision: rev, Policy: policy(),
				Fleet:    inconclusivePaused(),
				Members:  []Member{paused("a", 5), paused("b", 5)},
				Analysis: pass(at(20 * time.Minute))},
			now:        at(20 * time.Minute),
			wantAction: ActionHold, wantReason: ReasonHolding, wantStep: 5,
			check: func(t *testing.T, d Decision) {
				if d.Next.InconclusivePaused {
					t.Error("the pause of step 3 carried over to step 5")
				}
			},
		},
		{
			name: "inconclusive past the limit aborts when the policy says so",
			snap: Snapshot{Revision: rev, Policy: func() Policy { p := policy(); p.AbortOnInconclusive = true; return p }(),
				Fleet:    func() FleetStatus { f := atBarrier(); f.InconclusiveSince = at(time.Minute); return f }(),
				Members:  []Member{paused("a", 3), paused("b", 3)},
				Analysis: analysisAll(verdict(VerdictInconclusive, at(12*time.Minute)), "a", "b")},
			now:         at(11*time.Minute + time.Second),
			wantAction:  ActionAbort,
			wantReason:  ReasonInconclusiveLimit,
			wantStep:    NoStep,
			wantPatches: []string{"Abort:a", "Abort:b"},
		},
		{
			name: "a pass clears the inconclusive clock",
			snap: Snapshot{Revision: rev, Policy: policy(),
				Fleet:    func() FleetStatus { f := atBarrier(); f.InconclusiveSince = at(time.Minute); return f }(),
				Members:  []Member{paused("a", 3), paused("b", 3)},
				Analysis: pass(at(4 * time.Minute))},
			now:        at(4 * time.Minute),
			wantAction: ActionHold, wantReason: ReasonHolding, wantStep: 3,
			check: func(t *testing.T, d Decision) {
				if !d.Next.InconclusiveSince.IsZero() {
					t.Errorf("InconclusiveSince = %s, want cleared", d.Next.InconclusiveSince)
				}
			},
		},
		{
			name: "pass with too few requests is inconclusive",
			snap: Snapshot{Revision: rev, Fleet: atBarrier(), Members: []Member{paused("a", 3), paused("b", 3)},
				Policy:   func() Policy { p := policy(); p.MinRequests = 1000; return p }(),
				Analysis: pass(at(6 * time.Minute))},
			now:        at(6 * time.Minute),
			wantAction: ActionHold, wantReason: ReasonAnalysisInconclusive, wantStep: 3, wantMsg: "500 requests, need 1000",
		},
		{
			name: "pass with unknown request count is inconclusive when a minimum is set",
			snap: Snapshot{Revision: rev, Fleet: atBarrier(), Members: []Member{paused("a", 3), paused("b", 3)},
				Policy: func() Policy { p := policy(); p.MinRequests = 10; return p }(),
				Analysis: func() Analysis {
					v := verdict(VerdictPass, at(6*time.Minute))
					v.RequestsKnown = false
					return analysisAll(v, "a", "b")
				}()},
			now:        at(6 * time.Minute),
			wantAction: ActionHold, wantReason: ReasonAnalysisInconclusive, wantStep: 3, wantMsg: "request count unknown",
		},

		// Restart safety.
		{
			name:       "status says step 3 promoted and members are already at step 4: no second promote",
			snap:       Snapshot{Revision: rev, Policy: policy(), Fleet: func() FleetStatus { f := atBarrier(); f.LastPromotedStep = step(3); return f }(), Analysis: pass(at(time.Hour)), Members: []Member{moving("a", 4), moving("b", 4)}},
			now:        at(time.Hour),
			wantAction: ActionWait, wantReason: ReasonProgressing, wantStep: NoStep,
		},
		{
			name:       "status says step 3 promoted, members moved on to the next pause: a new barrier",
			snap:       Snapshot{Revision: rev, Policy: policy(), Fleet: func() FleetStatus { f := atBarrier(); f.LastPromotedStep = step(3); return f }(), Members: []Member{paused("a", 5), paused("b", 5)}},
			now:        at(time.Hour),
			wantAction: ActionHold, wantReason: ReasonHolding, wantStep: 5,
		},
		{
			name:        "step 3 promoted, one member moved on and one is still paused there: finish only the one paused",
			snap:        Snapshot{Revision: rev, Policy: policy(), Fleet: func() FleetStatus { f := atBarrier(); f.LastPromotedStep = step(3); return f }(), Members: []Member{moving("a", 4), paused("b", 3)}},
			now:         at(time.Hour),
			wantAction:  ActionPromote,
			wantReason:  ReasonPromotionResumed,
			wantStep:    3,
			wantPatches: []string{"Promote:b"},
		},
		{
			name:        "step 3 promoted but no patch applied before a crash: re-issue the guarded patches",
			snap:        Snapshot{Revision: rev, Policy: policy(), Fleet: func() FleetStatus { f := atBarrier(); f.LastPromotedStep = step(3); return f }(), Members: []Member{paused("a", 3), paused("b", 3)}},
			now:         at(time.Hour),
			wantAction:  ActionPromote,
			wantReason:  ReasonPromotionResumed,
			wantStep:    3,
			wantPatches: []string{"Promote:a", "Promote:b"},
		},
		{
			name:       "step 3 promoted, pause conditions cleared but members not moved yet",
			snap:       Snapshot{Revision: rev, Policy: policy(), Fleet: func() FleetStatus { f := atBarrier(); f.LastPromotedStep = step(3); return f }(), Members: []Member{moving("a", 3), moving("b", 3)}},
			now:        at(time.Hour),
			wantAction: ActionWait, wantReason: ReasonPromoted, wantStep: NoStep,
		},

		// Completion.
		{
			name:       "every member stable on the wanted revision",
			snap:       Snapshot{Revision: rev, Policy: policy(), Fleet: func() FleetStatus { f := atBarrier(); f.LastPromotedStep = step(5); return f }(), Members: []Member{completed("a"), completed("b")}},
			now:        at(time.Hour),
			wantAction: ActionComplete, wantReason: ReasonCompleted, wantStep: NoStep,
			check: func(t *testing.T, d Decision) {
				if !d.Next.Completed {
					t.Error("Completed not recorded")
				}
			},
		},
		{
			name:       "last step promoted, one member still becoming Healthy",
			snap:       Snapshot{Revision: rev, Policy: policy(), Fleet: func() FleetStatus { f := atBarrier(); f.LastPromotedStep = step(5); return f }(), Members: []Member{completed("a"), moving("b", 6)}},
			now:        at(time.Hour),
			wantAction: ActionWait, wantReason: ReasonProgressing, wantStep: NoStep, wantMsg: "all steps done",
		},
		{
			name: "a completed fleet is not aborted when a member becomes unreachable",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: FleetStatus{Revision: rev, Completed: true, LastPromotedStep: step(5)},
				Members: []Member{completed("a"), unreachable("b", at(-time.Hour))}},
			now:        t0,
			wantAction: ActionWait, wantReason: ReasonMemberUnreachable, wantStep: NoStep,
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := Decide(tc.snap, tc.now)
			if d.Action != tc.wantAction || d.Reason != tc.wantReason || d.Step != tc.wantStep {
				t.Fatalf("got %s/%s step %d (%s), want %s/%s step %d", d.Action, d.Reason, d.Step, d.Message, tc.wantAction, tc.wantReason, tc.wantStep)
			}
			if got := patchSummary(d.Patches); !slices.Equal(got, tc.wantPatches) {
				t.Errorf("patches = %v, want %v", got, tc.wantPatches)
			}
			if tc.wantMsg != "" && !strings.Contains(d.Message, tc.wantMsg) {
				t.Errorf("message = %q, want it to contain %q", d.Message, tc.wantMsg)
			}
			if d.Message == "" {
				t.Error("empty message")
			}
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

// TestDecideRefusalKeepsState checks that refusals about the input do not
// rewrite what the fleet remembers, including an unconsumed retry token.
func TestDecideRefusalKeepsState(t *testing.T) {
	t.Parallel()
	fleet := abortedFleet()
	d := Decide(Snapshot{Revision: rev, RetryToken: "r9", Fleet: fleet, Members: []Member{paused("a", 3)}}, t0)
	if d.Action != ActionRefuse || d.Reason != ReasonInvalidPolicy {
		t.Fatalf("got %s/%s", d.Action, d.Reason)
	}
	if d.Next.HandledRetryToken != "" || !d.Next.Aborted || d.Next.LastPromotedStep == nil {
		t.Errorf("Next = %+v, want the input fleet state unchanged", d.Next)
	}
}

// TestDecideSequence walks one fleet through a whole step the way the hub
// would, feeding each Next back in, to show the rules compose: barrier,
// hold, promote, then no second promotion while the cache still shows the
// members paused.
func TestDecideSequence(t *testing.T) {
	t.Parallel()
	members := []Member{paused("a", 1), paused("b", 1)}
	fleet := FleetStatus{}
	run := func(now time.Time, a Analysis, ms []Member) Decision {
		t.Helper()
		d := Decide(Snapshot{Revision: rev, Members: ms, Analysis: a, Fleet: fleet, Policy: policy()}, now)
		fleet = d.Next
		return d
	}
	pass := func(ts time.Time) Analysis { return analysisAll(verdict(VerdictPass, ts), "a", "b") }

	if d := run(t0, Analysis{}, members); d.Action != ActionHold || d.Step != 1 {
		t.Fatalf("first barrier: %s %d %s", d.Action, d.Step, d.Message)
	}
	if d := run(at(3*time.Minute), pass(at(3*time.Minute)), members); d.Action != ActionHold {
		t.Fatalf("during hold: %s %s", d.Action, d.Message)
	}
	d := run(at(5*time.Minute), pass(at(5*time.Minute)), members)
	if d.Action != ActionPromote || d.Reason != ReasonBarrierPassed || len(d.Patches) != 2 {
		t.Fatalf("after hold: %s %s %v", d.Action, d.Reason, patchSummary(d.Patches))
	}
	// The members have applied the patch: the pause condition is gone.
	promoted := []Member{
		with(paused("a", 1), func(r *RolloutState) { r.PauseReasons = nil }),
		with(paused("b", 1), func(r *RolloutState) { r.PauseReasons = nil }),
	}
	if d := run(at(5*time.Minute+time.Second), pass(at(5*time.Minute)), promoted); d.Action != ActionWait || len(d.Patches) != 0 {
		t.Fatalf("after promote: %s %s %v", d.Action, d.Message, patchSummary(d.Patches))
	}
	// Next barrier, with the earlier passes now too old to count.
	next := []Member{paused("a", 3), paused("b", 3)}
	if d := run(at(7*time.Minute), pass(at(5*time.Minute)), next); d.Action != ActionHold || d.Step != 3 || !fleet.StepEnteredAt.Equal(at(7*time.Minute)) {
		t.Fatalf("second barrier: %s %d %s entered %s", d.Action, d.Step, d.Message, fleet.StepEnteredAt)
	}
	if d := run(at(12*time.Minute), pass(at(11*time.Minute)), next); d.Action != ActionHold || d.Reason != ReasonAwaitingFreshAnalysis {
		t.Fatalf("second hold over, stale pass: %s %s", d.Action, d.Reason)
	}
}

func TestCombineAnalysis(t *testing.T) {
	t.Parallel()
	passA := verdict(VerdictPass, at(2*time.Minute))
	inconcB := verdict(VerdictInconclusive, at(time.Minute))
	inconcB.Requests = 7
	failG := verdict(VerdictFail, at(3*time.Minute))

	m1 := Analysis{Global: &passA, Members: map[string]AnalysisVerdict{"a": passA, "b": passA}}
	m2 := Analysis{Global: &failG, Members: map[string]AnalysisVerdict{"a": passA, "b": inconcB}}
	m3 := Analysis{Global: &passA, Members: map[string]AnalysisVerdict{"b": passA}} // says nothing about a

	got := CombineAnalysis(m1, m2, m3)
	if got.Global.Verdict != VerdictFail {
		t.Errorf("global = %s, want Fail", got.Global.Verdict)
	}
	if a := got.Members["a"]; a.Verdict != VerdictInconclusive || a.Reason != VerdictReasonMissing {
		t.Errorf("a = %+v, want Inconclusive because m3 has no verdict for it", a)
	}
	b := got.Members["b"]
	if b.Verdict != VerdictInconclusive || !b.EvaluatedAt.Equal(at(time.Minute)) || b.Requests != 7 || !b.RequestsKnown {
		t.Errorf("b = %+v, want worst verdict, oldest time, smallest count", b)
	}
	if got.Members["a"].Revision != "" {
		t.Errorf("revision of a combined with a missing verdict = %q, want empty", got.Members["a"].Revision)
	}

	if Worst(VerdictPass, "bogus") != VerdictInconclusive || Worst("bogus", VerdictPass) != VerdictInconclusive {
		t.Error("an unknown verdict must not combine to a pass")
	}
}

// TestAnalysisWarmup: verdicts whose window still holds traffic from before
// this revision's canary (a previous bad release, say) neither fail nor pass
// the fleet.
func TestAnalysisWarmup(t *testing.T) {
	t.Parallel()
	warm := func() Policy { p := policy(); p.AnalysisWarmup = 40 * time.Second; return p }()
	fleet := func() FleetStatus { f := atBarrier(); f.CanaryStartedAt = t0; return f }()
	members := []Member{paused("a", 3), paused("b", 3)}
	fail := func(at time.Time) Analysis {
		a := analysisAll(verdict(VerdictPass, at), "a", "b")
		a.Members["b"] = verdict(VerdictFail, at)
		return a
	}
	d := Decide(Snapshot{Revision: rev, Policy: warm, Fleet: fleet, Analysis: fail(at(10 * time.Second)), Members: members}, at(11*time.Second))
	if d.Action == ActionAbort {
		t.Fatalf("a failure measured 10s into the canary (warm-up 40s) aborted: %s", d.Message)
	}
	d = Decide(Snapshot{Revision: rev, Policy: warm, Fleet: fleet, Analysis: fail(at(41 * time.Second)), Members: members}, at(42*time.Second))
	if d.Action != ActionAbort || d.Reason != ReasonAnalysisFailed {
		t.Fatalf("a failure after the warm-up: %s/%s, want Abort/AnalysisFailed", d.Action, d.Reason)
	}
	// Passes during the warm-up do not promote either.
	p := warm
	p.DefaultHold = time.Second
	d = Decide(Snapshot{Revision: rev, Policy: p, Fleet: fleet, Analysis: analysisAll(verdict(VerdictPass, at(20*time.Second)), "a", "b"), Members: members}, at(21*time.Second))
	if d.Action == ActionPromote {
		t.Fatalf("passes taken during the warm-up promoted")
	}
}

func TestCanaryStartIsRecorded(t *testing.T) {
	t.Parallel()
	// Index 1 is the pause after setWeight 20: the canary has traffic.
	d := Decide(Snapshot{Revision: rev, Policy: policy(), Members: []Member{paused("a", 1), moving("b", 0)}}, at(time.Minute))
	if !d.Next.CanaryStartedAt.Equal(at(time.Minute)) {
		t.Fatalf("CanaryStartedAt = %s, want the first time a member sends canary traffic", d.Next.CanaryStartedAt)
	}
	// Before any setWeight completed nothing is recorded.
	d = Decide(Snapshot{Revision: rev, Policy: policy(), Members: []Member{moving("a", 0), moving("b", 0)}}, at(time.Minute))
	if !d.Next.CanaryStartedAt.IsZero() {
		t.Fatalf("CanaryStartedAt = %s before any weight", d.Next.CanaryStartedAt)
	}
	// A recorded start is kept, and dropped with the revision.
	f := FleetStatus{Revision: rev, CanaryStartedAt: t0}
	d = Decide(Snapshot{Revision: rev, Policy: policy(), Fleet: f, Members: []Member{paused("a", 1), paused("b", 1)}}, at(time.Hour))
	if !d.Next.CanaryStartedAt.Equal(t0) {
		t.Fatalf("CanaryStartedAt moved to %s", d.Next.CanaryStartedAt)
	}
	f.Revision = oldRev
	d = Decide(Snapshot{Revision: rev, Policy: policy(), Fleet: f, Members: []Member{moving("a", 0), moving("b", 0)}}, at(time.Hour))
	if !d.Next.CanaryStartedAt.IsZero() {
		t.Fatalf("CanaryStartedAt %s survived a new revision", d.Next.CanaryStartedAt)
	}
}
