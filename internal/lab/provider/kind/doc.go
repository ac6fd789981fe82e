// Package kind is the lab provider that runs the hub and the workload
// clusters as kind (Kubernetes-in-Docker) clusters through kind's Go library,
// so no kind binary is needed, only a container runtime (Docker, Podman or
// nerdctl).
//
// What lives here: the pure generation of one kind v1alpha4 cluster config
// per lab cluster (Configs, Render, ContextName, InternalServer) and the
// Provider that writes those configs, creates the clusters that are missing,
// exports every cluster's kubeconfig into one file and deletes them again.
//
// Choices, and why:
//   - Each cluster gets its own pod and service subnets (pods 10.244+i.0.0/16,
//     services 10.96+i.0.0/16 for the i-th cluster, the hub being 0). Istio's
//     multi-network mode routes cross-network traffic through the east-west
//     gateways, so overlap would not break it, but distinct ranges keep every
//     endpoint IP in the mesh, in Thanos and in logs unambiguous. The ranges
//     stay clear of Docker's bridge and kind networks (172.17-31.x).
//   - The API server binds to 127.0.0.1 on a random port: nothing the lab
//     starts listens beyond loopback.
//   - The other clusters (Istio remote secrets, Argo CD cluster Secrets) reach
//     a cluster by its control-plane container name on the kind network,
//     https://<name>-control-plane:6443, which is what kind's internal
//     kubeconfig holds.
//   - Networks are not node labels: the installer labels istio-system with
//     topology.istio.io/network.
//   - LoadBalancer Services need cloud-provider-kind or MetalLB; the fleet's
//     notes say so.
//
// This package may import internal/lab/provider, kind's public packages
// (sigs.k8s.io/kind/pkg/apis/config/v1alpha4, pkg/cluster, pkg/log), client-go's
// clientcmd and sigs.k8s.io/yaml; it must not import internal/cli.
package kind
