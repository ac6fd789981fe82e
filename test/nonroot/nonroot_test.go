package nonroot

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/test/fleettest"
)

// nobody is the unprivileged user the fleet runs as.
const nobody = 65534

var (
	// top is this run's world-readable directory (/tmp/nonroot-*): the
	// binary, the cache's links, the fleets' directories and nobody's home.
	top string
	bin string
	// skip says why the tests cannot run here.
	skip string
)

func TestMain(m *testing.M) {
	flag.Parse()
	switch {
	case testing.Short():
		skip = "-short: `lab up` is not run"
	case runtime.GOOS != "linux":
		skip = "the local fleet runs on Linux only"
	}
	if skip != "" {
		fmt.Fprintf(os.Stderr, "nonroot tests skip: %s\n", skip)
		os.Exit(m.Run())
	}
	var err error
	if top, err = os.MkdirTemp("", "nonroot-"); err == nil {
		err = os.Chmod(top, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(top, "lockstep")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/lockstep")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build lockstep: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(top)
	os.Exit(code)
}

func need(t *testing.T) {
	t.Helper()
	if skip != "" {
		t.Skip(skip)
	}
}

func run(ctx context.Context, cmd *exec.Cmd) (string, string, error) {
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		return "", "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), errOut.String(), err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return out.String(), errOut.String(), ctx.Err()
	}
}

// TestNoNetNSWithoutBareIsRefused: --no-netns would put Argo CD's
// application-controller and Argo Rollouts on 0.0.0.0, so a full fleet
// refuses it, in one line that says what to do instead.
func TestNoNetNSWithoutBareIsRefused(t *testing.T) {
	need(t)
	dir := filepath.Join(top, "refused")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, errOut, err := run(ctx, exec.Command(bin, "lab", "up", "--dir", dir, "--no-netns"))
	t.Cleanup(func() { _, _, _ = run(context.Background(), exec.Command(bin, "lab", "down", "--dir", dir)) })
	if err == nil {
		t.Fatal("lab up --no-netns started a full fleet")
	}
	line := strings.TrimSpace(errOut)
	if strings.Contains(line, "\n") {
		t.Errorf("refusal is not one line:\n%s", errOut)
	}
	for _, w := range []string{"--no-netns", "application-controller", "Argo Rollouts", "0.0.0.0", "--bare"} {
		if !strings.Contains(line, w) {
			t.Errorf("refusal does not say %q: %s", w, line)
		}
	}
	if left := local.MarkedProcesses(dir); len(left) > 0 {
		t.Errorf("processes left after the refusal: %v", left)
	}
	st, err := local.ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Components {
		t.Errorf("%s was started", c.Name)
	}
}

// TestNonRootFleetBindsLoopback runs the whole fleet as nobody and reads the
// host's socket table: no process of the fleet listens on anything but
// loopback there, while the application-controller and Rollouts run (and
// work) inside their namespace.
func TestNonRootFleetBindsLoopback(t *testing.T) {
	need(t)
	if os.Geteuid() != 0 {
		t.Skip("runs the fleet as nobody through setpriv, which needs root to switch users")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	// A namespace in which nobody has capabilities (AppArmor may create it
	// but take them away): the one in it makes a network namespace.
	if out, err := asNobody(context.Background(), "", nil, "unshare", "--user", "--map-root-user", "--net", "--", "unshare", "--net", "true").CombinedOutput(); err != nil {
		t.Skipf("nobody cannot use a user namespace of its own here (sysctls user.max_user_namespaces, kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns): %v: %s", err, out)
	}
	cache, err := local.DefaultCache()
	if err == nil {
		err = cache.Check()
	}
	if err != nil {
		t.Fatalf("component cache: %v", err)
	}
	// The cache stays root's: nobody reads it through hard links (or
	// copies) in a directory it can traverse; nothing changes owner or mode.
	readable := filepath.Join(top, "cache")
	if err := linkCache(cache, readable); err != nil {
		t.Fatal(err)
	}
	home, dir := filepath.Join(top, "home"), filepath.Join(top, "fleet")
	for _, d := range []string{home, dir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"HOME=" + home, "LOCKSTEP_CACHE_DIR=" + readable, "KUBECACHEDIR=" + filepath.Join(home, "kubecache")}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	out, errOut, err := run(ctx, asNobody(ctx, home, env, bin, "lab", "up", "--dir", dir, "--timeout", "8m"))
	t.Logf("lab up as nobody (%s):\n%s%s", time.Since(start).Round(time.Millisecond), out, errOut)
	t.Cleanup(func() {
		out, errOut, err := run(context.Background(), asNobody(context.Background(), home, env, bin, "lab", "down", "--dir", dir))
		t.Logf("lab down as nobody: %s%s", out, errOut)
		if err != nil {
			t.Errorf("lab down: %v", err)
		}
		if left := local.MarkedProcesses(dir); len(left) > 0 {
			t.Errorf("processes left behind after lab down: %v", left)
			_ = local.Down(dir, false, os.Stderr)
		}
	})
	if err != nil {
		t.Fatalf("lab up as nobody: %v", err)
	}
	st, err := local.ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !st.NetNS {
		t.Error("the fleet says it has no private network namespace")
	}

	pids := local.MarkedProcesses(dir)
	if len(pids) < 10 {
		t.Fatalf("only %d marked processes", len(pids))
	}
	for _, pid := range pids {
		if uid := procUID(pid); uid != nobody {
			t.Errorf("pid %d (%s) runs as uid %d, want %d", pid, local.Comm(pid), uid, nobody)
		}
	}
	hostNS, _ := os.Readlink("/proc/self/ns/net")
	byName := map[string]local.ProcState{}
	for _, c := range st.Components {
		byName[c.Name] = c
	}
	for _, name := range []string{local.HubName + "/argocd-application-controller", local.WorkloadName(1) + "/rollouts-controller", local.WorkloadName(2) + "/rollouts-controller"} {
		c, ok := byName[name]
		if !ok || c.Status != local.StatusRunning || !local.Alive(c.PID, c.StartTicks) {
			t.Errorf("%s is not running: %+v", name, c)
			continue
		}
		if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", c.PID)); ns == "" || ns == hostNS {
			t.Errorf("%s (pid %d) is in network namespace %q, the host's is %q", name, c.PID, ns, hostNS)
		}
	}
	n := fleettest.LoopbackOnly(t, pids)
	t.Logf("%d listening sockets of %d processes, all on loopback", n, len(pids))

	// Exposed to the host: Rollouts' metrics, scraped through the bridge.
	for i := 1; i <= 2; i++ {
		c := byName[local.WorkloadName(i)+"/rollouts-controller"]
		resp, err := http.Get(c.Addr)
		if err != nil {
			t.Errorf("%s metrics at %s: %v", c.Name, c.Addr, err)
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s metrics at %s: %s", c.Name, c.Addr, resp.Status)
		}
	}
	// Bridged inwards: the application-controller reaches the
	// repo-server, Redis and a workload's apiserver, and syncs.
	checkArgoCDSyncs(t, st)
}

// asNobody is a command run as uid and gid 65534 with no groups, in dir,
// with env over a copy of this process's environment.
func asNobody(ctx context.Context, dir string, env []string, name string, args ...string) *exec.Cmd {
	id := strconv.Itoa(nobody)
	cmd := exec.CommandContext(ctx, "setpriv", append([]string{"--reuid=" + id, "--regid=" + id, "--clear-groups", "--", name}, args...)...)
	for _, e := range os.Environ() {
		k, _, _ := strings.Cut(e, "=")
		if k == "HOME" || k == "KUBECONFIG" || k == "GOCOVERDIR" || strings.HasPrefix(k, "XDG_") || strings.HasPrefix(k, "LOCKSTEP_") {
			continue
		}
		cmd.Env = append(cmd.Env, e)
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Dir = dir
	if dir == "" {
		cmd.Dir = "/"
	}
	return cmd
}

// linkCache makes the components of cache readable by anyone under to:
// hard links to files anyone may read already, copies of the others.
func linkCache(cache local.Cache, to string) error {
	dst := local.Cache{Root: to}
	for _, comp := range local.Components() {
		from, into := cache.Dir(comp), dst.Dir(comp)
		err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(from, p)
			target := filepath.Join(into, rel)
			if d.IsDir() {
				return os.MkdirAll(target, 0o755)
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Mode()&0o004 != 0 && os.Link(p, target) == nil {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, info.Mode().Perm()|0o444)
		})
		if err != nil {
			return err
		}
	}
	// Every directory from / down to the components must be traversable.
	return filepath.WalkDir(to, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			err = os.Chmod(p, 0o755)
		}
		return err
	})
}

