package coordinator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	"lockstep.dev/lockstep/internal/rollouts"
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

// memberObservation is one member as seen in this reconcile.
type memberObservation struct {
	member   decide.Member
	status   v1alpha1.MemberStatus
	client   dynamic.Interface
	stepsErr error
	services rollouts.Services
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

func (r *Reconciler) reconcile(ctx context.Context, log logr.Logger, fr *v1alpha1.FleetRollout, orig *v1alpha1.FleetRolloutStatus, now time.Time) (ctrl.Result, error) {
	st := &fr.Status
	policy := policyFromSpec(&fr.Spec)
	plan, err := planFromSpec(fr.Spec.Analysis)
	if err == nil && plan != nil && r.Querier == nil {
		err = errors.New("spec.analysis is set but the coordinator has no Thanos Query URL (--thanos-url)")
	}
	if err != nil {
		return r.refuse(ctx, log, fr, orig, now, v1alpha1.ReasonInvalidSpec, err.Error())
	}

	secrets := r.Secrets
	if secrets.Namespace == "" {
		secrets = fleet.LockstepSecrets("")
	}
	members, err := fleet.MembersFromSecrets(ctx, r.Client, secrets, fr.Spec.Members.Selector, fr.Spec.Members.Names)
	var unknown *fleet.UnknownMembersError
	var bad *fleet.SecretError
	switch {
	case errors.As(err, &unknown):
		return r.refuse(ctx, log, fr, orig, now, v1alpha1.ReasonUnknownMember, err.Error())
	case errors.As(err, &bad):
		// Nothing can be observed safely: hold everything where it is and
		// say which Secret is at fault. The Secret watch brings the fix in.
		return r.holdOnSecrets(ctx, log, fr, orig, bad)
	case err != nil:
		return ctrl.Result{}, err
	case len(members) == 0:
		return r.refuse(ctx, log, fr, orig, now, v1alpha1.ReasonNoMembers, "no cluster Secret ("+secrets.TypeLabel+"=cluster) in "+secrets.Namespace+" matches spec.members.selector")
	}
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionClusterSecretsValid, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonClusterSecretsValid, Message: "every member's cluster Secret is usable", ObservedGeneration: fr.Generation})
	setSecurityCondition(fr, members)
	if err := r.Clusters.Update(members); err != nil {
		return r.refuse(ctx, log, fr, orig, now, v1alpha1.ReasonInvalidSpec, err.Error())
	}
	waves, err := wavesFromSpec(fr.Spec.Waves, members)
	if err != nil {
		return r.refuse(ctx, log, fr, orig, now, v1alpha1.ReasonInvalidSpec, err.Error())
	}

	obs := r.observe(ctx, log, fr, members, now)
	if shadowMode(fr) {
		return r.shadow(ctx, log, fr, orig, plan, obs, members, now)
	}
	var stepProblems []string
	for _, o := range obs {
		if o.stepsErr != nil {
			stepProblems = append(stepProblems, o.member.Name+": "+o.stepsErr.Error())
		} else if ro := o.member.Rollout; ro != nil && ro.Steps != nil {
			if err := decide.CheckBarriers(ro.Steps, policy.ApprovalBarriers); err != nil {
				stepProblems = append(stepProblems, o.member.Name+": "+err.Error())
			}
		}
	}
	if len(stepProblems) > 0 {
		r.setMembers(st, obs)
		return r.refuse(ctx, log, fr, orig, now, string(decide.ReasonStepsNotCoordinable), strings.Join(stepProblems, "; "))
	}

	revision, revErr := wantedRevision(obs, st.Fleet.Revision, supersedes(fr.Spec.Policy))
	if revErr != nil || revision == "" {
		r.setMembers(st, obs)
		reason, msg := v1alpha1.ReasonRevisionUnknown, "no member reports a revision yet"
		if revErr != nil {
			reason, msg = v1alpha1.ReasonRevisionsDiverge, revErr.Error()
		}
		st.Phase, st.Reason, st.Message = v1alpha1.PhaseWaiting, reason, msg
		r.setCommonConditions(fr, obs)
		return r.persistOnly(ctx, log, fr, orig, r.resync())
	}

	analysisIn, judged, evaluated := r.analysis(ctx, log, fr, plan, obs, members, revision, now)

	approvals, err := r.approvals(ctx, fr)
	if err != nil {
		return ctrl.Result{}, err
	}
	snap := decide.Snapshot{
		Revision:   revision,
		Members:    make([]decide.Member, len(obs)),
		Analysis:   analysisIn,
		Fleet:      fleetFromStatus(st.Fleet),
		Policy:     policy,
		RetryToken: fr.Spec.RetryToken,
		Waves:      waves,
		Approvals:  approvals,
	}
	for i, o := range obs {
		snap.Members[i] = o.member
	}
	dec := decide.Decide(snap, now)

	r.setMembers(st, obs)
	if len(waves) > 0 {
		states, names := decide.WaveStates(snap, dec.Next), waveOf(waves)
		for i := range st.Members {
			st.Members[i].Wave, st.Members[i].WaveState = names[st.Members[i].Name], states[st.Members[i].Name]
		}
	}
	recordAnalysis(fr, orig, plan, analysisIn, judged, evaluated, revision)
	st.Fleet = fleetToStatus(dec.Next)
	st.Phase = phaseOf(dec.Action)
	st.Reason, st.Message = string(dec.Reason), truncate(dec.Message, 1024)
	st.CurrentStep = currentStep(obs, revision)
	r.setConditions(fr, obs, dec)
	r.setNotificationsCondition(ctx, fr)
	r.approvalEvents(fr, orig, dec.Next)
	st.Releases = recordRelease(st.Releases, revision, dec.Next, latestEvidence(st, revision), now, releaseLimit(fr))
	markAbortedBy(st.Releases, fr)
	if dec.Next.InconclusivePaused && !orig.Fleet.InconclusivePaused {
		r.event(fr, "Warning", string(decide.ReasonInconclusivePaused), "Pause", "%s", truncate(dec.Message, 512))
	}
	addHistory(st, now, string(dec.Action), string(dec.Reason), dec.Step, revision, dec.Message)
	st.ObservedGeneration = fr.Generation

	log = log.WithValues("revision", revision)
	log.V(1).Info("Decision", "action", dec.Action, "reason", dec.Reason, "step", dec.Step, "patches", len(dec.Patches), "message", dec.Message)
	r.recordMetrics(fr, obs, dec, revision, now)

	// Persist the decision before acting on it: a crash after the write
	// re-derives the same patches; a crash before it sends none.
	if err := r.writeStatus(ctx, fr, orig); err != nil {
		if apierrors.IsConflict(err) {
			log.V(1).Info("Status write conflicted, retrying with fresh state")
			return ctrl.Result{Requeue: true}, nil
		}
		return ctrl.Result{}, fmt.Errorf("persist decision: %w", err)
	}

	r.emitMilestones(fr, orig)
	applyErr := r.apply(ctx, log, fr, obs, dec, revision)

	after := dec.RequeueAfter
	if plan != nil && !dec.Next.Aborted && !dec.Next.Completed {
		after = minPositive(after, plan.interval)
	}
	after = minPositive(after, r.resync())
	return ctrl.Result{RequeueAfter: after}, applyErr
}

