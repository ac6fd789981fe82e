package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"

	"lockstep.dev/lockstep/config"
	"lockstep.dev/lockstep/internal/kube"
)

// istioCRDs are the Istio kinds the lab's manifests use. Installing all of
// Istio's CRDs costs ~150 MB of apiserver memory per cluster for nothing.
var istioCRDs = map[string]bool{
	"virtualservices.networking.istio.io":  true,
	"destinationrules.networking.istio.io": true,
	"gateways.networking.istio.io":         true,
	"serviceentries.networking.istio.io":   true,
}

// readManifests decodes every YAML file of a directory, in name order.
func readManifests(dir string) ([]*unstructured.Unstructured, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []*unstructured.Unstructured
	for _, fn := range files {
		b, err := os.ReadFile(fn)
		if err != nil {
			return nil, err
		}
		objs, err := kube.DecodeYAML(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fn, err)
		}
		out = append(out, objs...)
	}
	return out, nil
}

// WorkloadCRDs returns the CRDs a workload cluster gets: Argo Rollouts' and
// the Istio networking kinds.
func WorkloadCRDs(c Cache) ([]*unstructured.Unstructured, error) {
	objs, err := readManifests(c.Asset("rollouts", "crds"))
	if err != nil {
		return nil, err
	}
	istio, err := readManifests(c.Asset("rollouts", "istio"))
	if err != nil {
		return nil, err
	}
	for _, o := range istio {
		if istioCRDs[o.GetName()] {
			objs = append(objs, o)
		}
	}
	// prometheus-operator's PodMonitor and ServiceMonitor, so the guide's
	// monitoring/monitor.yaml is checked by the real schema.
	for _, name := range []string{config.PodMonitorCRD, config.ServiceMonitorCRD} {
		mon, err := kube.ReadYAML(config.Thirdparty, name)
		if err != nil {
			return nil, err
		}
		objs = append(objs, mon...)
	}
	return objs, nil
}

// HubCRDs returns the CRDs the hub gets: Argo CD's and Lockstep's
// (FleetRollout, FleetApproval).
func HubCRDs(c Cache) ([]*unstructured.Unstructured, error) {
	objs, err := readManifests(c.Asset("argocd", "crds"))
	if err != nil {
		return nil, err
	}
	fr, err := kube.ReadYAMLs(config.CRDs, config.LockstepCRDs...)
	if err != nil {
		return nil, err
	}
	return append(objs, fr...), nil
}

// applier is a server-side applier to one of the fleet's clusters, as
// admin.
func (f *fleet) applier(cluster string) (*kube.Applier, error) {
	cfg, err := f.restConfig(cluster)
	if err != nil {
		return nil, err
	}
	return kube.NewApplier(cfg)
}

func (f *fleet) applyCRDs(ctx context.Context, cluster string, crds []*unstructured.Unstructured) error {
	a, err := f.applier(cluster)
	if err != nil {
		return err
	}
	if err := a.Apply(ctx, crds...); err != nil {
		return fmt.Errorf("%s: %w", cluster, err)
	}
	var names []string
	for _, o := range crds {
		names = append(names, o.GetName())
	}
	return kube.WaitEstablished(ctx, a.Dynamic, names, 30*time.Second)
}

// installCRDs runs before the controller-managers start, so their garbage
// collector never sees kinds it cannot map.
func (f *fleet) installCRDs(ctx context.Context) error {
	wl, err := WorkloadCRDs(f.opt.Cache)
	if err != nil {
		return err
	}
	for _, w := range f.workloads {
		if err := f.applyCRDs(ctx, w, wl); err != nil {
			return err
		}
	}
	hub, err := HubCRDs(f.opt.Cache)
	if err != nil {
		return err
	}
	if err := f.applyCRDs(ctx, HubName, hub); err != nil {
		return err
	}
	// The admission policy that holds a FleetApproval's approver to the
	// user who makes it.
	policy, err := kube.ReadYAML(config.Approval, config.ApprovalPolicy)
	if err != nil {
		return err
	}
	a, err := f.applier(HubName)
	if err != nil {
		return err
	}
	return a.Apply(ctx, policy...)
}