func procUID(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			uid, _ := strconv.Atoi(f[1])
			return uid
		}
	}
	return -1
}

var appGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

func checkArgoCDSyncs(t *testing.T, st *local.State) {
	t.Helper()
	cfg, err := local.RESTConfig(st.Kubeconfig, local.HubName)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	app := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
		"metadata": map[string]any{"name": "nonroot-smoke", "namespace": local.ArgoCDNS},
		"spec": map[string]any{
			"project":     "default",
			"source":      map[string]any{"repoURL": st.URLs["git"], "targetRevision": "main", "path": "argo-resources/helloworld"},
			"destination": map[string]any{"name": local.WorkloadName(1), "namespace": "helloworld"},
			"syncPolicy":  map[string]any{"automated": map[string]any{}},
		},
	}}
	ctx := context.Background()
	if _, err := dyn.Resource(appGVR).Namespace(local.ArgoCDNS).Create(ctx, app, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	fleettest.Eventually(t, 2*time.Minute, "Application nonroot-smoke Synced", func() error {
		got, err := dyn.Resource(appGVR).Namespace(local.ArgoCDNS).Get(ctx, "nonroot-smoke", metav1.GetOptions{})
		if err != nil {
			return err
		}
		sync, _, _ := unstructured.NestedString(got.Object, "status", "sync", "status")
		if sync != "Synced" {
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			return fmt.Errorf("sync %q, conditions %v", sync, conds)
		}
		return nil
	})
}
