package status

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"lockstep.dev/lockstep/internal/rollouts"
	"lockstep.dev/lockstep/internal/view"
	"lockstep.dev/lockstep/test/fleettest"
)

func TestMain(m *testing.M) { os.Exit(fleettest.Main(m, "../..", fleettest.Options{})) }

var workloads = []string{"argo-rollout1", "argo-rollout2"}

func hubArgs() []string {
	return []string{"--kubeconfig", fleettest.F.State.Kubeconfig, "--context", "argo-hub"}
}

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return fleettest.F.Run(ctx, args...)
}

func statusJSON(t *testing.T, args ...string) view.Fleet {
	t.Helper()
	out, errOut, err := run(t, append([]string{"status", "-o", "json"}, args...)...)
	if err != nil {
		t.Fatalf("lockstep status %v: %v: %s", args, err, errOut)
	}
	var f view.Fleet
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("status output is not a fleet: %v\n%s", err, out)
	}
	return f
}

// liveWeights reads a cluster's VirtualService weights straight from its
// apiserver, as the ground truth for what status shows.
func liveWeights(t *testing.T, cluster string) (*rollouts.Weights, error) {
	dyn := fleettest.Dynamic(t, cluster)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ro, err := rollouts.Get(ctx, dyn, "helloworld", "helloworld")
	if err != nil || ro == nil {
		return nil, fmt.Errorf("rollout in %s: %v", cluster, err)
	}
	return rollouts.TrafficWeights(ctx, dyn, ro)
}

func rolloutField(t *testing.T, cluster string, path ...string) (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ro, err := rollouts.Get(ctx, fleettest.Dynamic(t, cluster), "helloworld", "helloworld")
	if err != nil || ro == nil {
		return nil, fmt.Errorf("rollout in %s: %v", cluster, err)
	}
	var cur any = ro.Object
	for _, p := range path {
		m, _ := cur.(map[string]any)
		cur = m[p]
	}
	return cur, nil
}

func byName(f view.Fleet) map[string]view.Cluster {
	out := map[string]view.Cluster{}
	for _, c := range f.Clusters {
		out[c.Name] = c
	}
	return out
}

