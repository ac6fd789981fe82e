package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"lockstep.dev/lockstep/internal/cli/streams"
	"lockstep.dev/lockstep/internal/lab/install"
	"lockstep.dev/lockstep/internal/lab/install/all"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/lab/provider"
	"lockstep.dev/lockstep/internal/lab/provider/eks"
	"lockstep.dev/lockstep/internal/lab/provider/existing"
	"lockstep.dev/lockstep/internal/lab/provider/kind"
)

// Providers lists the --provider values.
var Providers = []string{"local", "kind", "eks", "existing"}

// remoteFlags are the flags of the providers other than local and of the
// installers that run on them.
type remoteFlags struct {
	dir                                string
	kubeconfig, hubContext             string
	workloadContexts                   []string
	kindNodeImage                      string
	kindWorkers                        int
	eksRegion, eksVersion, eksInstance string
	eksNodes                           int
	dryRun, resume                     bool
	from, dataPlane                    string
	settings                           install.Settings
}

func (r *remoteFlags) add(fl *pflag.FlagSet) {
	d := install.DefaultSettings()
	r.settings = d
	fl.StringVar(&r.dir, "provider-dir", "", "where kind/eks/existing write generated configs and the kubeconfig (default: ~/.local/state/lockstep/<provider>)")
	fl.StringVar(&r.kubeconfig, "kubeconfig", "", "existing: kubeconfig holding the contexts (default: $KUBECONFIG, ~/.kube/config)")
	fl.StringVar(&r.hubContext, "hub-context", "", "existing: context of the hub (default: argo-hub)")
	fl.StringSliceVar(&r.workloadContexts, "workload-contexts", nil, "existing: contexts of the workloads, in order (default: argo-rollout1,argo-rollout2)")
	fl.StringVar(&r.kindNodeImage, "kind-node-image", "", "kind: node image (default: the kind library's)")
	fl.IntVar(&r.kindWorkers, "kind-workers", 0, "kind: worker nodes per cluster besides the control plane")
	fl.StringVar(&r.eksRegion, "eks-region", "", "eks: AWS region (default: $AWS_REGION, then "+eks.DefaultRegion+")")
	fl.StringVar(&r.eksVersion, "eks-version", "", "eks: Kubernetes version (default "+eks.DefaultKubernetesVersion+")")
	fl.StringVar(&r.eksInstance, "eks-instance-type", "", "eks: node instance type (default "+eks.DefaultInstanceType+")")
	fl.IntVar(&r.eksNodes, "eks-nodes", 0, fmt.Sprintf("eks: nodes per cluster (default %d)", eks.DefaultNodes))
	fl.BoolVar(&r.dryRun, "dry-run", false, "kind/eks: write the configs only; existing: send every apply with dryRun=All and print what a run would change (on an installed lab)")
	fl.StringVar(&r.from, "from", "", "start the installers at this action (the names lockstep lab actions lists)")
	fl.BoolVar(&r.resume, "resume", false, "start at the first action the hub does not record as done (after a failed run)")
	fl.StringVar(&r.dataPlane, "data-plane", string(install.DataPlaneAuto), "real, simulated (kwok nodes: no webhook answers) or auto")
	fl.StringVar(&r.settings.IstioHub, "istio-hub", d.IstioHub, "registry of Istio's images")
	fl.StringVar(&r.settings.IstioTag, "istio-tag", d.IstioTag, "tag of Istio's images")
	fl.StringVar(&r.settings.CoordinatorImage, "coordinator-image", d.CoordinatorImage, "image of the Lockstep coordinator")
	fl.DurationVar(&r.settings.Timeout, "install-timeout", d.Timeout, "how long each installer waits for Deployments and addresses")
}

func (r *remoteFlags) provider(name string) (provider.Provider, error) {
	switch name {
	case "kind":
		return kind.New(kind.Config{NodeImage: r.kindNodeImage, Workers: r.kindWorkers}), nil
	case "eks":
		return eks.New(eks.Config{Region: r.eksRegion, KubernetesVersion: r.eksVersion, InstanceType: r.eksInstance, Nodes: r.eksNodes}), nil
	case "existing":
		return existing.New(existing.Config{Kubeconfig: r.kubeconfig, HubContext: r.hubContext, WorkloadContexts: r.workloadContexts}), nil
	}
	return nil, fmt.Errorf("unknown provider %q (one of: %s)", name, strings.Join(Providers, ", "))
}

func (r *remoteFlags) options(name string, s streams.IO) provider.Options {
	dir := r.dir
	if dir == "" {
		dir = filepath.Join(filepath.Dir(local.DefaultDir()), name)
	}
	return provider.Options{Dir: dir, Out: s.Out, DryRun: r.dryRun}
}

