package coordinator_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/test/fleettest"
)

// TestUnreachableMemberHoldsThenAborts freezes argo-rollout2's apiserver
// (SIGSTOP) while the fleet holds at step 1. The other cluster must not
// advance; once the unreachable deadline passes the fleet aborts, the
// reachable member at once and the frozen one as soon as it answers again.
func TestUnreachableMemberHoldsThenAborts(t *testing.T) {
	setup(t)
	stopLogs(t)
	a := newApp("it-outage")
	cleanupApp(t, a)
	deploy(t, a, imageV1, workloads...)
	waitHealthy(t, a, imageV1, 90*time.Second, workloads...)

	const deadline = 8 * time.Second
	fr := newFleetRollout("outage", a)
	fr.Spec.Hold.Default = &metav1.Duration{Duration: 3 * time.Second}
	fr.Spec.Policy.UnreachableDeadline = &metav1.Duration{Duration: deadline}
	createFleetRollout(t, fr)
	startCoordinator(t)
	fleettest.Eventually(t, 30*time.Second, "FleetRollout completed at v1", func() error {
		return wantPhase(t, fr.Name, v1alpha1.PhaseCompleted, "")
	})
	setImage(t, a, imageV2, workloads...)
	fleettest.Eventually(t, 60*time.Second, "fleet holding at step 1", func() error {
		got := getFleetRollout(t, fr.Name)
		if got.Status.Phase != v1alpha1.PhaseHolding || got.Status.Fleet.BarrierStep == nil || *got.Status.Fleet.BarrierStep != 1 {
			return fmt.Errorf("phase %s (%s)", got.Status.Phase, got.Status.Message)
		}
		return nil
	})

	pid := fleettest.ComponentPID(t, "argo-rollout2/kube-apiserver")
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)

	// Past the hold, within the deadline: nobody moves.
	fleettest.Eventually(t, deadline, "argo-rollout2 seen unreachable", func() error {
		got := getFleetRollout(t, fr.Name)
		if c := findCondition(got, v1alpha1.ConditionMembersReachable); c == nil || c.Status != metav1.ConditionFalse {
			return fmt.Errorf("MembersReachable = %+v", c)
		}
		return nil
	})
	if err := isPausedAt(t, "argo-rollout1", a, 1); err != nil {
		t.Fatalf("argo-rollout1 moved while argo-rollout2 was unreachable: %v", err)
	}
	var got *v1alpha1.FleetRollout
	fleettest.Eventually(t, deadline+15*time.Second, "fleet aborted after the deadline", func() error {
		got = getFleetRollout(t, fr.Name)
		if !got.Status.Fleet.Aborted {
			return fmt.Errorf("phase %s (%s)", got.Status.Phase, got.Status.Message)
		}
		return nil
	})
	if since := time.Since(stopped); since < deadline {
		t.Errorf("aborted %s after the outage began, before the %s deadline", since.Round(time.Millisecond), deadline)
	}
	if got.Status.Fleet.AbortReason != string(decide.ReasonUnreachableDeadline) {
		t.Errorf("abort reason %s: %s", got.Status.Fleet.AbortReason, got.Status.Fleet.AbortMessage)
	}
	fleettest.Eventually(t, 10*time.Second, "argo-rollout1 aborted", func() error {
		s, err := rolloutsStateOf(t, "argo-rollout1", a)
		if err != nil || !s.Aborted {
			return fmt.Errorf("not aborted: %v", err)
		}
		return nil
	})

	resume()
	fleettest.Eventually(t, 30*time.Second, "argo-rollout2 aborted once it answers", func() error {
		s, err := rolloutsStateOf(t, "argo-rollout2", a)
		if err != nil || !s.Aborted {
			return fmt.Errorf("not aborted: %v", err)
		}
		return nil
	})
}

// TestRestartsNeverPromoteTwice rolls the image back and forth several
// times while the coordinator is cancelled and restarted at random
// moments. Each rollout must pause at every pause step in both clusters
// exactly once (a double promotion skips a pause, a lost one leaves the
// fleet stuck), stay within one step, and complete.
func TestRestartsNeverPromoteTwice(t *testing.T) {
	setup(t)
	stopLogs(t)
	a := newApp("it-restart")
	cleanupApp(t, a)
	deploy(t, a, imageV1, workloads...)
	waitHealthy(t, a, imageV1, 90*time.Second, workloads...)

	fr := newFleetRollout("restart", a)
	fr.Spec.Hold.Default = &metav1.Duration{Duration: time.Second}
	createFleetRollout(t, fr)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))

	run := startCoordinator(t)
	images := []string{imageV2, imageV1, imageV2}
	restarts := 0
	for i, img := range images {
		rec := record(t, a)
		before := getFleetRollout(t, fr.Name).Status.Fleet.Revision
		setImage(t, a, img, workloads...)
		deadline := time.Now().Add(90 * time.Second)
		var rev string
		for {
			// Restart at a random point of the canary.
			time.Sleep(time.Duration(rng.Int64N(int64(1500 * time.Millisecond))))
			run.stop(t)
			run = startCoordinator(t)
			restarts++
			got := getFleetRollout(t, fr.Name)
			if got.Status.Phase == v1alpha1.PhaseCompleted && got.Status.Fleet.Revision != before && got.Status.Fleet.Revision != "" {
				rev = got.Status.Fleet.Revision
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rollout %d (%s) stuck: phase %s (%s: %s)\n%s", i, img, got.Status.Phase, got.Status.Reason, got.Status.Message, rec.timeline())
			}
		}
		waitHealthy(t, a, img, 30*time.Second, workloads...)
		samples := rec.snapshot()
		rec.cancel()
		if skew := maxBarrierSkew(samples, rev, a.steps); skew > 1 {
			t.Errorf("rollout %d: skew of %d pause steps\n%s", i, skew, rec.timeline())
		}
		for _, c := range workloads {
			if got := pausedSteps(samples, rev)[c]; !slices.Equal(got, []int32{1, 3, 5}) {
				t.Errorf("rollout %d: %s paused at %v; want [1 3 5]\n%s", i, c, got, rec.timeline())
			}
		}
	}
	t.Logf("%d rollouts, %d coordinator restarts", len(images), restarts)
}
