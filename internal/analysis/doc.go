// Package analysis turns a metric spec into verdicts Lockstep can act on.
//
// It holds three things:
//
//   - Querier, the narrow interface to a Prometheus-compatible query API, and
//     PrometheusQuerier, its implementation over client_golang, which always
//     sends Thanos' partial_response=false so that a missing store becomes
//     an error instead of a quietly smaller answer;
//   - Metric, a success-ratio spec templated like an Argo Rollouts
//     AnalysisTemplate ({{args.NAME}}), which Lockstep expands into one query
//     per scope: global, per reporting cluster (the Prometheus external label
//     "cluster") and per serving cluster (Istio's "destination_cluster");
//   - Evaluate, which runs those queries and judges every value as Pass,
//     Fail or Inconclusive.
//
// Query results are untrusted input. An error, a warning, an empty or
// ambiguous result, a NaN or infinite value, a member missing from a
// per-cluster result or too few requests all give Inconclusive, never Pass.
//
// Templates are checked without a PromQL parser (the Prometheus parser is
// far too heavy a dependency for this): after substitution a query must be
// non-empty and have balanced (), [] and {} outside string literals. That
// catches typos in templates early, but the real validation is the first
// query, whose error makes the verdict Inconclusive.
//
// The package imports the standard library, client_golang's api packages,
// prometheus/common/model and package decide, whose Verdict and Analysis
// types it produces; decide does not import analysis.
package analysis
