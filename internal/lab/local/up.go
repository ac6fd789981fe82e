package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"
)

// DefaultDir is where the default fleet keeps its state: LOCKSTEP_DIR, else
// the user's state directory.
func DefaultDir() string {
	if d := os.Getenv("LOCKSTEP_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "lockstep", "fleet")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "lockstep-fleet")
	}
	return filepath.Join(home, ".local", "state", "lockstep", "fleet")
}

// UpOptions configure `lab up`.
type UpOptions struct {
	Dir        string
	Cache      Cache
	Workloads  int
	Nodes      int
	NoNetNS    bool
	ThanosPort int
	// NoCoordinator leaves the Lockstep coordinator out.
	NoCoordinator bool
	// Bare starts empty clusters (see Options.Bare); Light starts light
	// members for scale runs (see Options.Light).
	Bare       bool
	Light      bool
	Supervisor []string // command that runs `lab supervise` (the lockstep binary)
	Out        io.Writer
	Timeout    time.Duration
}

// ErrAlreadyRunning is returned (and reported as a no-op) by Up on a fleet
// that is already running.
var ErrAlreadyRunning = errors.New("fleet already running")

// Up starts a detached supervisor for the fleet in o.Dir and waits until the
// fleet is Ready or has failed, printing the supervisor's progress.
func Up(ctx context.Context, o UpOptions) (*State, error) {
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	o.Dir = abs
	if st, err := ReadState(o.Dir); err == nil {
		if Alive(st.SupervisorPID, st.SupervisorAt) {
			return st, ErrAlreadyRunning
		}
	} else if !errors.Is(err, ErrNoFleet) {
		return nil, err
	}
	// Refuse early, before anything runs: missing components or packages.
	if err := o.Cache.Check(); err != nil {
		return nil, err
	}
	if err := CheckHostTools(); err != nil {
		return nil, err
	}
	if o.ThanosPort != 0 {
		if err := PortFree(o.ThanosPort); err != nil {
			return nil, fmt.Errorf("%w (--thanos-port)", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	// A supervisor that died hard took its children with it (Pdeathsig);
	// anything still marked with this fleet is a leftover to clear first.
	for _, pid := range MarkedProcesses(o.Dir) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	prog := filepath.Join(o.Dir, "progress.log")
	_ = os.Remove(prog)
	_ = os.Remove(StatePath(o.Dir))
	logf, err := os.OpenFile(filepath.Join(o.Dir, "logs", "supervisor.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	args := append(append([]string{}, o.Supervisor[1:]...), "lab", "supervise", "--dir", o.Dir,
		"--workloads", strconv.Itoa(o.Workloads), "--nodes", strconv.Itoa(o.Nodes))
	if o.NoNetNS {
		args = append(args, "--no-netns")
	}
	if o.ThanosPort != 0 {
		args = append(args, "--thanos-port", strconv.Itoa(o.ThanosPort))
	}
	if o.NoCoordinator {
		args = append(args, "--no-coordinator")
	}
	if o.Bare {
		args = append(args, "--bare")
	}
	if o.Light {
		args = append(args, "--light")
	}
	cmd := exec.Command(o.Supervisor[0], args...)
	cmd.Env = append(os.Environ(), fleetEnv+"="+o.Dir, "LOCKSTEP_CACHE_DIR="+o.Cache.Root)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = o.Dir
	// The supervisor outlives this command: its own session, no terminal.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start supervisor: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	deadline := time.After(o.Timeout)
	var offset int64
	for {
		offset = copyNew(prog, offset, o.Out)
		st, err := ReadState(o.Dir)
		if err == nil && st.Phase == PhaseReady {
			return st, nil
		}
		select {
		case <-exited:
			copyNew(prog, offset, o.Out)
			msg := "supervisor exited"
			if st, err := ReadState(o.Dir); err == nil && st.Message != "" {
				msg = st.Message
			} else if t := TailFile(filepath.Join(o.Dir, "logs", "supervisor.log"), 1); t != "" {
				msg = t
			}
			return nil, errors.New(msg)
		case <-ctx.Done():
			_ = Down(o.Dir, false, io.Discard)
			return nil, ctx.Err()
		case <-deadline:
			_ = Down(o.Dir, false, io.Discard)
			return nil, fmt.Errorf("fleet not ready after %s; see %s", o.Timeout, prog)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func copyNew(path string, offset int64, w io.Writer) int64 {
	f, err := os.Open(path)
	if err != nil {
		return offset
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			// Keep a partial line for the next read.
			return offset
		}
		offset += int64(len(line))
		if w != nil {
			_, _ = io.WriteString(w, line)
		}
	}
}

// Down stops every process of the fleet in dir: the supervisor first (it
// stops its children in order), then anything still carrying the fleet's
// marker. With wipe, the directory goes too.
func Down(dir string, wipe bool, out io.Writer) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	st, stErr := ReadState(abs)
	if stErr != nil && !errors.Is(stErr, ErrNoFleet) && !wipe {
		// A corrupted state file still lets us find processes by marker.
		fmt.Fprintf(out, "warning: %v\n", stErr)
	}
	stopped := 0
	if stErr == nil && Alive(st.SupervisorPID, st.SupervisorAt) {
		_ = syscall.Kill(st.SupervisorPID, syscall.SIGTERM)
		deadline := time.Now().Add(45 * time.Second)
		for Alive(st.SupervisorPID, st.SupervisorAt) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if Alive(st.SupervisorPID, st.SupervisorAt) {
			_ = syscall.Kill(st.SupervisorPID, syscall.SIGKILL)
		}
		stopped++
	}
	// Leftovers: processes of this fleet whatever the state file says.
	for i := 0; i < 50; i++ {
		pids := MarkedProcesses(abs)
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			stopped++
		}
		time.Sleep(100 * time.Millisecond)
	}
	if left := MarkedProcesses(abs); len(left) > 0 {
		return fmt.Errorf("processes %v of fleet %s survived SIGKILL", left, abs)
	}
	if stErr == nil {
		fmt.Fprintf(out, "fleet in %s stopped\n", abs)
	} else if stopped == 0 && !wipe {
		fmt.Fprintf(out, "no fleet running in %s\n", abs)
	}
	if wipe {
		if err := os.RemoveAll(abs); err != nil {
			return err
		}
		fmt.Fprintf(out, "removed %s\n", abs)
	}
	return nil
}

// ComponentStatus is one row of `lab status`.
type ComponentStatus struct {
	Name    string `json:"name"`
	Cluster string `json:"cluster,omitempty"`
	Up      bool   `json:"up"`
	Status  string `json:"status"`
	Addr    string `json:"addr,omitempty"`
	PID     int    `json:"pid,omitempty"`
	RSS     int64  `json:"rssBytes"`
	Log     string `json:"log"`
	// LogTail holds the last lines of a component that is down.
	LogTail string `json:"logTail,omitempty"`
}

// FleetStatus is the whole of `lab status`.
type FleetStatus struct {
	Dir        string            `json:"dir"`
	Phase      string            `json:"phase"`
	Message    string            `json:"message,omitempty"`
	Supervisor int               `json:"supervisorPID"`
	Kubeconfig string            `json:"kubeconfig"`
	URLs       map[string]string `json:"urls"`
	Components []ComponentStatus `json:"components"`
	TotalRSS   int64             `json:"totalRSSBytes"`
}

// Status reads the state file and checks every recorded process.
func Status(dir string) (*FleetStatus, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	st, err := ReadState(abs)
	if err != nil {
		return nil, err
	}
	fs := &FleetStatus{Dir: abs, Phase: st.Phase, Message: st.Message, Supervisor: st.SupervisorPID, Kubeconfig: st.Kubeconfig, URLs: st.URLs}
	supAlive := Alive(st.SupervisorPID, st.SupervisorAt)
	if !supAlive && st.Phase != PhaseStopped && st.Phase != PhaseFailed {
		fs.Phase = PhaseDead
		fs.Message = "supervisor is not running; `lockstep lab down` cleans up"
	}
	for _, c := range st.Components {
		up := c.Status == StatusRunning && Alive(c.PID, c.StartTicks)
		cs := ComponentStatus{Name: c.Name, Cluster: c.Cluster, Up: up, Status: c.Status, Addr: c.Addr, PID: c.PID, Log: c.Log}
		if up {
			cs.RSS = RSS(c.PID)
			fs.TotalRSS += cs.RSS
		} else {
			if c.Status == StatusRunning {
				cs.Status = "gone"
			}
			cs.LogTail = TailFile(c.Log, 5)
		}
		fs.Components = append(fs.Components, cs)
		if !up && fs.Phase == PhaseReady {
			fs.Phase = PhaseDegraded
			fs.Message = "a component is down"
		}
	}
	if supAlive {
		fs.TotalRSS += RSS(st.SupervisorPID)
	}
	sort.SliceStable(fs.Components, func(i, j int) bool { return fs.Components[i].Cluster < fs.Components[j].Cluster })
	return fs, nil
}
