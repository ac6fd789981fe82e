// Package status implements `lockstep status`: one view of every member
// cluster of a fleet, from the FleetRollout on the hub when a coordinator
// owns the fleet, or straight from the clusters registered in Argo CD (or
// named kubeconfig contexts) when none does. With -w it stays on screen:
// a bubbletea view on a terminal, one line per change otherwise.
//
// It also holds TargetFlags and Target, the way every fleet command finds
// its hub, members and Rollout, so that the rollout verbs (package
// rolloutcmd) reach exactly the clusters status shows.
//
// It imports the pure view model (internal/view), the cluster cache
// (internal/fleet), the Rollout reads (internal/rollouts), the Thanos
// sampler and FleetRollout lister it shares with the page (internal/readout), the FleetRollout
// types, cli-runtime's kubectl flags, controller-runtime's client for the
// hub, cobra and bubbletea. Only internal/cli imports it.
package status
