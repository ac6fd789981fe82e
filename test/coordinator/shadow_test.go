package coordinator_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/test/fleettest"
)

// TestShadowRecordsButNeverActs runs the judge in shadow mode beside
// Rollouts that decide for themselves (timed pauses, which an active
// coordinator would refuse). A release whose canary fails every request
// is not aborted by Lockstep: the Rollouts carry it through on their own,
// while the FleetRollout records when and why the judge would have
// aborted it, with the evidence, and says so in an Event.
func TestShadowRecordsButNeverActs(t *testing.T) {
	setup(t)
	stopLogs(t)
	a := meshApp()
	a.steps = []any{
		map[string]any{"setWeight": int64(20)}, map[string]any{"pause": map[string]any{"duration": "15s"}},
		map[string]any{"setWeight": int64(50)}, map[string]any{"pause": map[string]any{"duration": "15s"}},
	}
	freshApp(t, a)
	deploy(t, a, imageV1, workloads...)
	waitHealthy(t, a, imageV1, 90*time.Second, workloads...)
	v1rev := getRolloutState(t, workloads[0], a).Revision
	ctx, cancel := context.WithCancel(context.Background())
	wg := load(ctx, t)
	t.Cleanup(func() { cancel(); wg.Wait() })

	fr := newFleetRollout("shadow", a)
	fr.Spec.Analysis = judgeAnalysis()
	fr.Spec.Analysis.Mode = "Shadow"
	createFleetRollout(t, fr)
	startCoordinator(t)
	fleettest.Eventually(t, 30*time.Second, "shadow mode at v1", func() error {
		got := getFleetRollout(t, fr.Name)
		if got.Status.Phase != v1alpha1.PhaseShadow || got.Status.Fleet.Revision != v1rev {
			return fmt.Errorf("phase %s (%s: %s), revision %s", got.Status.Phase, got.Status.Reason, got.Status.Message, got.Status.Fleet.Revision)
		}
		return nil
	})

	setImage(t, a, imageV2, workloads...)
	v2rev := waitRevision(t, fr.Name, v1rev)
	faultAll(ctx, t, a.ns, v2rev)
	var got *v1alpha1.FleetRollout
	fleettest.Eventually(t, 90*time.Second, "the would-be abort recorded", func() error {
		got = getFleetRollout(t, fr.Name)
		if sh := got.Status.Shadow; sh == nil || sh.Revision != v2rev || sh.WouldAbortAt == nil {
			return fmt.Errorf("shadow %+v; phase %s (%s)", got.Status.Shadow, got.Status.Phase, got.Status.Message)
		}
		return nil
	})
	sh := got.Status.Shadow
	if sh.Evidence == nil || sh.Evidence.Canary.Failures == 0 || sh.Verdict != string(decide.VerdictFail) {
		t.Errorf("the would-be abort has no evidence of the canary's failures: %+v", sh)
	}
	t.Logf("shadow: would have aborted at %s: %s (canary %d/%d failed)", sh.WouldAbortAt.UTC().Format("15:04:05.000"), sh.WouldAbort,
		sh.Evidence.Canary.Failures, sh.Evidence.Canary.Requests)
	fleettest.Eventually(t, 10*time.Second, "a WouldAbort Event", func() error {
		evs, err := fleettest.Clientset(t, local.HubName).CoreV1().Events(fr.Namespace).List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + fr.Name + ",reason=WouldAbort"})
		if err != nil || len(evs.Items) == 0 {
			return fmt.Errorf("no Event (%v)", err)
		}
		return nil
	})

	// The Rollouts decide: nobody aborts them, and their timed pauses take
	// the bad release through.
	fleettest.Eventually(t, 120*time.Second, "the members' own Rollouts completed v2", func() error {
		for _, c := range workloads {
			st, err := rolloutsStateOf(t, c, a)
			if err != nil {
				return err
			}
			if st.Aborted {
				t.Fatalf("%s was aborted in shadow mode", c)
			}
			if st.Revision != v2rev || st.StableRevision != v2rev || st.Phase != decide.PhaseHealthy {
				return fmt.Errorf("%s: revision %s stable %s phase %s", c, st.Revision, st.StableRevision, st.Phase)
			}
		}
		return nil
	})
	for _, c := range workloads {
		if n := promotedEvents(t, fr.Name)[c]; n > 0 {
			t.Errorf("%s: %d Promoted events in shadow mode", c, n)
		}
	}
	if got := getFleetRollout(t, fr.Name); got.Status.Fleet.Aborted || got.Status.Shadow.WouldAbortAt == nil {
		t.Errorf("after the release: aborted %t, would-be abort %v", got.Status.Fleet.Aborted, got.Status.Shadow.WouldAbortAt)
	}
}
