package decide

import (
	"strings"
	"testing"
	"time"
)

// A named barrier that needs approval holds once its hold and analysis
// passed, until an approval of that barrier for this revision is there;
// another revision's approval, or a wave's of the same name, does not
// count; a failing analysis still aborts while it waits.
func TestBarrierApproval(t *testing.T) {
	t.Parallel()
	members := []Member{paused("a", 3), paused("b", 3)}
	pol := policy()
	pol.ApprovalBarriers = map[int32]string{3: "prod-gate"}
	pass := analysisAll(verdict(VerdictPass, at(6*time.Minute)), "a", "b")
	fail := analysisAll(verdict(VerdictFail, at(6*time.Minute)), "a", "b")
	snap := func(a Analysis, approvals ...Approval) Snapshot {
		return Snapshot{Revision: rev, Members: members, Analysis: a, Fleet: atBarrier(), Policy: pol, Approvals: approvals}
	}
	for _, tc := range []struct {
		name       string
		s          Snapshot
		now        time.Time
		action     Action
		reason     Reason
		recordedBy string
	}{
		{"holding: not asked yet", snap(pass), at(time.Minute), ActionHold, ReasonHolding, ""},
		{"hold over, no approval", snap(pass), at(6 * time.Minute), ActionHold, ReasonAwaitingApproval, ""},
		{"another revision's approval", snap(pass, Approval{Barrier: "prod-gate", Revision: oldRev, Approver: "alice"}), at(6 * time.Minute), ActionHold, ReasonAwaitingApproval, ""},
		{"a wave's approval of that name", snap(pass, Approval{Wave: "prod-gate", Revision: rev, Approver: "alice"}), at(6 * time.Minute), ActionHold, ReasonAwaitingApproval, ""},
		{"approved", snap(pass, Approval{Barrier: "prod-gate", Revision: rev, Approver: "alice", Name: "fa-1"}), at(6 * time.Minute), ActionPromote, ReasonBarrierPassed, "alice"},
		{"failing while waiting", snap(fail), at(6 * time.Minute), ActionAbort, ReasonAnalysisFailed, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := Decide(tc.s, tc.now)
			if d.Action != tc.action || d.Reason != tc.reason {
				t.Fatalf("%s %s (%s), want %s %s", d.Action, d.Reason, d.Message, tc.action, tc.reason)
			}
			if tc.reason == ReasonAwaitingApproval && (len(d.Patches) > 0 || !strings.Contains(d.Message, "lockstep approve --barrier prod-gate")) {
				t.Errorf("waiting: patches %v, message %q", patchSummary(d.Patches), d.Message)
			}
			var by string
			for _, r := range d.Next.Approvals {
				if r.Barrier == "prod-gate" {
					by = r.Approver
				}
			}
			if by != tc.recordedBy {
				t.Errorf("approval recorded by %q, want %q", by, tc.recordedBy)
			}
		})
	}
}

func TestCheckBarriers(t *testing.T) {
	t.Parallel()
	// guideSteps: 0 setWeight 20, 1 pause, ...
	if err := CheckBarriers(guideSteps, map[int32]string{1: "gate"}); err != nil {
		t.Errorf("a pause step: %v", err)
	}
	err := CheckBarriers(guideSteps, map[int32]string{0: "early", 99: "late"})
	if err == nil || !strings.Contains(err.Error(), "barrier early at step 0") || !strings.Contains(err.Error(), "not a pause step") || !strings.Contains(err.Error(), "barrier late at step 99: the Rollout has") {
		t.Errorf("err = %v", err)
	}
}
