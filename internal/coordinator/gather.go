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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	ctrl "sigs.k8s.io/controller-runtime"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/fleet"
	"lockstep.dev/lockstep/internal/rollouts"
)

// The gathering phases of a pass: everything is read before anything is
// decided.

// readSpec turns the spec into decide's policy and the analysis plan; a
// spec that cannot work is refused, touching no member.
func (r *Reconciler) readSpec(ctx context.Context, p *pass) *ended {
	p.policy = policyFromSpec(&p.fr.Spec)
	plan, err := planFromSpec(p.fr.Spec.Analysis)
	if err == nil && plan != nil && r.Querier == nil {
		err = errors.New("spec.analysis is set but the coordinator has no Thanos Query URL (--thanos-url)")
	}
	if err != nil {
		return endWith(r.refuse(ctx, p.log, p.fr, p.orig, p.now, v1alpha1.ReasonInvalidSpec, err.Error()))
	}
	p.plan = plan
	return nil
}

// readMembers reads the members from their cluster Secrets, registers
// them with the fleet cache and places them in waves. A broken or
// duplicated Secret holds everything where it is.
func (r *Reconciler) readMembers(ctx context.Context, p *pass) *ended {
	fr := p.fr
	secrets := r.Secrets
	if secrets.Namespace == "" {
		secrets = fleet.LockstepSecrets("")
	}
	members, err := fleet.MembersFromSecrets(ctx, r.Client, secrets, fr.Spec.Members.Selector, fr.Spec.Members.Names)
	var unknown *fleet.UnknownMembersError
	var bad *fleet.SecretError
	switch {
	case errors.As(err, &unknown):
		return endWith(r.refuse(ctx, p.log, fr, p.orig, p.now, v1alpha1.ReasonUnknownMember, err.Error()))
	case errors.As(err, &bad):
		// Nothing can be observed safely: hold everything where it is and
		// say which Secret is at fault. The Secret watch brings the fix in.
		return endWith(r.holdOnSecrets(ctx, p.log, fr, p.orig, bad))
	case err != nil:
		return endWith(ctrl.Result{}, err)
	case len(members) == 0:
		return endWith(r.refuse(ctx, p.log, fr, p.orig, p.now, v1alpha1.ReasonNoMembers, "no cluster Secret ("+secrets.TypeLabel+"=cluster) in "+secrets.Namespace+" matches spec.members.selector"))
	}
	meta.SetStatusCondition(&fr.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionClusterSecretsValid, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonClusterSecretsValid, Message: "every member's cluster Secret is usable", ObservedGeneration: fr.Generation})
	setSecurityCondition(fr, members)
	if err := r.Clusters.Update(members); err != nil {
		return endWith(r.refuse(ctx, p.log, fr, p.orig, p.now, v1alpha1.ReasonInvalidSpec, err.Error()))
	}
	waves, err := wavesFromSpec(fr.Spec.Waves, members)
	if err != nil {
		return endWith(r.refuse(ctx, p.log, fr, p.orig, p.now, v1alpha1.ReasonInvalidSpec, err.Error()))
	}
	p.members, p.waves = members, waves
	return nil
}

// observeMembers reads every member's Rollout. Shadow mode takes over
// from here; steps that cannot be coordinated (a timed pause, lists that
// differ, an approval barrier at a step that is no pause) are refused.
func (r *Reconciler) observeMembers(ctx context.Context, p *pass) *ended {
	p.obs = r.observe(ctx, p.log, p.fr, p.members, p.now)
	if shadowMode(p.fr) {
		return endWith(r.shadow(ctx, p.log, p.fr, p.orig, p.plan, p.obs, p.members, p.now))
	}
	var problems []string
	for _, o := range p.obs {
		if o.stepsErr != nil {
			problems = append(problems, o.member.Name+": "+o.stepsErr.Error())
		} else if ro := o.member.Rollout; ro != nil && ro.Steps != nil {
			if err := decide.CheckBarriers(ro.Steps, p.policy.ApprovalBarriers); err != nil {
				problems = append(problems, o.member.Name+": "+err.Error())
			}
		}
	}
	if len(problems) > 0 {
		r.setMembers(&p.fr.Status, p.obs)
		return endWith(r.refuse(ctx, p.log, p.fr, p.orig, p.now, string(decide.ReasonStepsNotCoordinable), strings.Join(problems, "; ")))
	}
	return nil
}

// pickRevision names the revision the fleet releases; while the members
// report none, or disagree beyond what a rollout explains, the pass waits.
func (r *Reconciler) pickRevision(ctx context.Context, p *pass) *ended {
	st := &p.fr.Status
	revision, err := wantedRevision(p.obs, st.Fleet.Revision, supersedes(p.fr.Spec.Policy))
	if err == nil && revision != "" {
		p.revision = revision
		return nil
	}
	r.setMembers(st, p.obs)
	reason, msg := v1alpha1.ReasonRevisionUnknown, "no member reports a revision yet"
	if err != nil {
		reason, msg = v1alpha1.ReasonRevisionsDiverge, err.Error()
	}
	st.Phase, st.Reason, st.Message = v1alpha1.PhaseWaiting, reason, msg
	r.setCommonConditions(p.fr, p.obs)
	return endWith(r.persistOnly(ctx, p.log, p.fr, p.orig, r.resync()))
}

// memberObservation is one member as seen in this reconcile.
type memberObservation struct {
	member   decide.Member
	status   v1alpha1.MemberStatus
	client   dynamic.Interface
	stepsErr error
	services rollouts.Services
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
