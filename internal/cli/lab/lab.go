// Package lab implements `lockstep lab`: build, up, down, status, logs and
// the hidden supervise command of the local fleet. It imports
// internal/lab/local, internal/cli/streams and the gitops tree.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"lockstep.dev/lockstep/gitops"
	"lockstep.dev/lockstep/internal/cli/streams"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/lab/provider/eks"
	"lockstep.dev/lockstep/internal/lab/sources"
)

type flags struct {
	dir      string
	provider string
}

// NewCommand returns `lockstep lab`.
func NewCommand(s streams.IO) *cobra.Command {
	f := &flags{}
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Create, inspect and remove the lab's clusters",
		Long: `The lab is the seed's three clusters: the hub argo-hub (Argo CD, Thanos) and
the workloads argo-rollout1 and argo-rollout2 (Argo Rollouts, Prometheus).
The default provider, local, runs them on this machine from real
kube-apiservers, Argo CD, Argo Rollouts, Prometheus and Thanos; only kubelets
(kwok) and the Envoy data plane are simulated.`,
		Example: `  lockstep lab build     # build the pinned components once (cached)
  lockstep lab up        # start the fleet
  lockstep lab status    # one line per component
  lockstep lab down      # stop it (--wipe removes its data)`,
	}
	cmd.PersistentFlags().StringVar(&f.dir, "dir", local.DefaultDir(), "directory of the local fleet's state, data and logs (env LOCKSTEP_DIR)")
	cmd.AddCommand(newBuild(s), newUp(s, f), newDown(s, f), newStatus(s, f), newLogs(s, f), newSupervise(s, f),
		newActions(s), newVerify(s, f), newNetNSHelper())
	return cmd
}

func newBuild(s streams.IO) *cobra.Command {
	var only []string
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build the pinned fleet components into the cache (once per version)",
		Long: `Build compiles the pinned tool modules under tools/ (Kubernetes, etcd, kwok,
Argo Rollouts, Thanos, Argo CD) into the component cache (LOCKSTEP_CACHE_DIR,
default ~/.cache/lockstep). A component already cached is skipped: a warm
machine never compiles. A cold build takes 35-45 minutes on 2 cores.

It also fetches the installers' pinned upstream manifests and charts (Istio,
Argo CD, Argo Rollouts, prometheus-operator) through the Go module proxy and
verifies their checksums, unless the Go module cache already has them.`,
		Example: `  lockstep lab build
  lockstep lab build --only kube,etcd`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cache, err := local.DefaultCache()
			if err != nil {
				return err
			}
			known := map[string]bool{}
			for _, c := range local.Components() {
				known[c.Name] = true
			}
			for _, o := range only {
				if !known[o] {
					return fmt.Errorf("unknown component %q (known: %s)", o, strings.Join(componentNames(), ", "))
				}
			}
			tools, err := local.FindToolsDir()
			if err != nil {
				return err
			}
			logPath := filepath.Join(cache.Root, "build.log")
			if err := os.MkdirAll(cache.Root, 0o755); err != nil {
				return err
			}
			lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return err
			}
			defer lf.Close()
			fmt.Fprintf(s.Out, "component cache: %s (go build output: %s)\n", cache.Root, logPath)
			b := local.Builder{Cache: cache, ToolsDir: tools, Out: s.Out, Log: lf}
			if err := b.Ensure(cmd.Context(), only...); err != nil {
				return fmt.Errorf("%w (see %s)", err, logPath)
			}
			if len(only) > 0 {
				return nil
			}
			// The installers' pinned manifests and charts, verified once
			// here rather than fetched in the middle of an install.
			res := sources.DefaultResolver()
			res.Out = s.Out
			for _, src := range sources.Pinned() {
				dir, err := res.Dir(cmd.Context(), src)
				if err != nil {
					return err
				}
				fmt.Fprintf(s.Out, "source %s: %s\n", src, dir)
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&only, "only", nil, "build only these components ("+strings.Join(componentNames(), ", ")+")")
	return cmd
}

func componentNames() []string {
	var out []string
	for _, c := range local.Components() {
		out = append(out, c.Name)
	}
	return out
}