// upRemote creates or connects to the clusters, then runs every installer.
func upRemote(ctx context.Context, s streams.IO, name string, r *remoteFlags) error {
	if r.from != "" && r.resume {
		return errors.New("--from and --resume exclude each other")
	}
	if r.from != "" {
		known := false
		for _, a := range all.Actions() {
			known = known || a.Name() == r.from
		}
		if !known {
			return fmt.Errorf("unknown action %q for --from (actions: %s)", r.from, install.Names(all.Actions()))
		}
	}
	p, err := r.provider(name)
	if err != nil {
		return err
	}
	o := r.options(name, s)
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(s.Out, "provider %s: clusters (configs in %s)\n", name, o.Dir)
	fleet, err := p.Up(ctx, o)
	if err != nil {
		return err
	}
	for _, n := range fleet.Notes {
		fmt.Fprintf(s.Out, "note: %s\n", n)
	}
	if r.dryRun && name != "existing" {
		fmt.Fprintf(s.Out, "dry run: configs written to %s; no cluster was created, so no installer ran\n", o.Dir)
		return nil
	}
	start := time.Now()
	c, err := install.Connect(ctx, install.Options{Fleet: fleet, Settings: r.settings, Out: s.Out,
		DataPlane: install.DataPlane(r.dataPlane), DryRun: r.dryRun})
	if err != nil {
		return err
	}
	for _, cl := range c.All() {
		if cl.DataPlane == install.DataPlaneSimulated {
			fmt.Fprintf(s.Out, "note: %s has only kwok nodes: simulated data plane (nothing answers admission webhooks; Istio's are set to Ignore)\n", cl.Name)
		}
	}
	results, err := install.Run(c, all.Actions(), install.RunOptions{From: r.from, Resume: r.resume})
	if err != nil && r.dryRun {
		return err
	}
	if err != nil {
		return fmt.Errorf("%w (fix the cause, then `lockstep lab up --provider %s --resume`)", err, name)
	}
	var total install.Counts
	for _, res := range results {
		total.Created += res.Counts.Created
		total.Changed += res.Counts.Changed
		total.Unchanged += res.Counts.Unchanged
	}
	verb := "installed"
	if r.dryRun {
		verb = "dry run (nothing persisted)"
	}
	fmt.Fprintf(s.Out, "\n%s in %s: %s\nkubeconfig: %s (contexts: ", verb, time.Since(start).Round(100*time.Millisecond), total, fleet.Kubeconfig)
	var ctxs []string
	for _, cl := range fleet.All() {
		ctxs = append(ctxs, cl.Context)
	}
	fmt.Fprintf(s.Out, "%s)\nnext: lockstep lab verify --provider existing%s\n", strings.Join(ctxs, ", "), contextArgs(fleet))
	return nil
}

func contextArgs(f *provider.Fleet) string {
	var w []string
	for _, c := range f.Workloads {
		w = append(w, c.Context)
	}
	return fmt.Sprintf(" --kubeconfig %s --hub-context %s --workload-contexts %s", f.Kubeconfig, f.Hub.Context, strings.Join(w, ","))
}

func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

func newActions(s streams.IO) *cobra.Command {
	return &cobra.Command{
		Use:     "actions",
		Short:   "List the installer actions of `lab up --provider kind|eks|existing`, in order",
		Example: "  lockstep lab actions\n  lockstep lab up --provider existing --from thanos",
		Args:    cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			for i, a := range all.Actions() {
				fmt.Fprintf(s.Out, "%2d  %-24s %s\n", i+1, a.Name(), a.Description())
			}
			return nil
		},
	}
}

// installStatus prints the installers' record on the hub: one line per
// action, in pipeline order.
func installStatus(ctx context.Context, s streams.IO, r *remoteFlags, output string) error {
	fleet, err := existing.New(existing.Config{Kubeconfig: r.kubeconfig, HubContext: r.hubContext, WorkloadContexts: r.workloadContexts}).
		Up(ctx, provider.Options{Out: io.Discard})
	if err != nil {
		return err
	}
	c, err := install.Connect(ctx, install.Options{Fleet: fleet, DataPlane: install.DataPlaneReal})
	if err != nil {
		return err
	}
	st, err := install.ReadState(c)
	if err != nil {
		return err
	}
	type row struct {
		Action string `json:"action"`
		install.ActionState
	}
	var rows []row
	for _, a := range all.Actions() {
		rows = append(rows, row{Action: a.Name(), ActionState: st[a.Name()]})
	}
	if output == "json" {
		enc := json.NewEncoder(s.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tPHASE\tFINISHED\tOBJECTS\tMESSAGE")
	for _, r := range rows {
		phase, finished, objects := r.Phase, "", ""
		if phase == "" {
			phase = "NotRun"
		}
		if !r.Finished.IsZero() {
			finished = r.Finished.Local().Format(time.DateTime)
			objects = r.Counts.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Action, phase, finished, objects, firstLine(r.Message))
	}
	return tw.Flush()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
