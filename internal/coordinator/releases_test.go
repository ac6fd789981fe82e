package coordinator

import (
	"testing"
	"time"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/decide"
)

func TestRecordRelease(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	ev := &v1alpha1.Evidence{Canary: v1alpha1.RequestCounts{Requests: 20, Failures: 9}}
	var rs []v1alpha1.ReleaseRecord

	rs = recordRelease(rs, "a", decide.FleetStatus{Revision: "a"}, ev, t0, 3)
	if len(rs) != 1 || rs[0].Outcome != OutcomeInProgress || !rs[0].StartedAt.Time.Equal(t0) || rs[0].Evidence == nil {
		t.Fatalf("start: %+v", rs)
	}
	aborted := decide.FleetStatus{Revision: "a", Aborted: true, AbortedAt: t0.Add(time.Minute), AbortReason: decide.ReasonAnalysisFailed, AbortMessage: "judge: canary 9/20 failed"}
	rs = recordRelease(rs, "a", aborted, ev, t0.Add(2*time.Minute), 3)
	if r := rs[0]; r.Outcome != OutcomeAborted || !r.EndedAt.Time.Equal(t0.Add(time.Minute)) || r.Reason != string(decide.ReasonAnalysisFailed) || r.Message != "judge: canary 9/20 failed" {
		t.Fatalf("abort: %+v", r)
	}
	// The evidence at the abort stays.
	rs = recordRelease(rs, "a", aborted, &v1alpha1.Evidence{}, t0.Add(3*time.Minute), 3)
	if rs[0].Evidence.Canary.Failures != 9 {
		t.Errorf("evidence after the end changed: %+v", rs[0].Evidence)
	}

	rs = recordRelease(rs, "b", decide.FleetStatus{Revision: "b"}, nil, t0.Add(4*time.Minute), 3)
	rs = recordRelease(rs, "c", decide.FleetStatus{Revision: "c"}, nil, t0.Add(5*time.Minute), 3)
	if len(rs) != 3 || rs[1].Revision != "b" || rs[1].Outcome != OutcomeSuperseded || rs[1].Message != "revision c replaced it" {
		t.Fatalf("supersede: %+v", rs)
	}
	done := decide.FleetStatus{Revision: "c", Completed: true, Approvals: []decide.ApprovalRecord{{Wave: "rest", Approver: "alice", At: t0}}}
	rs = recordRelease(rs, "c", done, nil, t0.Add(6*time.Minute), 3)
	if r := rs[2]; r.Outcome != OutcomeCompleted || r.EndedAt == nil || len(r.Approvals) != 1 || r.Approvals[0].Approver != "alice" {
		t.Fatalf("complete: %+v", r)
	}
	// Bounded: a fourth release drops the oldest.
	rs = recordRelease(rs, "d", decide.FleetStatus{Revision: "d"}, nil, t0.Add(7*time.Minute), 3)
	if len(rs) != 3 || rs[0].Revision != "b" || rs[2].Revision != "d" {
		t.Fatalf("bound: %+v", rs)
	}
}
