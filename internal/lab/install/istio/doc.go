// Package istio holds the lab's Istio installers: multi-primary on
// different networks, as Istio documents it
// (https://istio.io/latest/docs/setup/install/multicluster/multi-primary_multi-network/),
// on every workload cluster of the fleet.
//
// Actions returns them in order: a shared root CA with one intermediate CA
// per cluster (Istio's "plug in CA certificates"), the control planes
// (Istio's base and istiod Helm charts), the ingress and east-west gateways
// (the gateway chart, as gen-eastwest-gateway.sh configures it) with the
// cross-network Gateway, the remote secrets that let every istiod read the
// other clusters' apiservers (what `istioctl create-remote-secret` makes),
// and Istio's helloworld/curl verification sample. CheckReachability runs
// the verification itself for `lockstep lab verify`.
//
// The charts and samples are read from the pinned istio.io/istio module
// (internal/lab/sources) and rendered in process with Helm's SDK; nothing
// shells out to helm, istioctl or kubectl.
//
// This package may import client-go, apimachinery, Helm's chart loader and
// template engine, the GitOps tree (gitops, for the mesh config),
// internal/kube, internal/lab/install and internal/lab/sources; nothing imports it but the CLI and the pipeline's
// assembly.
package istio
