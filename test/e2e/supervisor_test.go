package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"lockstep.dev/lockstep/internal/lab/local"
)

// TestKilledSupervisorTakesTheFleetWithIt starts a second, one-workload
// fleet and SIGKILLs its supervisor: Pdeathsig must end every child, and
// `lab down` afterwards finds nothing left and says so.
func TestKilledSupervisorTakesTheFleetWithIt(t *testing.T) {
	needFleet(t)
	dir := filepath.Join(t.TempDir(), "killed")
	if _, errOut, err := lockstep(context.Background(), "lab", "up", "--dir", dir, "--workloads", "1", "--nodes", "1"); err != nil {
		t.Fatalf("lab up: %v: %s", err, errOut)
	}
	t.Cleanup(func() { _, _, _ = lockstep(context.Background(), "lab", "down", "--dir", dir) })
	st, err := local.ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(local.MarkedProcesses(dir)); n < 10 {
		t.Fatalf("only %d processes in the second fleet", n)
	}
	if err := syscall.Kill(st.SupervisorPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "every process of the fleet gone", func() error {
		if left := local.MarkedProcesses(dir); len(left) > 0 {
			return fmt.Errorf("still running: %v", left)
		}
		return nil
	})
	out, _, err := lockstep(context.Background(), "lab", "status", "--dir", dir)
	if err != nil || !strings.Contains(out, "Dead") {
		t.Errorf("status after the supervisor died: %v\n%s", err, out)
	}
}

// TestStartTimeoutCleansUp interrupts a start-up half-way: the error is one
// line and nothing of the fleet keeps running.
func TestStartTimeoutCleansUp(t *testing.T) {
	needFleet(t)
	dir := filepath.Join(t.TempDir(), "timeout")
	_, errOut, err := lockstep(context.Background(), "lab", "up", "--dir", dir, "--workloads", "1", "--timeout", "2s")
	if err == nil {
		t.Fatal("a 2s start-up succeeded; the test needs it to time out")
	}
	if !strings.Contains(errOut, "not ready after 2s") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("stderr %q: want one line saying it was not ready", errOut)
	}
	if left := local.MarkedProcesses(dir); len(left) > 0 {
		t.Errorf("processes left after the timeout: %v", left)
	}
}
