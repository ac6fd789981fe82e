// Package install holds the lab's installers: an ordered, resumable
// pipeline of idempotent actions (kind's Action pattern) that puts Istio
// multi-primary, Argo CD, Argo Rollouts, the monitoring stack and the
// Lockstep coordinator onto a provider's clusters.
//
// Every action applies with server-side apply and counts what it created or
// changed, so a second run that changes nothing says so. Generated secrets
// (the Istio root CA, object-storage and Grafana credentials) are created
// once in the clusters and read back on every later run; the pipeline's
// progress is a ConfigMap on the hub, so a failed run resumes where it
// stopped. Nothing is kept only in memory.
//
// The actions themselves live in sub-packages (istio, argocd, rollouts,
// monitoring, coordinator). This package may import client-go,
// apimachinery, internal/kube, internal/lab/provider and
// internal/lab/sources; it must not import internal/cli.
package install