// TestStatusAbortRetryUnreachable runs one lockstep canary and checks the
// commands on it in order; the steps share the canary because starting one
// takes most of a minute.
func TestStatusAbortRetryUnreachable(t *testing.T) {
	fleettest.Need(t)
	demoCtx, stopDemo := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, errOut, err := fleettest.F.Run(demoCtx, "demo", "--dir", fleettest.F.Dir, "--lockstep",
			"--pause", "5s", "--analysis-delay", "12s", "--analysis-interval", "5s")
		if demoCtx.Err() == nil {
			t.Logf("demo ended by itself (%v):\n%s", err, errOut)
		}
	}()
	t.Cleanup(func() { stopDemo(); wg.Wait() })

	// The canary has started when both routes send the canary traffic.
	fleettest.Eventually(t, 4*time.Minute, "canary traffic in both clusters", func() error {
		for _, c := range workloads {
			w, err := liveWeights(t, c)
			if err != nil {
				return err
			}
			if w == nil || w.Canary == 0 {
				return fmt.Errorf("%s weights %+v", c, w)
			}
		}
		return nil
	})

	t.Run("json shows the real weights", func(t *testing.T) {
		// Weights move at every step; a comparison counts only when the
		// routes did not change while status ran.
		fleettest.Eventually(t, 30*time.Second, "status weights equal the VirtualServices'", func() error {
			before := map[string]rollouts.Weights{}
			for _, c := range workloads {
				w, err := liveWeights(t, c)
				if err != nil || w == nil {
					return fmt.Errorf("%s: %v", c, err)
				}
				before[c] = *w
			}
			for _, args := range [][]string{
				append([]string{"helloworld"}, hubArgs()...),
				{"--kubeconfig", fleettest.F.State.Kubeconfig, "--clusters", strings.Join(workloads, ",")},
			} {
				f := statusJSON(t, args...)
				got := byName(f)
				for _, c := range workloads {
					w, err := liveWeights(t, c)
					if err != nil || w == nil || *w != before[c] {
						return fmt.Errorf("%s moved during the check", c)
					}
					sc, ok := got[c]
					if !ok || !sc.Reachable || sc.Weights == nil {
						return fmt.Errorf("status %v: %s missing or without weights: %+v", args, c, sc)
					}
					if sc.Weights.Stable != w.Stable || sc.Weights.Canary != w.Canary {
						t.Fatalf("status %v: %s weights %+v, VirtualService has %+v", args, c, *sc.Weights, *w)
					}
				}
				if args[0] == "helloworld" && (f.Coordinator == nil || f.Coordinator.FleetRollout != "lockstep/helloworld") {
					t.Fatalf("status helloworld: coordinator = %+v", f.Coordinator)
				}
			}
			return nil
		})
	})

	t.Run("no name picks the hub's only FleetRollout", func(t *testing.T) {
		f := statusJSON(t, "--kubeconfig", fleettest.F.State.Kubeconfig, "--context", "argo-hub")
		if f.Coordinator == nil || f.Coordinator.FleetRollout != "lockstep/helloworld" {
			t.Fatalf("status without a name: coordinator = %+v; want lockstep/helloworld, the only one", f.Coordinator)
		}
	})

	t.Run("abort stops the canary in both clusters", func(t *testing.T) {
		out, errOut, err := run(t, append([]string{"abort"}, hubArgs()...)...)
		if err != nil {
			t.Fatalf("abort: %v: %s", err, errOut)
		}
		for _, c := range workloads {
			if !strings.Contains(out, c+": rollout helloworld/helloworld aborted") {
				t.Errorf("abort output lacks a line for %s:\n%s", c, out)
			}
		}
		fleettest.Eventually(t, 30*time.Second, "both clusters aborted with no canary traffic", func() error {
			for _, c := range workloads {
				if v, err := rolloutField(t, c, "status", "abort"); err != nil || v != true {
					return fmt.Errorf("%s status.abort = %v (%v)", c, v, err)
				}
				if w, err := liveWeights(t, c); err != nil || w == nil || w.Canary != 0 {
					return fmt.Errorf("%s weights %+v (%v)", c, w, err)
				}
			}
			f := statusJSON(t, append([]string{"helloworld"}, hubArgs()...)...)
			for _, c := range f.Clusters {
				if view.Status(c) != "Aborted" {
					return fmt.Errorf("status shows %s as %s", c.Name, view.Status(c))
				}
			}
			return nil
		})
	})

	t.Run("retry restarts it", func(t *testing.T) {
		out, errOut, err := run(t, append([]string{"retry"}, hubArgs()...)...)
		if err != nil {
			t.Fatalf("retry: %v: %s", err, errOut)
		}
		for _, c := range workloads {
			if !strings.Contains(out, c+": rollout helloworld/helloworld retried through coordinator lockstep/helloworld") {
				t.Errorf("retry output lacks a line for %s:\n%s", c, out)
			}
		}
		// Restarted means out of the abort and sending canary traffic again.
		fleettest.Eventually(t, 90*time.Second, "both clusters back in the canary", func() error {
			for _, c := range workloads {
				if v, err := rolloutField(t, c, "status", "abort"); err != nil || v == true {
					return fmt.Errorf("%s status.abort = %v (%v)", c, v, err)
				}
				if w, err := liveWeights(t, c); err != nil || w == nil || w.Canary == 0 {
					return fmt.Errorf("%s weights %+v (%v)", c, w, err)
				}
			}
			return nil
		})
	})

	t.Run("an unreachable cluster shows and the other still shows", func(t *testing.T) {
		pid := fleettest.ComponentPID(t, "argo-rollout2/kube-apiserver")
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
		start := time.Now()
		f := statusJSON(t, append([]string{"helloworld", "--request-timeout", "3s"}, hubArgs()...)...)
		took := time.Since(start)
		got := byName(f)
		if c := got["argo-rollout2"]; c.Reachable || !strings.Contains(c.Error, "argo-rollout2") {
			t.Errorf("argo-rollout2 = %+v, want unreachable with an error naming it", c)
		}
		if c := got["argo-rollout1"]; !c.Reachable || !c.Found || c.Weights == nil {
			t.Errorf("argo-rollout1 = %+v, want it read as usual", c)
		}
		// One refresh: a hung apiserver costs one timeout, not a hang.
		if took > 15*time.Second {
			t.Errorf("status took %s with one cluster stopped", took)
		}
		_, errOut, err := run(t, append([]string{"pause", "--request-timeout", "3s"}, hubArgs()...)...)
		if err == nil || !strings.Contains(errOut, "argo-rollout2: ") {
			t.Errorf("pause with argo-rollout2 stopped: err %v, stderr %q; want a failure naming argo-rollout2", err, errOut)
		}
		// Leave the fleet as found: argo-rollout1 was paused above.
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		fleettest.Eventually(t, 30*time.Second, "resume after the outage", func() error {
			_, errOut, err := run(t, append([]string{"resume"}, hubArgs()...)...)
			if err != nil {
				return fmt.Errorf("%v: %s", err, errOut)
			}
			return nil
		})
	})
}
