// Package v1alpha1 holds the FleetRollout API (group lockstep.dev, version
// v1alpha1): the hub object that names one Argo Rollout, the member clusters
// that run it, how long to hold at each pause step, how to judge the canary
// and what to do when a member fails or cannot be reached. Its status holds
// everything the coordinator needs after a restart, so the coordinator keeps
// no state of its own.
//
// The CRD YAML and zz_generated.deepcopy.go are generated from the
// kubebuilder markers here by `make generate` (controller-gen); never edit
// the generated files by hand.
//
// The package imports only k8s.io/api*, k8s.io/apimachinery and the
// standard library, so that any client (the CLI, a step plugin, other
// tools) can use the types without pulling in the coordinator.
//
// +kubebuilder:object:generate=true
// +groupName=lockstep.dev
package v1alpha1
