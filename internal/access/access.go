// Package access is the coordinator's identity: the objects that give it
// exactly the rights it needs, in the hub and in every member cluster, and
// the Lockstep cluster Secret that carries a member's credentials.
//
// In a member cluster the coordinator is the ServiceAccount
// lockstep-system/lockstep-coordinator, bound to the generated workload role
// (config/rbac/workload): read Rollouts, AnalysisRuns, ReplicaSets and
// VirtualServices, patch rollouts/status, nothing else. Its long-lived token
// goes into a Secret on the hub, in the coordinator's own namespace
// (lockstep-system), labelled lockstep.dev/secret-type=cluster, with the data
// layout of an Argo CD cluster Secret (name, server, config). Argo CD keeps
// its own Secrets and its own, wider, ServiceAccount: the coordinator never
// reads Argo CD's namespace.
//
// On the hub the coordinator is the ServiceAccount
// lockstep-system/lockstep-coordinator bound to the generated hub roles
// (config/rbac/hub): FleetRollouts and their status cluster-wide, Events,
// and Secrets and Leases only in lockstep-system.
//
// Every registration (the local fleet, the installers of the other
// providers) goes through this package, so what runs is what the tests
// check. It may import config, internal/kube, internal/fleet (the Secret
// format's names), client-go and apimachinery.
package access

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"lockstep.dev/lockstep/config"
	"lockstep.dev/lockstep/internal/fleet"
	"lockstep.dev/lockstep/internal/kube"
)

// Names of the coordinator's identity, the same in the hub and in every
// member.
const (
	// Namespace is the coordinator's namespace: its member Secrets and its
	// leader-election Lease on the hub, its ServiceAccount everywhere.
	Namespace = fleet.DefaultLockstepNamespace
	// ServiceAccount is the coordinator's ServiceAccount.
	ServiceAccount = "lockstep-coordinator"
	// TokenSecret holds the ServiceAccount's long-lived token.
	TokenSecret = ServiceAccount + "-token"
	// SecretTypeLabel marks the hub Secrets that carry a member's
	// credentials for the coordinator; its value is SecretTypeCluster.
	SecretTypeLabel   = fleet.LockstepSecretTypeLabel
	SecretTypeCluster = fleet.SecretTypeCluster
	// ReportingAnnotation on a cluster Secret gives the member's Prometheus
	// external "cluster" label.
	ReportingAnnotation = fleet.AnnotationReportingCluster
)

// SecretName is the hub Secret of a member's coordinator credentials.
func SecretName(cluster string) string { return "member-" + cluster }

// Object is kube.Object with the part-of label of everything the
// coordinator's installation writes (its identity here, its Deployment in
// internal/lab/install/coordinator).
func Object(apiVersion, kind, namespace, name string, fields map[string]any) *unstructured.Unstructured {
	u := kube.Object(apiVersion, kind, namespace, name, fields)
	u.SetLabels(map[string]string{"app.kubernetes.io/managed-by": "lockstep", "app.kubernetes.io/part-of": "lockstep"})
	return u
}

func roles(path string) ([]*unstructured.Unstructured, error) {
	return kube.ReadYAML(config.RBAC, path)
}

// bindings binds every role to the coordinator's ServiceAccount: a
// ClusterRoleBinding for a ClusterRole, a RoleBinding in the Role's
// namespace for a Role.
func bindings(rs []*unstructured.Unstructured) []*unstructured.Unstructured {
	sa := map[string]any{"kind": "ServiceAccount", "name": ServiceAccount, "namespace": Namespace}
	var out []*unstructured.Unstructured
	for _, r := range rs {
		bind := map[string]any{
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": r.GetKind(), "name": r.GetName()},
			"subjects": []any{sa},
		}
		switch r.GetKind() {
		case "ClusterRole":
			out = append(out, Object("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", r.GetName(), bind))
		case "Role":
			out = append(out, Object("rbac.authorization.k8s.io/v1", "RoleBinding", r.GetNamespace(), r.GetName(), bind))
		}
	}
	return out
}

func identity() []*unstructured.Unstructured {
	tok := Object("v1", "Secret", Namespace, TokenSecret, map[string]any{"type": string(corev1.SecretTypeServiceAccountToken)})
	tok.SetAnnotations(map[string]string{corev1.ServiceAccountNameKey: ServiceAccount})
	return []*unstructured.Unstructured{
		Object("v1", "Namespace", "", Namespace, nil),
		Object("v1", "ServiceAccount", Namespace, ServiceAccount, nil),
		tok,
	}
}

// MemberObjects are what a member cluster needs for the coordinator: its
// namespace, ServiceAccount and token Secret, the generated workload role
// and the binding of that role to the ServiceAccount. Nothing else.
func MemberObjects() ([]*unstructured.Unstructured, error) {
	rs, err := roles(config.WorkloadRole)
	if err != nil {
		return nil, err
	}
	out := identity()
	out = append(out, rs...)
	return append(out, bindings(rs)...), nil
}

