// Package judge decides whether a canary is good, bad or not yet known from
// request counts: how many requests the current canary served in a scope
// (one member cluster, seen from its pods or from its clients, or the whole
// fleet) and how many of them failed, next to the same counts for the stable
// version, plus both versions' latency histograms. The counts come in
// strata: slices of the canary's window, compared one by one.
//
// Every test here stays valid when it is looked at again and again while the
// counts grow (the coordinator looks every few seconds), because each one is
// built on a non-negative (super)martingale and Ville's inequality, not on a
// fixed-sample p-value:
//
//   - Canary vs stable (ShareTest): within each stratum, the share of the
//     failures that the canary took against its share of the requests. The
//     stable's own rate cancels out of that share, so a baseline error rate
//     or a shared incident (both versions failing more for a while) does not
//     move it; the product of the strata's likelihood ratios, averaged over
//     a grid of alternatives, is an e-process. It can only fail a canary.
//   - Pass, relative zone (the default): Wald's test of the canary's rate
//     between the stable's and the stable's plus MinEffect, the stable's
//     rate taken at the low end of its confidence sequence (the beta-binomial
//     mixture martingale), so its uncertainty is paid for.
//   - Threshold, absolute zone: Wald's sequential probability ratio test of
//     the canary's failure rate, H0: p <= MaxFailureRate-MinEffect (good)
//     against H1: p >= MaxFailureRate (bad); it fails and passes.
//   - Latency: the share test on requests slower than the stable version's
//     Quantile (a histogram bucket bound over the buckets both versions
//     report), so a release that only got slow is caught without raw
//     samples.
//
// False aborts are bounded for the whole fleet: Config.FalseAbortRate is split
// evenly over every test of every scope that can fail a canary (Bonferroni),
// so a good release is aborted with probability at most FalseAbortRate. A bad
// scope must pass its own pass test to be promoted, so FalsePromoteRate holds
// per scope.
//
// Count bookkeeping (Deltas) turns raw scrapes into whole-number increments
// scrape by scrape: a reset is decided once per series, or per histogram for
// its buckets, a crash-looping counter is counted after each reset, and a
// series born in the range counts from zero.
//
// The package is pure: it imports only the standard library, performs no I/O
// and reads no clock. Package analysis feeds it counts from Thanos.
package judge
