// Package eks is the lab provider that creates the hub and the workload
// clusters on Amazon EKS with eksctl, in place of the seed's
// `./create-eks-cluster.sh -n NAME -t mesh-mgmt|mesh-workload`.
//
// What lives here: small Go types for the part of eksctl's ClusterConfig
// schema (eksctl.io/v1alpha5) the lab uses, the pure generation of one
// ClusterConfig per lab cluster (ClusterConfigs, Render), and the Provider
// that writes them to o.Dir/eks/<name>.yaml and runs the eksctl binary to
// create, find and delete the clusters. The eksctl Go module is not
// imported: it brings the whole AWS SDK along. The generated documents are
// checked in tests against eksctl's own JSON schema (testdata/schema.json).
//
// The seed's script is not available; this is what it is assumed to do,
// modelled on what Istio multi-primary on different networks plus Argo CD
// needs on EKS:
//   - One EKS cluster per lab cluster, each in its own VPC made by eksctl
//     (distinct CIDRs 10.10.0.0/16, 10.11.0.0/16, ... so that pod IPs, which
//     the VPC CNI takes from the VPC, never collide across the fleet), a
//     single NAT gateway, and public and private API endpoints: Argo CD on
//     the hub and every istiod reach the other clusters' API servers over
//     the public endpoint, so Cluster.Server stays empty.
//   - One managed nodegroup (AmazonLinux2023, gp3 80 GiB, private subnets)
//     named after the script's type (mesh-mgmt-ng, mesh-workload-ng).
//   - IAM OIDC (IRSA) with an IAM service account for the AWS Load Balancer
//     Controller (kube-system/aws-load-balancer-controller): the Istio
//     east-west gateways and the Thanos sidecars are LoadBalancer Services
//     that must become internet-facing NLBs reachable from the other
//     network. The controller itself is a Helm chart installed afterwards
//     (the fleet's notes give the command); eksctl tags the public subnets
//     it creates with kubernetes.io/role/elb for it.
//   - The EKS add-ons vpc-cni, coredns, kube-proxy and aws-ebs-csi-driver
//     (with its IRSA role) so that Prometheus and Thanos can claim volumes.
//   - Tags on the cluster and its nodes: lockstep.dev/lab-role (hub or
//     workload), lockstep.dev/mesh-type (the script's -t value) and, on
//     workloads, lockstep.dev/network (the Istio network).
//
// Defaults (Config): region from AWS_REGION, then AWS_DEFAULT_REGION, then
// us-west-2 (eksctl's own default, so a bare eksctl finds the same
// clusters); Kubernetes 1.33 (the newest version eksctl v0.215.0 knows);
// m5.large nodes; 2 nodes per cluster (eksctl's default count).
//
// This package may import internal/lab/provider, client-go's clientcmd,
// go.yaml.in/yaml/v3 and the standard library (os/exec for eksctl); it must
// not import internal/cli nor github.com/weaveworks/eksctl.
package eks
