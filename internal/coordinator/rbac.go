package coordinator

// The coordinator's permissions on the hub; `make generate` turns these
// markers into config/rbac/hub/role.yaml. FleetRollouts are read
// cluster-wide and only their status is written. Secrets and Leases are
// reachable only in the coordinator's own namespace (lockstep-system): its
// member credentials live there (package access) and so does its
// leader-election Lease, and its notifications ConfigMap (package notify),
// read with a plain get. It never reads Argo CD's namespace, whose Secrets
// hold Argo CD's wider tokens and argocd-secret.
//
// +kubebuilder:rbac:groups=lockstep.dev,resources=fleetrollouts,verbs=get;list;watch
// +kubebuilder:rbac:groups=lockstep.dev,resources=fleetrollouts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=lockstep.dev,resources=fleetapprovals,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",namespace=lockstep-system,resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",namespace=lockstep-system,resources=configmaps,verbs=get
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=lockstep-system,resources=leases,verbs=get;list;watch;create;update;patch
