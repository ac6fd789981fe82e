// Package coordinator is the hub controller for FleetRollouts. Each
// reconcile gathers a snapshot (members through package fleet's Cache,
// their Rollouts through package rollouts, verdicts through package
// analysis on Thanos Query), asks decide.Decide what to do, persists the
// decision's next state in the FleetRollout's status FIRST and only then
// sends the patches, so a coordinator killed at any line resumes from the
// API server without promoting twice or losing an abort.
//
// It is level-triggered: the same reconcile runs for a spec change, a
// Rollout change in any member (watched through the fleet cache, so a
// pause is seen within milliseconds), a member's connection flipping, or a
// timer from the decision. It keeps no state of its own besides caches.
//
// The package imports the API types, fleet, rollouts, analysis, decide,
// notify, controller-runtime and client_golang; nothing below the CLI
// imports it. Its read-only page is composed in by the CLI
// (Config.AddToManager), so the controller does not link the web package.
package coordinator
