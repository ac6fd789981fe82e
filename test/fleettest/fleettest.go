// Package fleettest is the shared harness of the integration test packages:
// each package's TestMain calls Main, which builds the lockstep binary,
// starts one local fleet through the real CLI (`lockstep lab up`), runs the
// tests, and stops the fleet, failing the run if a process is left behind.
// Under -short, or off Linux, fleet tests skip and say why. It may import
// lockstep's internal packages and client-go.
package fleettest

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

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/local"
)

// Fleet is the shared fleet of a test package.
type Fleet struct {
	Bin      string // the lockstep binary under test
	Dir      string // the fleet's directory
	State    *local.State
	UpTime   time.Duration
	skip     string
	startErr error
}

// F is the package's fleet, set by Main.
var F = &Fleet{}

// Options tune Main.
type Options struct {
	// UpArgs are extra `lab up` flags.
	UpArgs []string
}

// Main runs a test package against one fleet. repoRoot is the path from the
// package to the repository root (e.g. "../..").
func Main(m *testing.M, repoRoot string, o Options) int {
	flag.Parse()
	tmp, err := os.MkdirTemp("", "lockstep-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	// Discovery caches stay inside the test's directory.
	os.Setenv("KUBECACHEDIR", filepath.Join(tmp, "kubecache"))
	// `lab up` adds its contexts to the person's kubeconfig: here, one of
	// the test's own, never the machine's ~/.kube/config.
	os.Setenv("KUBECONFIG", filepath.Join(tmp, "user-kubeconfig"))
	F.Bin = filepath.Join(tmp, "lockstep")
	build := exec.Command("go", "build", "-o", F.Bin, filepath.Join(repoRoot, "cmd", "lockstep"))
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build lockstep: %v\n%s", err, out)
		return 1
	}
	F.Dir = filepath.Join(tmp, "fleet")
	switch {
	case testing.Short():
		F.skip = "-short: the local fleet (real kube-apiservers, Argo CD, Argo Rollouts, Prometheus, Thanos) is not started"
	case runtime.GOOS != "linux":
		F.skip = "the local fleet runs on Linux only"
	}
	if F.skip == "" {
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
		args := append([]string{"lab", "up", "--dir", F.Dir}, o.UpArgs...)
		out, errOut, err := F.Run(context.Background(), args...)
		F.UpTime = time.Since(start)
		fmt.Fprintf(os.Stderr, "lab up (%s):\n%s%s", F.UpTime.Round(time.Millisecond), out, errOut)
		if err != nil {
			F.startErr = fmt.Errorf("lab up: %v: %s", err, errOut)
		} else {
			F.State, F.startErr = local.ReadState(F.Dir)
		}
	} else {
		fmt.Fprintf(os.Stderr, "fleet tests skip: %s\n", F.skip)
	}
	code := m.Run()
	if F.skip == "" {
		out, errOut, err := F.Run(context.Background(), "lab", "down", "--dir", F.Dir)
		fmt.Fprintf(os.Stderr, "lab down: %s%s", out, errOut)
		if err != nil {
			code = 1
		}
		if left := local.MarkedProcesses(F.Dir); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "processes left behind after lab down: %v\n", left)
			code = 1
		}
	}
	return code
}

// Run runs the CLI binary and returns stdout and stderr.
func (f *Fleet) Run(ctx context.Context, args ...string) (string, string, error) {
	return f.RunEnv(ctx, nil, args...)
}

