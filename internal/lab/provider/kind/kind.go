package kind

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/kind/pkg/cluster"
	kindlog "sigs.k8s.io/kind/pkg/log"

	"lockstep.dev/lockstep/internal/lab/provider"
)

// waitForReady is how long Create waits for the control plane to be Ready.
const waitForReady = 3 * time.Minute

// api is the part of kind's *cluster.Provider the lab uses; tests swap in a
// fake so Up and Down run without a container runtime.
type api interface {
	List() ([]string, error)
	Create(name string, options ...cluster.CreateOption) error
	ExportKubeConfig(name, explicitPath string, internal bool) error
	KubeConfig(name string, internal bool) (string, error)
	Delete(name, explicitKubeconfigPath string) error
}

// Provider creates the lab as kind clusters.
type Provider struct {
	cfg Config
	// connect reaches kind's library; it is only called outside dry runs.
	connect func(out io.Writer) (api, error)
}

var _ provider.Provider = (*Provider)(nil)

// New returns the kind provider. It does no I/O: the container runtime is
// detected when Up or Down needs it.
func New(c Config) *Provider { return &Provider{cfg: c, connect: connect} }

// Name is the --provider value.
func (p *Provider) Name() string { return "kind" }

// connect detects the container runtime the way the kind CLI does.
func connect(out io.Writer) (api, error) {
	rt, err := cluster.DetectNodeProvider()
	if err != nil {
		return nil, errors.New("kind: no container runtime found (docker, podman or nerdctl must be installed and running)")
	}
	return cluster.NewProvider(rt, cluster.ProviderWithLogger(logger{out})), nil
}

// Up writes every cluster's kind config under o.Dir/kind, creates the
// clusters that do not exist yet, exports their kubeconfigs into
// o.Dir/kubeconfig and returns the fleet.
func (p *Provider) Up(ctx context.Context, o provider.Options) (*provider.Fleet, error) {
	if o.Dir == "" {
		return nil, errors.New("kind: no directory to write the configs and the kubeconfig to")
	}
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	cfgs, err := Configs(o, p.cfg)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(o.Dir, "kind")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("kind: %w", err)
	}
	for _, cfg := range cfgs {
		b, err := Render(cfg)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, cfg.Name+".yaml")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return nil, fmt.Errorf("kind: write config of %s: %w", cfg.Name, err)
		}
		fmt.Fprintf(out, "kind: wrote %s\n", path)
	}
	kubeconfig := filepath.Join(o.Dir, "kubeconfig")
	fleet := newFleet(cfgs, kubeconfig)
	if o.DryRun {
		fmt.Fprintln(out, "kind: dry run, no cluster created")
		return fleet, nil
	}

	k, err := p.connect(out)
	if err != nil {
		return nil, err
	}
	existing, err := k.List()
	if err != nil {
		return nil, fmt.Errorf("kind: list clusters: %w", err)
	}
	for i, cfg := range cfgs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("kind: %w", err)
		}
		if slices.Contains(existing, cfg.Name) {
			fmt.Fprintf(out, "kind: cluster %s exists, kept\n", cfg.Name)
		} else {
			fmt.Fprintf(out, "kind: creating cluster %s (pods %s, services %s)\n", cfg.Name, cfg.Networking.PodSubnet, cfg.Networking.ServiceSubnet)
			if err := k.Create(cfg.Name,
				cluster.CreateWithV1Alpha4Config(cfg),
				cluster.CreateWithKubeconfigPath(kubeconfig),
				cluster.CreateWithWaitForReady(waitForReady),
				cluster.CreateWithDisplayUsage(false),
				cluster.CreateWithDisplaySalutation(false),
			); err != nil {
				return nil, fmt.Errorf("kind: create cluster %s: %w", cfg.Name, err)
			}
		}
		// Exporting again is harmless and brings back a context that was
		// removed from the file since the cluster was made.
		if err := k.ExportKubeConfig(cfg.Name, kubeconfig, false); err != nil {
			return nil, fmt.Errorf("kind: export kubeconfig of %s: %w", cfg.Name, err)
		}
		raw, err := k.KubeConfig(cfg.Name, true)
		if err != nil {
			return nil, fmt.Errorf("kind: internal kubeconfig of %s: %w", cfg.Name, err)
		}
		server, err := serverOf([]byte(raw), ContextName(cfg.Name))
		if err != nil {
			return nil, fmt.Errorf("kind: internal kubeconfig of %s: %w", cfg.Name, err)
		}
		fleet.At(i).Server = server
	}
	fmt.Fprintf(out, "kind: %d clusters ready, kubeconfig %s\n", len(cfgs), kubeconfig)
	return fleet, nil
}

