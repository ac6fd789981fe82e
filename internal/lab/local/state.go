package local

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Fleet phases recorded in the state file.
const (
	PhaseStarting = "Starting"
	PhaseReady    = "Ready"
	PhaseFailed   = "Failed"
	PhaseStopping = "Stopping"
	PhaseStopped  = "Stopped"
	// Read-side phases: a Ready fleet with a component down, and a fleet
	// whose supervisor is gone.
	PhaseDegraded = "Degraded"
	PhaseDead     = "Dead"
)

// Component statuses.
const (
	StatusPending = "pending"
	StatusRunning = "running"
	StatusExited  = "exited"
	StatusStopped = "stopped"
)

// State is everything another shell needs to find, inspect and stop a fleet.
// The supervisor owns it and rewrites it atomically; readers never lock.
type State struct {
	Version       int               `json:"version"`
	Dir           string            `json:"dir"`
	Phase         string            `json:"phase"`
	Message       string            `json:"message,omitempty"`
	SupervisorPID int               `json:"supervisorPID"`
	SupervisorAt  uint64            `json:"supervisorStartTicks"`
	StartedAt     time.Time         `json:"startedAt"`
	ReadyAt       *time.Time        `json:"readyAt,omitempty"`
	Kubeconfig    string            `json:"kubeconfig"`
	NetNS         bool              `json:"netns"`
	URLs          map[string]string `json:"urls"`
	Clusters      []ClusterInfo     `json:"clusters"`
	Components    []ProcState       `json:"components"`
}

// ClusterInfo is one cluster of the fleet.
type ClusterInfo struct {
	Name   string `json:"name"`
	Role   string `json:"role"` // hub or workload
	Server string `json:"server"`
	// PrometheusCluster is the external label its Prometheus carries.
	PrometheusCluster string `json:"prometheusCluster,omitempty"`
}

// ProcState is one supervised process.
type ProcState struct {
	Name       string         `json:"name"` // unique, e.g. argo-rollout1/kube-apiserver
	Cluster    string         `json:"cluster,omitempty"`
	Addr       string         `json:"addr,omitempty"`
	Ports      map[string]int `json:"ports,omitempty"`
	PID        int            `json:"pid,omitempty"`
	StartTicks uint64         `json:"startTicks,omitempty"`
	Status     string         `json:"status"`
	ExitCode   int            `json:"exitCode,omitempty"`
	ExitedAt   *time.Time     `json:"exitedAt,omitempty"`
	Log        string         `json:"log"`
	Args       []string       `json:"args,omitempty"`
}

const stateVersion = 1

// StatePath is the state file of a fleet directory.
func StatePath(dir string) string { return filepath.Join(dir, "state.json") }

// ErrNoFleet means the directory holds no fleet state.
var ErrNoFleet = errors.New("no fleet")

// ReadState loads a fleet's state. A missing file is ErrNoFleet; a file that
// does not parse is a clear error naming it.
func ReadState(dir string) (*State, error) {
	b, err := os.ReadFile(StatePath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", ErrNoFleet, dir)
	}
	if err != nil {
		return nil, err
	}
	// Unmarshal, not a Decoder: a file with anything after its object
	// (two writers, a half-copied file) is corrupted, not the first half.
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("state file %s is corrupted (%v); `lockstep lab down --wipe` removes it", StatePath(dir), err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("state file %s has version %d, this lockstep reads %d; `lockstep lab down --wipe` removes it", StatePath(dir), s.Version, stateVersion)
	}
	return &s, nil
}

// WriteState replaces the state file atomically so a reader never sees half
// of it, even if the supervisor is killed mid-write.
func WriteState(s *State) error {
	s.Version = stateVersion
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := StatePath(s.Dir) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, StatePath(s.Dir))
}

// Alive reports whether pid is still the process that was started with
// startTicks (guarding against pid reuse).
func Alive(pid int, startTicks uint64) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	t, state, err := procStat(pid)
	if err != nil || state == "Z" {
		return false
	}
	return startTicks == 0 || t == startTicks
}

// procStat returns a process's start time (clock ticks since boot) and state
// letter from /proc/PID/stat.
func procStat(pid int) (uint64, string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", err
	}
	// The command name may contain spaces and parentheses: fields start
	// after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, "", fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, "", fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	t, err := strconv.ParseUint(f[19], 10, 64)
	return t, f[0], err
}

// RSS returns a process's resident set size in bytes, 0 if unknown.
func RSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// fleetEnv marks every process of a fleet, so `lab down` can find leftovers
// even when the state file is lost or corrupted.
const fleetEnv = "LOCKSTEP_FLEET_DIR"

// MarkedProcesses lists pids whose environment carries the fleet marker of dir.
func MarkedProcesses(dir string) []int {
	want := []byte("\x00" + fleetEnv + "=" + dir + "\x00")
	entries, _ := os.ReadDir("/proc")
	var pids []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		if bytes.Contains(append(append([]byte{0}, env...), 0), want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TailFile returns the last n lines of a file, for crash reports.
func TailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
