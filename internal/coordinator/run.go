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
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/analysis"
	"lockstep.dev/lockstep/internal/fleet"
	"lockstep.dev/lockstep/internal/notify"
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
	// SecretsNamespace holds the coordinator's own member Secrets
	// (labelled lockstep.dev/secret-type=cluster, see package access);
	// "" means lockstep-system. It is the only namespace whose Secrets the
	// coordinator reads.
	SecretsNamespace string
	// LeaderElection makes replicas take turns, with a Lease in
	// LeaderElectionNamespace ("" means SecretsNamespace's default).
	LeaderElection          bool
	LeaderElectionNamespace string
	// HealthAddr serves /healthz and /readyz; "" or "0" disables them.
	HealthAddr string
	// AddToManager, when set, adds more runnables to the coordinator's
	// manager (the CLI's read-only dashboard, from the manager's cache).
	AddToManager func(mgr ctrl.Manager) error
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
	secrets := fleet.LockstepSecrets(cfg.SecretsNamespace)
	var querier analysis.Querier
	if cfg.ThanosURL != "" {
		q, err := analysis.NewPrometheusQuerier(analysis.PrometheusConfig{Address: cfg.ThanosURL, Timeout: cmp.Or(cfg.EvaluationTimeout, 5*time.Second)})
		if err != nil {
			return fmt.Errorf("thanos: %w", err)
		}
		querier = q
	}

	metrics := NewMetrics()
	mgr, err := newManager(cfg, secrets, metrics, log)
	if err != nil {
		return err
	}

	if cfg.HealthAddr != "" && cfg.HealthAddr != "0" {
		if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
			return err
		}
		if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
			return err
		}
	}
	// Notifications read their ConfigMap and Secret directly (the cache
	// holds only member Secrets) and ride on the coordinator's Events.
	notifier := notify.New(notify.Options{Reader: mgr.GetAPIReader(), Namespace: secrets.Namespace,
		Registerer: metrics.Registry, Logger: log.WithName("notify")})
	if err := mgr.Add(notifier); err != nil {
		return err
	}
	r := &Reconciler{
		Client:  mgr.GetClient(),
		Querier: querier,
		Recorder: &notify.Recorder{EventRecorder: mgr.GetEventRecorderFor("lockstep-coordinator"), //nolint:staticcheck // see Reconciler.Recorder
			Notifier: notifier, Now: cfg.Now},
		Notifier: notifier,
		Metrics:  metrics,
		Secrets:  secrets,
		Now:      cfg.Now,

		EvaluationTimeout: cfg.EvaluationTimeout,
	}
	copts := cfg.Cluster
	copts.Logger = log.WithName("fleet")
	copts.OnEvent = r.ClusterEvent
	if copts.Transport == nil {
		copts.Transport = metrics.Transport
	}
	clusters := fleet.NewCache(copts)
	r.Clusters = clusters
	if cfg.AddToManager != nil {
		if err := cfg.AddToManager(mgr); err != nil {
			return err
		}
	}
	if err := mgr.Add(clusters); err != nil {
		return err
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("controller: %w", err)
	}

	stopMetrics, err := serveMetrics(cfg, metrics, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	log.Info("Starting coordinator", "thanos", analysis.RedactURL(cfg.ThanosURL), "namespace", cfg.Namespace, "secretsNamespace", secrets.Namespace, "leaderElection", cfg.LeaderElection)
	return mgr.Start(ctx)
}

// newManager builds the coordinator's manager: a cache holding only its
// member Secrets (and FleetRollouts of one namespace, when given), hub
// requests counted, leader election as configured.
func newManager(cfg Config, secrets fleet.Secrets, metrics *Metrics, log logr.Logger) (ctrl.Manager, error) {
	leNS := cmp.Or(cfg.LeaderElectionNamespace, secrets.Namespace)
	cacheOpts := cache.Options{
		// Only the coordinator's member Secrets are read: its role allows
		// Secrets in its own namespace only, and caching others would cost
		// memory for nothing.
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {
				Namespaces: map[string]cache.Config{secrets.Namespace: {}},
				Label:      labels.SelectorFromSet(labels.Set{secrets.TypeLabel: fleet.SecretTypeCluster}),
			},
		},
	}
	if cfg.Namespace != "" {
		cacheOpts.ByObject[&v1alpha1.FleetRollout{}] = cache.ByObject{Namespaces: map[string]cache.Config{cfg.Namespace: {}}}
	}
	hub := rest.CopyConfig(cfg.Hub)
	hub.Wrap(func(rt http.RoundTripper) http.RoundTripper { return metrics.Transport("hub", rt) })
	skip := true
	mgr, err := ctrl.NewManager(hub, ctrl.Options{
		Scheme:                  Scheme(),
		Logger:                  log,
		Cache:                   cacheOpts,
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:  cmp.Or(cfg.HealthAddr, "0"),
		LeaderElection:          cfg.LeaderElection,
		LeaderElectionID:        "lockstep-coordinator",
		LeaderElectionNamespace: leNS,
		// Run returns when the manager stops, so the Lease can be given up
		// at once: the next replica takes over within a retry period
		// instead of waiting for the Lease to expire.
		LeaderElectionReleaseOnCancel: true,
		// A process (or a test) may run the coordinator more than once.
		Controller: config.Controller{SkipNameValidation: &skip},
	})
	if err != nil {
		return nil, fmt.Errorf("manager: %w", err)
	}
	return mgr, nil
}

// serveMetrics serves /metrics on cfg.MetricsAddr ("" or "0": not at all)
// and tells cfg.OnStarted where; the returned func stops it.
func serveMetrics(cfg Config, metrics *Metrics, log logr.Logger) (func(), error) {
	if cfg.MetricsAddr == "" || cfg.MetricsAddr == "0" {
		if cfg.OnStarted != nil {
			cfg.OnStarted("")
		}
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("metrics address: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("Serving metrics", "addr", ln.Addr().String())
	if cfg.OnStarted != nil {
		cfg.OnStarted(ln.Addr().String())
	}
	return func() { _ = srv.Close() }, nil
}