// RunEnv is Run with extra environment variables.
func (f *Fleet) RunEnv(ctx context.Context, extraEnv []string, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, f.Bin, args...)
	cmd.Env = append(os.Environ(), extraEnv...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// Need skips a test when the package runs without a fleet, and fails it
// when the fleet did not start.
func Need(t testing.TB) {
	t.Helper()
	if F.skip != "" {
		t.Skip(F.skip)
	}
	if F.startErr != nil {
		t.Fatalf("local fleet did not start: %v", F.startErr)
	}
}

// RESTConfig is an admin config for a cluster of the fleet.
func RESTConfig(t testing.TB, cluster string) *rest.Config {
	t.Helper()
	cfg, err := local.RESTConfig(F.State.Kubeconfig, cluster)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Clientset is a typed admin client for a cluster of the fleet.
func Clientset(t testing.TB, cluster string) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(RESTConfig(t, cluster))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// Dynamic is a dynamic admin client for a cluster of the fleet.
func Dynamic(t testing.TB, cluster string) dynamic.Interface {
	t.Helper()
	d, err := dynamic.NewForConfig(RESTConfig(t, cluster))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Eventually polls cond until it returns nil or the timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
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

// FirstLine is the first line of s, trimmed.
func FirstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// AppNames name a test application's objects in one namespace: the
// Rollout and its stable Service share Stable.
type AppNames struct {
	Namespace, Stable, Canary, VirtualService, Route string
}

// MeshNames are the names meshsim's gateways route by default (the guide's
// helloworld), for an application that gets traffic.
var MeshNames = AppNames{Namespace: "helloworld", Stable: "helloworld", Canary: "helloworld-canary",
	VirtualService: "helloworld-crosscluster-gateways", Route: "helloworld"}

// LeadingPauseApp is a test application for waves: a Rollout (replicas
// pods of image, container "helloworld") whose first step is the pause at
// which later waves wait, then 20 % and 60 % each followed by a pause; its
// stable and canary Services; and the VirtualService whose route
// "primary" the canary shifts. Everything is in namespace.
func LeadingPauseApp(namespace, image string, replicas int) string {
	return LeadingPauseAppNamed(AppNames{Namespace: namespace, Stable: "hw", Canary: "hw-canary", VirtualService: "hw-vs", Route: "primary"}, image, replicas)
}

// LeadingPauseAppNamed is LeadingPauseApp with the names n.
func LeadingPauseAppNamed(n AppNames, image string, replicas int) string {
	return fmt.Sprintf(`
apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: Service
metadata: {name: %[4]s, namespace: %[1]s}
spec: {selector: {app: %[4]s}, ports: [{name: http, port: 5000, targetPort: 5000}]}
---
apiVersion: v1
kind: Service
metadata: {name: %[5]s, namespace: %[1]s}
spec: {selector: {app: %[4]s}, ports: [{name: http, port: 5000, targetPort: 5000}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: %[6]s, namespace: %[1]s}
spec:
  hosts: ["*"]
  http:
  - name: %[7]s
    route:
    - {destination: {host: %[4]s, port: {number: 5000}}, weight: 100}
    - {destination: {host: %[5]s, port: {number: 5000}}, weight: 0}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: %[4]s, namespace: %[1]s}
spec:
  replicas: %[3]d
  revisionHistoryLimit: 2
  selector: {matchLabels: {app: %[4]s}}
  template:
    metadata: {labels: {app: %[4]s}}
    spec:
      containers:
      - name: helloworld
        image: %[2]s
        ports: [{name: http, containerPort: 5000, protocol: TCP}]
  strategy:
    canary:
      canaryService: %[5]s
      stableService: %[4]s
      scaleDownDelaySeconds: 2
      abortScaleDownDelaySeconds: 2
      trafficRouting:
        istio: {virtualService: {name: %[6]s, routes: [%[7]s]}}
      steps:
      - pause: {}
      - setWeight: 20
      - pause: {}
      - setWeight: 60
      - pause: {}
`, n.Namespace, image, replicas, n.Stable, n.Canary, n.VirtualService, n.Route)
}

// LoopbackOnly fails t for every socket of pids that listens on anything
// but loopback in this network namespace (sockets in a private namespace
// are not in its tables), and when they have no listener at all; it
// returns how many it checked.
func LoopbackOnly(t testing.TB, pids []int) int {
	t.Helper()
	ls := local.Listeners(pids)
	for _, l := range ls {
		if !l.Loopback {
			t.Errorf("pid %d (%s) listens on %s %s (not loopback)", l.PID, local.Comm(l.PID), l.Table, l.Addr)
		}
	}
	if len(ls) == 0 {
		t.Fatal("found no listening socket of the fleet")
	}
	return len(ls)
}

// ClusterAppSet is an ApplicationSet in argocd that syncs directory name
// of the fleet's git repository (at repoURL) into namespace name of every
// workload cluster, automatically: Applications name-<cluster>.
func ClusterAppSet(name, repoURL string) string {
	return fmt.Sprintf(`
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: %[1]s
  namespace: argocd
spec:
  goTemplate: true
  generators:
  - clusters:
      selector:
        matchLabels:
          lockstep.dev/role: workload
  template:
    metadata:
      name: '%[1]s-{{.name}}'
    spec:
      project: default
      source:
        repoURL: %[2]s
        targetRevision: main
        path: %[1]s
      destination:
        server: '{{.server}}'
        namespace: %[1]s
      syncPolicy:
        automated: {}
        syncOptions: [CreateNamespace=true]
`, name, repoURL)
}

// ApplyYAML server-side applies the objects of a YAML stream to the
// cluster cfg reaches.
func ApplyYAML(t testing.TB, cfg *rest.Config, yaml string) {
	t.Helper()
	objs, err := kube.DecodeYAML([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	a, err := kube.NewApplier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(context.Background(), objs...); err != nil {
		t.Fatalf("%s: %v", cfg.Host, err)
	}
}

// ComponentPID is the pid of one of the fleet's processes, by component
// name (e.g. "argo-rollout2/kube-apiserver"), read from the fleet's state.
func ComponentPID(t testing.TB, name string) int {
	t.Helper()
	st, err := local.ReadState(F.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Components {
		if c.Name == name && c.PID > 0 {
			return c.PID
		}
	}
	t.Fatalf("component %s has no pid in the fleet's state", name)
	return 0
}