// Down deletes the lab's clusters that exist and removes their contexts from
// o.Dir/kubeconfig.
func (p *Provider) Down(ctx context.Context, o provider.Options) error {
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	hub, workloads := o.Names()
	kubeconfig := ""
	if o.Dir != "" {
		kubeconfig = filepath.Join(o.Dir, "kubeconfig")
	}
	k, err := p.connect(out)
	if err != nil {
		return err
	}
	existing, err := k.List()
	if err != nil {
		return fmt.Errorf("kind: list clusters: %w", err)
	}
	for _, name := range append([]string{hub}, workloads...) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("kind: %w", err)
		}
		if !slices.Contains(existing, name) {
			fmt.Fprintf(out, "kind: cluster %s does not exist\n", name)
			continue
		}
		fmt.Fprintf(out, "kind: deleting cluster %s\n", name)
		if err := k.Delete(name, kubeconfig); err != nil {
			return fmt.Errorf("kind: delete cluster %s: %w", name, err)
		}
	}
	return nil
}

// newFleet is the fleet of the given configs with the servers kind's
// internal kubeconfig will hold.
func newFleet(cfgs []*v1alpha4.Cluster, kubeconfig string) *provider.Fleet {
	var names []string
	for _, cfg := range cfgs {
		names = append(names, cfg.Name)
	}
	f := provider.NewFleet("kind", kubeconfig, names, func(_ int, name string) string { return ContextName(name) })
	for i, n := range names {
		f.At(i).Server = InternalServer(n)
	}
	f.Notes = []string{
		"LoadBalancer Services (the Istio east-west gateways, the Thanos sidecars) stay <pending> on kind until something hands out addresses: " +
			"run cloud-provider-kind beside the clusters (go install sigs.k8s.io/cloud-provider-kind@latest && cloud-provider-kind; it needs the Docker socket), " +
			"or install MetalLB with an IPAddressPool taken from the kind Docker network (docker network inspect kind).",
		"The clusters reach each other's API servers as https://<name>-control-plane:6443 on the kind Docker network; from this machine use the kind-<name> contexts in " + kubeconfig + ".",
	}
	return f
}

// serverOf returns the server of the kubeconfig's context (or of its only
// cluster when kind named the context differently).
func serverOf(raw []byte, context string) (string, error) {
	cfg, err := clientcmd.Load(raw)
	if err != nil {
		return "", err
	}
	if c, ok := cfg.Contexts[context]; ok {
		if cl, ok := cfg.Clusters[c.Cluster]; ok && cl.Server != "" {
			return cl.Server, nil
		}
	}
	if len(cfg.Clusters) == 1 {
		for _, cl := range cfg.Clusters {
			if cl.Server != "" {
				return cl.Server, nil
			}
		}
	}
	return "", fmt.Errorf("no server for context %q", context)
}

// logger prints kind's progress lines (verbosity 0 only) on the Up/Down
// output.
type logger struct{ w io.Writer }

func (l logger) Warn(m string)                        { fmt.Fprintln(l.w, "kind: warning: "+m) }
func (l logger) Warnf(f string, a ...any)             { l.Warn(fmt.Sprintf(f, a...)) }
func (l logger) Error(m string)                       { fmt.Fprintln(l.w, "kind: error: "+m) }
func (l logger) Errorf(f string, a ...any)            { l.Error(fmt.Sprintf(f, a...)) }
func (l logger) V(v kindlog.Level) kindlog.InfoLogger { return info{w: l.w, on: v <= 0} }

type info struct {
	w  io.Writer
	on bool
}

func (i info) Info(m string) {
	if i.on {
		fmt.Fprintln(i.w, "kind: "+m)
	}
}
func (i info) Infof(f string, a ...any) { i.Info(fmt.Sprintf(f, a...)) }
func (i info) Enabled() bool            { return i.on }
