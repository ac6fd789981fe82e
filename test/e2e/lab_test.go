package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/test/fleettest"
)

func TestKwokNodesReady(t *testing.T) {
	needFleet(t)
	for _, c := range []string{"argo-rollout1", "argo-rollout2"} {
		nodes, err := clientset(t, c).CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready < 1 || ready != len(nodes.Items) {
			t.Errorf("%s: %d of %d nodes Ready", c, ready, len(nodes.Items))
		}
		// Without renewed leases the node lifecycle controller marks every
		// node NotReady about 50 s after start and evicts the pods.
		leases, err := clientset(t, c).CoordinationV1().Leases("kube-node-lease").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(leases.Items) != len(nodes.Items) {
			t.Fatalf("%s: %d node leases for %d nodes", c, len(leases.Items), len(nodes.Items))
		}
		for _, l := range leases.Items {
			if l.Spec.RenewTime == nil || time.Since(l.Spec.RenewTime.Time) > 45*time.Second {
				t.Errorf("%s: lease %s not renewed (renewTime %v)", c, l.Name, l.Spec.RenewTime)
			}
		}
	}
}

func TestDeploymentPodsBecomeReady(t *testing.T) {
	needFleet(t)
	ctx := context.Background()
	cs := clientset(t, "argo-rollout2")
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "e2e-deploy"}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), "e2e-deploy", metav1.DeleteOptions{})
	})
	replicas := int32(3)
	labels := map[string]string{"app": "web"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "e2e-deploy"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "docker.io/istio/examples-helloworld-v1"}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("e2e-deploy").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "deployment web has 3 ready replicas", func() error {
		got, err := cs.AppsV1().Deployments("e2e-deploy").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got.Status.ReadyReplicas != replicas {
			return fmt.Errorf("ready %d/%d", got.Status.ReadyReplicas, replicas)
		}
		return nil
	})
	pods, err := cs.CoreV1().Pods("e2e-deploy").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Status.PodIP == "" || p.Spec.NodeName == "" {
			t.Errorf("pod %s: ip %q node %q: kwok/scheduler did not place it", p.Name, p.Status.PodIP, p.Spec.NodeName)
		}
	}
}

func TestThanosQuerySeesBothSidecars(t *testing.T) {
	needFleet(t)
	q := env.State.URLs["thanos-query"]
	if q == "" {
		t.Fatal("no thanos-query URL in the state file")
	}
	stores, err := local.ThanosStores(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(local.SidecarClusters(stores), ",")
	if got != "data-producer-1,data-producer-2" {
		t.Fatalf("sidecar cluster labels = %q, want data-producer-1,data-producer-2", got)
	}
	if len(stores["store"]) != 1 {
		t.Errorf("store gateways = %d, want 1", len(stores["store"]))
	}
}

// TestLabVerifyLocal runs `lab verify` on the fleet-in-a-box: Argo CD's
// cluster Secrets reach both workloads, both Rollouts controllers are up, and
// the real Thanos Query has a store per cluster label; Grafana and the
// Istio sample have nothing to check here and say so.
func TestLabVerifyLocal(t *testing.T) {
	needFleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The reachability lines need helloworld deployed: they are checked
	// after the guide's upgrade (TestDemoUpgradesEveryCluster), so the exit
	// status is not this test's business.
	out, _, _ := env.Run(ctx, "lab", "verify", "--dir", env.Dir)
	for _, want := range []string{
		"✓ Argo CD cluster argo-rollout1: connected", "✓ Argo CD cluster argo-rollout2: connected",
		"✓ Argo Rollouts (argo-rollout1)", "✓ Argo Rollouts (argo-rollout2)",
		"✓ Thanos stores: cluster=data-producer-1, cluster=data-producer-2 up",
		"- Grafana datasource", "Istio reachability from argo-rollout1", "Istio reachability from argo-rollout2",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("lab verify output lacks %q:\n%s", want, out)
		}
	}
	out, _, _ = env.Run(ctx, "lab", "verify", "--dir", env.Dir, "-o", "json")
	if !strings.HasPrefix(strings.TrimSpace(out), "[") {
		t.Errorf("lab verify -o json printed no JSON list:\n%s", out)
	}
	for _, bad := range [][]string{{"--provider", "kind"}, {"-o", "xml"}} {
		_, errOut, err := env.Run(ctx, append([]string{"lab", "verify", "--dir", env.Dir}, bad...)...)
		if err == nil || strings.Count(strings.TrimSpace(errOut), "\n") > 0 {
			t.Errorf("lab verify %v: want a one-line error, got %v: %q", bad, err, errOut)
		}
	}
}

var (
	appSetGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applicationsets"}
	appGVR    = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}
)