func newUp(s streams.IO, f *flags) *cobra.Command {
	var (
		workloads, nodes, thanosPort        int
		noNetNS, noCoordinator, bare, light bool
		timeout                             time.Duration
		userKubeconfig                      string
		remote                              = &remoteFlags{}
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the lab's clusters",
		Long: `Up creates the lab's clusters with the chosen provider and makes them ready.

local (default): the fleet-in-a-box on this machine. Up waits until every
component is healthy, then prints the kubeconfig and the URLs; on a running
fleet it is a no-op that says so. Every server binds to 127.0.0.1 on a free
port. --bare starts empty clusters (for the installers).

kind, eks, existing: the provider creates the clusters (kind through kind's
Go library; eks by writing eksctl ClusterConfigs and running eksctl) or takes
three contexts (existing), then the installers run in order: Istio
multi-primary multi-network with a shared root CA, Argo CD and the cluster
registrations, Argo Rollouts, prometheus-operator + Thanos + Grafana, and the
Lockstep coordinator (see ` + "`lockstep lab actions`" + `). Every installer is
idempotent: running up again changes nothing, and says so. Progress is kept on
the hub (ConfigMap lockstep-system/lockstep-install), so --resume continues
a failed run.`,
		Example: `  lockstep lab up
  export KUBECONFIG=$(lockstep lab status -o json | jq -r .kubeconfig)
  kubectl --context argo-rollout1 get nodes

  # three clusters you already have
  lockstep lab up --provider existing --kubeconfig ~/.kube/config \
    --hub-context argo-hub --workload-contexts argo-rollout1,argo-rollout2

  # kind (needs Docker and cloud-provider-kind for LoadBalancers)
  lockstep lab up --provider kind

  # EKS: write the eksctl ClusterConfigs only, then for real
  lockstep lab up --provider eks --eks-region eu-west-1 --dry-run
  lockstep lab up --provider eks --eks-region eu-west-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.provider != "local" {
				ctx, stop := signalContext(cmd.Context())
				defer stop()
				return upRemote(ctx, s, f.provider, remote)
			}
			cache, err := local.DefaultCache()
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			fmt.Fprintf(s.Out, "starting local fleet in %s\n", f.dir)
			st, err := local.Up(ctx, local.UpOptions{Dir: f.dir, Cache: cache, Workloads: workloads, Nodes: nodes,
				NoNetNS: noNetNS, ThanosPort: thanosPort, NoCoordinator: noCoordinator, Bare: bare, Light: light, Supervisor: []string{exe}, Out: s.Out, Timeout: timeout})
			if errors.Is(err, local.ErrAlreadyRunning) {
				fmt.Fprintf(s.Out, "fleet already running (supervisor pid %d, phase %s): nothing to do\n", st.SupervisorPID, st.Phase)
				printAccess(s, st)
				return nil
			}
			if err != nil {
				return err
			}
			local.AddContexts(s.Out, userKubeconfig, st)
			printAccess(s, st)
			return nil
		},
	}
	cmd.Flags().StringVar(&f.provider, "provider", "local", "where the clusters run: "+strings.Join(Providers, ", "))
	cmd.Flags().IntVar(&workloads, "workloads", 2, "number of workload clusters")
	cmd.Flags().IntVar(&nodes, "nodes", 2, "kwok nodes per workload cluster")
	cmd.Flags().BoolVar(&noNetNS, "no-netns", false, "local: make no private network namespace; only with --bare, since Argo CD's application-controller and Argo Rollouts bind 0.0.0.0 and never run outside one")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "give up (and clean up) after this long")
	cmd.Flags().IntVar(&thanosPort, "thanos-port", 0, "fixed 127.0.0.1 port of Thanos Query's HTTP API (default: any free port)")
	cmd.Flags().BoolVar(&noCoordinator, "no-coordinator", false, "do not run the Lockstep coordinator on the hub")
	cmd.Flags().BoolVar(&bare, "bare", false, "local: start empty clusters (apiservers, kwok nodes, LoadBalancer addresses) for installers to fill")
	cmd.Flags().StringVar(&userKubeconfig, "user-kubeconfig", local.UserKubeconfig(), `local: add the fleet's contexts to this kubeconfig, as kind does ("none": leave it alone)`)
	cmd.Flags().BoolVar(&light, "light", false, "local: light members for scale runs: Argo Rollouts and the coordinator, but no per-member Prometheus, Thanos sidecar or gateway, and no Argo CD or Thanos on the hub (so no GitOps, traffic or analysis)")
	remote.add(cmd.Flags())
	return cmd
}

func printAccess(s streams.IO, st *local.State) {
	fmt.Fprintf(s.Out, "\nkubeconfig: %s (contexts: ", st.Kubeconfig)
	var names []string
	for _, c := range st.Clusters {
		names = append(names, c.Name)
	}
	fmt.Fprintf(s.Out, "%s)\n  export KUBECONFIG=%s\n", strings.Join(names, ", "), st.Kubeconfig)
	keys := make([]string, 0, len(st.URLs))
	for k := range st.URLs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(s.Out, "%-36s %s\n", k+":", st.URLs[k])
	}
}

