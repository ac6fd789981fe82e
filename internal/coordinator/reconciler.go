package coordinator

import (
	"context"
	"slices"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/analysis"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/fleet"
	"lockstep.dev/lockstep/internal/notify"
)

// Clusters is what the reconciler needs from the fleet cache; tests stand
// in fake dynamic clients.
type Clusters interface {
	// Update registers members (new or changed credentials).
	Update(members []fleet.Member) error
	// Client returns a connected member's client, or an error matching
	// fleet.ErrClusterNotConnected.
	Client(ctx context.Context, name string) (dynamic.Interface, error)
	// Watch makes changes of a resource in a member trigger reconciles.
	Watch(name string, gvr schema.GroupVersionResource, namespace string) error
}

var _ Clusters = (*fleet.Cache)(nil)

// Reconciler reconciles FleetRollouts on the hub.
type Reconciler struct {
	// Client reads FleetRollouts and cluster Secrets (through the
	// manager's cache) and writes FleetRollout status.
	Client client.Client
	// Clusters hands out member clients: a *fleet.Cache, whose OnEvent
	// must call ClusterEvent so member changes trigger reconciles.
	Clusters Clusters
	// Querier reaches Thanos Query; nil refuses FleetRollouts with analysis.
	Querier analysis.Querier
	// Recorder records Events on FleetRollouts. It is the core/v1 recorder
	// on purpose: the events.k8s.io recorder folds events that differ only
	// in their note into one series, which would hide which cluster was
	// promoted or aborted at which step.
	Recorder record.EventRecorder
	// Metrics, when set, receives the coordinator's series.
	Metrics *Metrics
	// Notifier, when set, checks the FleetRollouts' notification
	// subscriptions (condition NotificationsConfigured); the deliveries
	// themselves ride on Recorder (a notify.Recorder).
	Notifier *notify.Notifier
	// Secrets are the member Secrets (default: the coordinator's own in
	// lockstep-system).
	Secrets fleet.Secrets
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Resync bounds the time between two reconciles of a FleetRollout even
	// when nothing is heard from the members (default 30s).
	Resync time.Duration
	// EvaluationTimeout bounds one evaluation of all metrics (default 5s).
	// A hung Thanos must not hold the reconcile, which also carries aborts:
	// past the timeout the remaining queries fail and the verdicts are
	// inconclusive.
	EvaluationTimeout time.Duration

	trigger chan event.TypedGenericEvent[*v1alpha1.FleetRollout]
}

// SetupWithManager registers the controller: it watches FleetRollouts
// (spec changes only: the coordinator's own status writes need no
// reconcile) and the trigger channel fed by ClusterEvent.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.trigger = make(chan event.TypedGenericEvent[*v1alpha1.FleetRollout], 1024)
	return ctrl.NewControllerManagedBy(mgr).
		Named("fleetrollout").
		For(&v1alpha1.FleetRollout{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(source.Channel(r.trigger, &handler.TypedEnqueueRequestForObject[*v1alpha1.FleetRollout]{})).
		// A member Secret that is added, fixed or rotated is acted on at
		// once; the manager's cache holds only the labelled Secrets of the
		// coordinator's namespace.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.everyFleetRollout)).
		// A person's approval lets a waiting wave go at once.
		Watches(&v1alpha1.FleetApproval{}, handler.EnqueueRequestsFromMapFunc(approvedFleetRollout)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}

// everyFleetRollout maps any member Secret change to every FleetRollout:
// selectors make it hard to know which ones a Secret concerns, and there
// are few FleetRollouts.
func (r *Reconciler) everyFleetRollout(ctx context.Context, _ client.Object) []reconcile.Request {
	var list v1alpha1.FleetRolloutList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, fr := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&fr)})
	}
	return out
}

