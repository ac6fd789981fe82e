// Package rolloutcmd implements the fleet-wide rollout verbs `lockstep
// promote | abort | retry | pause | resume`. Each finds the fleet as
// `lockstep status` does (package status's TargetFlags) and then:
//
//   - without a coordinator (no FleetRollout names the Rollout), sends the
//     Argo Rollouts kubectl plugin's own patches (package rollouts) to every
//     member, or to the one named by --cluster;
//   - with a coordinator, acts so that the fleet stays in step: abort
//     aborts the members with the plugin's patch, which the coordinator
//     reads as a member abort and turns into a sticky fleet abort; retry
//     sets spec.retryToken on the FleetRollout and waits for the
//     coordinator to act on it; promote promotes every member at once (it
//     refuses --cluster, which would put one member a step ahead); pause
//     and resume set spec.paused, which the coordinator never overrides
//     and treats as "not at the barrier", so the fleet holds.
//
// Every command prints one confirmation line per cluster and exits
// non-zero when any cluster failed, each failure as one line naming the
// cluster. It imports internal/cli/status, internal/rollouts,
// internal/fleet, the FleetRollout types, controller-runtime's client and
// cobra.
package rolloutcmd
