// Package status tests `lockstep status` and the fleet-wide rollout verbs
// against the local fleet with the real binary: a lockstep canary runs
// (`lockstep demo --lockstep`), status -o json must show both clusters with
// the weights their VirtualServices really have, abort must stop the canary
// in both, retry must restart it, and a stopped apiserver must show as
// Unreachable while the other cluster still shows. Under -short it skips
// and says why (see test/fleettest).
package status
