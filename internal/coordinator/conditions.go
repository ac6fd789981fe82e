package coordinator

import (
	"context"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/fleet"
	"lockstep.dev/lockstep/internal/notify"
)

// setSecurityCondition says whether every member is reached over verified
// TLS; an insecure member is named but changes no decision.
func setSecurityCondition(fr *v1alpha1.FleetRollout, members []fleet.Member) {
	var bad []string
	for _, m := range members {
		if why := fleet.Insecure(m.Config); why != "" {
			bad = append(bad, m.Name+": "+why)
		}
	}
	c := metav1.Condition{Type: v1alpha1.ConditionMembersSecure, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonVerifiedTLS,
		Message: "every member is reached over https with its certificate checked", ObservedGeneration: fr.Generation}
	if len(bad) > 0 {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonInsecureMember, truncate(strings.Join(bad, "; "), 1024)
	}
	meta.SetStatusCondition(&fr.Status.Conditions, c)
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

// setNotificationsCondition says whether fr's subscriptions can be
// delivered; a FleetRollout that subscribes to nothing has no such
// condition.
func (r *Reconciler) setNotificationsCondition(ctx context.Context, fr *v1alpha1.FleetRollout) {
	if len(notify.Subscriptions(fr.Annotations)) == 0 {
		meta.RemoveStatusCondition(&fr.Status.Conditions, v1alpha1.ConditionNotificationsConfigured)
		return
	}
	c := metav1.Condition{Type: v1alpha1.ConditionNotificationsConfigured, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSubscriptionsValid,
		Message: "every subscription names a known trigger and a configured service", ObservedGeneration: fr.Generation}
	if r.Notifier == nil {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonInvalidSubscriptions, "this coordinator sends no notifications"
	} else if problems := r.Notifier.Problems(ctx, fr); len(problems) > 0 {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonInvalidSubscriptions, truncate(strings.Join(problems, "; "), 1024)
	}
	meta.SetStatusCondition(&fr.Status.Conditions, c)
}
