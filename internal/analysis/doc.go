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
//     Fail or Inconclusive;
//   - JudgeSpec and EvaluateJudge, the sequential judge's side of the
//     wire: raw counters and histogram buckets of the canary and the stable
//     version, read at the moment the canary got traffic and now (four
//     queries whatever the fleet's size), turned into per-scope counts and
//     judged by package judge.
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
// prometheus/common/model, package judge (pure statistics) and package
// decide, whose Verdict and Analysis types it produces; neither imports
// analysis.
package analysis
