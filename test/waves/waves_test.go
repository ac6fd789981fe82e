// Package waves_test releases a Rollout over workload clusters of the
// local fleet in waves. Three of the four clusters in two waves,
// [argo-rollout1] then the rest, unjudged, with the hub
// coordinator running in-process under its own least-privilege
// credentials: a good release completes wave by wave, the later clusters
// waiting at their leading pause; a bad release in the later wave stops
// there and leaves the first wave on the new version, reported as such.
// All four in waves [1], [2], [rest], judged by the sequential judge on the
// meshsim-routed helloworld (judge_test.go): each wave's canary traffic is
// its own, a release failing in one second-wave cluster stops there, and a
// cluster that is not a member changes no verdict. Under -short the tests
// skip.
package waves_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1alpha1 "lockstep.dev/lockstep/api/v1alpha1"
	"lockstep.dev/lockstep/config"
	"lockstep.dev/lockstep/internal/coordinator"
	"lockstep.dev/lockstep/internal/decide"
	"lockstep.dev/lockstep/internal/lab/local"
	"lockstep.dev/lockstep/internal/rollouts"
	"lockstep.dev/lockstep/test/fleettest"
)

func TestMain(m *testing.M) {
	os.Exit(fleettest.Main(m, "../..", fleettest.Options{UpArgs: []string{"--workloads", "4", "--no-coordinator"}}))
}

// clusters are the members of the unjudged waves test; the judged ones use
// all four workloads (judge_test.go).
var clusters = []string{"argo-rollout1", "argo-rollout2", "argo-rollout3"}

const ns = "it-waves"

func manifests(image string) string { return fleettest.LeadingPauseApp(ns, image, 2) }

func apply(t *testing.T, cluster, yaml string) {
	t.Helper()
	fleettest.ApplyYAML(t, fleettest.RESTConfig(t, cluster), yaml)
}

