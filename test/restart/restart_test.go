// Package restart_test stops and restarts the local fleet in the middle
// of its life (`lab down`, then `lab up` on the same directory) and checks
// that every address stays the same, so that what the hub and git name
// (the git server in ApplicationSets, Thanos Query, the API servers in
// Argo CD's cluster Secrets) stays valid: Argo CD syncs a commit made
// after the restart without anything being re-applied. Under -short the
// test skips.
package restart_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/test/fleettest"
)

func TestMain(m *testing.M) {
	os.Exit(fleettest.Main(m, "../..", fleettest.Options{UpArgs: []string{"--no-coordinator"}}))
}

var appSetGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applicationsets"}

func commit(t *testing.T, value string) {
	t.Helper()
	if _, err := local.Commit(local.RepoDir(fleettest.F.Dir), "restart: "+value, func(wt string) error {
		if err := os.MkdirAll(filepath.Join(wt, "restart"), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(wt, "restart", "cm.yaml"), []byte(
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: restart\ndata:\n  version: "+value+"\n"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
}

func synced(t *testing.T, value string) {
	t.Helper()
	for _, c := range []string{"argo-rollout1", "argo-rollout2"} {
		cs := fleettest.Clientset(t, c)
		fleettest.Eventually(t, 150*time.Second, "Argo CD synced version "+value+" into "+c, func() error {
			cm, err := cs.CoreV1().ConfigMaps("restart").Get(context.Background(), "restart", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cm.Data["version"] != value {
				return fmt.Errorf("version %q", cm.Data["version"])
			}
			return nil
		})
	}
}

func addresses(st *local.State) map[string]string {
	out := map[string]string{}
	for _, k := range []string{"git", "thanos-query", "argocd-repo-server"} {
		out[k] = st.URLs[k]
	}
	for _, c := range st.Clusters {
		out[c.Name] = c.Server
	}
	return out
}

func TestRestartKeepsEveryAddress(t *testing.T) {
	fleettest.Need(t)
	ctx := context.Background()
	f := fleettest.F
	commit(t, "v1")
	appset, err := kube.DecodeYAML([]byte(fleettest.ClusterAppSet("restart", f.State.URLs["git"])))
	if err != nil {
		t.Fatal(err)
	}
	a, err := kube.NewApplier(fleettest.RESTConfig(t, local.HubName))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, appset...); err != nil {
		t.Fatal(err)
	}
	synced(t, "v1")

	before := addresses(f.State)
	if out, errOut, err := f.Run(ctx, "lab", "down", "--dir", f.Dir); err != nil {
		t.Fatalf("lab down: %v\n%s%s", err, out, errOut)
	}
	start := time.Now()
	if out, errOut, err := f.Run(ctx, "lab", "up", "--dir", f.Dir, "--no-coordinator"); err != nil {
		t.Fatalf("lab up after down: %v\n%s%s", err, out, errOut)
	}
	t.Logf("restarted in %s", time.Since(start).Round(time.Second))
	st, err := local.ReadState(f.Dir)
	if err != nil {
		t.Fatal(err)
	}
	f.State = st
	after := addresses(st)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s moved from %s to %s", k, v, after[k])
		}
	}

	// Nothing re-applied: the ApplicationSet on the hub still names the
	// git server of the first run, and it answers there.
	commit(t, "v2")
	synced(t, "v2")
	u, err := fleettest.Dynamic(t, local.HubName).Resource(appSetGVR).Namespace("argocd").Get(ctx, "restart", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if repo, _, _ := unstructured.NestedString(u.Object, "spec", "template", "spec", "source", "repoURL"); repo != before["git"] {
		t.Errorf("ApplicationSet names %s, want the first run's %s", repo, before["git"])
	}
}
