// Package coordinator implements `lockstep coordinator`: it runs the hub
// controller that moves FleetRollouts through every member cluster in
// step, and composes in a read-only page when its caller gives one (the
// lockstep binary gives package page's; cmd/lockstep-coordinator none).
// It imports internal/coordinator, internal/kube and the embedded
// manifests (config) for --install-crd, internal/cli/streams, client-go's
// kubeconfig loading, controller-runtime and cobra; never the web package.
package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"lockstep.dev/lockstep/config"
	"lockstep.dev/lockstep/internal/cli/streams"
	"lockstep.dev/lockstep/internal/coordinator"
	"lockstep.dev/lockstep/internal/kube"
)

type flags struct {
	kubeconfig              string
	context                 string
	thanosURL               string
	metricsAddr             string
	namespace               string
	secretsNamespace        string
	leaderElectionNamespace string
	healthAddr              string
	dashboardAddr           string
	dashboardTokenFile      string
	dashboardHosts          []string
	leaderElect             bool
	installCRD              bool
	logLevel                string
	logFormat               string
	// page serves the read-only dashboard; nil in a binary without one.
	page Page
}

// Page builds the runnable that serves the coordinator's read-only page at
// addr from hub (the manager's cache): package page's New.
type Page func(addr, token string, allowedHosts []string, hub client.Reader, log logr.Logger) manager.Runnable

// NewCommand returns `lockstep coordinator` without the read-only page:
// the coordinator-only binary's command (--dashboard-address is refused).
func NewCommand(s streams.IO) *cobra.Command { return NewCommandWithPage(s, nil) }