func newDown(s streams.IO, f *flags) *cobra.Command {
	var (
		wipe           bool
		prov           string
		userKubeconfig string
		r              = &remoteFlags{}
	)
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop every process of the local fleet, or delete the kind/eks clusters",
		Example: `  lockstep lab down
  lockstep lab down --wipe   # also remove data, logs and certificates
  lockstep lab down --provider kind
  lockstep lab down --provider eks --eks-region eu-west-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if prov == "local" {
				if wipe {
					// The contexts `lab up` added go with the fleet.
					local.RemoveContexts(s.Out, userKubeconfig, f.dir)
				}
				return local.Down(f.dir, wipe, s.Out)
			}
			p, err := r.provider(prov)
			if err != nil {
				return err
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return p.Down(ctx, r.options(prov, s))
		},
	}
	cmd.Flags().BoolVar(&wipe, "wipe", false, "local: remove the fleet's directory (data, logs, certificates) and the contexts `lab up` added to your kubeconfig")
	cmd.Flags().StringVar(&userKubeconfig, "user-kubeconfig", local.UserKubeconfig(), `local: the kubeconfig whose contexts --wipe removes ("none": leave it alone)`)
	cmd.Flags().StringVar(&prov, "provider", "local", "where the clusters run: "+strings.Join(Providers, ", "))
	cmd.Flags().StringVar(&r.dir, "provider-dir", "", "kind/eks: the directory `lab up` used (default: ~/.local/state/lockstep/<provider>)")
	cmd.Flags().StringVar(&r.eksRegion, "eks-region", "", "eks: AWS region (default: $AWS_REGION, then "+eks.DefaultRegion+")")
	return cmd
}

func newStatus(s streams.IO, f *flags) *cobra.Command {
	var (
		output, prov string
		r            = &remoteFlags{}
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every component of the local fleet, or the installers' progress on other clusters",
		Example: `  lockstep lab status
  lockstep lab status -o json
  lockstep lab status --provider existing --kubeconfig ~/.kube/config --hub-context argo-hub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("unknown output format %q (use table or json)", output)
			}
			switch prov {
			case "local":
			case "existing":
				return installStatus(cmd.Context(), s, r, output)
			default:
				return fmt.Errorf("status supports --provider local or existing (got %q); after kind or eks use the contexts `lab up` printed", prov)
			}
			st, err := local.Status(f.dir)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(s, st)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.Flags().StringVar(&prov, "provider", "local", "local or existing")
	cmd.Flags().StringVar(&r.kubeconfig, "kubeconfig", "", "existing: kubeconfig holding the contexts")
	cmd.Flags().StringVar(&r.hubContext, "hub-context", "", "existing: context of the hub (default: argo-hub)")
	cmd.Flags().StringSliceVar(&r.workloadContexts, "workload-contexts", nil, "existing: contexts of the workloads, in order")
	return cmd
}