// TestArgoCDDeploysToBothClusters proves the chain the lab depends on: a
// commit in the fleet's git server, an ApplicationSet selecting the
// workload clusters by label, Argo CD syncing into both of them.
func TestArgoCDDeploysToBothClusters(t *testing.T) {
	needFleet(t)
	ctx := context.Background()
	repo := local.RepoDir(env.Dir)
	_, err := local.Commit(repo, "e2e: smoke manifests", func(wt string) error {
		if err := os.MkdirAll(filepath.Join(wt, "e2e-smoke"), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(wt, "e2e-smoke", "cm.yaml"), []byte(
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-smoke\ndata:\n  hello: fleet\n"), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	hub := restConfig(t, local.HubName)
	dyn, err := dynamic.NewForConfig(hub)
	if err != nil {
		t.Fatal(err)
	}
	appset, err := kube.DecodeYAML([]byte(fleettest.ClusterAppSet("e2e-smoke", env.State.URLs["git"])))
	if err != nil {
		t.Fatal(err)
	}
	a, err := kube.NewApplier(hub)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, appset...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dyn.Resource(appSetGVR).Namespace("argocd").Delete(context.Background(), "e2e-smoke", metav1.DeleteOptions{})
	})
	for _, c := range []string{"argo-rollout1", "argo-rollout2"} {
		cs := clientset(t, c)
		eventually(t, 120*time.Second, "Argo CD synced argocd-smoke into "+c, func() error {
			cm, err := cs.CoreV1().ConfigMaps("e2e-smoke").Get(ctx, "argocd-smoke", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cm.Data["hello"] != "fleet" {
				return fmt.Errorf("data %v", cm.Data)
			}
			return nil
		})
		eventually(t, 60*time.Second, "Application e2e-smoke-"+c+" Synced and Healthy", func() error {
			app, err := dyn.Resource(appGVR).Namespace("argocd").Get(ctx, "e2e-smoke-"+c, metav1.GetOptions{})
			if err != nil {
				return err
			}
			sync, _, _ := unstructured.NestedString(app.Object, "status", "sync", "status")
			health, _, _ := unstructured.NestedString(app.Object, "status", "health", "status")
			if sync != "Synced" || health != "Healthy" {
				return fmt.Errorf("sync %q health %q", sync, health)
			}
			return nil
		})
	}
}

func TestLabStatusJSON(t *testing.T) {
	needFleet(t)
	out, errOut, err := lockstep(context.Background(), "lab", "status", "--dir", env.Dir, "-o", "json")
	if err != nil {
		t.Fatalf("lab status: %v: %s", err, errOut)
	}
	var st local.FleetStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	if st.Phase != local.PhaseReady {
		t.Errorf("phase %q, want Ready", st.Phase)
	}
	want := []string{"etcd", "argo-hub/kube-apiserver", "argo-hub/argocd-application-controller", "argo-hub/thanos-query",
		"argo-rollout1/rollouts-controller", "argo-rollout2/kwok", "argo-rollout2/prometheus", "argo-rollout2/thanos-sidecar"}
	byName := map[string]local.ComponentStatus{}
	for _, c := range st.Components {
		byName[c.Name] = c
	}
	for _, w := range want {
		c, ok := byName[w]
		if !ok {
			t.Errorf("component %s missing from lab status", w)
			continue
		}
		if !c.Up || c.PID == 0 || c.RSS == 0 {
			t.Errorf("component %s: up=%v pid=%d rss=%d", w, c.Up, c.PID, c.RSS)
		}
	}
	if st.TotalRSS <= 0 {
		t.Error("total RSS not reported")
	}
}

// TestEveryServerBindsLoopback reads the kernel's socket table: no process
// of the fleet listens on anything but 127.0.0.1 in the host namespace.
func TestEveryServerBindsLoopback(t *testing.T) {
	needFleet(t)
	pids := local.MarkedProcesses(env.Dir)
	if len(pids) < 10 {
		t.Fatalf("only %d marked processes", len(pids))
	}
	fleettest.LoopbackOnly(t, pids)
}

// TestLabUpAddsContexts: as kind does, `lab up` put the fleet's contexts
// into the person's kubeconfig ($KUBECONFIG, a scratch file here), so
// `kubectl --context argo-hub` works without --kubeconfig.
func TestLabUpAddsContexts(t *testing.T) {
	needFleet(t)
	cfg, err := clientcmd.LoadFromFile(os.Getenv("KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range env.State.Clusters {
		ctx, ok := cfg.Contexts[c.Name]
		if !ok || cfg.Clusters[ctx.Cluster] == nil || cfg.Clusters[ctx.Cluster].Server != c.Server {
			t.Errorf("context %s: %+v; want one reaching %s", c.Name, ctx, c.Server)
		}
	}
	if cfg.CurrentContext != local.HubName {
		t.Errorf("current context %q, want %s", cfg.CurrentContext, local.HubName)
	}
	// And the default loading rules (what kubectl and lockstep use without
	// --kubeconfig) reach the hub through it.
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(),
		&clientcmd.ConfigOverrides{CurrentContext: local.HubName}).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		t.Errorf("the hub through the user kubeconfig: %v", err)
	}
}

func TestSecondUpIsNoop(t *testing.T) {
	needFleet(t)
	out, errOut, err := lockstep(context.Background(), "lab", "up", "--dir", env.Dir)
	if err != nil {
		t.Fatalf("second lab up: %v: %s", err, errOut)
	}
	if !strings.Contains(out, "already running") {
		t.Fatalf("second lab up did not say the fleet runs:\n%s", out)
	}
	st, err := local.ReadState(env.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.SupervisorPID != env.State.SupervisorPID {
		t.Errorf("supervisor changed from %d to %d", env.State.SupervisorPID, st.SupervisorPID)
	}
}

func TestLabLogs(t *testing.T) {
	needFleet(t)
	out, errOut, err := lockstep(context.Background(), "lab", "logs", "--dir", env.Dir, "argo-rollout1/kube-apiserver", "--tail", "5")
	if err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("lab logs: %v %q %s", err, out, errOut)
	}
	_, errOut, err = lockstep(context.Background(), "lab", "logs", "--dir", env.Dir, "kube-apiserver")
	if err == nil || !strings.Contains(errOut, "ambiguous") {
		t.Errorf("ambiguous component: err=%v stderr=%q", err, errOut)
	}
	_, errOut, err = lockstep(context.Background(), "lab", "logs", "--dir", env.Dir, "nope")
	if err == nil || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("unknown component: err=%v stderr=%q (want one line)", err, errOut)
	}
}

// TestCrashedComponentIsReported kills a component the rest of the suite
// does not need and expects `lab status` to show it down with its log.
func TestCrashedComponentIsReported(t *testing.T) {
	needFleet(t)
	var victim local.ProcState
	for _, c := range env.State.Components {
		if c.Name == "argo-hub/thanos-compactor" {
			victim = c
		}
	}
	if victim.PID == 0 {
		t.Fatal("no thanos-compactor in the state")
	}
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "lab status reports the compactor down", func() error {
		out, _, err := lockstep(context.Background(), "lab", "status", "--dir", env.Dir)
		if err != nil {
			return err
		}
		if !strings.Contains(out, "argo-hub/thanos-compactor is down; last lines of") {
			return fmt.Errorf("status:\n%s", out)
		}
		return nil
	})
}

