// Package workloadrbac holds only the RBAC markers of the role the
// coordinator needs in every workload cluster; `make generate` turns them
// into config/rbac/workload/role.yaml. They live apart from the hub role's
// markers because controller-gen writes one role per package set, and the
// workload role must stay least-privilege: read Rollouts and
// VirtualServices, and patch only rollouts/status (the subresource that
// the promote, abort and retry patches go to). It reads no ReplicaSet (pod
// templates carry literal secrets in env) and no AnalysisRun: those are the
// CLI's and the dashboard's, with the person's own credentials.
//
// +kubebuilder:rbac:groups=argoproj.io,resources=rollouts,verbs=get;list;watch
// +kubebuilder:rbac:groups=argoproj.io,resources=rollouts/status,verbs=patch
// +kubebuilder:rbac:groups=networking.istio.io,resources=virtualservices,verbs=get;list;watch
package workloadrbac
