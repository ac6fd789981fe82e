package dashboard

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/render"
	"lockstep.dev/lockstep/test/fleettest"
)

var (
	fleetRolloutGVR  = schema.GroupVersionResource{Group: "lockstep.dev", Version: "v1alpha1", Resource: "fleetrollouts"}
	fleetApprovalGVR = schema.GroupVersionResource{Group: "lockstep.dev", Version: "v1alpha1", Resource: "fleetapprovals"}
)

// TestApproveButton runs a release whose FleetRollout holds a named
// barrier for a person at 50 % canary (`lockstep demo --approval-barrier`):
// the page's approve button stays off until the fleet waits there, the
// fleet waits, and one click (and its confirmation) approves it as the
// dashboard's own hub identity, which the coordinator records before the
// release goes on to complete.
func TestApproveButton(t *testing.T) {
	fleettest.Need(t)
	b := newBrowser(t)
	demo, pageURL := start(t, "dashboard: ", "demo", "--dir", fleettest.F.Dir, "--lockstep", "--keep-dashboard", "--approval-barrier", "prod-gate",
		"--pause", "3s", "--analysis-delay", "5s", "--analysis-interval", "5s", "--scale-down-delay", "3s")
	b.do(t, chromedp.Navigate(pageURL))
	b.until(t, 10*time.Second, "the fleet's first picture", `window.lockstepRendered && window.lockstepRendered.seq > 0`)
	if !eval[bool](t, b, `document.querySelector("button.verb-approve").disabled`) {
		t.Error("the approve button is live before anything awaits approval")
	}
	hub := fleettest.Dynamic(t, local.HubName)
	ctx := context.Background()
	b.until(t, 4*time.Minute, "the approve button live", `!document.querySelector("button.verb-approve").disabled && /prod-gate/.test(document.querySelector("button.verb-approve").title)`)
	// The fleet holds at the barrier while nobody approves.
	time.Sleep(3 * time.Second)
	fr, err := hub.Resource(fleetRolloutGVR).Namespace("lockstep").Get(ctx, "helloworld", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if reason, _, _ := unstructured.NestedString(fr.Object, "status", "reason"); reason != "AwaitingApproval" {
		t.Fatalf("FleetRollout reason %q, want AwaitingApproval", reason)
	}
	for _, c := range workloads {
		if step := rolloutStep(t, c); step != render.ApprovalStep {
			t.Errorf("%s at step %d while the barrier at step %d awaits approval", c, step, render.ApprovalStep)
		}
	}
	b.screenshot(t, "6-awaiting-approval")

	b.do(t, chromedp.Click(chromedp.CSS("button.verb-approve")))
	b.until(t, 5*time.Second, "the confirmation", `document.getElementById("confirm").open && /approve what lockstep\/helloworld waits for/.test(document.getElementById("confirm-text").textContent)`)
	b.do(t, chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.until(t, 30*time.Second, "the action's result", `/approved barrier prod-gate of revision/.test(document.getElementById("action-result").textContent)`)

	me, err := kube.WhoAmI(fleettest.Clientset(t, local.HubName))(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list, err := hub.Resource(fleetApprovalGVR).Namespace("lockstep").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range list.Items {
		barrier, _, _ := unstructured.NestedString(a.Object, "spec", "barrier")
		approver, _, _ := unstructured.NestedString(a.Object, "spec", "approver")
		found = found || (barrier == "prod-gate" && approver == me)
	}
	if !found {
		t.Fatalf("no FleetApproval of prod-gate by %s among %d", me, len(list.Items))
	}
	fleettest.Eventually(t, 3*time.Minute, "past the barrier, approval recorded", func() error {
		fr, err := hub.Resource(fleetRolloutGVR).Namespace("lockstep").Get(ctx, "helloworld", metav1.GetOptions{})
		if err != nil {
			return err
		}
		approvals, _, _ := unstructured.NestedSlice(fr.Object, "status", "fleet", "approvals")
		recorded := false
		for _, a := range approvals {
			m, _ := a.(map[string]any)
			recorded = recorded || (m["barrier"] == "prod-gate" && m["approver"] == me)
		}
		for _, c := range workloads {
			if step := rolloutStep(t, c); step <= render.ApprovalStep {
				return fmt.Errorf("%s still at step %d (recorded %v)", c, step, recorded)
			}
		}
		if !recorded {
			return fmt.Errorf("status.fleet.approvals %v lacks prod-gate by %s", approvals, me)
		}
		return nil
	})
	b.screenshot(t, "7-approved")
	fleettest.Eventually(t, 4*time.Minute, "the demo's outcome", func() error {
		if !demo.has("outcome: Promoted") {
			return fmt.Errorf("no outcome yet")
		}
		return nil
	})
	demo.stop(t)
	if strings.Contains(demo.output(), "Aborted") {
		t.Errorf("the approved release aborted:\n%s", demo.output())
	}
}

func rolloutStep(t *testing.T, cluster string) int64 {
	t.Helper()
	n, _, _ := unstructured.NestedInt64(rollout(t, cluster).Object, "status", "currentStepIndex")
	return n
}
