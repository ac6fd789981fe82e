// Package existing is the lab provider for clusters that are already
// there: it creates nothing, checks that the kubeconfig has a context for
// the hub and for every workload cluster and that each one answers, and
// returns them as the fleet.
//
// The kubeconfig is Config.Kubeconfig, else what kubectl would read
// ($KUBECONFIG, then ~/.kube/config); when $KUBECONFIG names several files
// they are merged into o.Dir/kubeconfig, because the fleet names one file.
// Contexts default to the cluster names (argo-hub, argo-rollout1, ...), as
// the seed's guide names them. A context answers when GET /version succeeds
// within Timeout; a dry run skips that probe but still checks the contexts
// exist. Down never deletes anything.
//
// This package may import internal/lab/provider, client-go (clientcmd,
// rest, discovery) and apimachinery's version types; it must not import
// internal/cli.
package existing
