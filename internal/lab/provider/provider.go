// Package provider defines where the lab's clusters come from: a Provider
// creates (or connects to) the hub and the workload clusters and returns a
// Fleet, the kubeconfig contexts the installers work through.
//
// The implementations live in sub-packages (kind, eks, existing); the local
// fleet-in-a-box is internal/lab/local. This package may import only the
// standard library and client-go's clientcmd.
package provider

import (
	"context"
	"fmt"
	"io"
	"strconv"
)

// Default names of the seed's lab.
const (
	HubName  = "argo-hub"
	RoleHub  = "hub"
	RoleWork = "workload"
)

// WorkloadName is the name of the i-th (1-based) workload cluster.
func WorkloadName(i int) string { return "argo-rollout" + strconv.Itoa(i) }

// NetworkName is the Istio network of the i-th (1-based) workload cluster,
// as Istio's multi-primary multi-network guide names them.
func NetworkName(i int) string { return "network" + strconv.Itoa(i) }

// Cluster is one cluster of the lab as the installers reach it.
type Cluster struct {
	// Name is the cluster's name in the lab (argo-hub, argo-rollout1, ...):
	// Istio's clusterName, Argo CD's cluster name.
	Name string `json:"name"`
	// Role is RoleHub or RoleWork.
	Role string `json:"role"`
	// Context is the kubeconfig context that reaches the cluster from here.
	Context string `json:"context"`
	// Network is the Istio network of a workload cluster.
	Network string `json:"network,omitempty"`
	// Server is the API server URL the other clusters use to reach this
	// one (Istio remote secrets, Argo CD cluster Secrets). Empty means the
	// kubeconfig's own server, which is right when every cluster can reach
	// it (EKS, existing clusters); kind's differs (the node's address on
	// the kind network).
	Server string `json:"server,omitempty"`
}

// Fleet is what a provider hands to the installers.
type Fleet struct {
	// Provider is the name of the provider that made it.
	Provider string `json:"provider"`
	// Kubeconfig is the file holding every cluster's context.
	Kubeconfig string    `json:"kubeconfig"`
	Hub        Cluster   `json:"hub"`
	Workloads  []Cluster `json:"workloads"`
	// LoadBalancerAnnotations go on every LoadBalancer Service the
	// installers create (the east-west gateways, the Thanos sidecars): on
	// EKS they ask the AWS Load Balancer Controller for internet-facing
	// NLBs.
	LoadBalancerAnnotations map[string]string `json:"loadBalancerAnnotations,omitempty"`
	// Notes are things the user must know (for example that LoadBalancer
	// Services need cloud-provider-kind on kind).
	Notes []string `json:"notes,omitempty"`
}

// NewFleet lays out a fleet in All's order: names[0] is the hub, the others
// are the workloads on networks network1, network2, ...; context(i, name)
// is the kubeconfig context of the i-th cluster.
func NewFleet(provider, kubeconfig string, names []string, context func(i int, name string) string) *Fleet {
	f := &Fleet{Provider: provider, Kubeconfig: kubeconfig}
	for i, n := range names {
		c := Cluster{Name: n, Role: RoleWork, Context: context(i, n), Network: NetworkName(i)}
		if i == 0 {
			c.Role, c.Network = RoleHub, ""
			f.Hub = c
			continue
		}
		f.Workloads = append(f.Workloads, c)
	}
	return f
}

// At is the i-th cluster in All's order: 0 is the hub, i the i-th
// workload. Providers fill clusters in that order.
func (f *Fleet) At(i int) *Cluster {
	if i == 0 {
		return &f.Hub
	}
	return &f.Workloads[i-1]
}

// All returns the hub then the workloads.
func (f *Fleet) All() []Cluster { return append([]Cluster{f.Hub}, f.Workloads...) }

// Validate checks the fleet is complete and its names are unique.
func (f *Fleet) Validate() error {
	if f.Kubeconfig == "" {
		return fmt.Errorf("fleet: no kubeconfig")
	}
	if len(f.Workloads) == 0 {
		return fmt.Errorf("fleet: no workload clusters")
	}
	seen := map[string]bool{}
	for _, c := range f.All() {
		if c.Name == "" || c.Context == "" {
			return fmt.Errorf("fleet: a cluster needs a name and a context (got name %q, context %q)", c.Name, c.Context)
		}
		if seen[c.Name] {
			return fmt.Errorf("fleet: cluster name %q used twice", c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

// Options are what every provider is given.
type Options struct {
	// Hub and Workloads name the clusters (defaults: the seed's names).
	Hub       string
	Workloads []string
	// Dir is where the provider writes what it generates (configs,
	// kubeconfig).
	Dir string
	// Out receives progress lines.
	Out io.Writer
	// DryRun writes the generated configuration and creates nothing.
	DryRun bool
}

// Names fills in the seed's default names.
func (o *Options) Names() (hub string, workloads []string) {
	hub, workloads = o.Hub, o.Workloads
	if hub == "" {
		hub = HubName
	}
	if len(workloads) == 0 {
		workloads = []string{WorkloadName(1), WorkloadName(2)}
	}
	return hub, workloads
}

// Provider creates or connects to the lab's clusters.
type Provider interface {
	// Name is the --provider value.
	Name() string
	// Up creates the clusters that do not exist yet (or, with
	// Options.DryRun, only writes what it would use) and returns the fleet.
	// It is idempotent: clusters that already exist are kept.
	Up(ctx context.Context, o Options) (*Fleet, error)
	// Down deletes the clusters the provider created.
	Down(ctx context.Context, o Options) error
}
