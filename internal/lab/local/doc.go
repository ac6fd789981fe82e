// Package local is the fleet-in-a-box: the seed's hub and workload clusters
// made of real control-plane processes on one machine.
//
// It holds the component cache (pinned tool modules built once into
// ~/.cache/lockstep), the PKI and kubeconfig of the fleet, the process
// supervisor with its state file, and the ordered start-up plan. It may import
// the standard library, client-go, apimachinery, lockstep's generated
// manifests (config), the GitOps tree (gitops), internal/access (the coordinator's identity),
// internal/fleet (the cluster Secret's layout), internal/kube and
// internal/render; it must not import
// internal/cli.
package local
