package meshsim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Main is the command entry the CLI exposes as "lockstep meshsim". It
// parses args, connects to the clusters named by kubeconfig contexts and
// runs the simulation until ctx is done. Logs go to stderr.
func Main(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("meshsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cluster        = fs.String("cluster", "", "Istio cluster ID of the local cluster, e.g. argo-rollout1 (required)")
		kubeconfig     = fs.String("kubeconfig", "", "kubeconfig file; default $KUBECONFIG or ~/.kube/config")
		kubeContext    = fs.String("context", "", "kubeconfig context of the local cluster; default the current context")
		namespace      = fs.String("namespace", DefaultNamespace, "namespace of the helloworld services and pods")
		virtualService = fs.String("virtual-service", DefaultVirtualService, "VirtualService to route by, NAME or NAMESPACE/NAME")
		route          = fs.String("route", DefaultRoute, "name of the VirtualService HTTP route")
		ingressAddr    = fs.String("ingress-addr", "127.0.0.1:0", "loopback address of the ingress gateway")
		eastWestAddr   = fs.String("eastwest-addr", "127.0.0.1:0", "loopback address of the east-west port")
		metricsAddr    = fs.String("metrics-addr", "127.0.0.1:0", "loopback address of /metrics and /healthz")
		seed           = fs.Uint64("seed", 0, "seed for routing and fault decisions; 0 picks one at random")
		peers          = pairFlag{}
		peerEastWest   = pairFlag{}
	)
	fs.Var(peers, "peer", "peer cluster as NAME=KUBECONFIG_CONTEXT; repeatable")
	fs.Var(peerEastWest, "peer-eastwest", "peer east-west base URL as NAME=URL; repeatable")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("meshsim: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("meshsim: unexpected arguments %q", fs.Args())
	}
	if *cluster == "" {
		return errors.New("meshsim: --cluster is required")
	}

	local, err := restConfig(*kubeconfig, *kubeContext)
	if err != nil {
		return fmt.Errorf("meshsim: local cluster: %w", err)
	}
	peerConfigs := make(map[string]*rest.Config, len(peers))
	for _, name := range slices.Sorted(maps.Keys(peers)) {
		rc, err := restConfig(*kubeconfig, peers[name])
		if err != nil {
			return fmt.Errorf("meshsim: peer %s: %w", name, err)
		}
		peerConfigs[name] = rc
	}
	var rng *rand.Rand
	if *seed != 0 {
		rng = rand.New(rand.NewPCG(*seed, *seed))
	}
	sim, err := New(Config{
		Cluster:        *cluster,
		Namespace:      *namespace,
		VirtualService: *virtualService,
		Route:          *route,
		Local:          local,
		Peers:          peerConfigs,
		IngressAddr:    *ingressAddr,
		EastWestAddr:   *eastWestAddr,
		MetricsAddr:    *metricsAddr,
		PeerEastWest:   peerEastWest,
		Logger:         slog.New(slog.NewTextHandler(stderr, nil)),
		Rand:           rng,
	})
	if err != nil {
		return err
	}
	return sim.Run(ctx)
}

// restConfig loads the client configuration of one kubeconfig context; an
// empty context means the file's current context.
func restConfig(kubeconfig, context string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: context}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig context %q: %w", context, err)
	}
	return rc, nil
}

// pairFlag collects repeated NAME=VALUE flags.
type pairFlag map[string]string

func (p pairFlag) String() string {
	parts := make([]string, 0, len(p))
	for _, k := range slices.Sorted(maps.Keys(p)) {
		parts = append(parts, k+"="+p[k])
	}
	return strings.Join(parts, ",")
}

func (p pairFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" || value == "" {
		return fmt.Errorf("%q is not NAME=VALUE", v)
	}
	if _, dup := p[name]; dup {
		return fmt.Errorf("%q given twice", name)
	}
	p[name] = value
	return nil
}