// NewCommandWithPage returns `lockstep coordinator` serving its read-only
// page through page when --dashboard-address is given.
func NewCommandWithPage(s streams.IO, page Page) *cobra.Command {
	f := &flags{page: page}
	cmd := &cobra.Command{
		Use:   "coordinator",
		Short: "Run the hub coordinator that keeps every cluster's canary in step",
		Long: `The coordinator runs on the hub and reconciles FleetRollouts (lockstep.dev/v1alpha1).
For each one it reads the member clusters from Argo CD's cluster Secrets,
waits until every member's Rollout is paused at the same step of the same
revision, holds for the step's hold time while the analysis runs on Thanos
Query, then promotes all members together; any failure aborts all of them.
Its decisions live in the FleetRollout's status, so it can be stopped and
started at any time.

Logs go to stderr; Prometheus metrics are served on --metrics-addr.`,
		Example: `  # Against the local fleet (lockstep lab up)
  lockstep coordinator --kubeconfig ~/.local/state/lockstep/fleet/kubeconfig \
    --context argo-hub --thanos-url http://127.0.0.1:10902 --install-crd

  # In a Deployment on the hub (in-cluster credentials), fixed metrics port
  lockstep coordinator --thanos-url http://thanos-query.monitoring:9090 \
    --metrics-addr :8080 --leader-elect`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd.Context(), s, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the hub (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
	fl.StringVar(&f.context, "context", "", "kubeconfig context of the hub (default: the current context)")
	fl.StringVar(&f.thanosURL, "thanos-url", "", "Thanos Query base URL for analysis; without it FleetRollouts with analysis are refused")
	fl.StringVar(&f.metricsAddr, "metrics-addr", "127.0.0.1:0", `address for /metrics ("0" disables, port 0 picks a free port)`)
	fl.StringVarP(&f.namespace, "namespace", "n", "", "only reconcile FleetRollouts in this namespace (default: all)")
	fl.StringVar(&f.secretsNamespace, "secrets-namespace", "lockstep-system", "namespace of the coordinator's member Secrets (labelled lockstep.dev/secret-type=cluster); the only Secrets it reads")
	fl.BoolVar(&f.leaderElect, "leader-elect", false, "take a Lease so that only one replica acts at a time")
	fl.StringVar(&f.leaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader-election Lease (default: --secrets-namespace)")
	fl.StringVar(&f.healthAddr, "health-addr", "0", `address for /healthz and /readyz probes ("0" disables)`)
	fl.StringVar(&f.dashboardAddr, "dashboard-address", "", `address of the read-only dashboard, e.g. 127.0.0.1:8099 or :8099 in a Pod ("" disables)`)
	fl.StringVar(&f.dashboardTokenFile, "dashboard-token-file", "", "file holding the token every read of the dashboard needs when --dashboard-address is not loopback (e.g. a mounted Secret); open the page as /?token=TOKEN")
	fl.StringSliceVar(&f.dashboardHosts, "dashboard-allowed-host", nil, "a host name the dashboard answers to when not on loopback (repeatable); IP addresses always are")
	fl.BoolVar(&f.installCRD, "install-crd", false, "apply the Lockstep CRDs and the FleetApproval admission policy to the hub before starting (needs rights on CRDs and admission policies)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "text", "text or json")
	return cmd
}

// installCRD server-side applies the embedded Lockstep CRDs and waits
// until the hub serves it.
func installCRD(ctx context.Context, hub *rest.Config) error {
	objs, err := kube.ReadYAMLs(config.CRDs, config.LockstepCRDs...)
	if err != nil {
		return fmt.Errorf("Lockstep CRDs: %w", err)
	}
	a, err := kube.NewApplier(hub)
	if err != nil {
		return err
	}
	if err := a.Apply(ctx, objs...); err != nil {
		return fmt.Errorf("install Lockstep CRDs: %w", err)
	}
	if err := kube.WaitEstablished(ctx, a.Dynamic, []string{"fleetrollouts.lockstep.dev", "fleetapprovals.lockstep.dev"}, 30*time.Second); err != nil {
		return fmt.Errorf("install Lockstep CRDs: %w", err)
	}
	policy, err := kube.ReadYAML(config.Approval, config.ApprovalPolicy)
	if err != nil {
		return err
	}
	if err := a.Apply(ctx, policy...); err != nil {
		return fmt.Errorf("install the FleetApproval admission policy: %w", err)
	}
	return nil
}

func run(ctx context.Context, s streams.IO, f *flags) error {
	if f.dashboardAddr != "" && f.page == nil {
		return fmt.Errorf("--dashboard-address: this binary serves no dashboard; run `lockstep coordinator` for the read-only page")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch f.logFormat {
	case "text":
		h = slog.NewTextHandler(s.ErrOut, hopts)
	case "json":
		h = slog.NewJSONHandler(s.ErrOut, hopts)
	default:
		return fmt.Errorf("--log-format %q: want text or json", f.logFormat)
	}
	log := logr.FromSlogHandler(h)
	// controller-runtime's packages log through its global logger.
	ctrl.SetLogger(log)

	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if f.kubeconfig != "" {
		rules.ExplicitPath = f.kubeconfig
	}
	hub, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: f.context}).ClientConfig()
	if err != nil {
		return fmt.Errorf("hub kubeconfig: %w", err)
	}
	token, err := dashboardToken(f.dashboardAddr, f.dashboardTokenFile)
	if err != nil {
		return err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if f.installCRD {
		if err := installCRD(ctx, hub); err != nil {
			return err
		}
		log.Info("FleetRollout CRD installed")
	}
	return coordinator.Run(ctx, coordinator.Config{
		Hub:                     hub,
		ThanosURL:               strings.TrimRight(f.thanosURL, "/"),
		MetricsAddr:             f.metricsAddr,
		Namespace:               f.namespace,
		SecretsNamespace:        f.secretsNamespace,
		LeaderElection:          f.leaderElect,
		LeaderElectionNamespace: f.leaderElectionNamespace,
		HealthAddr:              f.healthAddr,
		AddToManager: func(mgr ctrl.Manager) error {
			if f.dashboardAddr == "" {
				return nil
			}
			return mgr.Add(f.page(f.dashboardAddr, token, f.dashboardHosts, mgr.GetClient(), log))
		},
		Logger: log,
		OnStarted: func(addr string) {
			if addr != "" {
				fmt.Fprintf(s.Out, "coordinator metrics: http://%s/metrics\n", addr)
			}
		},
	})
}

// dashboardToken reads the token of a dashboard served beyond loopback:
// without one, anyone who reaches the port would read the fleet.
func dashboardToken(addr, file string) (string, error) {
	if addr == "" {
		return "", nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--dashboard-address %q: %w", addr, err)
	}
	if file == "" {
		if isLoopback(host) {
			return "", nil
		}
		return "", fmt.Errorf("--dashboard-address %s is not loopback: give --dashboard-token-file (every read needs a token there)", addr)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--dashboard-token-file: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if len(token) < 16 {
		return "", fmt.Errorf("--dashboard-token-file %s: the token is shorter than 16 characters", file)
	}
	return token, nil
}

// isLoopback says whether a listen host is loopback only.
func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}