// recordAnalysis puts the verdicts and the judge's evidence in status
// (members' and the fleet's), keeping the last evidence when this
// reconcile did not evaluate.
func recordAnalysis(fr *v1alpha1.FleetRollout, orig *v1alpha1.FleetRolloutStatus, plan *analysisPlan, in decide.Analysis, judged *analysis.JudgeResult, evaluated bool, revision string) {
	st := &fr.Status
	if plan == nil {
		st.Analysis = nil
		return
	}
	var evidence map[string]*v1alpha1.Evidence
	if judged != nil {
		evidence = evidenceOf(judged)
	} else {
		evidence = evidenceFromStatus(orig)
	}
	for i := range st.Members {
		if v, ok := in.Members[st.Members[i].Name]; ok && !v.EvaluatedAt.IsZero() {
			st.Members[i].Verdict = verdictToStatus(v)
			st.Members[i].Verdict.Evidence = evidence[st.Members[i].Name]
		}
	}
	if evaluated && in.Global != nil {
		st.Analysis = &v1alpha1.AnalysisStatus{
			EvaluatedAt: metav1.NewMicroTime(in.Global.EvaluatedAt), Revision: revision,
			Global: *verdictToStatus(*in.Global),
		}
		st.Analysis.Global.Evidence = evidence[""]
	}
	if judged != nil && (judged.Problem != "" || len(judged.Queries) > 0) {
		setAnalysisCondition(fr, judged.Problem)
	}
}

