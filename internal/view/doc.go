// Package view builds the one-screen picture of a fleet that `lockstep
// status` prints: for every member cluster its revision, step, set and
// actual weights, images, ReplicaSets, current AnalysisRun and
// reachability, and for the fleet the coordinator's phase, barrier,
// verdicts and latest decisions.
//
// It is pure: Build turns objects that the caller already read (a
// FleetRollout, each cluster's Rollout, VirtualService weights,
// ReplicaSets and AnalysisRun, or the error that kept it from reading them)
// into a Fleet, and the printers render a Fleet as table, wide, json or
// yaml. Nothing here does I/O or reads a clock, so the output of fixed
// states is checked byte for byte by golden tests.
//
// The package imports the FleetRollout API types, k8s.io/api/apps/v1,
// apimachinery's unstructured objects and sigs.k8s.io/yaml; the CLI
// imports it, never the other way round.
package view
