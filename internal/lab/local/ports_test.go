package local

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestPortsAreKeptAcrossRuns(t *testing.T) {
	t.Parallel()
	clusters, workloads := []string{HubName, "argo-rollout1"}, []string{"argo-rollout1"}
	first, used, err := allocPorts(clusters, workloads, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]string{}
	for name, p := range used {
		if other, dup := seen[p]; dup {
			t.Errorf("port %d given to %s and %s", p, name, other)
		}
		seen[p] = name
	}
	dir := t.TempDir()
	if err := writePorts(dir, used); err != nil {
		t.Fatal(err)
	}
	prev, err := readPorts(dir)
	if err != nil {
		t.Fatal(err)
	}
	second, again, err := allocPorts(clusters, workloads, prev)
	if err != nil {
		t.Fatal(err)
	}
	if second.git != first.git || second.queryHTTP != first.queryHTTP || second.api[HubName] != first.api[HubName] || len(again) != len(used) {
		t.Errorf("second run picked other ports: git %d/%d query %d/%d hub %d/%d", first.git, second.git, first.queryHTTP, second.queryHTTP, first.api[HubName], second.api[HubName])
	}

	// A kept port that something else holds now is a clear error.
	ln, err := net.Listen("tcp", addr(first.git))
	if err != nil {
		t.Skipf("cannot hold port %d: %v", first.git, err)
	}
	defer ln.Close()
	_, _, err = allocPorts(clusters, workloads, prev)
	var taken *PortTakenError
	if !errors.As(err, &taken) || taken.Port != first.git || taken.Name != "git" || !strings.Contains(err.Error(), "lab down --wipe") {
		t.Errorf("port taken: err = %v", err)
	}

	// A new name (a cluster added) gets a port no kept name uses, even
	// when the free-port source offers the kept one first.
	keptGit := first.git + 1
	next := 40000
	offer := func() (int, error) {
		if keptGit != 0 {
			p := keptGit
			keptGit = 0
			return p, nil
		}
		next++
		return next, nil
	}
	_, grown, err := allocPortsFrom(offer, append(clusters, "argo-rollout2"), append(workloads, "argo-rollout2"), map[string]int{"git": first.git + 1})
	if err != nil && !errors.As(err, &taken) {
		t.Fatal(err)
	}
	if err == nil {
		for name, p := range grown {
			if name != "git" && p == first.git+1 {
				t.Errorf("%s got the port kept for git", name)
			}
		}
	}

	if err := os.WriteFile(filepath.Join(dir, portsFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readPorts(dir); err == nil || !strings.Contains(err.Error(), portsFile) {
		t.Errorf("corrupt ports file: err = %v", err)
	}
}

// Each kind of fleet starts what it promises: a light one the clusters,
// Argo Rollouts and the coordinator (without Thanos), a bare one clusters
// only, a full one everything.
func TestStartUpPlans(t *testing.T) {
	t.Parallel()
	names := func(o Options) []string {
		var out []string
		for _, s := range (&fleet{opt: o}).steps() {
			out = append(out, s.name)
		}
		return out
	}
	has := func(plan []string, step string) bool { return slices.Contains(plan, step) }
	full, light, bare := names(Options{}), names(Options{Light: true}), names(Options{Bare: true})
	for _, s := range []string{"Argo Rollouts controllers", "Lockstep coordinator", "git server and Argo CD", "Prometheus, Thanos sidecars, Store, Compactor, Query", "fleet health"} {
		if !has(full, s) {
			t.Errorf("a full fleet does not start %q", s)
		}
	}
	for _, s := range []string{"Argo Rollouts controllers", "workload clusters registered for the coordinator", "Lockstep coordinator", "nodes ready"} {
		if !has(light, s) {
			t.Errorf("a light fleet does not start %q", s)
		}
	}
	for _, s := range []string{"git server and Argo CD", "Prometheus, Thanos sidecars, Store, Compactor, Query", "meshsim data planes (ingress gateways)"} {
		if has(light, s) {
			t.Errorf("a light fleet starts %q", s)
		}
	}
	if has(bare, "Argo Rollouts controllers") || has(bare, "Lockstep coordinator") || !has(bare, "LoadBalancer address allocator") {
		t.Errorf("bare plan %v", bare)
	}
	for _, o := range []Options{{}, {Light: true}} {
		args := strings.Join((&fleet{opt: o, p: &ports{}}).coordinatorArgs("127.0.0.1:1"), " ")
		if strings.Contains(args, "--thanos-url") == o.Light {
			t.Errorf("light %v: coordinator args %s", o.Light, args)
		}
	}
}
