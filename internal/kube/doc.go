// Package kube holds small client-go helpers shared by the lab installers
// and the CLI: decoding multi-document YAML, server-side apply through the
// dynamic client, and waiting for CRDs. It may import client-go and
// apimachinery only.
package kube
