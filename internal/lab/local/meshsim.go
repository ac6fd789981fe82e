package local

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"lockstep.dev/lockstep/gitops"
	"lockstep.dev/lockstep/internal/kube"
)

// IngressURLKey is the state URL key of a workload's ingress gateway.
func IngressURLKey(cluster string) string { return "ingress-" + cluster }

// startMeshsim runs one simulated data plane per workload cluster (the
// lockstep binary's `meshsim` command) and registers its metrics endpoint
// with that cluster's Prometheus.
func (f *fleet) startMeshsim(ctx context.Context) error {
	self, err := f.self()
	if err != nil {
		return err
	}
	if err := f.applyMeshConfig(ctx); err != nil {
		return err
	}
	var specs []ProcSpec
	for _, w := range f.workloads {
		args := []string{"meshsim", "--cluster=" + w, "--kubeconfig=" + f.kubeconfigPath("kubeconfig"), "--context=" + w,
			"--ingress-addr=" + addr(f.p.meshIngress[w]), "--eastwest-addr=" + addr(f.p.meshEastWest[w]),
			"--metrics-addr=" + addr(f.p.meshMetrics[w])}
		for _, peer := range f.workloads {
			if peer != w {
				args = append(args, "--peer="+peer+"="+peer, "--peer-eastwest="+peer+"=http://"+addr(f.p.meshEastWest[peer]))
			}
		}
		specs = append(specs, ProcSpec{
			Name: w + "/meshsim", Cluster: w, Path: self, Args: args, Addr: "http://" + addr(f.p.meshIngress[w]),
			Ports:  map[string]int{"ingress": f.p.meshIngress[w], "eastwest": f.p.meshEastWest[w], "metrics": f.p.meshMetrics[w]},
			Health: httpOK("http://" + addr(f.p.meshMetrics[w]) + "/healthz"),
		})
		if err := writeTargets(PrometheusTargetsDir(f.opt.Dir, w), "meshsim", addr(f.p.meshMetrics[w]), map[string]string{"job": "istio-mesh"}); err != nil {
			return err
		}
	}
	if err := f.startAll(ctx, specs...); err != nil {
		return err
	}
	return f.s.Update(func(st *State) {
		for _, w := range f.workloads {
			st.URLs[IngressURLKey(w)] = "http://" + addr(f.p.meshIngress[w])
		}
	})
}

// MeshConfigPath is the GitOps tree's Istio mesh config, the ConfigMap
// istio-system/istio as istiod's chart would render it: the canary host
// is cluster-local.
const MeshConfigPath = "istio-resources/mesh/istio-configmap.yaml"

// applyMeshConfig gives every workload cluster the GitOps tree's mesh
// config, where istiod's chart would have put it.
func (f *fleet) applyMeshConfig(ctx context.Context) error {
	text, err := fs.ReadFile(gitops.Tree, MeshConfigPath)
	if err != nil {
		return err
	}
	objs, err := kube.DecodeYAML(text)
	if err != nil {
		return fmt.Errorf("%s: %w", MeshConfigPath, err)
	}
	ns := obj(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "istio-system"}})
	for _, w := range f.workloads {
		a, err := f.applier(w)
		if err != nil {
			return err
		}
		if err := a.Apply(ctx, append([]*unstructured.Unstructured{ns}, objs...)...); err != nil {
			return fmt.Errorf("%s: mesh config: %w", w, err)
		}
	}
	return nil
}

// writeTargets drops a Prometheus file_sd target file (written whole, then
// renamed, so Prometheus never reads half of it).
func writeTargets(dir, name, target string, labels map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.Marshal([]map[string]any{{"targets": []string{target}, "labels": labels}})
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("prometheus target %s: %w", name, err)
	}
	return os.Rename(tmp, filepath.Join(dir, name+".json"))
}

// self is the lockstep binary that runs the fleet's own components.
func (f *fleet) self() (string, error) {
	if f.opt.Self != "" {
		return f.opt.Self, nil
	}
	return os.Executable()
}

// CoordinatorDashboardURLKey names the coordinator's read-only dashboard
// in State.URLs.
const CoordinatorDashboardURLKey = "lockstep-coordinator-dashboard"

// CoordinatorName is the coordinator's component name.
const CoordinatorName = HubName + "/lockstep-coordinator"

func (f *fleet) coordinatorArgs(metrics string) []string {
	args := []string{"coordinator", "--kubeconfig=" + CoordinatorKubeconfig(f.opt.Dir), "--metrics-addr=" + metrics, "--leader-elect",
		// The read-only page a coordinator serves in-cluster.
		"--dashboard-address=" + addr(f.p.coordinatorDashboard)}
	if !f.opt.Light {
		// A light fleet has no Thanos: FleetRollouts with analysis are
		// refused there, saying so.
		args = append(args, "--thanos-url=http://"+addr(f.p.queryHTTP))
	}
	return args
}

// startCoordinator runs `lockstep coordinator` against the hub with the
// hub's Thanos Query: the local fleet's equivalent of its Deployment.
func (f *fleet) startCoordinator(ctx context.Context) error {
	if f.opt.NoCoordinator {
		f.s.Progressf("      skipped (--no-coordinator)")
		return nil
	}
	self, err := f.self()
	if err != nil {
		return err
	}
	metrics := addr(f.p.coordinatorMetrics)
	if err := f.startAll(ctx, ProcSpec{
		Name: CoordinatorName, Cluster: HubName, Path: self, Addr: "http://" + metrics + "/metrics",
		Ports: map[string]int{"metrics": f.p.coordinatorMetrics, "dashboard": f.p.coordinatorDashboard},
		// Its own ServiceAccount's token, never the admin kubeconfig; with
		// leader election, as installed, so a second coordinator (a test's,
		// or `lockstep coordinator --leader-elect` by hand) takes turns.
		Args:   f.coordinatorArgs(metrics),
		Health: httpOK("http://" + metrics + "/metrics"),
	}); err != nil {
		return err
	}
	return f.s.Update(func(st *State) {
		st.URLs["lockstep-coordinator-metrics"] = "http://" + metrics + "/metrics"
		st.URLs[CoordinatorDashboardURLKey] = "http://" + addr(f.p.coordinatorDashboard) + "/"
	})
}
