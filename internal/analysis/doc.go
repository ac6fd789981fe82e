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
//     wire: every raw scrape of the canary's and the stable version's
//     request counters and histogram buckets since just before the canary
//     got traffic (four range queries, matching only the members'
//     clusters, whatever the fleet's size), counted scrape by scrape into
//     per-scope time slices and judged by package judge.
//
// Query results are untrusted input. An error, a warning, an empty or
// ambiguous result, a NaN or infinite value, a member missing from a
// per-cluster result or too few requests all give Inconclusive, never Pass.
//
// Templates are checked with the Prometheus PromQL parser after
// substitution: every query Lockstep would send must parse and type-check
// (CheckQuery), and the judge's label matchers must parse on their own, so
// a typo is refused when the FleetRollout is read, naming the field, instead
// of making every verdict Inconclusive later. The parser is Prometheus 3's:
// a query that only an older server accepts (holt_winters) is refused, and
// one that only a newer server accepts still fails at the first query.
//
// The package imports the standard library, client_golang's api packages,
// prometheus/common/model, of the Prometheus server's module only its
// PromQL parser (prometheus/prometheus/promql/parser, which brings some
// model and storage types along but not the query engine), package judge
// (pure statistics) and package decide, whose Verdict and Analysis types it
// produces; neither imports analysis.
package analysis
