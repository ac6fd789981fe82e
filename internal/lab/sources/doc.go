// Package sources pins the upstream manifests and Helm charts that Lockstep's
// installers apply (Istio's charts and dashboards, Argo CD's and Argo
// Rollouts' install.yaml, prometheus-operator's bundle.yaml) and finds them
// on disk at run time.
//
// Every upstream here is a Go module, so a pin is a module version plus the
// go.sum "h1:" hash of its zip, and the files come from where Go already
// keeps verified modules: the Go module cache, else Lockstep's own source
// cache, else a download through the Go module proxy that is checked
// against the pinned hash before anything is kept. Nothing is vendored into
// this repository, and tests read the same copies that ship in the modules.
//
// This package does file and network I/O. It may import the standard
// library and golang.org/x/mod only; nothing else in Lockstep is imported
// here, so any installer can use it.
package sources
