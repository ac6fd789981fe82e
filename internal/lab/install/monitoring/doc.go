// Package monitoring installs the lab's monitoring stack without Helm or
// Bitnami: prometheus-operator and a Prometheus with a Thanos sidecar in
// every workload cluster, and Thanos (Query, Store Gateway, Compactor,
// Ruler), MinIO and Grafana on the hub.
//
// It replaces the seed guide's charts and fixes their two manual steps.
// The object-storage credentials are generated once into a Secret and every
// component reads them from there (MinIO's root user, the bucket Job, the
// objstore.yml of Thanos), so they cannot disagree as the guide's MinIO
// values did. Thanos Query's endpoints are discovered from the workload
// clusters' sidecar LoadBalancer addresses into a file that Query re-reads,
// so no address is copied by hand and a rerun after an address change
// updates it.
//
// Storage is emptyDir everywhere (MinIO's bucket, the Store Gateway's and
// Compactor's caches, the Ruler's TSDB, Grafana's database): it is a lab,
// and a node without a storage provisioner (kwok, a bare kind) must still
// run it. Deleting a pod loses what it kept locally; see each builder.
//
// The builders are pure functions of the Settings and of what the clusters
// answered; only the actions do I/O. This package may import
// internal/lab/install, internal/lab/sources, internal/lab/provider,
// internal/kube, the gitops tree and the Kubernetes API packages.
package monitoring
