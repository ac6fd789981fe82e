package coordinator_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/coordinator"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/test/fleettest"
)

// TestThanosOutage freezes Thanos Query (SIGSTOP) during a hold. The fleet
// must not promote while the analysis cannot be read; Thanos coming back
// before the inconclusive limit lets the canary finish; a second release
// whose Thanos outage outlasts the limit is aborted everywhere, as
// policy.onInconclusive: Abort asks (the default pauses for a person:
// TestJudgeNeverPassesWithoutTraffic).
func TestThanosOutage(t *testing.T) {
	setup(t)
	stopLogs(t)
	a := meshApp()
	freshApp(t, a)
	deploy(t, a, imageV1, workloads...)
	waitHealthy(t, a, imageV1, 90*time.Second, workloads...)

	ctx, cancel := context.WithCancel(context.Background())
	wg := load(ctx, t)
	t.Cleanup(func() { cancel(); wg.Wait() })

	const limit = 15 * time.Second
	fr := newFleetRollout("thanos", a)
	fr.Spec.Hold.Default = &metav1.Duration{Duration: 3 * time.Second}
	fr.Spec.Policy.InconclusiveLimit = &metav1.Duration{Duration: limit}
	fr.Spec.Policy.OnInconclusive = "Abort"
	fr.Spec.Analysis = successRate()
	fr.Spec.Analysis.Interval = &metav1.Duration{Duration: time.Second}
	createFleetRollout(t, fr)
	startCoordinator(t, func(c *coordinator.Config) { c.EvaluationTimeout = time.Second })
	fleettest.Eventually(t, 30*time.Second, "FleetRollout completed at v1", func() error {
		return wantPhase(t, fr.Name, v1alpha1.PhaseCompleted, "")
	})

	pid := fleettest.ComponentPID(t, "argo-hub/thanos-query")
	frozen := false
	freeze := func(on bool) {
		t.Helper()
		sig := syscall.SIGCONT
		if on {
			sig = syscall.SIGSTOP
		}
		if err := syscall.Kill(pid, sig); err != nil {
			t.Fatal(err)
		}
		frozen = on
	}
	t.Cleanup(func() {
		if frozen {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})

	// Release 1: a short outage during the hold at step 1.
	before := getFleetRollout(t, fr.Name).Status.Fleet.Revision
	setImage(t, a, imageV2, workloads...)
	waitBarrier(t, fr.Name, 1, 60*time.Second)
	freeze(true)
	outage := time.Now()
	for time.Since(outage) < limit/2 {
		for _, c := range workloads {
			if err := isPausedAt(t, c, a, 1); err != nil {
				t.Fatalf("%s moved while Thanos was down (%s into the outage): %v", c, time.Since(outage).Round(time.Millisecond), err)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	freeze(false)
	fleettest.Eventually(t, 120*time.Second, "release 1 completes after Thanos is back", func() error {
		got := getFleetRollout(t, fr.Name)
		if got.Status.Fleet.Aborted {
			t.Fatalf("aborted although Thanos came back within the limit: %s", got.Status.Fleet.AbortMessage)
		}
		if got.Status.Phase != v1alpha1.PhaseCompleted || got.Status.Fleet.Revision == before {
			return fmt.Errorf("phase %s (%s: %s)", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		return nil
	})

	// Release 2: the outage outlasts the limit.
	before = getFleetRollout(t, fr.Name).Status.Fleet.Revision
	setImage(t, a, imageV1, workloads...)
	waitBarrier(t, fr.Name, 1, 60*time.Second)
	freeze(true)
	var got *v1alpha1.FleetRollout
	fleettest.Eventually(t, limit+20*time.Second, "release 2 aborted at the inconclusive limit", func() error {
		got = getFleetRollout(t, fr.Name)
		if got.Status.Fleet.Revision == before || !got.Status.Fleet.Aborted {
			return fmt.Errorf("phase %s (%s: %s)", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		return nil
	})
	if got.Status.Fleet.AbortReason != string(decide.ReasonInconclusiveLimit) {
		t.Errorf("abort reason %s: %s", got.Status.Fleet.AbortReason, got.Status.Fleet.AbortMessage)
	}
	fleettest.Eventually(t, 10*time.Second, "both members aborted", func() error {
		for _, c := range workloads {
			s, err := rolloutsStateOf(t, c, a)
			if err != nil || !s.Aborted {
				return fmt.Errorf("%s not aborted (%v)", c, err)
			}
		}
		return nil
	})
	freeze(false)
}

// waitBarrier waits until the fleet holds at pause step `step`.
func waitBarrier(t testing.TB, name string, step int32, timeout time.Duration) {
	t.Helper()
	fleettest.Eventually(t, timeout, fmt.Sprintf("fleet holding at step %d", step), func() error {
		got := getFleetRollout(t, name)
		if got.Status.Phase != v1alpha1.PhaseHolding || got.Status.Fleet.BarrierStep == nil || *got.Status.Fleet.BarrierStep != step {
			return fmt.Errorf("phase %s (%s)", got.Status.Phase, got.Status.Message)
		}
		return nil
	})
}
