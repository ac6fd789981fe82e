package coordinator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/internal/cli"
	"lockstep.dev/lockstep/internal/kube"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/test/fleettest"
)

// TestAPersonsAbortIsRecorded aborts a coordinated release with `lockstep
// abort`: the coordinator records who did in status.releases and in the
// ReleaseAborted Event, and the hub's admission policy refuses an
// annotation that names someone else as the one who aborted.
func TestAPersonsAbortIsRecorded(t *testing.T) {
	setup(t)
	stopLogs(t)
	a := newApp("it-abortedby")
	cleanupApp(t, a)
	deploy(t, a, imageV1, workloads...)
	waitHealthy(t, a, imageV1, 90*time.Second, workloads...)
	v1rev := getRolloutState(t, workloads[0], a).Revision
	fr := newFleetRollout("aborted-by", a)
	fr.Spec.Hold.Default = &metav1.Duration{Duration: time.Hour} // it waits at the first barrier
	createFleetRollout(t, fr)
	startCoordinator(t)
	fleettest.Eventually(t, 30*time.Second, "FleetRollout completed at v1", func() error {
		return wantPhase(t, fr.Name, v1alpha1.PhaseCompleted, v1rev)
	})
	setImage(t, a, imageV2, workloads...)
	v2rev := waitRevision(t, fr.Name, v1rev)

	var out, errOut bytes.Buffer
	if code := cli.Run([]string{"abort", fr.Name, "-n", fr.Namespace, "--kubeconfig", fleettest.F.State.Kubeconfig, "--context", local.HubName}, nil, &out, &errOut); code != 0 {
		t.Fatalf("lockstep abort: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if strings.Contains(out.String(), "not recorded") {
		t.Errorf("lockstep abort could not record who aborted:\n%s", out.String())
	}
	ctx := context.Background()
	me, err := kube.WhoAmI(fleettest.Clientset(t, local.HubName))(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fleettest.Eventually(t, 60*time.Second, "the abort recorded with its author", func() error {
		got := getFleetRollout(t, fr.Name)
		n := len(got.Status.Releases)
		if n == 0 || got.Status.Releases[n-1].Revision != v2rev || got.Status.Releases[n-1].Outcome != "Aborted" || got.Status.Releases[n-1].AbortedBy != me {
			return fmt.Errorf("releases %+v", got.Status.Releases)
		}
		return nil
	})
	fleettest.Eventually(t, 30*time.Second, "a ReleaseAborted Event naming "+me, func() error {
		for _, e := range eventsOf(t, fr.Name, "ReleaseAborted") {
			if strings.Contains(e, "revision "+v2rev+" aborted by "+me) {
				return nil
			}
		}
		return fmt.Errorf("events %v", eventsOf(t, fr.Name, "ReleaseAborted"))
	})

	// Nobody can say another aborted: the admission policy refuses it.
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		v1alpha1.AnnotationAbortedBy: "mallory", v1alpha1.AnnotationAbortedRevision: v2rev}}})
	err = hubClient(t).Patch(ctx, getFleetRollout(t, fr.Name), client.RawPatch(types.MergePatchType, patch))
	if err == nil || !strings.Contains(err.Error(), "must name the user who makes the request ("+me+"), not mallory") {
		t.Errorf("a forged aborted-by: %v", err)
	}
}

// eventsOf lists the messages of the FleetRollout's Events of reason.
func eventsOf(t testing.TB, name, reason string) []string {
	t.Helper()
	var list corev1.EventList
	if err := hubClient(t).List(context.Background(), &list, client.InNamespace("default")); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name && e.Reason == reason {
			out = append(out, e.Message)
		}
	}
	return out
}
