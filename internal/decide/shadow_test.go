package decide

import (
	"strings"
	"testing"
	"time"
)

func TestShadow(t *testing.T) {
	t.Parallel()
	weighted := func(name string) Member { return moving(name, 1) } // past setWeight(20)
	fresh := Snapshot{Revision: rev, Policy: policy(), Members: []Member{weighted("a"), weighted("b")}}
	f := ObserveCanary(fresh, at(time.Minute))
	if f.Revision != rev || !f.CanaryStartedAt.Equal(at(time.Minute)) {
		t.Fatalf("canary start not recorded: %+v", f)
	}
	// An old revision's state is dropped, the canary start kept once set.
	old := fresh
	old.Fleet = FleetStatus{Revision: oldRev, Aborted: true, CanaryStartedAt: at(0)}
	if g := ObserveCanary(old, at(2*time.Minute)); g.Aborted || !g.CanaryStartedAt.Equal(at(2*time.Minute)) {
		t.Errorf("a new revision kept the old one's state: %+v", g)
	}
	fresh.Fleet = f
	if g := ObserveCanary(fresh, at(3*time.Minute)); !g.CanaryStartedAt.Equal(at(time.Minute)) || g.Completed {
		t.Errorf("canary start moved, or completed early: %+v", g)
	}
	done := fresh
	done.Members = []Member{completed("a"), completed("b")}
	if g := ObserveCanary(done, at(4*time.Minute)); !g.Completed {
		t.Error("every member stable on the revision, and not completed")
	}

	tests := []struct {
		name     string
		analysis Analysis
		want     Verdict
		says     string
	}{
		{"a member fails", analysisAll(verdict(VerdictFail, at(2*time.Minute)), "a", "b"), VerdictFail, "would abort every member: global: Fail"},
		{"all pass", analysisAll(verdict(VerdictPass, at(2*time.Minute)), "a", "b"), VerdictPass, "a barrier would be promoted"},
		{"inconclusive", analysisAll(verdict(VerdictInconclusive, at(2*time.Minute)), "a", "b"), VerdictInconclusive, "not passing yet"},
		{"a verdict from before the canary does not count", analysisAll(verdict(VerdictFail, at(30*time.Second)), "a", "b"), VerdictInconclusive, "no verdict on this canary yet"},
		{"no verdict", Analysis{}, VerdictInconclusive, "global: no verdict"},
	}
	for _, tc := range tests {
		s := fresh
		s.Analysis = tc.analysis
		v, why := ShadowVerdict(s, f)
		if v != tc.want || !strings.Contains(why, tc.says) {
			t.Errorf("%s: %s (%s), want %s containing %q", tc.name, v, why, tc.want, tc.says)
		}
	}
}