// ClusterEvent enqueues every FleetRollout that has the cluster as a
// member (or has not recorded its members yet). It is the fleet cache's
// OnEvent and must not block: it runs on informer goroutines.
func (r *Reconciler) ClusterEvent(cluster string) {
	if r.trigger == nil {
		return
	}
	var list v1alpha1.FleetRolloutList
	// The manager's cache answers without a round trip.
	if err := r.Client.List(context.Background(), &list); err != nil {
		return
	}
	for i := range list.Items {
		fr := &list.Items[i]
		if len(fr.Status.Members) > 0 && !slices.ContainsFunc(fr.Status.Members, func(m v1alpha1.MemberStatus) bool { return m.Name == cluster }) {
			continue
		}
		select {
		case r.trigger <- event.TypedGenericEvent[*v1alpha1.FleetRollout]{Object: fr}:
		default:
			// The queue is 1024 deep and deduplicates; a full channel means
			// reconciles are already pending, and Resync bounds the delay.
		}
	}
}

func (r *Reconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Reconcile gathers, decides, persists, then applies.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	var fr v1alpha1.FleetRollout
	if err := r.Client.Get(ctx, req.NamespacedName, &fr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	now := r.now()
	orig := fr.Status.DeepCopy()
	res, err := r.reconcile(ctx, log, &fr, orig, now)
	if err != nil && r.Metrics != nil {
		r.Metrics.reconcileErrs.WithLabelValues(fr.Namespace, fr.Name).Inc()
	}
	return res, err
}

// reconcile runs the phases of one pass in order, as cluster-api's
// reconcilers do: read the spec, read the members' Secrets, observe the
// members, pick the revision, decide, persist, apply. A phase that has
// answered (a refusal, a hold, a wait, an error) ends the pass with its
// result; the status is always persisted before any member is patched.
func (r *Reconciler) reconcile(ctx context.Context, log logr.Logger, fr *v1alpha1.FleetRollout, orig *v1alpha1.FleetRolloutStatus, now time.Time) (ctrl.Result, error) {
	p := &pass{log: log, fr: fr, orig: orig, now: now}
	for _, ph := range []struct {
		name string
		run  func(context.Context, *pass) *ended
	}{
		{"readSpec", r.readSpec}, {"readMembers", r.readMembers}, {"observeMembers", r.observeMembers},
		{"pickRevision", r.pickRevision}, {"decide", r.decide}, {"persist", r.persist},
	} {
		start := time.Now()
		e := ph.run(ctx, p)
		r.timePhase(ph.name, start)
		if e != nil {
			return e.res, e.err
		}
	}
	defer r.timePhase("apply", time.Now())
	return r.applyDecision(ctx, p)
}

// timePhase records how long a phase of a reconcile took.
func (r *Reconciler) timePhase(name string, start time.Time) {
	if r.Metrics != nil {
		r.Metrics.phaseDuration.WithLabelValues(name).Observe(time.Since(start).Seconds())
	}
}

// pass is one reconcile of one FleetRollout: what each phase found, for
// the phases after it.
type pass struct {
	log  logr.Logger
	fr   *v1alpha1.FleetRollout
	orig *v1alpha1.FleetRolloutStatus
	now  time.Time

	// readSpec
	policy decide.Policy
	plan   *analysisPlan
	// readMembers
	members []fleet.Member
	waves   []decide.Wave
	// observeMembers, pickRevision
	obs      []memberObservation
	revision string
	// decide
	analysisIn decide.Analysis
	judged     *analysis.JudgeResult
	evaluated  bool
	snap       decide.Snapshot
	dec        decide.Decision
}

// ended is how a phase ends a pass early: with the result to return.
type ended struct {
	res ctrl.Result
	err error
}

func endWith(res ctrl.Result, err error) *ended { return &ended{res: res, err: err} }

func (r *Reconciler) resync() time.Duration {
	if r.Resync > 0 {
		return r.Resync
	}
	return 30 * time.Second
}

func minPositive(a, b time.Duration) time.Duration {
	switch {
	case a <= 0:
		return b
	case b <= 0:
		return a
	}
	return min(a, b)
}

func (r *Reconciler) recordValues(fr *v1alpha1.FleetRollout, metric string, res analysis.Result) {
	m := r.Metrics
	if m == nil {
		return
	}
	set := func(scope, side string, o analysis.Outcome) {
		if o.HasValue {
			m.verdictValue.WithLabelValues(fr.Namespace, fr.Name, metric, scope, side).Set(o.Value)
		}
	}
	set("global", "global", res.Global)
	for _, mr := range res.Members {
		set(mr.Name, "reporting", mr.Reporting)
		set(mr.Name, "serving", mr.Serving)
	}
}
