package meshsim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Config configures the simulated data plane of one workload cluster.
type Config struct {
	// Cluster is the local cluster's Istio cluster ID, e.g. argo-rollout1.
	Cluster string
	// Namespace, VirtualService and Route locate the helloworld services
	// and the route Argo Rollouts steers; see KubeTopologyConfig for the
	// defaults.
	Namespace      string
	VirtualService string
	Route          string
	// Local reaches the local cluster's API server.
	Local *rest.Config
	// Peers reach the API servers of the other clusters, by cluster ID.
	Peers map[string]*rest.Config
	// IngressAddr, EastWestAddr and MetricsAddr are loopback host:port
	// pairs to serve on; port 0, or an empty address, picks a free port.
	IngressAddr  string
	EastWestAddr string
	MetricsAddr  string
	// PeerEastWest maps peer cluster IDs to the base URLs of their
	// meshsim east-west ports.
	PeerEastWest map[string]string
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// Topology, when set, replaces the Kubernetes adapter, and Local and
	// Peers are ignored. Tests use it with a StaticTopology.
	Topology Topology
	// Rand drives routing and fault decisions; nil seeds one at random.
	// A fixed seed makes a sequential run of requests reproducible.
	Rand *rand.Rand
}

// Sim is the simulated data plane of one cluster: ingress gateway,
// east-west port, metrics endpoint and the topology that feeds them.
type Sim struct {
	cluster  string
	log      *slog.Logger
	topology Topology
	metrics  *Metrics

	ingress  *Server
	eastWest *Server
	metricsS *Server

	started atomic.Bool
	ready   chan struct{}
}

// runner is implemented by topologies that need to watch something, such
// as KubeTopology.
type runner interface {
	Run(ctx context.Context) error
}

