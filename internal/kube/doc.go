// Package kube holds small client-go helpers shared by the lab installers
// and the CLI: decoding multi-document YAML, server-side apply through the
// dynamic client, waiting for CRDs and for service-account tokens. It may import client-go and
// apimachinery only.
package kube