// HubRoles are the generated hub roles and their bindings to the
// coordinator's ServiceAccount.
func HubRoles() ([]*unstructured.Unstructured, error) {
	rs, err := roles(config.HubRole)
	if err != nil {
		return nil, err
	}
	return append(rs, bindings(rs)...), nil
}

// HubObjects are the coordinator's namespace, ServiceAccount, token Secret
// (for a coordinator that runs outside the hub, as on the local fleet) and
// roles on the hub.
func HubObjects() ([]*unstructured.Unstructured, error) {
	rs, err := HubRoles()
	if err != nil {
		return nil, err
	}
	return append(identity(), rs...), nil
}

// Token waits until the token controller has filled the coordinator's
// token Secret in cs and returns the token and the cluster's CA.
func Token(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) (token, ca []byte, err error) {
	return kube.ServiceAccountToken(ctx, cs, Namespace, TokenSecret, timeout)
}

// Member is what the hub's cluster Secret says about one member.
type Member struct {
	// Name is the member's name (as in Argo CD).
	Name string
	// Server is the member's API server URL as the coordinator reaches it.
	Server string
	// CA is the PEM CA bundle that verifies Server; Token is the
	// coordinator's bearer token there.
	CA, Token []byte
	// Reporting is the member's Prometheus "cluster" label.
	Reporting string
	// Labels are copied onto the Secret, for FleetRollout selectors.
	Labels map[string]string
}

// ClusterSecret is the hub Secret carrying m's coordinator credentials.
// Its bytes depend only on m, so applying it again changes nothing.
func ClusterSecret(m Member) (*unstructured.Unstructured, error) {
	data, err := fleet.SecretData(m.Name, m.Server, m.Token, m.CA)
	if err != nil {
		return nil, err
	}
	u := Object("v1", "Secret", Namespace, SecretName(m.Name), map[string]any{"type": "Opaque", "data": data})
	labels := u.GetLabels()
	for k, v := range m.Labels {
		labels[k] = v
	}
	labels[SecretTypeLabel] = SecretTypeCluster
	u.SetLabels(labels)
	if m.Reporting != "" {
		u.SetAnnotations(map[string]string{ReportingAnnotation: m.Reporting})
	}
	return u, nil
}

// Registrar registers members with one hub; what every registration
// shares (the hub's client, the member objects, the Namespace on the hub)
// is built or applied once.
type Registrar struct {
	hub  *kube.Applier
	objs []*unstructured.Unstructured
	ns   bool
}

// NewRegistrar returns a Registrar for the hub cfg reaches. It does no I/O.
func NewRegistrar(hub *rest.Config) (*Registrar, error) {
	ha, err := kube.NewApplier(hub)
	if err != nil {
		return nil, err
	}
	objs, err := MemberObjects()
	if err != nil {
		return nil, err
	}
	return &Registrar{hub: ha, objs: objs}, nil
}

// Hub is the hub's applier, for the coordinator's own objects there.
func (r *Registrar) Hub() *kube.Applier { return r.hub }

// Register gives the coordinator access to one member: it applies
// MemberObjects in the member, waits for the token and applies the cluster
// Secret on the hub. m.Token is filled from the member; m.CA is used when
// set (the CA the hub trusts for m.Server), else the member's own.
func (r *Registrar) Register(ctx context.Context, member *rest.Config, m Member) error {
	ma, err := kube.NewApplier(member)
	if err != nil {
		return err
	}
	if err := ma.Apply(ctx, r.objs...); err != nil {
		return fmt.Errorf("%s: %w", m.Name, err)
	}
	cs, err := kubernetes.NewForConfig(member)
	if err != nil {
		return err
	}
	tok, ca, err := Token(ctx, cs, time.Minute)
	if err != nil {
		return fmt.Errorf("%s: %w", m.Name, err)
	}
	m.Token = tok
	if len(m.CA) == 0 {
		m.CA = ca
	}
	sec, err := ClusterSecret(m)
	if err != nil {
		return err
	}
	objs := []*unstructured.Unstructured{sec}
	if !r.ns {
		objs = append([]*unstructured.Unstructured{Object("v1", "Namespace", "", Namespace, nil)}, sec)
	}
	if err := r.hub.Apply(ctx, objs...); err != nil {
		return fmt.Errorf("hub: cluster Secret of %s: %w", m.Name, err)
	}
	r.ns = true
	return nil
}

// Register is one registration with a Registrar of its own.
func Register(ctx context.Context, hub, member *rest.Config, m Member) error {
	r, err := NewRegistrar(hub)
	if err != nil {
		return err
	}
	return r.Register(ctx, member, m)
}
