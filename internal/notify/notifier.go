package notify

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
)

// Delivery results (lockstep_notifications_total's result label).
const (
	ResultSent    = "sent"
	ResultFailed  = "failed"
	ResultDropped = "dropped"
	ResultInvalid = "invalid"
)

// Event is what happened: a coordinator Event on a FleetRollout.
type Event struct {
	Type, Reason, Message string
	Time                  time.Time
}

// Options configure a Notifier.
type Options struct {
	// Reader reads the ConfigMap and Secret (a direct client: the
	// coordinator caches neither).
	Reader client.Reader
	// Namespace holds ConfigMapName and SecretName.
	Namespace string
	// Registerer receives lockstep_notifications_total; nil skips it.
	Registerer prometheus.Registerer
	Logger     logr.Logger
	// Workers deliver in parallel (default 4); Queue bounds what waits
	// (default 256): past it a notification is dropped and counted, never
	// waited for.
	Workers, Queue int
	// ConfigTTL is how often the configuration is read again (default
	// 10s): a fixed ConfigMap is in force within it.
	ConfigTTL time.Duration
}

// Notifier turns Events on subscribed FleetRollouts into deliveries.
type Notifier struct {
	opts  Options
	log   logr.Logger
	total *prometheus.CounterVec
	queue chan job

	mu      sync.Mutex
	cfg     *Config
	version string
}

type job struct {
	trigger, recipient string
	// name is the service's name in the ConfigMap (the metric's label).
	name    string
	service Service
	n       Notification
}

// New returns a Notifier; Start runs its workers. It does no I/O.
func New(opts Options) *Notifier {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Queue <= 0 {
		opts.Queue = 256
	}
	if opts.ConfigTTL <= 0 {
		opts.ConfigTTL = 10 * time.Second
	}
	n := &Notifier{opts: opts, log: opts.Logger, queue: make(chan job, opts.Queue),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockstep_notifications_total",
			Help: "Notification deliveries by trigger, service and result (sent, failed after retries, dropped on a full queue, invalid: not renderable or not deliverable).",
		}, []string{"trigger", "service", "result"})}
	if n.log.GetSink() == nil {
		n.log = logr.Discard()
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(n.total)
	}
	return n
}

