// Package meshsim is the simulated Istio data plane of the Lockstep lab.
//
// The lab runs the Istio multi-cluster canary scenario on one machine
// without Envoy: the workload clusters have real API servers, a real Argo
// Rollouts controller and a real Prometheus, but their pods are fake. One
// meshsim per workload cluster stands in for everything Envoy would do
// there: the ingress gateway routes GET /hello by the weights of the
// VirtualService route that Argo Rollouts rewrites, load-balances over the
// Ready endpoints of the chosen service in every cluster of the mesh,
// answers for local pods the way Istio's helloworld image does, and hands
// requests for pods of another cluster to that cluster's meshsim through
// its east-west port. Every request is counted in istio_requests_total and
// istio_request_duration_milliseconds with Istio's standard labels, so
// Argo Rollouts' analysis queries see the same series as in a real mesh.
//
// What lives here:
//
//   - the pure model, which does no I/O: [ParseWeights] and [ResolveHost]
//     read a VirtualService, [EndpointFromPod] and [EndpointsFromSlices]
//     turn Kubernetes objects into [Endpoint] values (version, owning
//     workload and the fault-injection annotations), and [Pick] chooses a
//     destination the way Envoy's weighted clusters do;
//   - the HTTP side: [DataPlane] provides the ingress-gateway and
//     east-west handlers, [Metrics] owns a private Prometheus registry, and
//     [Server] serves one handler on a loopback address;
//   - the Kubernetes adapter [KubeTopology], fed by informers on the local
//     and peer clusters, and the in-memory [StaticTopology] used by tests;
//   - [Sim], which wires all of this for one cluster, and [Main], the
//     command entry that the CLI exposes as "lockstep meshsim".
//
// Imports are limited to the standard library, k8s.io/client-go,
// k8s.io/api and k8s.io/apimachinery (client-go's own API types), and
// github.com/prometheus/client_golang. The package must not import other
// packages of this repository, so that the rest of Lockstep can depend on
// it without cycles and it can be tested on its own.
package meshsim