// New validates cfg and builds the simulation. It does no I/O: clients and
// informers are only created here, and connect when Run starts them.
func New(cfg Config) (*Sim, error) {
	if cfg.Cluster == "" {
		return nil, errors.New("meshsim: cluster is required")
	}
	logger := cmp.Or(cfg.Logger, slog.Default()).With("component", "meshsim")
	topology := cfg.Topology
	if topology == nil {
		kt, err := newKubeTopologyFromConfig(cfg, logger)
		if err != nil {
			return nil, err
		}
		topology = kt
	}
	metrics := NewMetrics()
	dp, err := NewDataPlane(DataPlaneConfig{
		Cluster:      cfg.Cluster,
		Topology:     topology,
		Metrics:      metrics,
		PeerEastWest: cfg.PeerEastWest,
		Rand:         cfg.Rand,
		Logger:       logger,
	})
	if err != nil {
		return nil, fmt.Errorf("meshsim: %w", err)
	}
	s := &Sim{cluster: cfg.Cluster, log: logger, topology: topology, metrics: metrics, ready: make(chan struct{})}
	if s.ingress, err = NewServer("ingress", cfg.IngressAddr, dp.Gateway(), logger); err != nil {
		return nil, fmt.Errorf("meshsim: %w", err)
	}
	if s.eastWest, err = NewServer("east-west", cfg.EastWestAddr, dp.EastWest(), logger); err != nil {
		return nil, fmt.Errorf("meshsim: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler())
	mux.HandleFunc("GET /healthz", healthz)
	if s.metricsS, err = NewServer("metrics", cfg.MetricsAddr, mux, logger); err != nil {
		return nil, fmt.Errorf("meshsim: %w", err)
	}
	return s, nil
}

func newKubeTopologyFromConfig(cfg Config, logger *slog.Logger) (*KubeTopology, error) {
	if cfg.Local == nil {
		return nil, errors.New("meshsim: a rest config for the local cluster is required")
	}
	for name := range cfg.PeerEastWest {
		if _, ok := cfg.Peers[name]; !ok {
			return nil, fmt.Errorf("meshsim: east-west address given for %q, which is not a peer cluster", name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Peers)) {
		if _, ok := cfg.PeerEastWest[name]; !ok {
			logger.Warn("peer cluster has no east-west address; requests routed to its pods fail with 503 UF", "cluster", cfg.Cluster, "peer", name)
		}
	}
	local := withUserAgent(cfg.Local, cfg.Cluster)
	kube, err := kubernetes.NewForConfig(local)
	if err != nil {
		return nil, fmt.Errorf("meshsim: local cluster client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(local)
	if err != nil {
		return nil, fmt.Errorf("meshsim: local cluster dynamic client: %w", err)
	}
	peers := make(map[string]kubernetes.Interface, len(cfg.Peers))
	for name, rc := range cfg.Peers {
		if rc == nil {
			return nil, fmt.Errorf("meshsim: peer %q has no rest config", name)
		}
		if peers[name], err = kubernetes.NewForConfig(withUserAgent(rc, cfg.Cluster)); err != nil {
			return nil, fmt.Errorf("meshsim: peer %q client: %w", name, err)
		}
	}
	kt, err := NewKubeTopology(KubeTopologyConfig{
		Cluster:        cfg.Cluster,
		Namespace:      cfg.Namespace,
		VirtualService: cfg.VirtualService,
		Route:          cfg.Route,
		Local:          kube,
		LocalDynamic:   dyn,
		Peers:          peers,
		Logger:         logger,
	})
	if err != nil {
		return nil, fmt.Errorf("meshsim: %w", err)
	}
	return kt, nil
}

// withUserAgent names meshsim in the API servers' audit logs, so a lab
// user can tell its watches from the controllers'.
func withUserAgent(rc *rest.Config, cluster string) *rest.Config {
	c := rest.CopyConfig(rc)
	c.UserAgent = "lockstep-meshsim/" + cluster
	return c
}

// Ready is closed once all three ports are bound; the address accessors
// return "" before.
func (s *Sim) Ready() <-chan struct{} { return s.ready }

// IngressAddr returns the bound address of the ingress gateway.
func (s *Sim) IngressAddr() string { return s.ingress.Addr() }

// EastWestAddr returns the bound address of the east-west port.
func (s *Sim) EastWestAddr() string { return s.eastWest.Addr() }

// MetricsAddr returns the bound address of the metrics endpoint.
func (s *Sim) MetricsAddr() string { return s.metricsS.Addr() }

// Metrics returns the metrics the simulation records into.
func (s *Sim) Metrics() *Metrics { return s.metrics }

// Run binds the three ports, starts the topology and serves until ctx is
// done, then shuts everything down. It returns an error if a port cannot
// be bound or a server fails, and nil after a clean shutdown.
func (s *Sim) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("meshsim: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Bind all ports before starting anything, so that a port clash is
	// reported at once and Ready means every address is known.
	servers := []*Server{s.ingress, s.eastWest, s.metricsS}
	listeners := make([]net.Listener, 0, len(servers))
	for _, srv := range servers {
		ln, err := srv.listen(ctx)
		if err != nil {
			for _, l := range listeners {
				_ = l.Close()
			}
			return fmt.Errorf("meshsim %s: %w", s.cluster, err)
		}
		listeners = append(listeners, ln)
	}
	close(s.ready)
	s.log.Info("meshsim listening", "cluster", s.cluster,
		"ingress", s.IngressAddr(), "eastWest", s.EastWestAddr(), "metrics", s.MetricsAddr())

	errs := make(chan error, len(servers)+1)
	var wg sync.WaitGroup
	run := func(f func() error) {
		wg.Go(func() {
			if err := f(); err != nil {
				errs <- err
				cancel()
			}
		})
	}
	if r, ok := s.topology.(runner); ok {
		run(func() error { return r.Run(ctx) })
	}
	for i, srv := range servers {
		run(func() error { return srv.serve(ctx, listeners[i]) })
	}
	<-ctx.Done()
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := errors.Join(all...); err != nil {
		return fmt.Errorf("meshsim %s: %w", s.cluster, err)
	}
	s.log.Info("meshsim stopped", "cluster", s.cluster)
	return nil
}
