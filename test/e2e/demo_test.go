package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"lockstep.dev/lockstep/gitops"
	"lockstep.dev/lockstep/internal/analysis"
	"lockstep.dev/lockstep/internal/demo"
	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/load"
	"lockstep.dev/lockstep/internal/render"
	"lockstep.dev/lockstep/test/fleettest"
)

var (
	rolloutGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	arGVR      = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "analysisruns"}
	workloads  = []string{"argo-rollout1", "argo-rollout2"}
)

// demoArgs time the canary for tests: the guide's steps, shorter pauses.
var demoArgs = []string{"--pause", "5s", "--analysis-delay", "12s", "--analysis-interval", "5s", "--scale-down-delay", "3s", "-o", "json"}

func runDemo(t *testing.T, extra ...string) *demo.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	args := append(append([]string{"demo", "--dir", env.Dir}, demoArgs...), extra...)
	out, errOut, err := lockstep(ctx, args...)
	if err != nil {
		t.Fatalf("lockstep %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	t.Logf("demo progress:\n%s", errOut)
	var s demo.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("demo summary: %v\n%s", err, out)
	}
	return &s
}

// ask sends n requests to a gateway and returns the answers' versions and pods.
func ask(t *testing.T, cluster string, n int) (versions map[string]int, pods map[string]int) {
	t.Helper()
	versions, pods = map[string]int{}, map[string]int{}
	c := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < n; i++ {
		r := load.Get(context.Background(), c, load.Target{Cluster: cluster, URL: env.State.URLs[local.IngressURLKey(cluster)]})
		if r.Code != http.StatusOK {
			versions[fmt.Sprintf("HTTP %d", r.Code)]++
			continue
		}
		versions[r.Version]++
		pods[r.Pod]++
	}
	return versions, pods
}

func podNames(t *testing.T, cluster string) []string {
	t.Helper()
	pods, err := clientset(t, cluster).CoreV1().Pods(demo.Namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		out = append(out, p.Name)
	}
	return out
}