func printStatus(s streams.IO, st *local.FleetStatus) {
	fmt.Fprintf(s.Out, "fleet %s: %s", st.Dir, st.Phase)
	if st.Message != "" {
		fmt.Fprintf(s.Out, " (%s)", st.Message)
	}
	fmt.Fprintf(s.Out, "\n\n")
	tw := tabwriter.NewWriter(s.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tSTATE\tADDRESS\tPID\tRSS")
	for _, c := range st.Components {
		state := "up"
		if !c.Up {
			state = "down (" + c.Status + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", c.Name, state, c.Addr, c.PID, mib(c.RSS))
	}
	fmt.Fprintf(tw, "total\t\t\t\t%s\n", mib(st.TotalRSS))
	_ = tw.Flush()
	for _, c := range st.Components {
		if !c.Up {
			tail := c.LogTail
			if tail == "" {
				tail = "(empty log)"
			}
			fmt.Fprintf(s.Out, "\n%s is down; last lines of %s:\n  %s\n", c.Name, c.Log, strings.ReplaceAll(tail, "\n", "\n  "))
		}
	}
}

func mib(b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%d MiB", b>>20)
}

func newLogs(s streams.IO, f *flags) *cobra.Command {
	var tail int
	cmd := &cobra.Command{
		Use:   "logs COMPONENT",
		Short: "Print a component's log",
		Example: `  lockstep lab logs argo-rollout1/rollouts-controller
  lockstep lab logs thanos-query --tail 50   # a unique suffix is enough`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			st, err := local.Status(f.dir)
			if err != nil {
				return err
			}
			var match []local.ComponentStatus
			for _, c := range st.Components {
				if c.Name == args[0] {
					match = []local.ComponentStatus{c}
					break
				}
				if strings.HasSuffix(c.Name, "/"+args[0]) {
					match = append(match, c)
				}
			}
			switch {
			case len(match) == 0:
				return fmt.Errorf("no component %q in the fleet (see `lockstep lab status`)", args[0])
			case len(match) > 1:
				var names []string
				for _, m := range match {
					names = append(names, m.Name)
				}
				return fmt.Errorf("%q is ambiguous: %s", args[0], strings.Join(names, ", "))
			}
			if tail > 0 {
				fmt.Fprintln(s.Out, local.TailFile(match[0].Log, tail))
				return nil
			}
			b, err := os.ReadFile(match[0].Log)
			if err != nil {
				return err
			}
			_, err = s.Out.Write(b)
			return err
		},
	}
	cmd.Flags().IntVar(&tail, "tail", 0, "print only the last N lines")
	return cmd
}

func newSupervise(s streams.IO, f *flags) *cobra.Command {
	var (
		workloads, nodes, thanosPort        int
		noNetNS, noCoordinator, bare, light bool
	)
	cmd := &cobra.Command{
		Use:     "supervise",
		Short:   "Run the fleet in the foreground (started by `lab up`)",
		Example: "  lockstep lab supervise --dir /tmp/fleet",
		Hidden:  true,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cache, err := local.DefaultCache()
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
			defer stop()
			return local.Supervise(ctx, local.Options{Dir: f.dir, Cache: cache, Workloads: workloads, Nodes: nodes,
				GitOps: gitops.Tree, NoNetNS: noNetNS, ThanosPort: thanosPort, NoCoordinator: noCoordinator, Bare: bare, Light: light})
		},
	}
	cmd.Flags().IntVar(&workloads, "workloads", 2, "number of workload clusters")
	cmd.Flags().IntVar(&nodes, "nodes", 2, "kwok nodes per workload cluster")
	cmd.Flags().BoolVar(&noNetNS, "no-netns", false, "make no private network namespace (only with --bare)")
	cmd.Flags().IntVar(&thanosPort, "thanos-port", 0, "fixed port of Thanos Query's HTTP API")
	cmd.Flags().BoolVar(&noCoordinator, "no-coordinator", false, "do not run the Lockstep coordinator")
	cmd.Flags().BoolVar(&bare, "bare", false, "start empty clusters")
	cmd.Flags().BoolVar(&light, "light", false, "light members for scale runs")
	return cmd
}

// newNetNSHelper is the process that makes the fleet's private network
// namespace without root: the supervisor starts it in new user and network
// namespaces with its end of a socket pair as descriptor 3.
func newNetNSHelper() *cobra.Command {
	return &cobra.Command{
		Use:    "netns-helper PORT...",
		Short:  "Bring up the private network namespace of a fleet run without root (started by `lab supervise`)",
		Hidden: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return local.RunNetNSHelper(os.NewFile(3, "netns-control"), args)
		},
	}
}
