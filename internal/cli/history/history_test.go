package history

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"lockstep.dev/lockstep/api/v1alpha1"
)

func TestPrint(t *testing.T) {
	t.Parallel()
	at := func(m int) metav1.MicroTime { return metav1.NewMicroTime(time.Date(2026, 5, 1, 12, m, 0, 0, time.UTC)) }
	end, end2 := at(3), at(8)
	rs := []v1alpha1.ReleaseRecord{
		{Revision: "6d4f", StartedAt: at(0), EndedAt: &end, Outcome: "Aborted", Reason: "AnalysisFailed", Message: "judge: canary 9/20 failed",
			Evidence: &v1alpha1.Evidence{Canary: v1alpha1.RequestCounts{Requests: 20, Failures: 9}}},
		{Revision: "7a1c", StartedAt: at(5), EndedAt: &end2, Outcome: "Aborted", Reason: "MemberAborted", AbortedBy: "bob",
			Approvals: []v1alpha1.WaveApproval{{Wave: "rest", Approver: "alice", At: at(6)}, {Barrier: "prod-gate", Approver: "carol", At: at(7)}}},
	}
	var b strings.Builder
	if err := Print(&b, "table", rs); err != nil {
		t.Fatal(err)
	}
	want := `REVISION  STARTED              ENDED                OUTCOME  APPROVED                                   ABORTED BY  FAILED (CANARY)
6d4f      2026-05-01 12:00:00  2026-05-01 12:03:00  Aborted  -                                          -           9/20
7a1c      2026-05-01 12:05:00  2026-05-01 12:08:00  Aborted  rest by alice, barrier prod-gate by carol  bob         -
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := Print(&b, "wide", rs); err != nil || !strings.Contains(b.String(), "AnalysisFailed  judge: canary 9/20 failed") {
		t.Errorf("wide: %v\n%s", err, b.String())
	}
	b.Reset()
	var back []v1alpha1.ReleaseRecord
	if err := Print(&b, "json", rs); err != nil || json.Unmarshal([]byte(b.String()), &back) != nil || len(back) != 2 || back[1].Approvals[0].Approver != "alice" {
		t.Errorf("json: %v\n%s", err, b.String())
	}
	if err := Print(&b, "xml", rs); err == nil || !strings.Contains(err.Error(), `--output "xml"`) {
		t.Errorf("unknown format: %v", err)
	}
}
