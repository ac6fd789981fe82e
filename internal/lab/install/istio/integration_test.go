package istio

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/provider"
)

// TestActionsOnFleet runs the Istio actions twice against real
// kube-apiservers, e.g. the local fleet's empty clusters:
//
//	go run ./cmd/lockstep lab up --bare --dir /tmp/istio-fleet
//	LOCKSTEP_TEST_KUBECONFIG=/tmp/istio-fleet/kubeconfig go test -v -run OnFleet ./internal/lab/install/istio/
//
// The kubeconfig needs the contexts argo-hub, argo-rollout1 and
// argo-rollout2. The second run must create and change nothing.
func TestActionsOnFleet(t *testing.T) {
	kubeconfig := os.Getenv("LOCKSTEP_TEST_KUBECONFIG")
	if testing.Short() || kubeconfig == "" {
		t.Skip("needs a fleet: set LOCKSTEP_TEST_KUBECONFIG to the kubeconfig of `lockstep lab up --bare` (and run without -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	fleet := &provider.Fleet{Provider: "test", Kubeconfig: kubeconfig,
		Hub: provider.Cluster{Name: provider.HubName, Role: provider.RoleHub, Context: provider.HubName}}
	for i := 1; i <= 2; i++ {
		n := provider.WorkloadName(i)
		fleet.Workloads = append(fleet.Workloads, provider.Cluster{Name: n, Role: provider.RoleWork, Context: n, Network: provider.NetworkName(i)})
	}
	var out bytes.Buffer
	c, err := install.Connect(ctx, install.Options{Fleet: fleet, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 2; run++ {
		out.Reset()
		start := time.Now()
		results, err := install.Run(c, Actions(), install.RunOptions{})
		t.Logf("run %d (%s):\n%s", run, time.Since(start).Round(time.Millisecond), out.String())
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if run == 2 {
			for _, r := range results {
				if r.Counts.Created != 0 || r.Counts.Changed != 0 {
					t.Errorf("second run: %s: %s: %v", r.Action, r.Counts, r.Counts.Touched)
				}
			}
		}
	}

	t.Run("cacerts chain to the hub's root", func(t *testing.T) {
		s, err := c.Hub.Kube.CoreV1().Secrets(install.StateNamespace).Get(ctx, RootCASecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		root, err := parseRootCA(s.Data)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(root.cert)
		for _, cl := range c.Workloads {
			s, err := cl.Kube.CoreV1().Secrets(SystemNamespace).Get(ctx, CACertsSecret, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ca, err := parseCert(s.Data[keyCACert])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ca.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Errorf("%s: intermediate does not chain to the hub's root: %v", cl.Name, err)
			}
		}
	})

	// Every remote secret must get its holder's istiod into the other
	// cluster: use its kubeconfig as istiod would and list pods there.
	t.Run("remote secrets authenticate", func(t *testing.T) {
		for _, a := range c.Workloads {
			for _, b := range c.Workloads {
				if a == b {
					continue
				}
				kc, err := RemoteKubeconfig(ctx, a, b.Name)
				if err != nil {
					t.Fatal(err)
				}
				cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
				if err != nil {
					t.Fatal(err)
				}
				kcl, err := kubernetes.NewForConfig(cfg)
				if err != nil {
					t.Fatal(err)
				}
				pods, err := kcl.CoreV1().Pods(SystemNamespace).List(ctx, metav1.ListOptions{})
				if err != nil {
					t.Errorf("%s's secret for %s: list pods in %s: %v", a.Name, b.Name, SystemNamespace, err)
					continue
				}
				// The reader may read, not write.
				err = kcl.CoreV1().ConfigMaps(SystemNamespace).Delete(ctx, "istio", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
				if err == nil {
					t.Errorf("%s's secret for %s may delete ConfigMaps", a.Name, b.Name)
				}
				t.Logf("%s's remote secret for %s (%s): listed %d pods in %s", a.Name, b.Name, cfg.Host, len(pods.Items), SystemNamespace)
			}
		}
	})

	t.Run("reachability", func(t *testing.T) {
		for _, cl := range c.Workloads {
			r := CheckReachability(ctx, cl, ReachOptions{})
			t.Log(r)
			switch {
			case cl.DataPlane == install.DataPlaneSimulated && r.Status != Unverifiable:
				t.Errorf("%s: %s on a simulated data plane, want Unverifiable", cl.Name, r.Status)
			case cl.DataPlane == install.DataPlaneReal && r.Status != Reachable:
				t.Errorf("%s: %s", cl.Name, r)
			}
		}
	})
}
