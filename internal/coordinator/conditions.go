package coordinator

import (
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/fleet"
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
