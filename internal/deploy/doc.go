// Package deploy renders the two ways to install the Lockstep coordinator
// on a hub without the lab, the kustomize base config/default and the Helm
// chart charts/lockstep, into objects, as `kustomize build` and
// `helm template` would. The lockstep binary does not use it: it is for the
// tests that hold the two renderings to the generated manifests and to each
// other (here), and for test/install, which applies both to a real hub with
// a server-side dry run.
//
// It may import kustomize's API, Helm's SDK, apimachinery and internal/kube.
package deploy
