package coordinator

import (
	"strings"
	"testing"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/decide"
)

func TestMilestones(t *testing.T) {
	t.Parallel()
	rel := func(rev, outcome string) v1alpha1.ReleaseRecord {
		return v1alpha1.ReleaseRecord{Revision: rev, Outcome: outcome, Reason: "AnalysisFailed", Message: "argo-rollout2 failed"}
	}
	members := func(states ...string) []v1alpha1.MemberStatus {
		var out []v1alpha1.MemberStatus
		for i, s := range states {
			w := "first"
			if i > 0 {
				w = "rest"
			}
			out = append(out, v1alpha1.MemberStatus{Name: "c" + string(rune('1'+i)), Wave: w, WaveState: s})
		}
		return out
	}
	status := func(rev string, recs []v1alpha1.ReleaseRecord, ms []v1alpha1.MemberStatus, reason string) *v1alpha1.FleetRolloutStatus {
		st := &v1alpha1.FleetRolloutStatus{Releases: recs, Members: ms, Reason: reason}
		st.Fleet.Revision = rev
		return st
	}
	for _, tc := range []struct {
		name      string
		orig, now *v1alpha1.FleetRolloutStatus
		want      []string
	}{
		{"nothing recorded yet", status("", nil, nil, ""), status("", nil, nil, ""), nil},
		{"a FleetRollout put on a fleet at rest", status("", nil, nil, ""), status("a", []v1alpha1.ReleaseRecord{rel("a", OutcomeCompleted)}, members("", ""), ""), nil},
		{"a first release starts", status("", nil, nil, ""), status("a", []v1alpha1.ReleaseRecord{rel("a", OutcomeInProgress)}, members("", ""), ""),
			[]string{"ReleaseStarted: revision a started on 2 clusters (c1, c2)"}},
		{"a new revision supersedes one in progress", status("a", []v1alpha1.ReleaseRecord{rel("a", OutcomeInProgress)}, nil, ""),
			status("b", []v1alpha1.ReleaseRecord{rel("a", OutcomeSuperseded), rel("b", OutcomeInProgress)}, members(""), ""),
			[]string{"ReleaseStarted: revision b started on 1 clusters (c1), superseding revision a"}},
		{"no change, no milestone", status("a", []v1alpha1.ReleaseRecord{rel("a", OutcomeInProgress)}, members(decide.WaveCompleted, ""), ""),
			status("a", []v1alpha1.ReleaseRecord{rel("a", OutcomeInProgress)}, members(decide.WaveCompleted, ""), ""), nil},
		{"a wave completes and the next waits for approval", status("a", []v1alpha1.ReleaseRecord{rel("a", OutcomeInProgress)}, members("Progressing", ""), ""),
			status("a", []v1alpha1.ReleaseRecord{rel("a", OutcomeInProgress)}, members(decide.WaveCompleted, ""), ReasonAwaitingApproval),
			[]string{"WaveCompleted: wave first of revision a completed on c1", "AwaitingApproval: revision a: "}},
		{"abort, once", status("a", []v1alpha1.ReleaseRecord{rel("a", OutcomeInProgress)}, members("", ""), ""),
			status("a", []v1alpha1.ReleaseRecord{rel("a", OutcomeAborted)}, members("", ""), ""),
			[]string{"ReleaseAborted: revision a aborted: AnalysisFailed: argo-rollout2 failed"}},
		{"an abort already said", status("a", []v1alpha1.ReleaseRecord{rel("a", OutcomeAborted)}, members("", ""), ""),
			status("a", []v1alpha1.ReleaseRecord{rel("a", OutcomeAborted)}, members("", ""), ""), nil},
		{"completion", status("a", []v1alpha1.ReleaseRecord{rel("a", OutcomeInProgress)}, members(decide.WaveCompleted, "x"), ""),
			status("a", []v1alpha1.ReleaseRecord{rel("a", OutcomeCompleted)}, members(decide.WaveCompleted, decide.WaveCompleted), ""),
			[]string{"WaveCompleted: wave rest of revision a completed on c2", "ReleaseCompleted: revision a completed on 2 clusters (c1, c2)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, m := range milestones(tc.orig, tc.now) {
				got = append(got, m.reason+": "+m.message)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("milestones = %q, want %q", got, tc.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("milestone %d = %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}
