//go:build tools

// Package tools pins controller-gen, which hack/generate.sh builds to
// generate Lockstep's CRDs, RBAC and deepcopy code, and the
// prometheus-operator monitoring API whose markers it turns into the
// PodMonitor and ServiceMonitor CRDs under config/thirdparty.
package tools

import (
	_ "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
