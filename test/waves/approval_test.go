package waves_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/cli"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/rollouts"
	"lockstep.dev/lockstep/test/fleettest"
)

// TestWaveWaitsForAVerifiedApproval releases [argo-rollout1] then
// [argo-rollout2], whose wave needs a person's approval, on the hub's real
// apiserver with its admission policy:
//   - the second wave waits at its leading pause, saying so;
//   - an approval in another user's name is refused by the apiserver, and
//     a given approval cannot be changed;
//   - an approval of the previous revision is ignored;
//   - `lockstep approve` lets the wave go, and the coordinator records who
//     approved, in status and an Event.
func TestWaveWaitsForAVerifiedApproval(t *testing.T) {
	fleettest.Need(t)
	ctx := context.Background()
	installCRD(t)
	const appNS = "it-approval"
	members := []string{"argo-rollout1", "argo-rollout2"}
	for _, c := range members {
		apply(t, c, fleettest.LeadingPauseApp(appNS, imageV1, 1))
	}
	waitHealthy(t, appNS, "hw", members...)
	fr := &v1alpha1.FleetRollout{
		ObjectMeta: metav1.ObjectMeta{Name: "approval", Namespace: "default"},
		Spec: v1alpha1.FleetRolloutSpec{
			Rollout: v1alpha1.RolloutReference{Namespace: appNS, Name: "hw"},
			Members: v1alpha1.Members{Names: members},
			Hold:    v1alpha1.Hold{Default: &metav1.Duration{Duration: time.Second}},
			Waves: []v1alpha1.Wave{
				{Name: "first", Names: []string{"argo-rollout1"}},
				{Name: "second", Names: []string{"argo-rollout2"}, Approval: "Required"},
			},
		},
	}
	if err := hub(t).Create(ctx, fr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hub(t).Delete(context.Background(), fr) })
	startCoordinator(t, "")
	var v1rev string
	fleettest.Eventually(t, 60*time.Second, "v1 completed", func() error {
		got := getNamed(t, fr.Name)
		if got.Status.Phase != v1alpha1.PhaseCompleted || got.Status.Fleet.Revision == "" {
			return fmt.Errorf("phase %s (%s: %s)", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		v1rev = got.Status.Fleet.Revision
		return nil
	})

	body := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"helloworld","image":%q,"ports":[{"name":"http","containerPort":5000,"protocol":"TCP"}]}]}}}}`, imageV2)
	for _, c := range members {
		if _, err := fleettest.Dynamic(t, c).Resource(rollouts.RolloutGVR).Namespace(appNS).Patch(ctx, "hw", types.MergePatchType, []byte(body), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var v2rev string
	fleettest.Eventually(t, 120*time.Second, "the second wave waiting for approval", func() error {
		got := getNamed(t, fr.Name)
		if got.Status.Reason != string(decide.ReasonAwaitingApproval) {
			return fmt.Errorf("phase %s (%s: %s) %s", got.Status.Phase, got.Status.Reason, got.Status.Message, waveStates(got))
		}
		v2rev = got.Status.Fleet.Revision
		if !strings.Contains(got.Status.Message, "lockstep approve --wave second") {
			t.Errorf("the wait does not say how to approve: %s", got.Status.Message)
		}
		return nil
	})
	if v2rev == v1rev {
		t.Fatalf("waiting on the old revision %s", v1rev)
	}

	admin := fleettest.Clientset(t, local.HubName)
	me, err := kube.WhoAmI(admin)(ctx)
	if err != nil {
		t.Fatal(err)
	}
	newApproval := func(approver, revision string) *v1alpha1.FleetApproval {
		return &v1alpha1.FleetApproval{ObjectMeta: metav1.ObjectMeta{Namespace: fr.Namespace, GenerateName: "by-hand-"},
			Spec: v1alpha1.FleetApprovalSpec{FleetRollout: fr.Name, Revision: revision, Wave: "second", Approver: approver}}
	}
	// Forged: the apiserver refuses it.
	if err := hub(t).Create(ctx, newApproval("mallory", v2rev)); err == nil || !strings.Contains(err.Error(), "spec.approver must be the user who makes the request ("+me+"), not mallory") {
		t.Fatalf("an approval in mallory's name by %s: %v", me, err)
	}
	// Of the previous revision: accepted by the apiserver, ignored by the
	// coordinator; and it cannot be changed into a current one.
	old := newApproval(me, v1rev)
	if err := hub(t).Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	old.Spec.Revision = v2rev
	if err := hub(t).Update(ctx, old); err == nil || !strings.Contains(err.Error(), "cannot be changed") {
		t.Fatalf("changing a given approval: %v", err)
	}
	time.Sleep(3 * time.Second)
	if got := getNamed(t, fr.Name); got.Status.Reason != string(decide.ReasonAwaitingApproval) || len(got.Status.Fleet.Approvals) > 0 {
		t.Fatalf("an approval of the previous revision counted: %s, approvals %+v", got.Status.Reason, got.Status.Fleet.Approvals)
	}
	if s, _ := rolloutIn(t, "argo-rollout2", appNS, "hw"); s.CurrentStepIndex == nil || *s.CurrentStepIndex != 0 {
		t.Fatalf("argo-rollout2 left its leading pause without an approval: step %v", s.CurrentStepIndex)
	}

	// A person approves.
	var out, errOut strings.Builder
	if code := cli.Run([]string{"approve", fr.Name, "-n", fr.Namespace, "--wave", "second", "--kubeconfig", fleettest.F.State.Kubeconfig, "--context", local.HubName}, nil, &out, &errOut); code != 0 {
		t.Fatalf("lockstep approve: exit %d: %s%s", code, out.String(), errOut.String())
	}
	t.Logf("lockstep approve: %s", strings.TrimSpace(out.String()))
	fleettest.Eventually(t, 120*time.Second, "v2 completed after the approval", func() error {
		got := getNamed(t, fr.Name)
		if got.Status.Phase != v1alpha1.PhaseCompleted || got.Status.Fleet.Revision != v2rev {
			return fmt.Errorf("phase %s (%s: %s) %s", got.Status.Phase, got.Status.Reason, got.Status.Message, waveStates(got))
		}
		return nil
	})
	got := getNamed(t, fr.Name)
	if a := got.Status.Fleet.Approvals; len(a) != 1 || a[0].Wave != "second" || a[0].Approver != me || a[0].At.IsZero() {
		t.Errorf("approvals recorded as %+v, want wave second by %s", a, me)
	}
	// The record, through lockstep history.
	out.Reset()
	errOut.Reset()
	if code := cli.Run([]string{"history", fr.Name, "-n", fr.Namespace, "-o", "json", "--kubeconfig", fleettest.F.State.Kubeconfig, "--context", local.HubName}, nil, &out, &errOut); code != 0 {
		t.Fatalf("lockstep history: exit %d: %s%s", code, out.String(), errOut.String())
	}
	var releases []v1alpha1.ReleaseRecord
	if err := json.Unmarshal([]byte(out.String()), &releases); err != nil {
		t.Fatal(err)
	}
	if n := len(releases); n < 2 || releases[n-2].Revision != v1rev || releases[n-1].Revision != v2rev || releases[n-1].Outcome != "Completed" ||
		len(releases[n-1].Approvals) != 1 || releases[n-1].Approvals[0].Approver != me {
		t.Errorf("lockstep history: %s", out.String())
	}
	fleettest.Eventually(t, 10*time.Second, "an Approved Event", func() error {
		evs, err := admin.CoreV1().Events(fr.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + fr.Name + ",reason=Approved"})
		if err != nil || len(evs.Items) == 0 {
			return fmt.Errorf("no Event (%v)", err)
		}
		if m := evs.Items[0].Message; !strings.Contains(m, "approved by "+me) || !strings.Contains(m, v2rev) {
			t.Errorf("Event %q does not say who approved which revision", m)
		}
		return nil
	})
}
