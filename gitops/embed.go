// Package gitops embeds the lab's GitOps tree (the lab guide's
// argo-resources/, istio-resources/ and monitoring/ folders) so the lockstep
// binary can seed a fleet's git repository without a checkout. It imports
// only the standard library.
package gitops

import "embed"

// Tree is the GitOps tree, rooted at this folder.
//
//go:embed README.md argo-resources istio-resources monitoring lockstep
var Tree embed.FS