func setImage(t *testing.T, image string) {
	t.Helper()
	body := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"helloworld","image":%q,"ports":[{"name":"http","containerPort":5000,"protocol":"TCP"}]}]}}}}`, image)
	for _, c := range clusters {
		if _, err := fleettest.Dynamic(t, c).Resource(rollouts.RolloutGVR).Namespace(ns).Patch(context.Background(), "hw", types.MergePatchType, []byte(body), metav1.PatchOptions{}); err != nil {
			t.Fatalf("%s: set image: %v", c, err)
		}
	}
}

func state(t *testing.T, cluster string) (decide.RolloutState, string) {
	t.Helper()
	return rolloutIn(t, cluster, ns, "hw")
}

// rolloutIn is the state of the Rollout namespace/name in cluster and its
// image.
func rolloutIn(t *testing.T, cluster, namespace, name string) (decide.RolloutState, string) {
	t.Helper()
	u, err := rollouts.Get(context.Background(), fleettest.Dynamic(t, cluster), namespace, name)
	if err != nil || u == nil {
		t.Fatalf("%s: rollout: %v", cluster, err)
	}
	s, err := rollouts.State(u)
	if err != nil {
		t.Fatal(err)
	}
	cs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	img, _ := cs[0].(map[string]any)["image"].(string)
	return s, img
}

func hub(t *testing.T) client.Client {
	t.Helper()
	c, err := client.New(fleettest.RESTConfig(t, local.HubName), client.Options{Scheme: coordinator.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func getFR(t *testing.T) *v1alpha1.FleetRollout {
	t.Helper()
	var fr v1alpha1.FleetRollout
	if err := hub(t).Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "waves"}, &fr); err != nil {
		t.Fatal(err)
	}
	return &fr
}

// waveStates renders the members' wave states as "name=state ...".
func waveStates(fr *v1alpha1.FleetRollout) string {
	var parts []string
	for _, m := range fr.Status.Members {
		parts = append(parts, m.Name+"="+m.WaveState)
	}
	return strings.Join(parts, " ")
}

// waitHealthy waits until the Rollout namespace/name is Healthy on its
// stable revision in every cluster.
func waitHealthy(t *testing.T, namespace, name string, clusters ...string) {
	t.Helper()
	for _, c := range clusters {
		fleettest.Eventually(t, 120*time.Second, c+" Healthy", func() error {
			if s, _ := rolloutIn(t, c, namespace, name); s.Phase != decide.PhaseHealthy || s.Revision != s.StableRevision {
				return fmt.Errorf("phase %s", s.Phase)
			}
			return nil
		})
	}
}

// installCRD puts the FleetRollout CRD on the hub.
func installCRD(t *testing.T) {
	t.Helper()
	crd, err := config.CRDs.ReadFile(config.FleetRolloutCRD)
	if err != nil {
		t.Fatal(err)
	}
	apply(t, local.HubName, string(crd))
}

func TestWavesReleaseInOrderAndStopWhereTheyFail(t *testing.T) {
	fleettest.Need(t)
	ctx := context.Background()
	installCRD(t)
	for _, c := range clusters {
		apply(t, c, manifests("docker.io/istio/examples-helloworld-v1"))
	}
	waitHealthy(t, ns, "hw", clusters...)

	fr := &v1alpha1.FleetRollout{
		ObjectMeta: metav1.ObjectMeta{Name: "waves", Namespace: "default"},
		Spec: v1alpha1.FleetRolloutSpec{
			Rollout: v1alpha1.RolloutReference{Namespace: ns, Name: "hw"},
			Members: v1alpha1.Members{Names: clusters},
			Hold:    v1alpha1.Hold{Default: &metav1.Duration{Duration: time.Second}},
			Waves: []v1alpha1.Wave{
				{Name: "first", Names: []string{"argo-rollout1"}, Soak: &metav1.Duration{Duration: 5 * time.Second}},
				{Name: "rest", Rest: true},
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
		got := getFR(t)
		if got.Status.Phase != v1alpha1.PhaseCompleted || got.Status.Fleet.Revision == "" {
			return fmt.Errorf("phase %s (%s: %s)", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		v1rev = got.Status.Fleet.Revision
		return nil
	})

	// A good release: argo-rollout1 alone, then after its soak the rest;
	// the rest wait at step 0 all along.
	setImage(t, "docker.io/istio/examples-helloworld-v2")
	seen := map[string]bool{}
	fleettest.Eventually(t, 180*time.Second, "v2 completed wave by wave", func() error {
		got := getFR(t)
		ws := waveStates(got)
		seen[ws] = true
		if strings.Contains(ws, "argo-rollout1=InCanary") || strings.Contains(ws, "argo-rollout1=Completed argo-rollout2=NotStarted") {
			for _, c := range clusters[1:] {
				if s, _ := state(t, c); s.CurrentStepIndex != nil && *s.CurrentStepIndex > 0 && s.Revision != s.StableRevision {
					t.Errorf("%s left its leading pause (step %d) while the first wave ran: %s", c, *s.CurrentStepIndex, ws)
				}
			}
		}
		if got.Status.Phase != v1alpha1.PhaseCompleted || got.Status.Fleet.Revision == v1rev || ws != "argo-rollout1=Completed argo-rollout2=Completed argo-rollout3=Completed" {
			return fmt.Errorf("phase %s (%s: %s) %s", got.Status.Phase, got.Status.Reason, got.Status.Message, ws)
		}
		return nil
	})
	for _, want := range []string{
		"argo-rollout1=InCanary argo-rollout2=NotStarted argo-rollout3=NotStarted",
		"argo-rollout1=Completed argo-rollout2=InCanary argo-rollout3=InCanary",
	} {
		if !seen[want] {
			t.Errorf("never saw %q; saw %v", want, seen)
		}
	}
	for _, c := range clusters {
		if s, img := state(t, c); img != "docker.io/istio/examples-helloworld-v2" || s.Revision != s.StableRevision {
			t.Errorf("%s: image %s, revision %s stable %s", c, img, s.Revision, s.StableRevision)
		}
	}

	// A bad release: argo-rollout2 fails in the second wave (its own
	// abort, as Argo's analysis would). The release stops there.
	setImage(t, "docker.io/istio/examples-helloworld-v3")
	fleettest.Eventually(t, 120*time.Second, "second wave of v3 in canary", func() error {
		got := getFR(t)
		if ws := waveStates(got); ws != "argo-rollout1=Completed argo-rollout2=InCanary argo-rollout3=InCanary" {
			return fmt.Errorf("%s (%s: %s)", ws, got.Status.Reason, got.Status.Message)
		}
		if s, _ := state(t, "argo-rollout2"); s.CurrentStepIndex == nil || *s.CurrentStepIndex < 1 {
			return fmt.Errorf("argo-rollout2 not past its leading pause yet")
		}
		return nil
	})
	if _, err := fleettest.Dynamic(t, "argo-rollout2").Resource(rollouts.RolloutGVR).Namespace(ns).Patch(ctx, "hw", types.MergePatchType,
		[]byte(`{"status":{"abort":true}}`), metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
	fleettest.Eventually(t, 60*time.Second, "release stopped in the second wave", func() error {
		got := getFR(t)
		ws := waveStates(got)
		if got.Status.Phase != v1alpha1.PhaseAborted || got.Status.Fleet.AbortReason != string(decide.ReasonMemberAborted) ||
			ws != "argo-rollout1=Completed argo-rollout2=Aborted argo-rollout3=Aborted" {
			return fmt.Errorf("phase %s (%s) %s", got.Status.Phase, got.Status.Fleet.AbortReason, ws)
		}
		if s, _ := state(t, "argo-rollout3"); !s.Aborted {
			return fmt.Errorf("argo-rollout3 not aborted")
		}
		return nil
	})
	if s, img := state(t, "argo-rollout1"); img != "docker.io/istio/examples-helloworld-v3" || s.Revision != s.StableRevision || s.Aborted {
		t.Errorf("argo-rollout1 should stay on v3: image %s, revision %s stable %s aborted %v", img, s.Revision, s.StableRevision, s.Aborted)
	}
}
