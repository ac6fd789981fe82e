package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"lockstep.dev/lockstep/internal/lab/local"
)

// env is the shared fleet of this package.
var env struct {
	bin      string // the lockstep binary under test
	dir      string // the fleet's directory
	state    *local.State
	upTime   time.Duration
	skip     string // why fleet tests skip, if they do
	startErr error
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "lockstep-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	// kubectl-style discovery caches stay inside the test's directory.
	os.Setenv("KUBECACHEDIR", filepath.Join(tmp, "kubecache"))
	env.bin = filepath.Join(tmp, "lockstep")
	build := exec.Command("go", "build", "-o", env.bin, "../../cmd/lockstep")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build lockstep: %v\n%s", err, out)
		return 1
	}
	env.dir = filepath.Join(tmp, "fleet")
	switch {
	case testing.Short():
		env.skip = "-short: the local fleet (real kube-apiservers, Argo CD, Argo Rollouts, Prometheus, Thanos) is not started"
	case runtime.GOOS != "linux":
		env.skip = "the local fleet runs on Linux only"
	}
	if env.skip == "" {
		cache, err := local.DefaultCache()
		if err == nil {
			err = cache.Check()
		}
		if err != nil {
			// CI builds the cache first (make test); a developer without
			// it gets a failing run that says what to do, never a silent pass.
			fmt.Fprintf(os.Stderr, "local fleet unavailable: %v\n", err)
			return 1
		}
		start := time.Now()
		out, errOut, err := lockstep(context.Background(), "lab", "up", "--dir", env.dir)
		env.upTime = time.Since(start)
		fmt.Fprintf(os.Stderr, "lab up (%s):\n%s%s", env.upTime.Round(time.Millisecond), out, errOut)
		if err != nil {
			env.startErr = fmt.Errorf("lab up: %v: %s", err, errOut)
		} else {
			env.state, env.startErr = local.ReadState(env.dir)
		}
	} else {
		fmt.Fprintf(os.Stderr, "e2e: fleet tests skip: %s\n", env.skip)
	}
	code := m.Run()
	if env.skip == "" {
		out, errOut, err := lockstep(context.Background(), "lab", "down", "--dir", env.dir)
		fmt.Fprintf(os.Stderr, "lab down: %s%s", out, errOut)
		if err != nil {
			code = 1
		}
		if left := local.MarkedProcesses(env.dir); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "processes left behind after lab down: %v\n", left)
			code = 1
		}
	}
	return code
}

// lockstep runs the CLI binary and returns stdout, stderr.
func lockstep(ctx context.Context, args ...string) (string, string, error) {
	return lockstepEnv(ctx, nil, args...)
}

func lockstepEnv(ctx context.Context, extraEnv []string, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, env.bin, args...)
	cmd.Env = append(os.Environ(), extraEnv...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// needFleet skips a test when the package runs without a fleet, and fails
// it when the fleet did not start.
func needFleet(t testing.TB) {
	t.Helper()
	if env.skip != "" {
		t.Skip(env.skip)
	}
	if env.startErr != nil {
		t.Fatalf("local fleet did not start: %v", env.startErr)
	}
}

func restConfig(t testing.TB, cluster string) *rest.Config {
	t.Helper()
	cfg, err := local.RESTConfig(env.state.Kubeconfig, cluster)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func clientset(t testing.TB, cluster string) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(restConfig(t, cluster))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// eventually polls cond until it returns nil or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not true after %s: %v", what, timeout, err)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