// Start reads the configuration every ConfigTTL and delivers until ctx
// ends (a controller-runtime Runnable).
func (n *Notifier) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(n.opts.ConfigTTL)
		defer t.Stop()
		for {
			n.refresh(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	for range n.opts.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-n.queue:
					n.deliver(ctx, j)
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// NeedLeaderElection: every replica may notify only for what it decided,
// and only the leader decides; a standby emits no Events.
func (n *Notifier) NeedLeaderElection() bool { return false }

// Config returns the configuration last read. It reads it only if it
// never was (a notification before Start's first read); otherwise it does
// no I/O, so that a reconcile never waits for it.
func (n *Notifier) Config(ctx context.Context) *Config {
	n.mu.Lock()
	cfg := n.cfg
	n.mu.Unlock()
	if cfg != nil {
		return cfg
	}
	return n.refresh(ctx)
}

// refresh reads the ConfigMap and Secret again, and parses them when they
// changed. A missing ConfigMap is an empty configuration (Defaults, no
// service); a read error keeps the last one.
func (n *Notifier) refresh(ctx context.Context) *Config {
	data, secret, version, err := n.load(ctx)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		n.log.Error(err, "Reading the notifications configuration failed; keeping the last one")
		if n.cfg == nil {
			n.cfg = Defaults()
			n.cfg.Problems = append(n.cfg.Problems, "reading "+ConfigMapName+": "+firstLine(err.Error()))
		}
		return n.cfg
	}
	if n.cfg != nil && version == n.version {
		return n.cfg
	}
	cfg := Parse(data, secret)
	n.log.Info("Notifications configuration read", "services", len(cfg.Services), "templates", len(cfg.Templates), "triggers", len(cfg.Triggers), "problems", len(cfg.Problems))
	n.cfg, n.version = cfg, version
	return cfg
}

// load reads the ConfigMap's data and the Secret's, with their versions;
// no ConfigMap is no data.
func (n *Notifier) load(ctx context.Context) (map[string]string, map[string][]byte, string, error) {
	if n.opts.Reader == nil {
		return nil, nil, "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var cm corev1.ConfigMap
	err := n.opts.Reader.Get(ctx, client.ObjectKey{Namespace: n.opts.Namespace, Name: ConfigMapName}, &cm)
	if apierrors.IsNotFound(err) {
		return nil, nil, "", nil
	}
	if err != nil {
		return nil, nil, "", err
	}
	var sec corev1.Secret
	err = n.opts.Reader.Get(ctx, client.ObjectKey{Namespace: n.opts.Namespace, Name: SecretName}, &sec)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, nil, "", err
	}
	return cm.Data, sec.Data, cm.ResourceVersion + "/" + sec.ResourceVersion, nil
}

// Problems says what keeps fr's subscriptions from being delivered; nil
// when it has none or all are deliverable.
func (n *Notifier) Problems(ctx context.Context, fr *v1alpha1.FleetRollout) []string {
	subs := Subscriptions(fr.Annotations)
	if len(subs) == 0 {
		return nil
	}
	return Check(n.Config(ctx), subs)
}

// Notify queues a notification for every subscription of fr to the
// trigger of ev's reason ("on-" + kebab-case reason). It never blocks and
// never fails: what cannot be delivered is counted and logged.
func (n *Notifier) Notify(ctx context.Context, fr *v1alpha1.FleetRollout, ev Event) {
	subs := Subscriptions(fr.Annotations)
	if len(subs) == 0 {
		return
	}
	trigger := TriggerOf(ev.Reason)
	cfg := n.Config(ctx)
	var vars map[string]any
	var meta map[string]string
	for _, s := range subs {
		if !slices.Contains(s.triggers(cfg), trigger) {
			continue
		}
		svc, ok := cfg.Services[s.Service]
		if !ok {
			n.count(trigger, s.Service, ResultInvalid)
			continue
		}
		if vars == nil {
			vars = variables(fr, ev, trigger, cfg)
			meta = map[string]string{"trigger": trigger, "namespace": fr.Namespace, "name": fr.Name, "revision": fr.Status.Fleet.Revision,
				"reason": ev.Reason, "type": ev.Type, "time": ev.Time.UTC().Format(time.RFC3339)}
		}
		recipients := s.Recipients
		if len(recipients) == 0 {
			recipients = []string{""}
		}
		for _, r := range recipients {
			note, err := render(cfg, trigger, vars, meta, s.Service, r)
			if err != nil {
				n.log.Error(err, "Notification not renderable", "trigger", trigger, "service", s.Service)
				n.count(trigger, s.Service, ResultInvalid)
				continue
			}
			select {
			case n.queue <- job{trigger: trigger, recipient: r, name: s.Service, service: svc, n: note}:
			default:
				n.log.V(1).Info("Notification dropped: delivery queue full", "trigger", trigger, "service", s.Service)
				n.count(trigger, s.Service, ResultDropped)
			}
		}
	}
}

// render merges the trigger's templates for one destination.
func render(cfg *Config, trigger string, vars map[string]any, meta map[string]string, service, recipient string) (Notification, error) {
	in := make(map[string]any, len(vars)+2)
	for k, v := range vars {
		in[k] = v
	}
	in["serviceType"], in["recipient"] = service, recipient
	out := Notification{Meta: meta}
	for _, cond := range cfg.Triggers[trigger] {
		for _, name := range cond.Send {
			t := cfg.Templates[name]
			if t == nil {
				return out, &sendError{msg: "template " + name + " is not defined"}
			}
			if err := t.render(in, &out); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

// variables are what templates see: the FleetRollout as its JSON fields
// (.fleetrollout.metadata.name, .fleetrollout.status.fleet...), the event,
// the trigger, the revision and the ConfigMap's context.
func variables(fr *v1alpha1.FleetRollout, ev Event, trigger string, cfg *Config) map[string]any {
	obj, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(fr)
	return map[string]any{
		"fleetrollout": obj,
		"event":        map[string]any{"type": ev.Type, "reason": ev.Reason, "message": ev.Message, "time": ev.Time.UTC().Format(time.RFC3339)},
		"trigger":      trigger,
		"revision":     fr.Status.Fleet.Revision,
		"context":      cfg.Context,
	}
}

// deliver sends one job, retrying with doubling, jittered waits.
func (n *Notifier) deliver(ctx context.Context, j job) {
	p := j.service.Retry()
	wait := p.WaitMin
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.Timeout)
		err := j.service.Send(actx, j.n, j.recipient)
		cancel()
		if err == nil {
			n.count(j.trigger, j.name, ResultSent)
			n.log.V(1).Info("Notification sent", "trigger", j.trigger, "service", j.name, "attempts", attempt+1)
			return
		}
		if !retryable(err) || attempt >= p.Max || ctx.Err() != nil {
			n.count(j.trigger, j.name, ResultFailed)
			n.log.Info("Notification failed", "trigger", j.trigger, "service", j.name, "attempts", attempt+1, "err", err.Error())
			return
		}
		jitter := time.Duration(rand.Int64N(int64(wait)/5 + 1))
		select {
		case <-ctx.Done():
			n.count(j.trigger, j.name, ResultFailed)
			return
		case <-time.After(wait + jitter):
		}
		wait = min(2*wait, p.WaitMax)
	}
}

func (n *Notifier) count(trigger, service, result string) {
	n.total.WithLabelValues(trigger, service, result).Inc()
}
