// Package fleet knows the member clusters of a fleet and is the one place
// that builds clients for them.
//
//   - MembersFromSecrets reads members from Argo CD cluster Secrets (by
//     label selector or by name), with the credentials Argo CD already
//     holds; MembersFromKubeconfig reads them from kubeconfig contexts.
//   - Cache, modelled on cluster-api's clustercache, builds one client per
//     member, health-checks it in the background and returns a
//     *NotConnectedError (errors.Is(err, ErrClusterNotConnected)) naming the
//     cluster when the member cannot be reached, so callers turn an outage
//     into a status condition instead of hanging or panicking. It also
//     watches resources in the members and calls back on every change, so
//     the coordinator reacts to a Rollout pausing within milliseconds.
//
// The package imports client-go, apimachinery, k8s.io/api, controller-run-
// time's client.Reader (to read Secrets through the manager's cache) and
// logr; it knows nothing about Rollouts or FleetRollouts.
package fleet