func TestDemoUpgradesEveryCluster(t *testing.T) {
	needFleet(t)
	s := runDemo(t)
	if s.Outcome != "Promoted" {
		t.Fatalf("outcome %q, want Promoted", s.Outcome)
	}
	want := "docker.io/istio/examples-helloworld-" + s.To
	for _, c := range workloads {
		cs, ok := s.Clusters[c]
		if !ok {
			t.Fatalf("no result for %s", c)
		}
		// The VirtualService passed through the guide's intermediate weights.
		for _, w := range []int64{10, 30, 50, 70, 90} {
			if !slices.Contains(cs.Weights, w) {
				t.Errorf("%s: canary weights seen %v lack %d", c, cs.Weights, w)
			}
		}
		ro, err := fleettest.Dynamic(t, c).Resource(rolloutGVR).Namespace(demo.Namespace).Get(context.Background(), demo.RolloutName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		phase, _, _ := unstructured.NestedString(ro.Object, "status", "phase")
		stable, _, _ := unstructured.NestedString(ro.Object, "status", "stableRS")
		current, _, _ := unstructured.NestedString(ro.Object, "status", "currentPodHash")
		if phase != "Healthy" || stable != current || cs.Final.Image != want {
			t.Errorf("%s: phase %s stable %s current %s image %s", c, phase, stable, current, cs.Final.Image)
		}
		if cs.Final.StableWeight != 100 || cs.Final.CanaryWeight != 0 {
			t.Errorf("%s: final weights %d/%d, want 100/0", c, cs.Final.StableWeight, cs.Final.CanaryWeight)
		}
		// The AnalysisRun of the new revision queried Thanos on the hub and passed.
		runs, err := fleettest.Dynamic(t, c).Resource(arGVR).Namespace(demo.Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: "rollouts-pod-template-hash=" + current})
		if err != nil || len(runs.Items) == 0 {
			t.Fatalf("%s: no AnalysisRun for %s: %v", c, current, err)
		}
		for _, run := range runs.Items {
			p, _, _ := unstructured.NestedString(run.Object, "status", "phase")
			metrics, _, _ := unstructured.NestedSlice(run.Object, "spec", "metrics")
			addr := ""
			if len(metrics) > 0 {
				addr, _, _ = unstructured.NestedString(metrics[0].(map[string]any), "provider", "prometheus", "address")
			}
			results, _, _ := unstructured.NestedSlice(run.Object, "status", "metricResults")
			if p != "Successful" || addr != env.State.URLs["thanos-query"] || len(results) == 0 {
				t.Errorf("%s: AnalysisRun %s phase %s address %s results %d", c, run.GetName(), p, addr, len(results))
			}
		}
	}
	// Requests at either gateway: v2 only, from pods of both clusters.
	all := append(podNames(t, "argo-rollout1"), podNames(t, "argo-rollout2")...)
	for _, c := range workloads {
		versions, pods := ask(t, c, 60)
		if len(versions) != 1 || versions[s.To] != 60 {
			t.Errorf("%s gateway answered %v, want only %s", c, versions, s.To)
		}
		seen := map[string]bool{}
		for p := range pods {
			if !slices.Contains(all, p) {
				t.Errorf("%s gateway answered from unknown pod %s", c, p)
			}
			for _, w := range workloads {
				if slices.Contains(podNames(t, w), p) {
					seen[w] = true
				}
			}
		}
		if len(seen) != 2 {
			t.Errorf("%s gateway reached pods of %v only; multi-primary should reach both clusters", c, seen)
		}
	}
	// Thanos has the canary's metrics from both clusters' Prometheus.
	q, err := analysis.NewPrometheusQuerier(analysis.PrometheusConfig{Address: env.State.URLs["thanos-query"], Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	vec, warnings, err := q.Query(context.Background(), `sum by (cluster) (istio_requests_total{reporter="source",destination_service="helloworld-canary.helloworld.svc.cluster.local"})`, time.Now())
	if err != nil || len(warnings) > 0 {
		t.Fatalf("thanos: %v %v", err, warnings)
	}
	var clusters []string
	for _, smp := range vec {
		clusters = append(clusters, string(smp.Metric["cluster"]))
	}
	slices.Sort(clusters)
	if strings.Join(clusters, ",") != "data-producer-1,data-producer-2" {
		t.Errorf("canary metrics in Thanos from %v, want both clusters", clusters)
	}
	for _, rep := range []string{"data-producer-1", "data-producer-2"} {
		if s.SuccessRate[rep] < 0.99 {
			t.Errorf("success rate reported by %s = %.3f during a good release", rep, s.SuccessRate[rep])
		}
	}
	// After the upgrade, `lab verify` passes as a whole, the sample
	// reaching pods of both clusters from either gateway included.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, errOut, err := env.Run(ctx, "lab", "verify", "--dir", env.Dir)
	if err != nil {
		t.Fatalf("lab verify after the upgrade: %v: %s\n%s", err, errOut, out)
	}
	for _, c := range workloads {
		if !strings.Contains(out, "✓ Istio reachability from "+c) {
			t.Errorf("lab verify: no ✓ reachability from %s:\n%s", c, out)
		}
	}
}

func TestDemoBadReleaseAbortsEveryCluster(t *testing.T) {
	needFleet(t)
	s := runDemo(t, "--bad-release", "--error-rate", "0.3")
	if s.Outcome != "Aborted" {
		t.Fatalf("outcome %q, want Aborted", s.Outcome)
	}
	for _, c := range workloads {
		cs := s.Clusters[c]
		if !cs.Final.Aborted || cs.Final.CanaryWeight != 0 || cs.Final.StableWeight != 100 {
			t.Errorf("%s: final %+v, want aborted with weights 100/0", c, cs.Final)
		}
		if cs.Final.Analysis != "Failed" {
			t.Errorf("%s: analysis %q, want Failed", c, cs.Final.Analysis)
		}
		if n := s.AfterOutcome[c].ByVersion[s.To]; n != 0 {
			t.Errorf("%s: %d requests answered by the bad version %s after the abort", c, n, s.To)
		}
		if s.Requests[c].Errors == 0 {
			t.Errorf("%s: the bad release failed no request during the canary", c)
		}
		versions, _ := ask(t, c, 50)
		if versions[s.To] != 0 || versions[s.From] != 50 {
			t.Errorf("%s gateway after the abort answered %v, want only %s", c, versions, s.From)
		}
	}
}

// TestGitOpsTreeServerSideDryRun sends every manifest of the rendered tree
// to the cluster it belongs on with dryRun=All: the real CRDs' schemas and
// admission accept them.
func TestGitOpsTreeServerSideDryRun(t *testing.T) {
	needFleet(t)
	ctx := context.Background()
	p := render.Guide()
	p.RepoURL, p.ThanosURL = env.State.URLs["git"], env.State.URLs["thanos-query"]
	files, err := render.Tree(gitops.Tree, p)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, path := range render.Paths(files) {
		if !strings.HasSuffix(path, ".yaml") {
			continue
		}
		objs, err := kube.DecodeYAML(files[path])
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		targets := workloads
		switch {
		case strings.Contains(path, "application-set/") || strings.HasPrefix(path, "argo-resources/rollout/appset") || strings.HasPrefix(path, "lockstep/"):
			targets = []string{local.HubName}
		}
		for _, c := range targets {
			a, err := kube.NewApplier(restConfig(t, c))
			if err != nil {
				t.Fatal(err)
			}
			// Namespaces for real (idempotent; also those the objects
			// live in), everything else dry-run.
			var rest []*unstructured.Unstructured
			for _, o := range objs {
				ns := o.GetNamespace()
				if o.GetKind() == "Namespace" {
					ns = o.GetName()
				} else {
					rest = append(rest, o)
				}
				if ns == "" {
					continue
				}
				nsObj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
				if err := a.Apply(ctx, nsObj); err != nil {
					t.Fatalf("%s in %s: %v", path, c, err)
				}
			}
			a.DryRun = true
			if err := a.Apply(ctx, rest...); err != nil {
				t.Errorf("%s in %s: %v", path, c, err)
			}
			checked += len(objs)
		}
	}
	if checked < 10 {
		t.Fatalf("dry-ran only %d objects", checked)
	}
}

// TestDemoLockstepMode runs the same upgrade through the hub's coordinator:
// the FleetRollout comes from git through an Application, both clusters
// pass the same barriers, and a bad release is aborted in both.
func TestDemoLockstepMode(t *testing.T) {
	needFleet(t)
	good := runDemo(t, "--lockstep")
	if good.Outcome != "Promoted" || good.Mode != render.ModeLockstep {
		t.Fatalf("outcome %q mode %q, want Promoted in lockstep mode", good.Outcome, good.Mode)
	}
	// The coordinator records Completed once it sees both clusters healthy,
	// a moment after the demo does.
	frGVR := schema.GroupVersionResource{Group: "lockstep.dev", Version: "v1alpha1", Resource: "fleetrollouts"}
	eventually(t, 30*time.Second, "FleetRollout lockstep/helloworld Completed", func() error {
		fr, err := fleettest.Dynamic(t, local.HubName).Resource(frGVR).Namespace("lockstep").Get(context.Background(), "helloworld", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if phase, _, _ := unstructured.NestedString(fr.Object, "status", "phase"); phase != "Completed" {
			return fmt.Errorf("phase %q", phase)
		}
		return nil
	})
	for _, c := range workloads {
		for _, w := range []int64{10, 50, 90} {
			if !slices.Contains(good.Clusters[c].Weights, w) {
				t.Errorf("%s: canary weights seen %v lack %d", c, good.Clusters[c].Weights, w)
			}
		}
	}
	// The lockstep plan alternates setWeight and pause: one promotion moves
	// a cluster two step indices, and the two controllers take it a few
	// milliseconds apart, so a 200 ms poll can see one cluster a hop ahead.
	// More than one hop (2 steps) would mean a cluster passed a barrier
	// the other had not reached.
	if good.MaxStepSkew > 2 {
		t.Errorf("step skew %d between clusters in lockstep mode, want at most one barrier hop (2 steps)", good.MaxStepSkew)
	}
	bad := runDemo(t, "--lockstep", "--bad-release")
	if bad.Outcome != "Aborted" || !strings.HasPrefix(bad.FleetRollout, "Aborted") {
		t.Fatalf("bad release: outcome %q FleetRollout %q, want both Aborted", bad.Outcome, bad.FleetRollout)
	}
	// The sequential judge decided, on counted evidence, after the canary's
	// first request.
	if !strings.Contains(bad.AbortReason, "judge:") || bad.JudgeRequests == 0 || bad.Verdict <= bad.FirstCanaryRequest {
		t.Errorf("abort %q on %d judged requests, verdict at %s, first canary request at %s", bad.AbortReason, bad.JudgeRequests, bad.Verdict, bad.FirstCanaryRequest)
	}
	for _, c := range workloads {
		if f := bad.Clusters[c].Final; !f.Aborted || f.CanaryWeight != 0 {
			t.Errorf("%s: %+v, want aborted with no canary weight", c, f)
		}
		if n := bad.AfterOutcome[c].ByVersion[bad.To]; n != 0 {
			t.Errorf("%s: %d requests answered by the bad version after the abort", c, n)
		}
	}
}