// holdOnSecrets records that a member Secret is broken or duplicated and
// sends nothing to any member until it is fixed.
func (r *Reconciler) holdOnSecrets(ctx context.Context, log logr.Logger, fr *v1alpha1.FleetRollout, orig *v1alpha1.FleetRolloutStatus, bad *fleet.SecretError) (ctrl.Result, error) {
	st := &fr.Status
	reason := v1alpha1.ReasonInvalidClusterSecret
	if bad.Duplicate {
		reason = v1alpha1.ReasonDuplicateClusterSecret
	}
	msg := truncate(firstLine(bad.Error()), 1024)
	log.Info("Holding: member Secret unusable", "secrets", bad.Secrets, "reason", reason, "err", msg)
	st.Phase, st.Reason, st.Message = v1alpha1.PhaseWaiting, reason, msg
	gen := fr.Generation
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionClusterSecretsValid, Status: metav1.ConditionFalse, Reason: reason, Message: msg, ObservedGeneration: gen})
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason, Message: msg, ObservedGeneration: gen})
	return r.persistOnly(ctx, log, fr, orig, r.resync())
}

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

// observe reads every member in parallel.
func (r *Reconciler) observe(ctx context.Context, log logr.Logger, fr *v1alpha1.FleetRollout, members []fleet.Member, now time.Time) []memberObservation {
	prev := map[string]v1alpha1.MemberStatus{}
	for _, m := range fr.Status.Members {
		prev[m.Name] = m
	}
	ref := fr.Spec.Rollout
	out := make([]memberObservation, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = r.observeOne(ctx, log.WithValues("cluster", m.Name), m.Name, ref, prev[m.Name], now)
		}()
	}
	wg.Wait()
	return out
}

func (r *Reconciler) observeOne(ctx context.Context, log logr.Logger, name string, ref v1alpha1.RolloutReference, prev v1alpha1.MemberStatus, now time.Time) memberObservation {
	o := memberObservation{member: decide.Member{Name: name}, status: v1alpha1.MemberStatus{Name: name, Verdict: prev.Verdict}}
	unreachable := func(err error) memberObservation {
		o.member.Reachable = false
		// The outage started at the first failed observation; keeping that
		// time in status is what makes the deadline survive a restart.
		since := now
		if !prev.Reachable && prev.UnreachableSince != nil {
			since = prev.UnreachableSince.Time
		}
		o.member.UnreachableSince = since
		o.status.Reachable = false
		o.status.UnreachableSince = microPtr(since)
		o.status.LastContact = prev.LastContact
		o.status.Error = truncate(firstLine(err.Error()), 512)
		o.status.Reason = v1alpha1.ReasonUnreachable
		if why, problem := denial(err); why != "" {
			o.member.Denied, o.member.Problem = why, problem
			o.status.Reason = string(why)
		}
		// Keep the last known position for people; decide ignores it.
		o.status.Revision, o.status.StableRevision, o.status.Step, o.status.Phase = prev.Revision, prev.StableRevision, prev.Step, prev.Phase
		o.status.Weights = prev.Weights
		log.V(1).Info("Member unreachable", "err", err)
		return o
	}
	dyn, err := r.Clusters.Client(ctx, name)
	if err != nil {
		return unreachable(err)
	}
	o.client = dyn
	// Watching is idempotent; it makes the member's Rollout changes
	// trigger reconciles from now on.
	if err := r.Clusters.Watch(name, rollouts.RolloutGVR, ref.Namespace); err != nil {
		log.Error(err, "Cannot watch member Rollouts")
	}
	ro, err := rollouts.Get(ctx, dyn, ref.Namespace, ref.Name)
	if err != nil {
		return unreachable(err)
	}
	o.member.Reachable = true
	o.status.Reachable = true
	// Last contact is refreshed at most every 30s so that an idle fleet
	// does not rewrite its status on every reconcile.
	o.status.LastContact = prev.LastContact
	if prev.LastContact == nil || !prev.Reachable || now.Sub(prev.LastContact.Time) >= 30*time.Second {
		o.status.LastContact = timePtr(now)
	}
	if ro == nil {
		return o
	}
	o.services = rollouts.ServicesOf(ro)
	state, err := rollouts.State(ro)
	if err != nil {
		o.stepsErr = err
		return o
	}
	o.member.Rollout = &state
	o.status.Revision, o.status.StableRevision = state.Revision, state.StableRevision
	o.status.Step = int32Ptr(state.CurrentStepIndex)
	o.status.Phase = string(state.Phase)
	o.status.Aborted = state.Aborted
	o.status.Paused = slices.Contains(state.PauseReasons, decide.PauseReasonCanaryPauseStep)
	if w, err := rollouts.TrafficWeights(ctx, dyn, ro); err != nil {
		log.V(1).Info("Cannot read traffic weights", "err", err)
	} else if w != nil {
		o.status.Weights = &v1alpha1.Weights{Stable: w.Stable, Canary: w.Canary}
	}
	return o
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// denial tells a member that refuses the coordinator (401: its token is
// not accepted; 403: its role lacks the verb) from one that cannot be
// reached, and returns what was refused: the API server's message names
// the verb and resource.
func denial(err error) (decide.Reason, string) {
	var why decide.Reason
	switch {
	case apierrors.IsUnauthorized(err):
		why = decide.ReasonUnauthorized
	case apierrors.IsForbidden(err):
		why = decide.ReasonForbidden
	default:
		return "", ""
	}
	msg := err.Error()
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		msg = st.Status().Message
	}
	return why, truncate(firstLine(msg), 400)
}

