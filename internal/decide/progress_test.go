package decide

import (
	"strings"
	"testing"
	"time"
)

// Each of progress's rules, alone: whether it decides for a fleet, and
// what.
func TestProgressRules(t *testing.T) {
	t.Parallel()
	promoted := func(n int32) FleetStatus { f := atBarrier(); f.LastPromotedStep = step(n); return f }
	pos := func(members ...Member) position {
		d := &decider{s: Snapshot{Revision: rev, Members: members, Policy: policy()}, now: t0}
		at, _, _ := d.positions()
		return at
	}
	type rule func(d *decider, members []Member) (Decision, bool)
	rules := map[string]rule{
		"waitForMembers":     func(d *decider, _ []Member) (Decision, bool) { return d.waitForMembers() },
		"completeWhenStable": func(d *decider, _ []Member) (Decision, bool) { return d.completeWhenStable() },
		"positions": func(d *decider, _ []Member) (Decision, bool) {
			_, dec, ok := d.positions()
			return dec, ok
		},
		"resumePromotion": func(d *decider, ms []Member) (Decision, bool) { return d.resumePromotion(pos(ms...)) },
		"waitForStepSkew": func(d *decider, ms []Member) (Decision, bool) { return d.waitForStepSkew(pos(ms...)) },
		"waitOffBarrier":  func(d *decider, ms []Member) (Decision, bool) { return d.waitOffBarrier(pos(ms...)) },
		"waitForPause":    func(d *decider, ms []Member) (Decision, bool) { return d.waitForPause(pos(ms...)) },
	}
	for _, tc := range []struct {
		rule    string
		name    string
		members []Member
		fleet   FleetStatus
		decides bool
		reason  Reason
		msg     string
	}{
		{"waitForMembers", "all there", []Member{paused("a", 1), paused("b", 1)}, FleetStatus{}, false, "", ""},
		{"waitForMembers", "unreachable", []Member{paused("a", 1), unreachable("b", t0)}, FleetStatus{}, true, ReasonMemberUnreachable, "unreachable members: b"},
		{"waitForMembers", "denied before unreachable", []Member{denied(unreachable("a", t0), ReasonForbidden, "no patch"), unreachable("b", t0)}, FleetStatus{}, true, ReasonForbidden, "refuse the coordinator: a (Forbidden: no patch)"},
		{"waitForMembers", "no Rollout", []Member{paused("a", 1), {Name: "b", Reachable: true}}, FleetStatus{}, true, ReasonRolloutMissing, "no Rollout on: b"},
		{"waitForMembers", "spec not observed", []Member{with(paused("a", 1), func(r *RolloutState) { r.ObservedGeneration = 1 }), paused("b", 1)}, FleetStatus{}, true, ReasonStatusStale, "a"},
		{"waitForMembers", "another revision", []Member{with(paused("a", 1), func(r *RolloutState) { r.Revision = oldRev }), paused("b", 1)}, FleetStatus{}, true, ReasonRevisionPending, `a (at "rev-old")`},

		{"completeWhenStable", "stable everywhere", []Member{completed("a"), completed("b")}, FleetStatus{}, true, ReasonCompleted, "every member runs"},
		{"completeWhenStable", "one still in canary", []Member{completed("a"), paused("b", 5)}, FleetStatus{}, false, "", ""},

		{"positions", "every index known", []Member{paused("a", 1), moving("b", 2)}, FleetStatus{}, false, "", ""},
		{"positions", "an index missing", []Member{paused("a", 1), with(paused("b", 1), func(r *RolloutState) { r.CurrentStepIndex = nil })}, FleetStatus{}, true, ReasonStatusStale, "no currentStepIndex reported by: b"},

		{"resumePromotion", "one left behind", []Member{paused("a", 3), with(paused("b", 3), func(r *RolloutState) { r.PauseReasons = nil })}, promoted(3), true, ReasonPromotionResumed, "finishing it for a"},
		{"resumePromotion", "everyone moved on", []Member{moving("a", 4), moving("b", 4)}, promoted(3), false, "", ""},
		{"resumePromotion", "nothing promoted yet", []Member{paused("a", 3), paused("b", 3)}, atBarrier(), false, "", ""},

		{"waitForStepSkew", "apart", []Member{paused("a", 1), moving("b", 2)}, FleetStatus{}, true, ReasonStepSkew, "a at 1, b at 2"},
		{"waitForStepSkew", "together", []Member{paused("a", 3), paused("b", 3)}, FleetStatus{}, false, "", ""},

		{"waitOffBarrier", "past the last step", []Member{moving("a", 6), moving("b", 6)}, FleetStatus{}, true, ReasonProgressing, "all steps done"},
		{"waitOffBarrier", "at a setWeight", []Member{moving("a", 2), moving("b", 2)}, FleetStatus{}, true, ReasonProgressing, "members are at step 2"},
		{"waitOffBarrier", "at a promoted pause", []Member{paused("a", 3), paused("b", 3)}, promoted(3), true, ReasonPromoted, "step 3 was promoted"},
		{"waitOffBarrier", "at a barrier", []Member{paused("a", 3), paused("b", 3)}, atBarrier(), false, "", ""},

		{"waitForPause", "both paused for the step", []Member{paused("a", 3), paused("b", 3)}, FleetStatus{}, false, "", ""},
		{"waitForPause", "one still moving", []Member{paused("a", 3), moving("b", 3)}, FleetStatus{}, true, ReasonProgressing, "waiting for b to pause at step 3"},
		{"waitForPause", "paused by a person", []Member{paused("a", 3), with(paused("b", 3), func(r *RolloutState) { r.SpecPaused = true })}, FleetStatus{}, true, ReasonPausedOtherwise, "b (spec.paused=true"},
	} {
		t.Run(tc.rule+"/"+tc.name, func(t *testing.T) {
			t.Parallel()
			d := &decider{s: Snapshot{Revision: rev, Members: tc.members, Policy: policy(), Fleet: tc.fleet}, now: t0.Add(time.Minute), next: tc.fleet}
			dec, ok := rules[tc.rule](d, tc.members)
			if ok != tc.decides {
				t.Fatalf("decides %t (%s %s), want %t", ok, dec.Reason, dec.Message, tc.decides)
			}
			if ok && (dec.Reason != tc.reason || !strings.Contains(dec.Message, tc.msg)) {
				t.Errorf("%s %q, want %s with %q", dec.Reason, dec.Message, tc.reason, tc.msg)
			}
		})
	}
}