func (f *fleet) startControllers(ctx context.Context) error {
	var specs []ProcSpec
	for _, c := range f.clusters {
		specs = append(specs, ProcSpec{
			Name: c + "/kube-controller-manager", Cluster: c, Path: f.bin("kube", "kube-controller-manager"),
			Args: []string{"--kubeconfig=" + f.clusterKubeconfig(c), "--secure-port=0", "--leader-elect=false",
				"--cluster-name=" + c,
				"--service-account-private-key-file=" + f.pki.SAKey(c), "--root-ca-file=" + f.pki.CACert(),
				"--cluster-signing-cert-file=" + f.pki.CACert(), "--cluster-signing-key-file=" + f.pki.CAKey(),
				"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10"},
		})
	}
	stages, err := f.kwokStages()
	if err != nil {
		return err
	}
	for _, w := range f.nodeClusters() {
		i := f.index(w)
		specs = append(specs,
			ProcSpec{
				Name: w + "/kube-scheduler", Cluster: w, Path: f.bin("kube", "kube-scheduler"),
				Args: []string{"--kubeconfig=" + f.clusterKubeconfig(w), "--secure-port=0", "--leader-elect=false"},
			},
			ProcSpec{
				Name: w + "/kwok", Cluster: w, Path: f.bin("kwok", "kwok"), Addr: addr(f.p.kwok[w]),
				Ports: map[string]int{"server": f.p.kwok[w]},
				Args: []string{"--kubeconfig=" + f.clusterKubeconfig(w), "--manage-all-nodes=false",
					"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
					"--node-ip=10.0." + strconv.Itoa(i) + ".1", "--cidr=10.244." + strconv.Itoa(i) + ".0/24",
					"--config=" + stages, "--server-address=" + addr(f.p.kwok[w]),
					// Without it kwok renews no node Lease and the node lifecycle
					// controller marks every node NotReady after ~50 s.
					"--node-lease-duration-seconds=40"},
				Health: tcpOK(addr(f.p.kwok[w])),
			})
	}
	if err := f.startAll(ctx, specs...); err != nil {
		return err
	}
	for _, w := range f.nodeClusters() {
		if err := f.createNodes(ctx, w); err != nil {
			return err
		}
	}
	return nil
}

// nodeClusters are the clusters with kwok nodes: the workloads, and the hub
// too in a bare fleet (installers put Argo CD and Thanos there as pods).
func (f *fleet) nodeClusters() []string {
	if f.opt.Bare {
		return f.clusters
	}
	return f.workloads
}

// index is a cluster's position: 0 for the hub, i for the i-th workload.
func (f *fleet) index(c string) int {
	for i, n := range f.clusters {
		if n == c {
			return i
		}
	}
	return 0
}

// kwokStages concatenates kwok's fast node and pod stages (v0.8.0 ships no
// built-in stages) into one config file.
func (f *fleet) kwokStages() (string, error) {
	files, err := filepath.Glob(filepath.Join(f.opt.Cache.Asset("kwok", "stages"), "*.yaml"))
	if err != nil || len(files) == 0 {
		return "", fmt.Errorf("kwok stages missing in the component cache: %v", err)
	}
	sort.Strings(files)
	var b strings.Builder
	for _, fn := range files {
		data, err := os.ReadFile(fn)
		if err != nil {
			return "", err
		}
		b.WriteString("---\n")
		b.Write(data)
		b.WriteString("\n")
	}
	out := filepath.Join(f.opt.Dir, "kwok-stages.yaml")
	return out, os.WriteFile(out, []byte(b.String()), 0o644)
}

func (f *fleet) clientset(c string) (*kubernetes.Clientset, error) {
	cfg, err := f.restConfig(c)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// createNodes registers fake nodes that kwok manages.
func (f *fleet) createNodes(ctx context.Context, cluster string) error {
	cs, err := f.clientset(cluster)
	if err != nil {
		return err
	}
	for i := 0; i < f.opt.Nodes; i++ {
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        fmt.Sprintf("%s-node-%d", cluster, i),
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
				Labels: map[string]string{"type": "kwok", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
					"kubernetes.io/hostname":        fmt.Sprintf("%s-node-%d", cluster, i),
					"topology.kubernetes.io/region": "local", "topology.kubernetes.io/zone": cluster},
			},
			Status: corev1.NodeStatus{
				// Upstream manifests request ephemeral-storage (Argo Rollouts'
				// controller does): a node without it schedules nothing.
				Allocatable: nodeResources(),
				Capacity:    nodeResources(),
			},
		}
		if _, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node in %s: %w", cluster, err)
		}
	}
	return nil
}

func nodeResources() corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods: resource.MustParse("110"), corev1.ResourceEphemeralStorage: resource.MustParse("1Ti")}
}

func (f *fleet) startRollouts(ctx context.Context) error {
	var specs []ProcSpec
	for _, w := range f.workloads {
		health := "http://" + addr(f.hostPort(f.p.rolloutsHealth[w], f.p.rolloutsHealthHost[w])) + "/healthz"
		specs = append(specs, ProcSpec{
			Name: w + "/rollouts-controller", Cluster: w, Path: f.bin("rollouts", "rollouts-controller"),
			Addr:  "http://" + addr(f.hostPort(f.p.rolloutsMetrics[w], f.p.rolloutsMetricsHost[w])) + "/metrics",
			Ports: map[string]int{"healthz": f.p.rolloutsHealth[w], "metrics": f.p.rolloutsMetrics[w]},
			Args: []string{"--kubeconfig=" + f.clusterKubeconfig(w), "--leader-elect=false",
				"--healthzPort=" + strconv.Itoa(f.p.rolloutsHealth[w]), "--metricsport=" + strconv.Itoa(f.p.rolloutsMetrics[w]),
				"--istio-api-version=v1", "--loglevel=info", "--rollout-resync=60"},
			NetNS:  true,
			Health: httpOK(health),
		})
	}
	return f.startAll(ctx, specs...)
}
