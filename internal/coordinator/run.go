package coordinator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/analysis"
	"lockstep.dev/lockstep/internal/fleet"
)

// Config wires a coordinator process.
type Config struct {
	// Hub reaches the hub's API server.
	Hub *rest.Config
	// ThanosURL is Thanos Query's base URL; empty disables analysis
	// (FleetRollouts that ask for it are refused).
	ThanosURL string
	// MetricsAddr serves /metrics; "" or "0" disables it, port 0 picks one.
	MetricsAddr string
	// Namespace limits the FleetRollouts watched; "" watches all.
	Namespace string
	// ArgoCDNamespace holds the cluster Secrets; "" means argocd.
	ArgoCDNamespace string
	// LeaderElection makes replicas take turns (namespace LeaderElectionNamespace).
	LeaderElection          bool
	LeaderElectionNamespace string
	// Cluster tunes the member cache (health checks, timeouts).
	Cluster fleet.CacheOptions
	// Logger receives structured logs.
	Logger logr.Logger
	// OnStarted, if set, is called with the metrics address once it is
	// served (tests and the CLI print it).
	OnStarted func(metricsAddr string)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// EvaluationTimeout bounds one analysis evaluation; 0 means 5s.
	EvaluationTimeout time.Duration
}

// Scheme returns a scheme with the core types and FleetRollouts.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}

// Run runs the coordinator until ctx ends. It returns nil on a clean stop.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Hub == nil {
		return errors.New("no hub configuration")
	}
	log := cfg.Logger
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	argocdNS := cfg.ArgoCDNamespace
	if argocdNS == "" {
		argocdNS = fleet.DefaultArgoCDNamespace
	}
	var querier analysis.Querier
	if cfg.ThanosURL != "" {
		q, err := analysis.NewPrometheusQuerier(analysis.PrometheusConfig{Address: cfg.ThanosURL, Timeout: cmp.Or(cfg.EvaluationTimeout, 5*time.Second)})
		if err != nil {
			return fmt.Errorf("thanos: %w", err)
		}
		querier = q
	}

	cacheOpts := cache.Options{
		// Only Argo CD's Secrets are read: caching every Secret of the hub
		// would need wider RBAC and memory for nothing.
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Namespaces: map[string]cache.Config{argocdNS: {}}},
		},
	}
	if cfg.Namespace != "" {
		cacheOpts.ByObject[&v1alpha1.FleetRollout{}] = cache.ByObject{Namespaces: map[string]cache.Config{cfg.Namespace: {}}}
	}
	skip := true
	mgr, err := ctrl.NewManager(cfg.Hub, ctrl.Options{
		Scheme:                  Scheme(),
		Logger:                  log,
		Cache:                   cacheOpts,
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  "0",
		LeaderElection:          cfg.LeaderElection,
		LeaderElectionID:        "lockstep-coordinator",
		LeaderElectionNamespace: cfg.LeaderElectionNamespace,
		// A process (or a test) may run the coordinator more than once.
		Controller: config.Controller{SkipNameValidation: &skip},
	})
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}

	metrics := NewMetrics()
	r := &Reconciler{
		Client:          mgr.GetClient(),
		Querier:         querier,
		Recorder:        mgr.GetEventRecorderFor("lockstep-coordinator"), //nolint:staticcheck // see Reconciler.Recorder
		Metrics:         metrics,
		ArgoCDNamespace: argocdNS,
		Now:             cfg.Now,

		EvaluationTimeout: cfg.EvaluationTimeout,
	}
	copts := cfg.Cluster
	copts.Logger = log.WithName("fleet")
	copts.OnEvent = r.ClusterEvent
	clusters := fleet.NewCache(copts)
	r.Clusters = clusters
	if err := mgr.Add(clusters); err != nil {
		return err
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("controller: %w", err)
	}

	if cfg.MetricsAddr != "" && cfg.MetricsAddr != "0" {
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics address: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		log.Info("Serving metrics", "addr", ln.Addr().String())
		if cfg.OnStarted != nil {
			cfg.OnStarted(ln.Addr().String())
		}
	} else if cfg.OnStarted != nil {
		cfg.OnStarted("")
	}
	log.Info("Starting coordinator", "thanos", cfg.ThanosURL, "namespace", cfg.Namespace, "argocdNamespace", argocdNS)
	return mgr.Start(ctx)
}
