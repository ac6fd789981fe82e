package coordinator

// The coordinator's permissions on the hub; `make generate` turns these
// markers into config/rbac/hub/role.yaml. Cluster Secrets are read only in
// the Argo CD namespace, where Argo CD keeps its cluster credentials.
//
// +kubebuilder:rbac:groups=lockstep.dev,resources=fleetrollouts,verbs=get;list;watch
// +kubebuilder:rbac:groups=lockstep.dev,resources=fleetrollouts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",namespace=argocd,resources=secrets,verbs=get;list;watch
