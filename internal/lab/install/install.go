package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/provider"
	"lockstep.dev/lockstep/internal/lab/sources"
)

// DataPlane says whether the clusters run real pods.
type DataPlane string

const (
	// DataPlaneReal: kubelets run the pods; webhooks and gateways answer.
	DataPlaneReal DataPlane = "real"
	// DataPlaneSimulated: kwok plays the kubelets (the local fleet). No
	// container runs, so nothing answers an admission webhook: the
	// installers set Istio's webhooks to failurePolicy Ignore, the one
	// change they make for a simulated data plane.
	DataPlaneSimulated DataPlane = "simulated"
	// DataPlaneAuto: simulated when every node of a cluster is a kwok node.
	DataPlaneAuto DataPlane = "auto"
)

// Cluster is one cluster of the fleet with its clients.
type Cluster struct {
	provider.Cluster
	Config  *rest.Config
	Kube    kubernetes.Interface
	Applier *kube.Applier
	// DataPlane is resolved (never auto).
	DataPlane DataPlane
}

// Settings are the installers' knobs, all with defaults.
type Settings struct {
	// IstioHub and IstioTag choose Istio's images (the charts are pinned
	// by sources.Istio).
	IstioHub, IstioTag string
	// MeshID is Istio's mesh ID.
	MeshID string
	// ThanosImage, MinIOImage, GrafanaImage and CoordinatorImage are
	// the images of the components Lockstep writes manifests for.
	ThanosImage, MinIOImage, GrafanaImage, CoordinatorImage string
	// Timeout bounds each wait for Deployments and addresses.
	Timeout time.Duration
}

// DefaultSettings returns the pinned defaults.
func DefaultSettings() Settings {
	return Settings{
		IstioHub:         "docker.io/istio",
		IstioTag:         "1.30.0",
		MeshID:           "mesh1",
		ThanosImage:      "quay.io/thanos/thanos:v0.42.4",
		MinIOImage:       "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z",
		GrafanaImage:     "docker.io/grafana/grafana:12.2.0",
		CoordinatorImage: "ghcr.io/lockstep-dev/lockstep:latest",
		Timeout:          5 * time.Minute,
	}
}

// Context is what an action works with: the fleet's clusters, the pinned
// sources, the settings, and the progress output.
type Context struct {
	context.Context
	Fleet     *provider.Fleet
	Hub       *Cluster
	Workloads []*Cluster
	Sources   *sources.Resolver
	Settings  Settings
	Out       io.Writer
	// DryRun sends every apply with dryRun=All: nothing is persisted.
	DryRun bool

	counts *Counts
}

// All returns the hub then the workloads.
func (c *Context) All() []*Cluster { return append([]*Cluster{c.Hub}, c.Workloads...) }

// Logf prints one progress line, indented under the action's line.
func (c *Context) Logf(format string, args ...any) {
	if c.Out != nil {
		fmt.Fprintf(c.Out, "      "+format+"\n", args...)
	}
}

// Action is one idempotent step of the pipeline.
type Action interface {
	// Name is the action's stable identifier (--from, the state
	// ConfigMap's keys): lower-case words joined by dashes.
	Name() string
	// Description is the progress line.
	Description() string
	// Execute brings the clusters to the action's desired state. Running
	// it again changes nothing.
	Execute(c *Context) error
}

// Options configure a Connect.
type Options struct {
	Fleet     *provider.Fleet
	Sources   *sources.Resolver
	Settings  Settings
	Out       io.Writer
	DataPlane DataPlane
	DryRun    bool
	// QPS and Burst of every client (defaults 200/400: an install is
	// ~1000 requests in bursts; the API server's priority and fairness,
	// not a client-side limiter, is what protects it).
	QPS   float32
	Burst int
}

// Connect builds the clients of every cluster of the fleet and resolves
// the data plane.
func Connect(ctx context.Context, o Options) (*Context, error) {
	if o.Fleet == nil {
		return nil, errors.New("install: no fleet")
	}
	if err := o.Fleet.Validate(); err != nil {
		return nil, err
	}
	if o.Sources == nil {
		o.Sources = sources.DefaultResolver()
	}
	if o.Settings == (Settings{}) {
		o.Settings = DefaultSettings()
	}
	if o.DataPlane == "" {
		o.DataPlane = DataPlaneAuto
	}
	switch o.DataPlane {
	case DataPlaneAuto, DataPlaneReal, DataPlaneSimulated:
	default:
		return nil, fmt.Errorf("unknown data plane %q (auto, real or simulated)", o.DataPlane)
	}
	if o.QPS == 0 {
		o.QPS, o.Burst = 200, 400
	}
	c := &Context{Context: ctx, Fleet: o.Fleet, Sources: o.Sources, Settings: o.Settings, Out: o.Out, DryRun: o.DryRun}
	for _, pc := range o.Fleet.All() {
		cl, err := connect(ctx, o, pc)
		if err != nil {
			return nil, err
		}
		if pc.Role == provider.RoleHub {
			c.Hub = cl
		} else {
			c.Workloads = append(c.Workloads, cl)
		}
	}
	return c, nil
}

func connect(ctx context.Context, o Options, pc provider.Cluster) (*Cluster, error) {
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: o.Fleet.Kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: pc.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("cluster %s (context %s): %w", pc.Name, pc.Context, err)
	}
	cfg.QPS, cfg.Burst = o.QPS, o.Burst
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", pc.Name, err)
	}
	a, err := kube.NewApplier(cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", pc.Name, err)
	}
	a.DryRun = o.DryRun
	cl := &Cluster{Cluster: pc, Config: cfg, Kube: kc, Applier: a, DataPlane: o.DataPlane}
	if cl.DataPlane == DataPlaneAuto {
		dp, err := detectDataPlane(ctx, kc)
		if err != nil {
			return nil, fmt.Errorf("cluster %s (context %s): %w", pc.Name, pc.Context, err)
		}
		cl.DataPlane = dp
	}
	return cl, nil
}

// Names lists actions' names, for help texts and errors.
func Names(actions []Action) string {
	var n []string
	for _, a := range actions {
		n = append(n, a.Name())
	}
	return strings.Join(n, ", ")
}
