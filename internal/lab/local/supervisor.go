package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProcSpec describes one process of the fleet.
type ProcSpec struct {
	Name    string // unique: cluster/component
	Cluster string
	Path    string
	Args    []string
	Env     []string
	Addr    string
	Ports   map[string]int
	// Health returns nil once the process serves; nil Health means "alive".
	Health func(ctx context.Context) error
	// NetNS runs the process in the fleet's private network namespace,
	// for upstream servers that bind 0.0.0.0 with no flag to change it.
	NetNS bool
}

// Supervisor starts the fleet's processes, records them in the state file,
// notices crashes, and stops them all in reverse order. Every child gets
// Pdeathsig, so killing the supervisor (even with SIGKILL) kills the fleet.
type Supervisor struct {
	Dir      string
	Progress io.Writer

	mu     sync.Mutex
	state  *State
	procs  []*proc
	netns  *netNS
	closed bool
}

type proc struct {
	spec ProcSpec
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// LogPath is where a component's output goes.
func LogPath(dir, name string) string {
	return filepath.Join(dir, "logs", strings.ReplaceAll(name, "/", "_")+".log")
}

// Update changes the state under the lock and persists it.
func (s *Supervisor) Update(f func(*State)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s.state)
	return WriteState(s.state)
}

// Progressf prints one line of progress for the person waiting on `lab up`.
func (s *Supervisor) Progressf(format string, args ...any) {
	if s.Progress != nil {
		fmt.Fprintf(s.Progress, format+"\n", args...)
	}
}

// Start launches a process and records it. It does not wait for health.
func (s *Supervisor) Start(spec ProcSpec) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("supervisor is stopping")
	}
	s.mu.Unlock()
	logPath := LogPath(s.Dir, spec.Name)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = append(append(os.Environ(), fleetEnv+"="+s.Dir), spec.Env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Dir = s.Dir
	// Own process group so a stop reaches grandchildren (git, helpers);
	// Pdeathsig so the child dies with the supervisor.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if spec.NetNS && s.netns != nil {
		err = s.netns.start(cmd)
	} else {
		err = cmd.Start()
	}
	if err != nil {
		return fmt.Errorf("start %s: %w", spec.Name, err)
	}
	p := &proc{spec: spec, cmd: cmd, done: make(chan struct{})}
	ticks, _, _ := procStat(cmd.Process.Pid)
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	_ = s.Update(func(st *State) {
		ps := ProcState{Name: spec.Name, Cluster: spec.Cluster, Addr: spec.Addr, Ports: spec.Ports,
			PID: cmd.Process.Pid, StartTicks: ticks, Status: StatusRunning, Log: logPath, Args: redactArgs(spec.Args)}
		for i := range st.Components {
			if st.Components[i].Name == spec.Name {
				st.Components[i] = ps
				return
			}
		}
		st.Components = append(st.Components, ps)
	})
	go func() {
		p.err = cmd.Wait()
		close(p.done)
		code := cmd.ProcessState.ExitCode()
		now := time.Now()
		s.mu.Lock()
		stopping := s.closed
		s.mu.Unlock()
		_ = s.Update(func(st *State) {
			for i := range st.Components {
				if st.Components[i].Name == spec.Name && st.Components[i].PID == cmd.Process.Pid {
					st.Components[i].Status = StatusExited
					if stopping {
						st.Components[i].Status = StatusStopped
					}
					st.Components[i].ExitCode = code
					st.Components[i].ExitedAt = &now
				}
			}
		})
		if !stopping {
			s.Progressf("component %s exited (code %d); last lines of %s:\n%s", spec.Name, code, logPath, indent(TailFile(logPath, 8)))
		}
	}()
	return nil
}

// redactArgs keeps secrets out of the state file: flags whose name says
// token, password or secret keep their name only.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		low := strings.ToLower(a)
		if k, _, ok := strings.Cut(a, "="); ok && (strings.Contains(low, "token=") || strings.Contains(low, "password=") || strings.Contains(low, "secret=")) {
			out[i] = k + "=<redacted>"
		}
	}
	return out
}

func indent(s string) string {
	if s == "" {
		return "    (empty log)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// WaitHealthy polls a process's health check until it passes, the process
// exits (an error with the tail of its log) or the timeout passes.
func (s *Supervisor) WaitHealthy(ctx context.Context, name string, timeout time.Duration) error {
	p := s.find(name)
	if p == nil {
		return fmt.Errorf("%s was never started", name)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during start-up (%v); last lines of %s:\n%s", name, p.err, LogPath(s.Dir, name), indent(TailFile(LogPath(s.Dir, name), 12)))
		default:
		}
		if p.spec.Health == nil {
			return nil
		}
		hctx, hcancel := context.WithTimeout(ctx, 2*time.Second)
		last = p.spec.Health(hctx)
		hcancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not healthy after %s: %v; last lines of %s:\n%s", name, timeout, last, LogPath(s.Dir, name), indent(TailFile(LogPath(s.Dir, name), 12)))
		case <-p.done:
		case <-time.After(150 * time.Millisecond):
		}
	}
}

func (s *Supervisor) find(name string) *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.procs) - 1; i >= 0; i-- {
		if s.procs[i].spec.Name == name {
			return s.procs[i]
		}
	}
	return nil
}

// StopAll stops every process in reverse start order: SIGTERM to its
// process group, then SIGKILL after grace.
func (s *Supervisor) StopAll(grace time.Duration) {
	s.mu.Lock()
	s.closed = true
	procs := append([]*proc(nil), s.procs...)
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		select {
		case <-p.done:
			continue
		default:
		}
		pid := p.cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-p.done
		}
		// Grandchildren that left the group's leader behind.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	if s.netns != nil {
		s.netns.close()
	}
}
