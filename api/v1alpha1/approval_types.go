package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FleetApproval is a person's "go" for one wave (spec.waves[].approval:
// Required) or one named barrier (spec.hold.steps[].approval: Required)
// of one revision of a FleetRollout. Its approver is the
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
// +kubebuilder:printcolumn:name="Barrier",type=string,JSONPath=`.spec.barrier`
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.spec.revision`
// +kubebuilder:printcolumn:name="Approver",type=string,JSONPath=`.spec.approver`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type FleetApproval struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              FleetApprovalSpec `json:"spec"`
}

// FleetApprovalSpec says who lets which wave, or which barrier, of which
// revision go.
//
// +kubebuilder:validation:XValidation:rule="has(self.wave) != has(self.barrier)",message="set exactly one of wave and barrier"
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
	// Wave names the wave approved (spec.waves[].name), or Barrier the
	// barrier (spec.hold.steps[].name): exactly one of them.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Wave string `json:"wave,omitempty"`
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Barrier string `json:"barrier,omitempty"`
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