// Bad input: each is one clear line and leaves nothing running.
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	corrupt := filepath.Join(tmp, "corrupt")
	if err := os.MkdirAll(corrupt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(corrupt, "state.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  []string
		args []string
		want string
		// needsCache: the case gets past the component check only with a
		// warm cache (CI has one).
		needsCache bool
	}{
		{name: "unknown provider", args: []string{"lab", "up", "--dir", filepath.Join(tmp, "p"), "--provider", "moon"}, want: `unknown provider "moon"`},
		{name: "missing binary", env: []string{"LOCKSTEP_CACHE_DIR=" + filepath.Join(tmp, "empty-cache")}, args: []string{"lab", "up", "--dir", filepath.Join(tmp, "m")}, want: "is not in"},
		{name: "corrupted state", args: []string{"lab", "status", "--dir", corrupt}, want: "is corrupted"},
		{name: "corrupted state up", args: []string{"lab", "up", "--dir", corrupt}, want: "is corrupted"},
		{name: "occupied port", args: []string{"lab", "up", "--dir", filepath.Join(tmp, "o"), "--thanos-port", busy}, want: "port " + busy + " on 127.0.0.1 is in use", needsCache: true},
		{name: "missing package", env: []string{"PATH=" + filepath.Join(tmp, "empty-path")}, args: []string{"lab", "up", "--dir", filepath.Join(tmp, "pk")}, want: "is not installed", needsCache: true},
		{name: "unknown output", args: []string{"lab", "status", "--dir", corrupt, "-o", "xml"}, want: `unknown output format "xml"`},
		{name: "no fleet", args: []string{"lab", "status", "--dir", filepath.Join(tmp, "none")}, want: "no fleet"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needsCache {
				if c, err := local.DefaultCache(); err != nil || c.Check() != nil {
					t.Skip("needs the component cache (make components)")
				}
			}
			_, errOut, err := lockstepEnv(ctx, tc.env, tc.args...)
			if err == nil {
				t.Fatalf("succeeded, want an error containing %q", tc.want)
			}
			if lines := strings.Split(strings.TrimSpace(errOut), "\n"); len(lines) != 1 {
				t.Errorf("error is %d lines, want 1:\n%s", len(lines), errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q does not contain %q", errOut, tc.want)
			}
			for _, d := range []string{"p", "m", "o", "pk", "corrupt"} {
				if left := local.MarkedProcesses(filepath.Join(tmp, d)); len(left) > 0 {
					t.Errorf("processes left running for %s: %v", d, left)
				}
			}
		})
	}
}
