package existing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"lockstep.dev/lockstep/internal/lab/provider"
)

// Timeout bounds each cluster's /version probe.
const Timeout = 10 * time.Second

// Config says where the existing clusters are.
type Config struct {
	// Kubeconfig is the file holding the contexts (default: $KUBECONFIG,
	// then ~/.kube/config).
	Kubeconfig string
	// HubContext is the hub's context (default: the hub's name).
	HubContext string
	// WorkloadContexts are the workloads' contexts, in the order of the
	// workload names (default: the workloads' names).
	WorkloadContexts []string
}

// Provider hands existing clusters to the installers.
type Provider struct {
	cfg     Config
	timeout time.Duration
}

var _ provider.Provider = (*Provider)(nil)

// New returns the provider. It does no I/O.
func New(c Config) *Provider { return &Provider{cfg: c, timeout: Timeout} }

// Name is the --provider value.
func (p *Provider) Name() string { return "existing" }

// Up checks that every context exists and (unless o.DryRun) answers, and
// returns the fleet.
func (p *Provider) Up(ctx context.Context, o provider.Options) (*provider.Fleet, error) {
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	hub, workloads := o.Names()
	hubCtx := p.cfg.HubContext
	if hubCtx == "" {
		hubCtx = hub
	}
	wCtx := p.cfg.WorkloadContexts
	if len(wCtx) == 0 {
		wCtx = workloads
	}
	if len(wCtx) != len(workloads) {
		return nil, fmt.Errorf("existing: %d workload contexts for %d workload clusters (%s)", len(wCtx), len(workloads), strings.Join(workloads, ", "))
	}
	path, kc, err := p.kubeconfig(o)
	if err != nil {
		return nil, err
	}

	contexts := append([]string{hubCtx}, wCtx...)
	fleet := provider.NewFleet("existing", path, append([]string{hub}, workloads...), func(i int, _ string) string { return contexts[i] })
	all := fleet.All()
	var missing []string
	used := map[string]string{}
	for _, c := range all {
		if other, ok := used[c.Context]; ok {
			return nil, fmt.Errorf("existing: context %q given for both %s and %s", c.Context, other, c.Name)
		}
		used[c.Context] = c.Name
		if _, ok := kc.Contexts[c.Context]; !ok {
			missing = append(missing, fmt.Sprintf("%q (for %s)", c.Context, c.Name))
		}
	}
	if len(missing) > 0 {
		noun := "context"
		if len(missing) > 1 {
			noun = "contexts"
		}
		return nil, fmt.Errorf("existing: %s %s not in %s (available: %s)", noun, strings.Join(missing, ", "), path, available(kc))
	}
	if err := fleet.Validate(); err != nil {
		return nil, fmt.Errorf("existing: %w", err)
	}
	if o.DryRun {
		fmt.Fprintf(out, "existing: dry run, contexts found in %s, not probed\n", path)
		return fleet, nil
	}

	errs := make([]error, len(all))
	versions := make([]string, len(all))
	var wg sync.WaitGroup
	for i, c := range all {
		wg.Go(func() { versions[i], errs[i] = p.probe(ctx, kc, c.Context) })
	}
	wg.Wait()
	var msgs []string
	for i, c := range all {
		if errs[i] != nil {
			msgs = append(msgs, fmt.Sprintf("context %q (%s) does not answer: %s", c.Context, c.Name, oneLine(errs[i])))
			continue
		}
		fmt.Fprintf(out, "existing: %s: context %s answers (Kubernetes %s)\n", c.Name, c.Context, versions[i])
	}
	if len(msgs) > 0 {
		return nil, errors.New("existing: " + strings.Join(msgs, "; "))
	}
	return fleet, nil
}

// Down leaves the clusters alone: lockstep did not create them.
func (p *Provider) Down(_ context.Context, o provider.Options) error {
	if o.Out != nil {
		hub, workloads := o.Names()
		fmt.Fprintf(o.Out, "existing: leaving %s alone, lockstep did not create them\n", strings.Join(append([]string{hub}, workloads...), ", "))
	}
	return nil
}

// kubeconfig returns the kubeconfig file the fleet names and its content
// with relative paths resolved.
func (p *Provider) kubeconfig(o provider.Options) (string, *clientcmdapi.Config, error) {
	path := p.cfg.Kubeconfig
	if path == "" {
		var files []string
		for _, f := range clientcmd.NewDefaultClientConfigLoadingRules().GetLoadingPrecedence() {
			if _, err := os.Stat(f); err == nil {
				files = append(files, f)
			}
		}
		switch len(files) {
		case 0:
			return "", nil, errors.New("existing: no kubeconfig found: give one or set KUBECONFIG")
		case 1:
			path = files[0]
		default:
			return merge(files, o.Dir)
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", nil, fmt.Errorf("existing: %w", err)
	}
	kc, err := clientcmd.LoadFromFile(abs)
	if err != nil {
		return "", nil, fmt.Errorf("existing: read kubeconfig: %s", oneLine(err))
	}
	if err := clientcmd.ResolveLocalPaths(kc); err != nil {
		return "", nil, fmt.Errorf("existing: kubeconfig %s: %w", abs, err)
	}
	return abs, kc, nil
}

// merge writes the union of several kubeconfig files (kubectl's rules: the
// first file to set a name wins) to dir/kubeconfig.
func merge(files []string, dir string) (string, *clientcmdapi.Config, error) {
	if dir == "" {
		return "", nil, fmt.Errorf("existing: KUBECONFIG names %d files and there is no directory to merge them into: give one kubeconfig", len(files))
	}
	rules := &clientcmd.ClientConfigLoadingRules{Precedence: files}
	kc, err := rules.Load()
	if err != nil {
		return "", nil, fmt.Errorf("existing: read kubeconfig: %s", oneLine(err))
	}
	abs, err := filepath.Abs(filepath.Join(dir, "kubeconfig"))
	if err != nil {
		return "", nil, fmt.Errorf("existing: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("existing: %w", err)
	}
	if err := clientcmd.WriteToFile(*kc, abs); err != nil {
		return "", nil, fmt.Errorf("existing: write merged kubeconfig: %w", err)
	}
	return abs, kc, nil
}

// probe asks the context's API server for /version.
func (p *Provider) probe(ctx context.Context, kc *clientcmdapi.Config, name string) (string, error) {
	rc, err := clientcmd.NewNonInteractiveClientConfig(*kc, name, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return "", err
	}
	rc.Timeout = p.timeout
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	body, err := dc.RESTClient().Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return "", err
	}
	var info version.Info
	if err := json.Unmarshal(body, &info); err != nil || info.GitVersion == "" {
		return "", fmt.Errorf("/version answered something that is not a Kubernetes version (%.60q)", body)
	}
	return info.GitVersion, nil
}

func available(kc *clientcmdapi.Config) string {
	var names []string
	for n := range kc.Contexts {
		names = append(names, n)
	}
	if len(names) == 0 {
		return "none"
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
