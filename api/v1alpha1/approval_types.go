package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FleetApproval is a person's "go" for one wave of one revision of a
// FleetRollout (spec.waves[].approval: Required). Its approver is the
// Kubernetes identity that created it: the ValidatingAdmissionPolicy
// lockstep-fleetapproval-approver (config/approval) refuses an approval
// whose spec.approver is not request.userInfo.username, and any change to
// a created approval, so nobody can approve in another's name. It is
// created by `lockstep approve` or the dashboard.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=fap,categories=lockstep
// +kubebuilder:printcolumn:name="FleetRollout",type=string,JSONPath=`.spec.fleetRollout`
// +kubebuilder:printcolumn:name="Wave",type=string,JSONPath=`.spec.wave`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.spec.revision`
// +kubebuilder:printcolumn:name="Approver",type=string,JSONPath=`.spec.approver`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type FleetApproval struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              FleetApprovalSpec `json:"spec"`
}

// FleetApprovalSpec says who lets which wave of which revision go.
type FleetApprovalSpec struct {
	// FleetRollout names the FleetRollout, in the approval's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	FleetRollout string `json:"fleetRollout"`
	// Revision is the revision approved (status.fleet.revision): an
	// approval of another revision does not count.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Revision string `json:"revision"`
	// Wave names the wave approved.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Wave string `json:"wave"`
	// Approver is the Kubernetes user who approves: the admission policy
	// holds it to the requesting user.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Approver string `json:"approver"`
}

// +kubebuilder:object:root=true

// FleetApprovalList is a list of FleetApprovals.
type FleetApprovalList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []FleetApproval `json:"items"`
}
