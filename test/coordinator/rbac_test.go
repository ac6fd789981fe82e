package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/config"
	"lockstep.dev/lockstep/internal/fleet"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/rollouts"
	"lockstep.dev/lockstep/test/fleettest"
)

const rbacSA = "lockstep-coordinator"

// restrictedToken binds the generated workload ClusterRole to a new
// ServiceAccount in cluster and returns its token.
func restrictedToken(t *testing.T, cluster string) string {
	t.Helper()
	ctx := context.Background()
	cs := fleettest.Clientset(t, cluster)
	b, err := config.RBAC.ReadFile(config.WorkloadRole)
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(b, &role); err != nil {
		t.Fatal(err)
	}
	mustCreate := func(err error) {
		t.Helper()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("%s: %v", cluster, err)
		}
	}
	_, err = cs.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{})
	mustCreate(err)
	_, err = cs.CoreV1().ServiceAccounts("kube-system").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: rbacSA}}, metav1.CreateOptions{})
	mustCreate(err)
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: rbacSA},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: rbacSA, Namespace: "kube-system"}},
	}, metav1.CreateOptions{})
	mustCreate(err)
	_, err = cs.CoreV1().Secrets("kube-system").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: rbacSA + "-token", Annotations: map[string]string{corev1.ServiceAccountNameKey: rbacSA}},
		Type:       corev1.SecretTypeServiceAccountToken,
	}, metav1.CreateOptions{})
	mustCreate(err)
	var tok string
	fleettest.Eventually(t, 30*time.Second, cluster+" token", func() error {
		s, err := cs.CoreV1().Secrets("kube-system").Get(ctx, rbacSA+"-token", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if tok = string(s.Data[corev1.ServiceAccountTokenKey]); tok == "" {
			return fmt.Errorf("token not filled yet")
		}
		return nil
	})
	return tok
}

// registerRestricted adds, on the hub, an Argo CD cluster Secret for
// cluster with the restricted token, labelled lockstep.dev/test=rbac, and
// returns the member it describes.
func registerRestricted(t *testing.T, cluster, token string) fleet.Member {
	t.Helper()
	ctx := context.Background()
	hub := fleettest.Clientset(t, "argo-hub")
	orig, err := hub.CoreV1().Secrets(local.ArgoCDNS).Get(ctx, local.ClusterSecretName(cluster), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(orig.Data["config"], &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["bearerToken"] = token
	conf, _ := json.Marshal(cfg)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: "rbac-" + cluster, Namespace: local.ArgoCDNS,
			Labels: map[string]string{fleet.SecretTypeLabel: fleet.SecretTypeCluster, "lockstep.dev/test": "rbac"},
		},
		Data: map[string][]byte{"name": []byte(cluster), "server": orig.Data["server"], "config": conf},
	}
	if _, err := hub.CoreV1().Secrets(local.ArgoCDNS).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = hub.CoreV1().Secrets(local.ArgoCDNS).Delete(context.Background(), sec.Name, metav1.DeleteOptions{})
	})
	m, err := fleet.MemberFromSecret(sec)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLeastPrivilegeWorkloadRole runs a canary with a coordinator whose
// workload credentials carry only the generated lockstep-workload role,
// then proves that role cannot change anything but a Rollout's status.
func TestLeastPrivilegeWorkloadRole(t *testing.T) {
	setup(t)
	stopLogs(t)
	a := newApp("it-rbac")
	cleanupApp(t, a)
	deploy(t, a, imageV1, workloads...)
	waitHealthy(t, a, imageV1, 90*time.Second, workloads...)

	restricted := map[string]*rest.Config{}
	for _, c := range workloads {
		restricted[c] = registerRestricted(t, c, restrictedToken(t, c)).Config
	}

	fr := newFleetRollout("rbac", a)
	fr.Spec.Members = v1alpha1.Members{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"lockstep.dev/test": "rbac"}}}
	fr.Spec.Hold.Default = &metav1.Duration{Duration: time.Second}
	createFleetRollout(t, fr)
	startCoordinator(t)
	fleettest.Eventually(t, 30*time.Second, "FleetRollout completed at v1", func() error {
		return wantPhase(t, fr.Name, v1alpha1.PhaseCompleted, "")
	})
	before := getFleetRollout(t, fr.Name).Status.Fleet.Revision
	setImage(t, a, imageV2, workloads...)
	fleettest.Eventually(t, 90*time.Second, "FleetRollout completed at v2 with the restricted role", func() error {
		got := getFleetRollout(t, fr.Name)
		if got.Status.Phase != v1alpha1.PhaseCompleted || got.Status.Fleet.Revision == before {
			return fmt.Errorf("phase %s (%s: %s)", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		return nil
	})
	if got := promotedEvents(t, fr.Name); got["argo-rollout1"] != 3 || got["argo-rollout2"] != 3 {
		t.Errorf("promotions per cluster %v; want 3 each", got)
	}

	ctx := context.Background()
	for _, c := range workloads {
		dyn, err := dynamic.NewForConfig(restricted[c])
		if err != nil {
			t.Fatal(err)
		}
		cs, err := kubernetes.NewForConfig(restricted[c])
		if err != nil {
			t.Fatal(err)
		}
		ro := dyn.Resource(rollouts.RolloutGVR).Namespace(a.ns)
		vs := dyn.Resource(rollouts.VirtualServiceGVR).Namespace(a.ns)
		allowed := []struct {
			what string
			err  error
		}{
			{"get rollout", func() error { _, err := ro.Get(ctx, a.rollout, metav1.GetOptions{}); return err }()},
			{"patch rollout status", func() error {
				_, err := ro.Patch(ctx, a.rollout, types.MergePatchType, []byte(`{"status":{}}`), metav1.PatchOptions{}, "status")
				return err
			}()},
			{"list virtualservices", func() error { _, err := vs.List(ctx, metav1.ListOptions{}); return err }()},
			{"list replicasets", func() error { _, err := cs.AppsV1().ReplicaSets(a.ns).List(ctx, metav1.ListOptions{}); return err }()},
			{"list analysisruns", func() error {
				_, err := dyn.Resource(rollouts.AnalysisRunGVR).Namespace(a.ns).List(ctx, metav1.ListOptions{})
				return err
			}()},
		}
		for _, op := range allowed {
			if op.err != nil {
				t.Errorf("%s: %s: %v; want allowed", c, op.what, op.err)
			}
		}
		denied := []struct {
			what string
			err  error
		}{
			{"patch rollout spec", func() error {
				_, err := ro.Patch(ctx, a.rollout, types.MergePatchType, []byte(`{"spec":{"paused":true}}`), metav1.PatchOptions{})
				return err
			}()},
			{"delete rollout", ro.Delete(ctx, a.rollout, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})},
			{"patch virtualservice", func() error {
				_, err := vs.Patch(ctx, a.vs, types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
				return err
			}()},
			{"list secrets", func() error { _, err := cs.CoreV1().Secrets(a.ns).List(ctx, metav1.ListOptions{}); return err }()},
			{"list pods", func() error { _, err := cs.CoreV1().Pods(a.ns).List(ctx, metav1.ListOptions{}); return err }()},
			{"scale replicaset", func() error {
				_, err := cs.AppsV1().ReplicaSets(a.ns).Patch(ctx, "x", types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{})
				return err
			}()},
		}
		for _, op := range denied {
			if !apierrors.IsForbidden(op.err) {
				t.Errorf("%s: %s: err = %v; want Forbidden", c, op.what, op.err)
			}
		}
	}
}
