package install_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"lockstep.dev/lockstep/test/fleettest"
)

var countsLine = regexp.MustCompile(`✓ (\d+) created, (\d+) changed, (\d+) unchanged`)

// up runs `lab up --provider existing` against the bare fleet.
func up(t *testing.T, extra ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	args := append([]string{"lab", "up", "--provider", "existing", "--kubeconfig", fleettest.F.State.Kubeconfig,
		"--hub-context", "argo-hub", "--workload-contexts", "argo-rollout1,argo-rollout2",
		"--provider-dir", t.TempDir()}, extra...)
	start := time.Now()
	out, errOut, err := fleettest.F.Run(ctx, args...)
	t.Logf("lab up --provider existing %s (%s):\n%s%s", strings.Join(extra, " "), time.Since(start).Round(100*time.Millisecond), out, errOut)
	if err != nil {
		return out, fmt.Errorf("%v: %s", err, fleettest.FirstLine(errOut))
	}
	return out, nil
}

// actionCounts returns each action's counts line, in order.
func actionCounts(out string) [][3]int {
	var res [][3]int
	for _, m := range countsLine.FindAllStringSubmatch(out, -1) {
		var c [3]int
		for i := range c {
			c[i], _ = strconv.Atoi(m[i+1])
		}
		res = append(res, c)
	}
	return res
}

