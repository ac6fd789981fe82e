// Package judge decides whether a canary is good, bad or not yet known from
// request counts: how many requests the current canary served in a scope
// (one member cluster, seen from its pods or from its clients, or the whole
// fleet) and how many of them failed, next to the same counts for the stable
// version, plus both versions' latency histograms.
//
// Every test here stays valid when it is looked at again and again while the
// counts grow (the coordinator looks every few seconds), because each one is
// built on a non-negative (super)martingale and Ville's inequality, not on a
// fixed-sample p-value:
//
//   - Threshold: Wald's sequential probability ratio test of the canary's
//     failure rate, H0: p <= MaxFailureRate-MinEffect (good) against
//     H1: p >= MaxFailureRate (bad). It fails the canary when the likelihood
//     ratio reaches 1/alpha and passes it when the ratio falls to beta: the
//     chance of ever failing a good canary is at most alpha, the chance of
//     ever passing a bad one at most beta, however often it is looked at.
//   - Canary vs stable: time-uniform confidence sequences for both failure
//     rates (the beta-binomial mixture martingale). The canary fails when its
//     failure rate is shown to exceed the stable version's by more than
//     MinEffect. This comparison can only fail a canary; passing is the
//     threshold test's job, and the comparison keeps watching every step.
//   - Latency: the same comparison on the share of requests slower than the
//     stable version's Quantile (a histogram bucket bound), so a release that
//     only got slow is caught without raw samples.
//
// False aborts are bounded for the whole fleet: Config.FalseAbortRate is split
// evenly over every test of every scope (Bonferroni), so a good release is
// aborted with probability at most FalseAbortRate. A bad scope must pass its
// own threshold test to be promoted, so FalsePromoteRate holds per scope.
//
// Count bookkeeping (Increase) turns two instant snapshots of raw counters
// into whole-number increments: a series missing at the start counts from
// zero and a counter that went down was reset and counts from zero again.
//
// The package is pure: it imports only the standard library, performs no I/O
// and reads no clock. Package analysis feeds it counts from Thanos.
package judge
