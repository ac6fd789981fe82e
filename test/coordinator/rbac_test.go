package coordinator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/access"
	"lockstep.dev/lockstep/internal/coordinator"
	"lockstep.dev/lockstep/internal/fleet"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/rollouts"
	"lockstep.dev/lockstep/test/fleettest"
)

// coordinatorMembers reads the members exactly as the coordinator does:
// its own Secrets, through its own hub credentials.
func coordinatorMembers(t *testing.T) map[string]fleet.Member {
	t.Helper()
	hub, err := client.New(coordinatorHub(t), client.Options{Scheme: coordinator.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := fleet.MembersFromSecrets(context.Background(), hub, fleet.LockstepSecrets(""), nil, workloads)
	if err != nil {
		t.Fatalf("the coordinator cannot read its member Secrets: %v", err)
	}
	out := map[string]fleet.Member{}
	for _, m := range ms {
		out[m.Name] = m
	}
	return out
}

type op struct {
	what string
	err  error
}

// createPod asks, as a dry run, to start a pod: what a credential that can
// must never be given to the coordinator.
func createPod(ctx context.Context, cs kubernetes.Interface, ns string) error {
	_, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "x", Image: "x"}}}}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	return err
}

func wantAllowed(t *testing.T, where string, ops ...op) {
	t.Helper()
	for _, o := range ops {
		if o.err != nil {
			t.Errorf("%s: %s: %v; want allowed", where, o.what, o.err)
		}
	}
}

func wantForbidden(t *testing.T, where string, ops ...op) {
	t.Helper()
	for _, o := range ops {
		if !apierrors.IsForbidden(o.err) {
			t.Errorf("%s: %s: err = %v; want Forbidden", where, o.what, o.err)
		}
	}
}

