package coordinator_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/access"
	"lockstep.dev/lockstep/internal/coordinator"
	"lockstep.dev/lockstep/test/fleettest"
)

// TestTwoCoordinatorsHandOver runs two coordinators with leader election,
// as the installed Deployment's two replicas do, stops the leader in the
// middle of a canary and checks that the other one finishes it: each
// cluster is promoted exactly once per pause step (no double promotion),
// every pause step is seen paused in both clusters (none skipped), and
// the clusters never drift more than one pause step apart.
func TestTwoCoordinatorsHandOver(t *testing.T) {
	setup(t)
	stopLogs(t)
	a := newApp("it-handover")
	cleanupApp(t, a)
	deploy(t, a, imageV1, workloads...)
	waitHealthy(t, a, imageV1, 90*time.Second, workloads...)
	v1rev := getRolloutState(t, workloads[0], a).Revision

	rec := record(t, a)
	fr := newFleetRollout("handover", a)
	fr.Spec.Hold.Default = &metav1.Duration{Duration: 3 * time.Second}
	createFleetRollout(t, fr)
	elect := func(c *coordinator.Config) { c.LeaderElection = true }
	runs := []*coordinatorRun{startCoordinator(t, elect), startCoordinator(t, elect)}
	fleettest.Eventually(t, 60*time.Second, "FleetRollout completed at v1", func() error {
		return wantPhase(t, fr.Name, v1alpha1.PhaseCompleted, v1rev)
	})

	setImage(t, a, imageV2, workloads...)
	fleettest.Eventually(t, 90*time.Second, "first pause step promoted in both clusters", func() error {
		if got := promotedEvents(t, fr.Name); got["argo-rollout1"] < 1 || got["argo-rollout2"] < 1 {
			return fmt.Errorf("promotions %v", got)
		}
		return nil
	})
	// The leader is the one that has promoted; the other has never
	// reconciled, so it has no promotion series.
	leader := -1
	for i, r := range runs {
		if strings.Contains(scrape(t, r), "lockstep_promotions_total{") {
			if leader >= 0 {
				t.Fatal("both coordinators have promoted: leader election let two act")
			}
			leader = i
		}
	}
	if leader < 0 {
		t.Fatal("no coordinator reports a promotion")
	}
	holder := func() string {
		l, err := fleettest.Clientset(t, "argo-hub").CoordinationV1().Leases(access.Namespace).Get(context.Background(), "lockstep-coordinator", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	before := holder()
	handover := time.Now()
	runs[leader].stop(t)
	follower := runs[1-leader]
	fleettest.Eventually(t, 30*time.Second, "the other coordinator holds the Lease", func() error {
		if h := holder(); h == "" || h == before {
			return fmt.Errorf("holder %q", h)
		}
		return nil
	})
	t.Logf("Lease handed over in %s", time.Since(handover).Round(time.Millisecond))

	var v2rev string
	fleettest.Eventually(t, 150*time.Second, "FleetRollout completed at v2 by the new leader", func() error {
		got := getFleetRollout(t, fr.Name)
		if got.Status.Fleet.Revision == v1rev || got.Status.Phase != v1alpha1.PhaseCompleted {
			return fmt.Errorf("phase %s (%s: %s)", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		v2rev = got.Status.Fleet.Revision
		return nil
	})
	if !strings.Contains(scrape(t, follower), "lockstep_promotions_total{") {
		t.Error("the second coordinator finished the canary without promoting anything")
	}
	samples := rec.snapshot()
	if skew := maxBarrierSkew(samples, v2rev, a.steps); skew > 1 {
		t.Errorf("step skew reached %d pause steps across the hand-over; want at most 1", skew)
	}
	paused := pausedSteps(samples, v2rev)
	for _, c := range workloads {
		if !slices.Equal(paused[c], []int32{1, 3, 5}) {
			t.Errorf("%s was seen paused at steps %v; want [1 3 5] (a step skipped or repeated)", c, paused[c])
		}
	}
	if got := promotedEvents(t, fr.Name); got["argo-rollout1"] != 3 || got["argo-rollout2"] != 3 {
		t.Errorf("promotions per cluster %v; want exactly 3 each across the hand-over", got)
	}
}