// wantedRevision picks the revision the fleet should run from what the
// reachable members report. GitOps updates members one after the other,
// so for a while members disagree; the new release is the revision that is
// not yet stable anywhere. When that is ambiguous the recorded revision
// wins; otherwise the members are told apart in an error.
//
// With supersede, a second new revision beside the recorded one (a hotfix
// reaching some members while the recorded revision's canary runs) is
// the one wanted: the members still on the recorded one are then waited
// for (up to the new-revision deadline) instead of those ahead.
func wantedRevision(obs []memberObservation, recorded string, supersede bool) (string, error) {
	revs := map[string][]string{}
	stable := map[string]bool{}
	for _, o := range obs {
		ro := o.member.Rollout
		if !o.member.Reachable || ro == nil || ro.Revision == "" {
			continue
		}
		revs[ro.Revision] = append(revs[ro.Revision], o.member.Name)
		if ro.StableRevision != "" {
			stable[ro.StableRevision] = true
		}
	}
	switch len(revs) {
	case 0:
		return recorded, nil
	case 1:
		for r := range revs {
			return r, nil
		}
	}
	var candidates []string
	for r := range revs {
		if !stable[r] {
			candidates = append(candidates, r)
		}
	}
	if len(candidates) == 1 {
		return candidates[0], nil
	}
	if supersede && len(candidates) == 2 && slices.Contains(candidates, recorded) {
		for _, c := range candidates {
			if c != recorded {
				return c, nil
			}
		}
	}
	if _, ok := revs[recorded]; ok && recorded != "" {
		return recorded, nil
	}
	var parts []string
	for _, r := range slices.Sorted(mapKeys(revs)) {
		parts = append(parts, fmt.Sprintf("%s on %s", r, strings.Join(revs[r], ", ")))
	}
	return "", fmt.Errorf("members run different new revisions: %s", strings.Join(parts, "; "))
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// analysis returns the verdicts to decide on, evaluating the metrics when
// the last evaluation is older than the interval, and reports whether it
// evaluated. Without analysis every member and the fleet pass at now: the
// barrier then only waits for the hold time.
func (r *Reconciler) analysis(ctx context.Context, log logr.Logger, fr *v1alpha1.FleetRollout, plan *analysisPlan, obs []memberObservation, members []fleet.Member, revision string, now time.Time) (decide.Analysis, *analysis.JudgeResult, bool) {
	if plan == nil {
		pass := decide.AnalysisVerdict{Verdict: decide.VerdictPass, Reason: "NoAnalysis", Revision: revision, EvaluatedAt: now}
		out := decide.Analysis{Global: &pass, Members: map[string]decide.AnalysisVerdict{}}
		for _, o := range obs {
			out.Members[o.member.Name] = pass
		}
		return out, nil, false
	}
	st := &fr.Status
	done := st.Fleet.Revision == revision && (st.Fleet.Aborted || st.Fleet.Completed)
	due := st.Analysis == nil || st.Analysis.Revision != revision || now.Sub(st.Analysis.EvaluatedAt.Time) >= plan.interval
	// A barrier's hold that ended after the last evaluation needs a
	// verdict taken after it to promote: take it now rather than up to an
	// interval later.
	if f := st.Fleet; !due && f.Revision == revision && f.BarrierStep != nil && f.StepEnteredAt != nil {
		holdEnd := f.StepEnteredAt.Add(policyFromSpec(&fr.Spec).HoldFor(*f.BarrierStep))
		due = !now.Before(holdEnd) && st.Analysis.EvaluatedAt.Time.Before(holdEnd)
	}
	if done || !due {
		return analysisFromStatus(st), nil, false
	}
	am := make([]analysis.Member, len(members))
	for i, m := range members {
		l := plan.labels[m.Name]
		am[i] = analysis.Member{Name: m.Name, Reporting: l.Reporting, Serving: l.Serving}
		if am[i].Reporting == "" {
			am[i].Reporting = m.Reporting
		}
		if am[i].Reporting == "" {
			am[i].Reporting = m.Name
		}
		if am[i].Serving == "" {
			am[i].Serving = m.Name
		}
	}
	timeout := r.EvaluationTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	parts := make([]decide.Analysis, 0, len(plan.metrics)+1)
	var judged *analysis.JudgeResult
	if plan.judge != nil {
		res := r.judge(ctx, fr, plan, obs, am, revision, now)
		log.V(1).Info("Judge evaluated", "global", res.Global.Verdict, "message", res.Global.Message, "problem", res.Problem)
		for _, mj := range res.Members {
			log.V(1).Info("Judge member verdict", "cluster", mj.Name, "verdict", mj.Verdict, "reason", mj.Reason)
		}
		parts = append(parts, res.Analysis(revision))
		judged = &res
	}
	for _, m := range plan.metrics {
		res := analysis.Evaluate(ctx, r.Querier, m, plan.args, am, now)
		log.V(1).Info("Analysis evaluated", "metric", m.Name, "verdict", res.Verdict(), "global", res.Global.Message)
		for _, mr := range res.Members {
			log.V(1).Info("Analysis member verdict", "cluster", mr.Name, "metric", m.Name, "verdict", mr.Verdict, "reason", mr.Reason)
		}
		r.recordValues(fr, m.Name, res)
		parts = append(parts, res.Analysis(revision))
	}
	return decide.CombineAnalysis(parts...), judged, true
}

// judge runs the sequential judge over the window that opened when the
// revision's canary first got traffic (recorded in status by decide).
func (r *Reconciler) judge(ctx context.Context, fr *v1alpha1.FleetRollout, plan *analysisPlan, obs []memberObservation, am []analysis.Member, revision string, now time.Time) analysis.JudgeResult {
	var win analysis.JudgeWindow
	if f := fr.Status.Fleet; f.Revision == revision && f.CanaryStartedAt != nil {
		win.Since = f.CanaryStartedAt.Time
		if f.QuietSince != nil {
			win.QuietSince = f.QuietSince.Time
		}
	}
	var svc rollouts.Services
	for _, o := range obs {
		if o.member.Rollout != nil && o.member.Rollout.Revision == revision && o.services.Canary != "" {
			svc = o.services
			break
		}
	}
	spec := judgeMatchersFor(*plan.judge, fr.Spec.Rollout.Namespace, svc)
	// The Prometheus querier reads raw scrapes; a Querier that cannot gets
	// an Inconclusive verdict that says so.
	sq, _ := r.Querier.(analysis.SampleQuerier)
	return analysis.EvaluateJudge(ctx, sq, spec, plan.args, am, win, now)
}

func analysisFromStatus(st *v1alpha1.FleetRolloutStatus) decide.Analysis {
	out := decide.Analysis{Members: map[string]decide.AnalysisVerdict{}}
	if st.Analysis != nil {
		g := verdictFromStatus(&st.Analysis.Global)
		out.Global = &g
	}
	for _, m := range st.Members {
		if m.Verdict != nil {
			out.Members[m.Name] = verdictFromStatus(m.Verdict)
		}
	}
	return out
}

func (r *Reconciler) setMembers(st *v1alpha1.FleetRolloutStatus, obs []memberObservation) {
	st.Members = make([]v1alpha1.MemberStatus, len(obs))
	for i, o := range obs {
		st.Members[i] = o.status
	}
}

func currentStep(obs []memberObservation, revision string) *int32 {
	var lo *int32
	for _, o := range obs {
		ro := o.member.Rollout
		if !o.member.Reachable || ro == nil || ro.Revision != revision || ro.CurrentStepIndex == nil {
			continue
		}
		if lo == nil || *ro.CurrentStepIndex < *lo {
			v := *ro.CurrentStepIndex
			lo = &v
		}
	}
	return lo
}

func phaseOf(a decide.Action) v1alpha1.Phase {
	switch a {
	case decide.ActionHold:
		return v1alpha1.PhaseHolding
	case decide.ActionPromote:
		return v1alpha1.PhasePromoting
	case decide.ActionAbort:
		return v1alpha1.PhaseAborted
	case decide.ActionRefuse:
		return v1alpha1.PhaseRefused
	case decide.ActionComplete:
		return v1alpha1.PhaseCompleted
	}
	return v1alpha1.PhaseWaiting
}

// addHistory appends an entry when the decision differs from the last one
// recorded, keeping the newest MaxHistory entries.
func addHistory(st *v1alpha1.FleetRolloutStatus, now time.Time, action, reason string, step int32, revision, msg string) {
	var stepPtr *int32
	if step != decide.NoStep {
		stepPtr = &step
	}
	if n := len(st.History); n > 0 {
		last := st.History[n-1]
		if last.Action == action && last.Reason == reason && last.Revision == revision && equality.Semantic.DeepEqual(last.Step, stepPtr) {
			return
		}
	}
	st.History = append(st.History, v1alpha1.HistoryEntry{
		Time: metav1.NewTime(now), Action: action, Reason: reason, Step: stepPtr, Revision: revision, Message: truncate(msg, 1024),
	})
	if extra := len(st.History) - v1alpha1.MaxHistory; extra > 0 {
		st.History = slices.Clone(st.History[extra:])
	}
}

func (r *Reconciler) setCommonConditions(fr *v1alpha1.FleetRollout, obs []memberObservation) {
	var down, refused []string
	reason := v1alpha1.ReasonUnreachable
	for _, o := range obs {
		switch {
		case o.member.Reachable:
		case o.member.Denied != "":
			// A refusal is named first: it needs a person, not patience.
			if len(refused) == 0 {
				reason = string(o.member.Denied)
			}
			refused = append(refused, o.member.Name+": "+string(o.member.Denied)+": "+o.member.Problem)
		default:
			down = append(down, o.member.Name)
		}
	}
	c := metav1.Condition{Type: v1alpha1.ConditionMembersReachable, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAllReachable, Message: "every member answers", ObservedGeneration: fr.Generation}
	if len(down)+len(refused) > 0 {
		var parts []string
		parts = append(parts, refused...)
		if len(down) > 0 {
			parts = append(parts, "unreachable: "+strings.Join(down, ", "))
		}
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, reason, truncate(strings.Join(parts, "; "), 1024)
	}
	meta.SetStatusCondition(&fr.Status.Conditions, c)
	meta.SetStatusCondition(&fr.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionValid, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonValid, Message: "the spec and the members' Rollouts can be coordinated", ObservedGeneration: fr.Generation})
}