func setUnschedulable(t *testing.T, cs kubernetes.Interface, v bool) {
	t.Helper()
	nodes, err := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		patch := fmt.Sprintf(`{"spec":{"unschedulable":%t}}`, v)
		if _, err := cs.CoreV1().Nodes().Patch(context.Background(), n.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInstallers is one story, in order: a first run that fails (the hub
// cannot schedule pods) and resumes, a second run that changes nothing,
// drift that a third run repairs, and what the installers produced
// (certificates, remote secrets, Argo CD registrations, lab verify).
func TestInstallers(t *testing.T) {
	fleettest.Need(t)
	hub := fleettest.Clientset(t, "argo-hub")

	// 1. The hub's nodes take no pods: the workload installers succeed,
	// the first hub installer (Argo CD) times out, and the run stops there.
	setUnschedulable(t, hub, true)
	out, err := up(t, "--install-timeout", "15s")
	if err == nil {
		t.Fatalf("first run succeeded on an unschedulable hub:\n%s", out)
	}
	if !strings.Contains(err.Error(), "argocd") || !strings.Contains(err.Error(), "--resume") {
		t.Fatalf("failure does not name the action and the way to resume: %v", err)
	}
	doneBefore := len(actionCounts(out))
	if doneBefore == 0 {
		t.Fatalf("no action finished before argocd:\n%s", out)
	}
	setUnschedulable(t, hub, false)

	// 2. --resume starts at the failed action: the finished ones are not
	// run again (they print no line).
	out, err = up(t, "--resume")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "istio-certs") || strings.Contains(out, "[1/") {
		t.Fatalf("resume ran the first action again:\n%s", out)
	}
	if !strings.Contains(out, "Argo CD on the hub") {
		t.Fatalf("resume did not run the failed action:\n%s", out)
	}

	// 3. A full second run changes nothing, action by action.
	out, err = up(t)
	if err != nil {
		t.Fatal(err)
	}
	counts := actionCounts(out)
	if len(counts) < 10 {
		t.Fatalf("only %d actions reported counts:\n%s", len(counts), out)
	}
	for i, c := range counts {
		if c[0] != 0 || c[1] != 0 {
			t.Errorf("second run, action %d: %d created, %d changed (want 0, 0)", i+1, c[0], c[1])
		}
		if c[2] == 0 {
			t.Errorf("second run, action %d: applied nothing", i+1)
		}
	}

	// 4. Drift: change Argo CD's server image by hand; a run from the
	// argocd action changes exactly that Deployment back.
	ctx := context.Background()
	d, err := hub.AppsV1().Deployments("argocd").Get(ctx, "argocd-server", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	image := d.Spec.Template.Spec.Containers[0].Image
	if _, err := hub.AppsV1().Deployments("argocd").Patch(ctx, "argocd-server", types.StrategicMergePatchType,
		[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"argocd-server","image":"example.com/not-argocd:1"}]}}}}`),
		metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	// A dry run sees exactly that change and persists nothing.
	out, err = up(t, "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	changed := 0
	for _, c := range actionCounts(out) {
		changed += c[0] + c[1]
	}
	if changed != 1 || !strings.Contains(out, "0 created, 1 changed") {
		t.Fatalf("dry run reports %d created or changed objects, want exactly the drifted Deployment:\n%s", changed, out)
	}
	d, err = hub.AppsV1().Deployments("argocd").Get(ctx, "argocd-server", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != "example.com/not-argocd:1" {
		t.Fatalf("the dry run changed argocd-server's image to %q", got)
	}
	out, err = up(t, "--from", "argocd")
	if err != nil {
		t.Fatal(err)
	}
	counts = actionCounts(out)
	if len(counts) == 0 || counts[0][1] != 1 || counts[0][0] != 0 {
		t.Fatalf("drift run: argocd action counts %v, want exactly 1 changed:\n%s", counts, out)
	}
	for i, c := range counts[1:] {
		if c[0] != 0 || c[1] != 0 {
			t.Errorf("drift run: action %d after argocd changed something: %v", i+2, c)
		}
	}
	d, err = hub.AppsV1().Deployments("argocd").Get(ctx, "argocd-server", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
		t.Fatalf("argocd-server image %q after the repair run, want %q", got, image)
	}

	t.Run("istio certificates chain to the shared root", func(t *testing.T) { checkCerts(t) })
	t.Run("remote secrets reach the other cluster", func(t *testing.T) { checkRemoteSecrets(t) })
	t.Run("lab verify", func(t *testing.T) { checkVerify(t) })
	t.Run("lab status shows every action done", func(t *testing.T) { checkStatus(t) })
}

func checkStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, errOut, err := fleettest.F.Run(ctx, "lab", "status", "--provider", "existing", "--kubeconfig", fleettest.F.State.Kubeconfig,
		"--hub-context", "argo-hub", "--workload-contexts", "argo-rollout1,argo-rollout2")
	if err != nil {
		t.Fatalf("lab status: %v: %s", err, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 14 {
		t.Fatalf("lab status: %d lines, want a header and 13 actions:\n%s", len(lines), out)
	}
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) < 2 || f[1] != "Done" {
			t.Errorf("action not Done: %q", l)
		}
	}
}

func pemCerts(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatal("no certificate in PEM data")
	}
	return out
}

func checkCerts(t *testing.T) {
	ctx := context.Background()
	var root []byte
	for _, w := range []string{"argo-rollout1", "argo-rollout2"} {
		s, err := fleettest.Clientset(t, w).CoreV1().Secrets("istio-system").Get(ctx, "cacerts", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if root == nil {
			root = s.Data["root-cert.pem"]
		} else if string(root) != string(s.Data["root-cert.pem"]) {
			t.Fatalf("%s has a different root certificate", w)
		}
		pool := x509.NewCertPool()
		pool.AddCert(pemCerts(t, root)[0])
		inter := pemCerts(t, s.Data["ca-cert.pem"])[0]
		if !inter.IsCA {
			t.Errorf("%s: intermediate is not a CA", w)
		}
		if _, err := inter.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			t.Errorf("%s: intermediate does not chain to the shared root: %v", w, err)
		}
		chain := pemCerts(t, s.Data["cert-chain.pem"])
		if len(chain) != 2 || !chain[0].Equal(inter) || !chain[1].Equal(pemCerts(t, root)[0]) {
			t.Errorf("%s: cert-chain.pem is not intermediate + root", w)
		}
	}
}

func checkRemoteSecrets(t *testing.T) {
	ctx := context.Background()
	for _, pair := range [][2]string{{"argo-rollout1", "argo-rollout2"}, {"argo-rollout2", "argo-rollout1"}} {
		in, other := pair[0], pair[1]
		s, err := fleettest.Clientset(t, in).CoreV1().Secrets("istio-system").Get(ctx, "istio-remote-secret-"+other, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if s.Labels["istio/multiCluster"] != "true" || s.Annotations["networking.istio.io/cluster"] != other {
			t.Errorf("%s: remote secret for %s lacks Istio's label or annotation: %v %v", in, other, s.Labels, s.Annotations)
		}
		cfg, err := clientcmd.RESTConfigFromKubeConfig(s.Data[other])
		if err != nil {
			t.Fatalf("%s: remote secret for %s is not a kubeconfig: %v", in, other, err)
		}
		want := fleettest.RESTConfig(t, other).Host
		if cfg.Host != want {
			t.Errorf("%s: remote secret for %s points at %s, want %s", in, other, cfg.Host, want)
		}
		kc, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// What istiod does with it: list Services and Pods of the other cluster.
		if _, err := kc.CoreV1().Services("").List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
			t.Errorf("%s: remote secret for %s does not authenticate: %v", in, other, err)
		}
		if _, err := kc.CoreV1().Pods("istio-system").List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
			t.Errorf("%s: remote secret for %s cannot list pods: %v", in, other, err)
		}
	}
}

func checkVerify(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, errOut, err := fleettest.F.Run(ctx, "lab", "verify", "--provider", "existing", "--kubeconfig", fleettest.F.State.Kubeconfig,
		"--hub-context", "argo-hub", "--workload-contexts", "argo-rollout1,argo-rollout2")
	t.Logf("lab verify:\n%s%s", out, errOut)
	// Argo CD's registrations are real (real apiservers, real tokens), so
	// they must pass; Thanos and Grafana run no process on kwok, so their
	// checks must fail, and say how to fix it.
	for _, want := range []string{"✓ Argo CD cluster argo-rollout1", "✓ Argo CD cluster argo-rollout2",
		"✓ Argo Rollouts (argo-rollout1)", "✓ Argo Rollouts (argo-rollout2)", "✗ Thanos stores", "fix: "} {
		if !strings.Contains(out, want) {
			t.Errorf("lab verify output lacks %q", want)
		}
	}
	if err == nil {
		t.Errorf("lab verify exited 0 although checks failed")
	}
}
