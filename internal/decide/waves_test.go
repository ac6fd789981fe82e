package decide

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// waveSteps start with the indefinite pause at which later waves wait.
// Indices: 0 pause, 1 setWeight 20, 2 pause, 3 setWeight 50, 4 pause.
var waveSteps = []Step{Pause(), SetWeight(20), Pause(), SetWeight(50), Pause()}

func wavePaused(name string, i int32) Member {
	return with(paused(name, i), func(ro *RolloutState) { ro.Steps = waveSteps })
}

func waveDone(name string) Member {
	return with(completed(name), func(ro *RolloutState) {
		ro.Steps, ro.CurrentStepIndex = waveSteps, step(int32(len(waveSteps)))
	})
}

func waveMoving(name string, i int32) Member {
	return with(moving(name, i), func(ro *RolloutState) { ro.Steps = waveSteps })
}

// twoWaves is [a] then [b, c] in batches of one, soaking 10 minutes after
// the first wave; the second wave tolerates one failure.
func twoWaves() []Wave {
	return []Wave{
		{Name: "canary", Batches: [][]string{{"a"}}, Soak: 10 * time.Minute},
		{Name: "rest", Batches: [][]string{{"b"}, {"c"}}, MaxFailures: 1},
	}
}

func TestWaves(t *testing.T) {
	t.Parallel()
	passAll := analysisAll(verdict(VerdictPass, at(6*time.Minute)), "a", "b", "c")
	barrier := func(wave int32, stepIdx int32) FleetStatus {
		return FleetStatus{Revision: rev, Wave: wave, BarrierStep: step(stepIdx), StepEnteredAt: t0, CanaryStartedAt: t0.Add(-time.Hour)}
	}
	doneFleet := func(wave int32, completedAt time.Time) FleetStatus {
		return FleetStatus{Revision: rev, Wave: wave, Completed: true, WaveCompletedAt: completedAt, LastPromotedStep: step(4)}
	}
	tests := []struct {
		name        string
		snap        Snapshot
		now         time.Time
		wantAction  Action
		wantReason  Reason
		wantPatches []string
		wantMsg     string
		check       func(t *testing.T, d Decision)
	}{
		{
			name: "the first wave's barrier promotes it alone; later waves wait at their leading pause",
			snap: Snapshot{Revision: rev, Policy: policy(), Waves: twoWaves(), Fleet: barrier(0, 0), Analysis: passAll,
				Members: []Member{wavePaused("a", 0), wavePaused("b", 0), wavePaused("c", 0)}},
			now:        at(6 * time.Minute),
			wantAction: ActionPromote, wantReason: ReasonBarrierPassed, wantPatches: []string{"Promote:a"},
			wantMsg: "wave canary (1/2), batch 1/1 [a]",
		},
		{
			name: "a completed wave soaks before the next starts",
			snap: Snapshot{Revision: rev, Policy: policy(), Waves: twoWaves(), Fleet: FleetStatus{Revision: rev, LastPromotedStep: step(4)},
				Members: []Member{waveDone("a"), wavePaused("b", 0), wavePaused("c", 0)}},
			now:        t0,
			wantAction: ActionHold, wantReason: ReasonSoaking, wantMsg: "soaking for 10m0s more before wave rest",
			check: func(t *testing.T, d Decision) {
				if d.Next.Completed || !d.Next.WaveCompletedAt.Equal(t0) || d.Next.Wave != 0 || d.RequeueAfter != 10*time.Minute {
					t.Errorf("Next = %+v, requeue %s: want the soak recorded, not the release completed", d.Next, d.RequeueAfter)
				}
			},
		},
		{
			name: "after the soak the next wave starts from a fresh barrier",
			snap: Snapshot{Revision: rev, Policy: policy(), Waves: twoWaves(), Fleet: doneFleet(0, t0),
				Members: []Member{waveDone("a"), wavePaused("b", 0), wavePaused("c", 0)}},
			now:        at(11 * time.Minute),
			wantAction: ActionWait, wantReason: ReasonWaveStarted, wantMsg: "wave rest [b] starts",
			check: func(t *testing.T, d Decision) {
				n := d.Next
				if n.Wave != 1 || n.Completed || n.LastPromotedStep != nil || n.BarrierStep != nil || !n.WaveStartedAt.Equal(at(11*time.Minute)) {
					t.Errorf("Next = %+v", n)
				}
			},
		},
		{
			name: "a regression during the soak stops the release and leaves the next wave alone",
			snap: Snapshot{Revision: rev, Policy: policy(), Waves: twoWaves(), Fleet: doneFleet(0, t0),
				Members: []Member{with(waveDone("a"), func(ro *RolloutState) { ro.Phase = PhaseDegraded }), wavePaused("b", 0), wavePaused("c", 0)}},
			now:        at(5 * time.Minute),
			wantAction: ActionAbort, wantReason: ReasonWaveRegression, wantMsg: "a is Degraded",
			check: func(t *testing.T, d Decision) {
				if !d.Next.Aborted || d.Next.AbortReason != ReasonWaveRegression {
					t.Errorf("Next = %+v", d.Next)
				}
				if s := WaveStates(Snapshot{Revision: rev, Waves: twoWaves()}, d.Next); s["a"] != WaveCompleted || s["b"] != WaveNotStarted || s["c"] != WaveNotStarted {
					t.Errorf("wave states %v", s)
				}
			},
		},
		{
			name: "a completed wave failing analysis while a later batch runs stops it",
			snap: Snapshot{Revision: rev, Policy: policy(), Waves: twoWaves(), Fleet: barrier(1, 2),
				Analysis: Analysis{Members: map[string]AnalysisVerdict{"a": verdict(VerdictFail, at(time.Minute))}},
				Members:  []Member{waveDone("a"), waveMoving("b", 3), wavePaused("c", 0)}},
			now:        at(2 * time.Minute),
			wantAction: ActionAbort, wantReason: ReasonWaveRegression,
			wantPatches: []string{"Abort:b"}, wantMsg: "a fails analysis",
		},
		{
			name: "a batch failing within maxFailures is left aborted and the wave goes on",
			snap: Snapshot{Revision: rev, Policy: policy(), Waves: twoWaves(), Fleet: barrier(1, 2),
				Members: []Member{waveDone("a"), with(waveMoving("b", 3), func(ro *RolloutState) { ro.Aborted = true }), wavePaused("c", 0)}},
			now:        at(time.Minute),
			wantAction: ActionAbort, wantReason: ReasonFailureTolerated, wantMsg: "1 of at most 1 clusters of wave rest failed",
			check: func(t *testing.T, d Decision) {
				if d.Next.Aborted || d.Next.Wave != 2 || !slices.Equal(d.Next.Failed, []string{"b"}) {
					t.Errorf("Next = %+v", d.Next)
				}
				if s := WaveStates(Snapshot{Revision: rev, Waves: twoWaves()}, d.Next); s["a"] != WaveCompleted || s["b"] != WaveAborted || s["c"] != WaveInCanary {
					t.Errorf("wave states %v", s)
				}
			},
		},
		{
			name: "a failure past maxFailures stops the release",
			snap: Snapshot{Revision: rev, Policy: policy(), Waves: twoWaves(),
				Fleet:   FleetStatus{Revision: rev, Wave: 2, Failed: []string{"b"}, BarrierStep: step(2), StepEnteredAt: t0, CanaryStartedAt: t0},
				Members: []Member{waveDone("a"), with(waveMoving("b", 3), func(ro *RolloutState) { ro.Aborted = true }), with(waveMoving("c", 3), func(ro *RolloutState) { ro.Phase = PhaseDegraded })}},
			now:        at(time.Minute),
			wantAction: ActionAbort, wantReason: ReasonMemberDegraded,
			wantPatches: []string{"Abort:c"},
			check: func(t *testing.T, d Decision) {
				if !d.Next.Aborted || d.Next.Wave != 2 {
					t.Errorf("Next = %+v", d.Next)
				}
			},
		},
		{
			name: "a member that joins the selector mid-release lands in a later wave and is not waited for",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: barrier(0, 0), Analysis: analysisAll(verdict(VerdictPass, at(6*time.Minute)), "a"),
				Waves:   []Wave{{Name: "canary", Batches: [][]string{{"a"}}}, {Name: "rest", Batches: [][]string{{"b", "c", "d"}}}},
				Members: []Member{wavePaused("a", 0), wavePaused("b", 0), wavePaused("c", 0), {Name: "d", Reachable: true}}},
			now:        at(6 * time.Minute),
			wantAction: ActionPromote, wantReason: ReasonBarrierPassed,
			wantPatches: []string{"Promote:a"},
		},
		{
			name: "a member that leaves the batch in canary is no longer waited for",
			snap: Snapshot{Revision: rev, Policy: policy(), Fleet: barrier(1, 2), Analysis: analysisAll(verdict(VerdictPass, at(6*time.Minute)), "b"),
				Waves:   []Wave{{Name: "canary", Batches: [][]string{{"a"}}}, {Name: "rest", Batches: [][]string{{"b"}}}},
				Members: []Member{waveDone("a"), wavePaused("b", 2)}},
			now:        at(6 * time.Minute),
			wantAction: ActionPromote, wantReason: ReasonBarrierPassed,
			wantPatches: []string{"Promote:b"},
		},
		{
			name: "a new revision mid-wave is refused while the policy forbids it",
			snap: Snapshot{Revision: "rev-hotfix", Policy: policy(), Waves: twoWaves(), Fleet: barrier(1, 2),
				Members: []Member{waveDone("a"), waveMoving("b", 3), wavePaused("c", 0)}},
			now:        at(time.Minute),
			wantAction: ActionRefuse, wantReason: ReasonRevisionChanged,
			check: func(t *testing.T, d Decision) {
				if d.Next.Wave != 1 || d.Next.Revision != rev {
					t.Errorf("Next = %+v: a refusal must keep the state", d.Next)
				}
			},
		},
		{
			name: "an accepted new revision starts again from the first wave",
			snap: Snapshot{Revision: "rev-hotfix", Policy: func() Policy { p := policy(); p.AllowNewRevisionDuringProgress = true; return p }(), Waves: twoWaves(),
				Fleet: barrier(1, 2),
				Members: []Member{
					with(wavePaused("a", 0), func(ro *RolloutState) { ro.Revision = "rev-hotfix" }),
					with(wavePaused("b", 0), func(ro *RolloutState) { ro.Revision = "rev-hotfix" }),
					with(wavePaused("c", 0), func(ro *RolloutState) { ro.Revision = "rev-hotfix" })}},
			now:        at(time.Minute),
			wantAction: ActionHold, wantReason: ReasonHolding, wantMsg: "wave canary (1/2), batch 1/1 [a]",
			check: func(t *testing.T, d Decision) {
				if d.Next.Wave != 0 || d.Next.Revision != "rev-hotfix" || len(d.Next.Failed) > 0 {
					t.Errorf("Next = %+v", d.Next)
				}
			},
		},
		{
			name: "waves need a leading pause",
			snap: Snapshot{Revision: rev, Policy: policy(), Waves: twoWaves(),
				Members: []Member{paused("a", 1), paused("b", 1), paused("c", 1)}},
			now:        t0,
			wantAction: ActionRefuse, wantReason: ReasonStepsNotCoordinable, wantMsg: "first step must be pause: {}",
		},
		{
			name: "a member in two waves is refused",
			snap: Snapshot{Revision: rev, Policy: policy(), Waves: []Wave{{Name: "x", Batches: [][]string{{"a", "b"}}}, {Name: "y", Batches: [][]string{{"b"}}}},
				Members: []Member{wavePaused("a", 0), wavePaused("b", 0)}},
			now:        t0,
			wantAction: ActionRefuse, wantReason: ReasonInvalidWaves, wantMsg: "b is in wave x and in wave y",
		},
		{
			name: "a member in no wave is refused",
			snap: Snapshot{Revision: rev, Policy: policy(), Waves: []Wave{{Name: "x", Batches: [][]string{{"a"}}}},
				Members: []Member{wavePaused("a", 0), wavePaused("b", 0)}},
			now:        t0,
			wantAction: ActionRefuse, wantReason: ReasonInvalidWaves, wantMsg: "member b is in no wave",
		},
		{
			name: "more failures allowed than clusters is refused",
			snap: Snapshot{Revision: rev, Policy: policy(), Waves: []Wave{{Name: "x", Batches: [][]string{{"a"}}, MaxFailures: 2}},
				Members: []Member{wavePaused("a", 0)}},
			now:        t0,
			wantAction: ActionRefuse, wantReason: ReasonInvalidWaves, wantMsg: "allows 2 failures among 1 clusters",
		},
		{
			name: "the last wave completing completes the release",
			snap: Snapshot{Revision: rev, Policy: policy(), Waves: twoWaves(), Fleet: FleetStatus{Revision: rev, Wave: 2, LastPromotedStep: step(4)},
				Members: []Member{waveDone("a"), waveDone("b"), waveDone("c")}},
			now:        t0,
			wantAction: ActionComplete, wantReason: ReasonCompleted,
			check: func(t *testing.T, d Decision) {
				if s := WaveStates(Snapshot{Revision: rev, Waves: twoWaves()}, d.Next); s["a"] != WaveCompleted || s["b"] != WaveCompleted || s["c"] != WaveCompleted {
					t.Errorf("wave states %v", s)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := Decide(tc.snap, tc.now)
			if d.Action != tc.wantAction || d.Reason != tc.wantReason {
				t.Fatalf("got %s/%s (%s), want %s/%s", d.Action, d.Reason, d.Message, tc.wantAction, tc.wantReason)
			}
			if got := patchSummary(d.Patches); !slices.Equal(got, tc.wantPatches) && !(len(got) == 0 && len(tc.wantPatches) == 0) {
				t.Errorf("patches = %v, want %v", got, tc.wantPatches)
			}
			if tc.wantMsg != "" && !strings.Contains(d.Message, tc.wantMsg) {
				t.Errorf("message = %q, want it to contain %q", d.Message, tc.wantMsg)
			}
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

// TestWaveApproval: a wave that needs approval holds at its leading pause
// until a person approves it for this revision; an approval of another
// revision does not count; the approver is recorded and kept as the
// release moves on.
func TestWaveApproval(t *testing.T) {
	t.Parallel()
	waves := func() []Wave {
		w := twoWaves()
		w[1].ApprovalRequired = true
		return w
	}
	// Wave 1 (rest), batch b, at its leading barrier, held long enough.
	atRest := FleetStatus{Revision: rev, Wave: 1, BarrierStep: step(0), StepEnteredAt: t0}
	members := []Member{waveDone("a"), wavePaused("b", 0), wavePaused("c", 0)}
	snap := func(approvals ...Approval) Snapshot {
		return Snapshot{Revision: rev, Policy: policy(), Waves: waves(), Fleet: atRest, Members: members, Approvals: approvals}
	}
	now := at(time.Hour)

	d := Decide(snap(), now)
	if d.Action != ActionHold || d.Reason != ReasonAwaitingApproval || len(d.Patches) > 0 || !strings.Contains(d.Message, "lockstep approve --wave rest") {
		t.Fatalf("no approval: %s %s %v: %s", d.Action, d.Reason, d.Patches, d.Message)
	}
	d = Decide(snap(Approval{Wave: "rest", Revision: oldRev, Approver: "alice", Name: "old"}), now)
	if d.Reason != ReasonAwaitingApproval {
		t.Fatalf("an approval of the old revision counted: %s %s", d.Action, d.Reason)
	}
	d = Decide(snap(Approval{Wave: "canary", Revision: rev, Approver: "alice", Name: "other-wave"}), now)
	if d.Reason != ReasonAwaitingApproval {
		t.Fatalf("an approval of another wave counted: %s %s", d.Action, d.Reason)
	}
	d = Decide(snap(Approval{Wave: "rest", Revision: rev, Approver: "alice", Name: "go"}), now)
	if d.Action != ActionPromote || !slices.Equal(patchNames(d.Patches), []string{"Promote:b"}) {
		t.Fatalf("approved: %s %s %v: %s", d.Action, d.Reason, d.Patches, d.Message)
	}
	if len(d.Next.Approvals) != 1 || d.Next.Approvals[0] != (ApprovalRecord{Wave: "rest", Approver: "alice", Name: "go", At: now}) {
		t.Fatalf("approval recorded as %+v", d.Next.Approvals)
	}
	// The next batch of the same wave needs no second approval, and the
	// record stays.
	next := Snapshot{Revision: rev, Policy: policy(), Waves: waves(), Members: []Member{waveDone("a"), waveDone("b"), wavePaused("c", 0)},
		Fleet: FleetStatus{Revision: rev, Wave: 2, BarrierStep: step(0), StepEnteredAt: t0, Approvals: d.Next.Approvals}}
	d = Decide(next, now)
	if d.Action != ActionPromote || len(d.Next.Approvals) != 1 {
		t.Fatalf("second batch: %s %s, approvals %+v", d.Action, d.Reason, d.Next.Approvals)
	}
}

func patchNames(ps []Patch) []string {
	var out []string
	for _, p := range ps {
		out = append(out, string(p.Kind)+":"+p.Member)
	}
	return out
}