func (r *Reconciler) setConditions(fr *v1alpha1.FleetRollout, obs []memberObservation, dec decide.Decision) {
	st := &fr.Status
	gen := fr.Generation
	r.setCommonConditions(fr, obs)
	if dec.Action == decide.ActionRefuse {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionValid, Status: metav1.ConditionFalse, Reason: string(dec.Reason), Message: truncate(dec.Message, 1024), ObservedGeneration: gen})
	}
	aborted := metav1.Condition{Type: v1alpha1.ConditionAborted, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonNotAborted, Message: "the fleet is not aborted", ObservedGeneration: gen}
	if dec.Next.Aborted {
		aborted.Status, aborted.Reason, aborted.Message = metav1.ConditionTrue, string(dec.Next.AbortReason), truncate(dec.Next.AbortMessage, 1024)
	}
	meta.SetStatusCondition(&st.Conditions, aborted)
	completed := metav1.Condition{Type: v1alpha1.ConditionCompleted, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonNotCompleted, Message: "revision " + dec.Next.Revision + " is not stable everywhere yet", ObservedGeneration: gen}
	if dec.Next.Completed {
		completed.Status, completed.Reason, completed.Message = metav1.ConditionTrue, string(decide.ReasonCompleted), "every member runs revision "+dec.Next.Revision+" as stable"
	}
	meta.SetStatusCondition(&st.Conditions, completed)
	inconclusive := metav1.Condition{Type: v1alpha1.ConditionInconclusive, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonNotPaused, Message: "no barrier is paused on inconclusive analysis", ObservedGeneration: gen}
	if dec.Next.InconclusivePaused {
		inconclusive.Status, inconclusive.Reason, inconclusive.Message = metav1.ConditionTrue, string(decide.ReasonInconclusivePaused), truncate(dec.Message, 1024)
	}
	meta.SetStatusCondition(&st.Conditions, inconclusive)
	meta.SetStatusCondition(&st.Conditions, budgetCondition(&fr.Spec, gen))
	ready := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: string(dec.Reason), Message: truncate(dec.Message, 1024), ObservedGeneration: gen}
	if dec.Action == decide.ActionRefuse || dec.Action == decide.ActionAbort || meta.IsStatusConditionFalse(st.Conditions, v1alpha1.ConditionMembersReachable) {
		ready.Status = metav1.ConditionFalse
	}
	meta.SetStatusCondition(&st.Conditions, ready)
}