// TestCoordinatorCredentials proves, against the real apiservers and with
// the credentials the coordinator really runs with, what it may and may
// not do: on the hub it reads its own Secrets and takes Leases only in
// lockstep-system, and never reads Argo CD's; in every member it reads
// Rollouts and patches only their status. Then a canary runs to the end
// with exactly those rights.
func TestCoordinatorCredentials(t *testing.T) {
	setup(t)
	stopLogs(t)
	ctx := context.Background()
	a := newApp("it-rbac")
	cleanupApp(t, a)
	deploy(t, a, imageV1, workloads...)
	waitHealthy(t, a, imageV1, 90*time.Second, workloads...)

	hub, err := kubernetes.NewForConfig(coordinatorHub(t))
	if err != nil {
		t.Fatal(err)
	}
	hubDyn, err := dynamic.NewForConfig(coordinatorHub(t))
	if err != nil {
		t.Fatal(err)
	}
	lease := func(ns string) error {
		_, err := hub.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "it-rbac"}},
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	frs := hubDyn.Resource(v1alpha1.GroupVersion.WithResource("fleetrollouts")).Namespace("default")
	wantAllowed(t, "hub",
		op{"list its member Secrets", func() error {
			_, err := hub.CoreV1().Secrets(access.Namespace).List(ctx, metav1.ListOptions{})
			return err
		}()},
		op{"take a Lease in lockstep-system", lease(access.Namespace)},
		op{"list FleetRollouts", func() error { _, err := frs.List(ctx, metav1.ListOptions{}); return err }()},
	)
	wantForbidden(t, "hub",
		op{"read argocd-secret", func() error {
			_, err := hub.CoreV1().Secrets(local.ArgoCDNS).Get(ctx, "argocd-secret", metav1.GetOptions{})
			return err
		}()},
		op{"list Argo CD's cluster Secrets", func() error {
			_, err := hub.CoreV1().Secrets(local.ArgoCDNS).List(ctx, metav1.ListOptions{})
			return err
		}()},
		op{"take a Lease in kube-system", lease("kube-system")},
		op{"take a Lease in kube-node-lease", lease("kube-node-lease")},
		op{"create a pod", createPod(ctx, hub, "default")},
		op{"delete a FleetRollout", frs.Delete(ctx, "x", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})},
	)

	for name, m := range coordinatorMembers(t) {
		if m.Config.BearerToken == "" || m.Config.BearerToken == fleettest.RESTConfig(t, name).BearerToken {
			t.Fatalf("%s: the coordinator's member Secret carries no token or the admin token", name)
		}
		dyn, err := dynamic.NewForConfig(m.Config)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := kubernetes.NewForConfig(m.Config)
		if err != nil {
			t.Fatal(err)
		}
		ro := dyn.Resource(rollouts.RolloutGVR).Namespace(a.ns)
		vs := dyn.Resource(rollouts.VirtualServiceGVR).Namespace(a.ns)
		wantAllowed(t, name,
			op{"get rollout", func() error { _, err := ro.Get(ctx, a.rollout, metav1.GetOptions{}); return err }()},
			op{"patch rollout status", func() error {
				_, err := ro.Patch(ctx, a.rollout, types.MergePatchType, []byte(`{"status":{}}`), metav1.PatchOptions{}, "status")
				return err
			}()},
			op{"list virtualservices", func() error { _, err := vs.List(ctx, metav1.ListOptions{}); return err }()},
		)
		wantForbidden(t, name,
			// Pod templates carry literal secrets; the coordinator reads
			// neither ReplicaSets nor AnalysisRuns.
			op{"list replicasets", func() error { _, err := cs.AppsV1().ReplicaSets(a.ns).List(ctx, metav1.ListOptions{}); return err }()},
			op{"list analysisruns", func() error {
				_, err := dyn.Resource(rollouts.AnalysisRunGVR).Namespace(a.ns).List(ctx, metav1.ListOptions{})
				return err
			}()},
			op{"patch rollout spec", func() error {
				_, err := ro.Patch(ctx, a.rollout, types.MergePatchType, []byte(`{"spec":{"paused":true}}`), metav1.PatchOptions{})
				return err
			}()},
			op{"delete rollout", ro.Delete(ctx, a.rollout, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})},
			op{"create a pod", createPod(ctx, cs, a.ns)},
			op{"patch virtualservice", func() error {
				_, err := vs.Patch(ctx, a.vs, types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
				return err
			}()},
			op{"list secrets", func() error { _, err := cs.CoreV1().Secrets(a.ns).List(ctx, metav1.ListOptions{}); return err }()},
			op{"scale replicaset", func() error {
				_, err := cs.AppsV1().ReplicaSets(a.ns).Patch(ctx, "x", types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{})
				return err
			}()},
			op{"read a ServiceAccount", func() error {
				_, err := cs.CoreV1().ServiceAccounts(access.Namespace).Get(ctx, access.ServiceAccount, metav1.GetOptions{})
				return err
			}()},
		)
	}

	// A whole canary with exactly those rights.
	fr := newFleetRollout("rbac", a)
	fr.Spec.Members = v1alpha1.Members{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{local.WorkloadLabel: local.RoleWorkload}}}
	fr.Spec.Hold.Default = &metav1.Duration{Duration: time.Second}
	createFleetRollout(t, fr)
	startCoordinator(t)
	fleettest.Eventually(t, 30*time.Second, "FleetRollout completed at v1", func() error {
		return wantPhase(t, fr.Name, v1alpha1.PhaseCompleted, "")
	})
	before := getFleetRollout(t, fr.Name).Status.Fleet.Revision
	setImage(t, a, imageV2, workloads...)
	fleettest.Eventually(t, 90*time.Second, "FleetRollout completed at v2 with the coordinator's own rights", func() error {
		got := getFleetRollout(t, fr.Name)
		if got.Status.Phase != v1alpha1.PhaseCompleted || got.Status.Fleet.Revision == before {
			return fmt.Errorf("phase %s (%s: %s)", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		return nil
	})
	if got := promotedEvents(t, fr.Name); got["argo-rollout1"] != 3 || got["argo-rollout2"] != 3 {
		t.Errorf("promotions per cluster %v; want 3 each", got)
	}
}

// memberStatus returns a member's status in the FleetRollout.
func memberStatus(fr *v1alpha1.FleetRollout, name string) v1alpha1.MemberStatus {
	for _, m := range fr.Status.Members {
		if m.Name == name {
			return m
		}
	}
	return v1alpha1.MemberStatus{}
}

// reRegister restores the coordinator's identity in a member as `lab up`
// creates it (a new token if the old one was revoked).
func reRegister(t *testing.T, cluster string, i int) {
	t.Helper()
	ca := fleettest.RESTConfig(t, "argo-hub").CAData
	if err := access.Register(context.Background(), fleettest.RESTConfig(t, "argo-hub"), fleettest.RESTConfig(t, cluster), access.Member{
		Name: cluster, Server: fleettest.RESTConfig(t, cluster).Host, CA: ca, Reporting: local.PrometheusClusterLabel(i),
		Labels: map[string]string{local.WorkloadLabel: local.RoleWorkload, "lockstep.dev/cluster": cluster},
	}); err != nil {
		t.Fatal(err)
	}
}

// TestRefusalsAreNamed takes rights away from the coordinator in the middle
// of a canary: a member whose role binding is gone answers 403, one whose
// token was revoked answers 401. Each shows as such, naming the cluster and
// what was refused; the fleet holds, then aborts with that reason after the
// deadline, and recovers when the identity is restored.
func TestRefusalsAreNamed(t *testing.T) {
	setup(t)
	stopLogs(t)
	ctx := context.Background()
	a := newApp("it-denied")
	cleanupApp(t, a)
	deploy(t, a, imageV1, workloads...)
	waitHealthy(t, a, imageV1, 90*time.Second, workloads...)
	t.Cleanup(func() {
		reRegister(t, "argo-rollout1", 1)
		reRegister(t, "argo-rollout2", 2)
	})

	fr := newFleetRollout("denied", a)
	fr.Spec.Hold.Default = &metav1.Duration{Duration: time.Hour}
	fr.Spec.Policy.UnreachableDeadline = &metav1.Duration{Duration: 15 * time.Second}
	createFleetRollout(t, fr)
	startCoordinator(t)
	fleettest.Eventually(t, 30*time.Second, "FleetRollout completed at v1", func() error {
		return wantPhase(t, fr.Name, v1alpha1.PhaseCompleted, "")
	})

	// 401: the token Secret is deleted, so the token is refused.
	if err := fleettest.Clientset(t, "argo-rollout1").CoreV1().Secrets(access.Namespace).Delete(ctx, access.TokenSecret, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	fleettest.Eventually(t, 30*time.Second, "argo-rollout1 shown Unauthorized", func() error {
		got := getFleetRollout(t, fr.Name)
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionMembersReachable)
		if m := memberStatus(got, "argo-rollout1"); m.Reason != v1alpha1.ReasonUnauthorized || c == nil || c.Reason != v1alpha1.ReasonUnauthorized ||
			!strings.Contains(c.Message, "argo-rollout1") {
			return fmt.Errorf("member %+v, condition %+v", m, c)
		}
		return nil
	})
	reRegister(t, "argo-rollout1", 1)
	fleettest.Eventually(t, 30*time.Second, "argo-rollout1 reachable with its new token", func() error {
		got := getFleetRollout(t, fr.Name)
		if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionMembersReachable); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("condition %+v", c)
		}
		return nil
	})

	// 403 in the middle of a canary: the role binding goes away.
	setImage(t, a, imageV2, workloads...)
	fleettest.Eventually(t, 60*time.Second, "fleet holding at the first pause", func() error {
		got := getFleetRollout(t, fr.Name)
		if got.Status.Phase != v1alpha1.PhaseHolding {
			return fmt.Errorf("phase %s (%s: %s)", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		return nil
	})
	if err := fleettest.Clientset(t, "argo-rollout2").RbacV1().ClusterRoleBindings().Delete(ctx, "lockstep-workload", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// A 403 shows on the next read of the Rollout: /readyz still answers,
	// and an established watch is not re-authorized, so it can take up to
	// the 30 s resync of a fleet that is holding.
	fleettest.Eventually(t, 60*time.Second, "argo-rollout2 shown Forbidden, naming the verb", func() error {
		got := getFleetRollout(t, fr.Name)
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionMembersReachable)
		m := memberStatus(got, "argo-rollout2")
		if m.Reason != v1alpha1.ReasonForbidden || c == nil || c.Reason != v1alpha1.ReasonForbidden ||
			!strings.Contains(c.Message, "argo-rollout2") || !strings.Contains(c.Message, `cannot get resource "rollouts"`) ||
			got.Status.Reason != string(v1alpha1.ReasonForbidden) {
			return fmt.Errorf("phase %s (%s), member %+v, condition %+v", got.Status.Phase, got.Status.Reason, m, c)
		}
		return nil
	})
	fleettest.Eventually(t, 40*time.Second, "fleet aborted after the deadline, for the refusal", func() error {
		got := getFleetRollout(t, fr.Name)
		if got.Status.Phase != v1alpha1.PhaseAborted || got.Status.Fleet.AbortReason != string(v1alpha1.ReasonForbidden) {
			return fmt.Errorf("phase %s (%s: %s), abort reason %q", got.Status.Phase, got.Status.Reason, got.Status.Message, got.Status.Fleet.AbortReason)
		}
		return nil
	})
	fleettest.Eventually(t, 30*time.Second, "argo-rollout1 aborted", func() error {
		if s, err := rollouts.State(getRollout(t, "argo-rollout1", a)); err != nil || !s.Aborted {
			return fmt.Errorf("aborted=%v err=%v", s.Aborted, err)
		}
		return nil
	})
	// Rights back: the sticky fleet abort reaches argo-rollout2 too.
	reRegister(t, "argo-rollout2", 2)
	fleettest.Eventually(t, 30*time.Second, "argo-rollout2 aborted once it lets the coordinator in", func() error {
		if s, err := rollouts.State(getRollout(t, "argo-rollout2", a)); err != nil || !s.Aborted {
			return fmt.Errorf("aborted=%v err=%v", s.Aborted, err)
		}
		return nil
	})
}

// TestBrokenClusterSecretsHold adds a second Secret for argo-rollout1, then
// a Secret whose config does not parse: each time the fleet holds with a
// condition naming the Secrets, sends nothing, and moves on once fixed.
func TestBrokenClusterSecretsHold(t *testing.T) {
	setup(t)
	stopLogs(t)
	ctx := context.Background()
	a := newApp("it-secrets")
	cleanupApp(t, a)
	deploy(t, a, imageV1, workloads...)
	waitHealthy(t, a, imageV1, 90*time.Second, workloads...)

	fr := newFleetRollout("secrets", a)
	fr.Spec.Members = v1alpha1.Members{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{local.WorkloadLabel: local.RoleWorkload}}}
	fr.Spec.Hold.Default = &metav1.Duration{Duration: time.Second}
	createFleetRollout(t, fr)
	startCoordinator(t)
	fleettest.Eventually(t, 30*time.Second, "FleetRollout completed at v1", func() error {
		return wantPhase(t, fr.Name, v1alpha1.PhaseCompleted, "")
	})

	secrets := fleettest.Clientset(t, "argo-hub").CoreV1().Secrets(access.Namespace)
	orig, err := secrets.Get(ctx, access.SecretName("argo-rollout1"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dup := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "member-argo-rollout1-copy", Labels: orig.Labels}, Data: orig.Data}
	if _, err := secrets.Create(ctx, dup, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = secrets.Delete(context.Background(), dup.Name, metav1.DeleteOptions{}) })
	wantHeld := func(reason string, names ...string) {
		t.Helper()
		fleettest.Eventually(t, 30*time.Second, "fleet holding on "+reason, func() error {
			got := getFleetRollout(t, fr.Name)
			c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionClusterSecretsValid)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != reason || got.Status.Phase != v1alpha1.PhaseWaiting {
				return fmt.Errorf("phase %s, condition %+v", got.Status.Phase, c)
			}
			for _, n := range names {
				if !strings.Contains(c.Message, n) {
					return fmt.Errorf("condition message %q does not name %s", c.Message, n)
				}
			}
			return nil
		})
	}
	wantHeld(v1alpha1.ReasonDuplicateClusterSecret, access.Namespace+"/"+orig.Name, access.Namespace+"/"+dup.Name)

	// Held means held: a new revision gets no promotion while it lasts.
	setImage(t, a, imageV2, workloads...)
	time.Sleep(8 * time.Second)
	if got := promotedEvents(t, fr.Name); len(got) > 0 {
		t.Errorf("promoted while a member Secret was duplicated: %v", got)
	}
	wantHeld(v1alpha1.ReasonDuplicateClusterSecret)

	// Broken instead of duplicated.
	if _, err := secrets.Patch(ctx, dup.Name, types.MergePatchType, []byte(`{"data":{"config":"ew=="}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	wantHeld(v1alpha1.ReasonInvalidClusterSecret, access.Namespace+"/"+dup.Name, "data.config")

	if err := secrets.Delete(ctx, dup.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	fleettest.Eventually(t, 90*time.Second, "FleetRollout completed at v2 once the Secret is gone", func() error {
		got := getFleetRollout(t, fr.Name)
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionClusterSecretsValid)
		if got.Status.Phase != v1alpha1.PhaseCompleted || c == nil || c.Status != metav1.ConditionTrue || promotedEvents(t, fr.Name)["argo-rollout1"] != 3 {
			return fmt.Errorf("phase %s (%s: %s), condition %+v", got.Status.Phase, got.Status.Reason, got.Status.Message, c)
		}
		return nil
	})
	if c := meta.FindStatusCondition(getFleetRollout(t, fr.Name).Status.Conditions, v1alpha1.ConditionMembersSecure); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("MembersSecure = %+v with every member on verified TLS", c)
	}

	// A member registered without checking its certificate works, and is
	// named.
	var conf map[string]any
	if err := json.Unmarshal(orig.Data["config"], &conf); err != nil {
		t.Fatal(err)
	}
	conf["tlsClientConfig"] = map[string]any{"insecure": true}
	insecureConf, _ := json.Marshal(conf)
	insecure := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "member-insecure", Labels: orig.Labels},
		Data: map[string][]byte{"name": []byte("insecure-copy"), "server": orig.Data["server"], "config": insecureConf}}
	if _, err := secrets.Create(ctx, insecure, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = secrets.Delete(context.Background(), insecure.Name, metav1.DeleteOptions{}) })
	fleettest.Eventually(t, 30*time.Second, "MembersSecure=False naming the insecure member", func() error {
		c := meta.FindStatusCondition(getFleetRollout(t, fr.Name).Status.Conditions, v1alpha1.ConditionMembersSecure)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonInsecureMember || !strings.Contains(c.Message, "insecure-copy: tlsClientConfig.insecure") {
			return fmt.Errorf("condition %+v", c)
		}
		return nil
	})
}
