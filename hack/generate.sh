#!/usr/bin/env bash
# Regenerates everything controller-gen produces from kubebuilder markers:
#   api/v1alpha1/zz_generated.deepcopy.go   deepcopy methods of the API types
#   config/crd/                             the FleetRollout CRD
#   config/rbac/hub/role.yaml               the coordinator's role on the hub
#   config/rbac/workload/role.yaml          its least-privilege role in the workload clusters
#   config/thirdparty/monitoring.coreos.com the PodMonitor and ServiceMonitor CRDs
#   charts/lockstep/files/                  the chart's copies of the CRDs and hub roles (hack/chartgen)
# controller-gen is built from the pinned tool module tools/controller-gen.
# With --verify it generates into a scratch copy and fails if the committed
# output differs, which is what `make verify-generate` (and CI) runs.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

verify=false
if [[ "${1:-}" == "--verify" ]]; then
	verify=true
fi

bin="$root/bin/controller-gen"
# Always rebuild: go build is a no-op when nothing changed, and a stale
# binary from another pin would generate different output.
(cd tools/controller-gen && go build -o "$bin" sigs.k8s.io/controller-tools/cmd/controller-gen)

out="$root"
if $verify; then
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
	mkdir -p "$out/api/v1alpha1"
	cp api/v1alpha1/zz_generated.deepcopy.go "$out/api/v1alpha1/" 2>/dev/null || true
	# Hand-written manifests the chart copies too (the FleetApproval
	# admission policy).
	mkdir -p "$out/config"
	cp -r config/approval "$out/config/"
fi

header="$root/hack/boilerplate.go.txt"

"$bin" object:headerFile="$header" paths=./api/... output:object:dir="$out/api/v1alpha1"
# config/crd and config/rbac also hold the kustomize base's hand-written
# files (kustomize loads only files under a kustomization's own directory):
# config/crd/kustomization.yaml and config/rbac/*.yaml. Only controller-gen's
# output is removed before it is written again, so that a type or role that
# is gone leaves no stale file.
if [[ -d "$out/config/crd" ]]; then
	find "$out/config/crd" -maxdepth 1 -type f -name '*.yaml' ! -name kustomization.yaml -delete
fi
rm -rf "$out/config/rbac/hub" "$out/config/rbac/workload" "$out/config/thirdparty"
"$bin" crd paths=./api/... output:crd:artifacts:config="$out/config/crd"
"$bin" rbac:roleName=lockstep-coordinator paths=./internal/coordinator output:rbac:artifacts:config="$out/config/rbac/hub"
"$bin" rbac:roleName=lockstep-workload paths=./internal/coordinator/workloadrbac output:rbac:artifacts:config="$out/config/rbac/workload"
# The monitoring API lives in the tool module's dependencies, so it is
# loaded from there.
(cd tools/controller-gen && "$bin" crd \
	paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 \
	output:crd:artifacts:config="$out/config/thirdparty/monitoring.coreos.com.tmp")
mkdir -p "$out/config/thirdparty/monitoring.coreos.com"
for kind in podmonitors servicemonitors; do
	mv "$out/config/thirdparty/monitoring.coreos.com.tmp/monitoring.coreos.com_${kind}.yaml" "$out/config/thirdparty/monitoring.coreos.com/"
done
rm -rf "$out/config/thirdparty/monitoring.coreos.com.tmp"
# The Helm chart carries byte-for-byte copies of the CRDs and hub roles
# (Helm reads only files inside a chart); its templates parse them.
go run ./hack/chartgen -config "$out/config" -chart "$out/charts/lockstep"

if $verify; then
	status=0
	for p in api/v1alpha1/zz_generated.deepcopy.go config/crd config/rbac/hub config/rbac/workload config/thirdparty charts/lockstep/files; do
		if ! diff -ru -x kustomization.yaml "$root/$p" "$out/$p"; then
			status=1
		fi
	done
	if [[ $status -ne 0 ]]; then
		echo "generated files are out of date: run make generate and commit the result" >&2
	fi
	exit $status
fi