// refuse records why the FleetRollout cannot be coordinated and touches
// no member.
func (r *Reconciler) refuse(ctx context.Context, log logr.Logger, fr *v1alpha1.FleetRollout, orig *v1alpha1.FleetRolloutStatus, now time.Time, reason, msg string) (ctrl.Result, error) {
	st := &fr.Status
	gen := fr.Generation
	st.Phase, st.Reason, st.Message = v1alpha1.PhaseRefused, reason, truncate(msg, 1024)
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionValid, Status: metav1.ConditionFalse, Reason: reason, Message: truncate(msg, 1024), ObservedGeneration: gen})
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: reason, Message: truncate(msg, 1024), ObservedGeneration: gen})
	addHistory(st, now, string(decide.ActionRefuse), reason, decide.NoStep, st.Fleet.Revision, msg)
	st.ObservedGeneration = gen
	log.Info("FleetRollout refused", "reason", reason, "message", msg)
	return r.persistOnly(ctx, log, fr, orig, r.resync())
}

func (r *Reconciler) persistOnly(ctx context.Context, log logr.Logger, fr *v1alpha1.FleetRollout, orig *v1alpha1.FleetRolloutStatus, after time.Duration) (ctrl.Result, error) {
	if err := r.writeStatus(ctx, fr, orig); err != nil {
		if apierrors.IsConflict(err) {
			log.V(1).Info("Status write conflicted, retrying with fresh state")
			return ctrl.Result{Requeue: true}, nil
		}
		return ctrl.Result{}, fmt.Errorf("write status: %w", err)
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// writeStatus updates the status if it changed. Update (not patch) carries
// the resourceVersion read at the start, so a coordinator acting on stale
// state (a second instance, or this one before a restart) loses with a
// conflict instead of overwriting a newer decision.
func (r *Reconciler) writeStatus(ctx context.Context, fr *v1alpha1.FleetRollout, orig *v1alpha1.FleetRolloutStatus) error {
	if equality.Semantic.DeepEqual(orig, &fr.Status) {
		return nil
	}
	return r.Client.Status().Update(ctx, fr)
}

// apply sends the decision's patches to all members at once, so members
// move within milliseconds of each other, and records an Event per member.
func (r *Reconciler) apply(ctx context.Context, log logr.Logger, fr *v1alpha1.FleetRollout, obs []memberObservation, dec decide.Decision, revision string) error {
	if len(dec.Patches) == 0 {
		return nil
	}
	clients := map[string]dynamic.Interface{}
	for _, o := range obs {
		clients[o.member.Name] = o.client
	}
	ref := fr.Spec.Rollout
	errs := make([]error, len(dec.Patches))
	var wg sync.WaitGroup
	for i, p := range dec.Patches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			plog := log.WithValues("cluster", p.Member, "kind", p.Kind)
			dyn := clients[p.Member]
			if dyn == nil {
				var err error
				if dyn, err = r.Clusters.Client(ctx, p.Member); err != nil {
					// Unreachable: the decision is persisted and will be
					// re-issued once the member answers.
					plog.Info("Patch deferred, member not connected", "err", err)
					return
				}
			}
			start := time.Now()
			err := rollouts.Apply(ctx, dyn, ref.Namespace, ref.Name, p)
			if r.Metrics != nil {
				r.Metrics.patchDuration.WithLabelValues(p.Member, string(p.Kind)).Observe(time.Since(start).Seconds())
			}
			why, problem := denial(err)
			switch {
			case errors.Is(err, rollouts.ErrPreconditionFailed):
				plog.V(1).Info("Patch skipped, member already moved", "err", err)
			case why != "":
				// The role or token is wrong: say so by name; retrying is
				// left to the backoff, the fix to a person.
				plog.Error(err, "Patch refused", "reason", why)
				r.event(fr, "Warning", string(why), string(p.Kind), "%s %s on %s refused (%s): %s", p.Kind, ref.Name, p.Member, why, problem)
				errs[i] = fmt.Errorf("%s %s/%s in %s: %s: %w", strings.ToLower(string(p.Kind)), ref.Namespace, ref.Name, p.Member, why, err)
			case err != nil:
				plog.Error(err, "Patch failed")
				r.event(fr, "Warning", "PatchFailed", string(p.Kind), "%s %s on %s failed: %v", p.Kind, ref.Name, p.Member, err)
				errs[i] = fmt.Errorf("%s %s/%s in %s: %w", strings.ToLower(string(p.Kind)), ref.Namespace, ref.Name, p.Member, err)
			default:
				plog.Info("Patch applied", "step", dec.Step, "reason", dec.Reason, "latency", time.Since(start).String())
				r.patchEvent(fr, p, dec, revision)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *Reconciler) patchEvent(fr *v1alpha1.FleetRollout, p decide.Patch, dec decide.Decision, revision string) {
	switch p.Kind {
	case decide.PatchPromote:
		if r.Metrics != nil {
			r.Metrics.promotions.WithLabelValues(fr.Namespace, fr.Name, p.Member).Inc()
		}
		r.event(fr, "Normal", "Promoted", "Promote", "promoted %s past step %d of revision %s (%s)", p.Member, dec.Step, revision, dec.Reason)
	case decide.PatchAbort:
		if r.Metrics != nil {
			r.Metrics.aborts.WithLabelValues(fr.Namespace, fr.Name, p.Member, string(dec.Next.AbortReason)).Inc()
		}
		r.event(fr, "Warning", "Aborted", "Abort", "aborted %s at revision %s: %s: %s", p.Member, revision, dec.Next.AbortReason, truncate(dec.Next.AbortMessage, 512))
	case decide.PatchRetry:
		r.event(fr, "Normal", "Retried", "Retry", "retried %s at revision %s", p.Member, revision)
	}
}

func (r *Reconciler) event(fr *v1alpha1.FleetRollout, typ, reason, _ string, note string, args ...any) {
	if r.Recorder == nil {
		return
	}
	r.Recorder.Eventf(fr, typ, reason, note, args...)
}

func (r *Reconciler) recordMetrics(fr *v1alpha1.FleetRollout, obs []memberObservation, dec decide.Decision, revision string, now time.Time) {
	m := r.Metrics
	if m == nil {
		return
	}
	ns, name := fr.Namespace, fr.Name
	lo, hi := int32(-1), int32(-1)
	for _, o := range obs {
		ro := o.member.Rollout
		if !o.member.Reachable || ro == nil || ro.Revision != revision || ro.CurrentStepIndex == nil {
			continue
		}
		i := *ro.CurrentStepIndex
		m.memberStep.WithLabelValues(ns, name, o.member.Name).Set(float64(i))
		if lo < 0 || i < lo {
			lo = i
		}
		hi = max(hi, i)
	}
	if lo >= 0 {
		m.currentStep.WithLabelValues(ns, name).Set(float64(lo))
		m.stepSkew.WithLabelValues(ns, name).Set(float64(hi - lo))
	}
	m.aborted.DeletePartialMatch(map[string]string{"namespace": ns, "fleetrollout": name})
	if dec.Next.Aborted {
		m.aborted.WithLabelValues(ns, name, string(dec.Next.AbortReason)).Set(1)
	}
	if g := fr.Status.Analysis; g != nil {
		m.setVerdict(ns, name, "global", g.Global.Verdict)
	}
	for _, ms := range fr.Status.Members {
		if ms.Verdict != nil {
			m.setVerdict(ns, name, ms.Name, ms.Verdict.Verdict)
		}
	}
	if dec.Action == decide.ActionPromote && dec.Reason == decide.ReasonBarrierPassed && !dec.Next.StepEnteredAt.IsZero() {
		m.stepDuration.WithLabelValues(ns, name).Observe(now.Sub(dec.Next.StepEnteredAt).Seconds())
	}
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
