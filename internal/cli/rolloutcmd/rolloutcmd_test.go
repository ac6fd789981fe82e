package rolloutcmd

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"lockstep.dev/lockstep/internal/cli/streams"
	"lockstep.dev/lockstep/internal/fleet"
)

func pausedRollout() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": "helloworld", "namespace": "helloworld"},
		"spec": map[string]any{"strategy": map[string]any{"canary": map[string]any{"steps": []any{
			map[string]any{"setWeight": int64(10)}, map[string]any{"pause": map[string]any{}}, map[string]any{"setWeight": int64(50)},
		}}}},
		"status": map[string]any{
			"currentPodHash": "new", "stableRS": "old", "currentStepIndex": int64(1),
			"pauseConditions": []any{map[string]any{"reason": "CanaryPauseStep"}},
		},
	}}
}

type patch struct{ subresource, body string }

// fakeCluster is a dynamic client holding one Rollout that records the
// patches it receives.
func fakeCluster(t *testing.T) (dynamic.Interface, *[]patch) {
	t.Helper()
	gvr := schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	c := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "RolloutList"}, pausedRollout())
	var got []patch
	c.PrependReactor("patch", "rollouts", func(a k8stesting.Action) (bool, runtime.Object, error) {
		p := a.(k8stesting.PatchAction)
		got = append(got, patch{p.GetSubresource(), string(p.GetPatch())})
		return true, pausedRollout(), nil
	})
	return c, &got
}

// The patches must be byte for byte what the Argo Rollouts kubectl plugin
// (v1.10.1) sends, so that the controller treats them exactly the same.
func TestVerbsSendThePluginPatches(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		verb Verb
		full bool
		want []patch
	}{
		{Abort, false, []patch{{"status", `{"status":{"abort":true}}`}}},
		{Retry, false, []patch{{"status", `{"status":{"abort":false}}`}}},
		{Pause, false, []patch{{"", `{"spec":{"paused":true}}`}}},
		{Resume, false, []patch{{"", `{"spec":{"paused":false}}`}}},
		{Promote, false, []patch{{"status", `{"status":{"pauseConditions":null}}`}}},
		{Promote, true, []patch{{"status", `{"status":{"promoteFull":true}}`}}},
	} {
		t.Run(string(tc.verb), func(t *testing.T) {
			t.Parallel()
			c1, got1 := fakeCluster(t)
			c2, got2 := fakeCluster(t)
			clients := map[string]dynamic.Interface{"a": c1, "b": c2}
			res := Apply(context.Background(), func(_ context.Context, n string) (dynamic.Interface, error) { return clients[n], nil },
				[]string{"a", "b"}, "helloworld", "helloworld", Action(tc.verb, tc.full))
			for _, r := range res {
				if r.Err != nil {
					t.Fatalf("%s: %v", r.Cluster, r.Err)
				}
			}
			for name, got := range map[string][]patch{"a": *got1, "b": *got2} {
				if len(got) != len(tc.want) {
					t.Fatalf("cluster %s got patches %v, want %v", name, got, tc.want)
				}
				for i := range got {
					if got[i] != tc.want[i] {
						t.Errorf("cluster %s patch %d = %+v, want %+v", name, i, got[i], tc.want[i])
					}
				}
			}
		})
	}
}

func TestFailedClusterIsNamedAndFails(t *testing.T) {
	t.Parallel()
	ok, _ := fakeCluster(t)
	clientFor := func(_ context.Context, n string) (dynamic.Interface, error) {
		if n == "down" {
			return nil, &fleet.NotConnectedError{Cluster: "down", Err: errors.New("dial tcp: connection refused\nsecond line")}
		}
		return ok, nil
	}
	res := Apply(context.Background(), clientFor, []string{"up", "down"}, "helloworld", "helloworld", Action(Abort, false))
	var out, errOut bytes.Buffer
	err := Report(&out, &errOut, Abort, "helloworld/helloworld", res, "")
	if err == nil || !strings.Contains(err.Error(), "1 of 2") || !strings.Contains(err.Error(), "down") {
		t.Fatalf("Report error = %v, want the failed cluster named", err)
	}
	if got := out.String(); got != "up: rollout helloworld/helloworld aborted\n" {
		t.Errorf("stdout = %q", got)
	}
	lines := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "down: ") {
		t.Errorf("stderr = %q, want one line naming the cluster", errOut.String())
	}
}

// Flag mistakes fail before any cluster is contacted (no kubeconfig is
// needed to see them), each as one line.
func TestFlagValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		verb Verb
		args []string
		want string
	}{
		{Abort, []string{"--full"}, "unknown flag: --full"},
		{Promote, []string{"--rollout", "helloworld"}, "want NAMESPACE/NAME"},
		{Retry, []string{"fr", "--clusters", "a,b"}, "either a FleetRollout or --clusters"},
		{Pause, []string{"a", "b"}, "accepts at most 1 arg"},
		{Resume, []string{"--clusters", "a", "--selector", "x=y"}, "--selector"},
	} {
		t.Run(string(tc.verb), func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			cmd := NewCommand(streams.IO{Out: &out, ErrOut: &errOut}, tc.verb)
			cmd.SetArgs(tc.args)
			cmd.SetOut(&out)
			cmd.SetErr(&errOut)
			cmd.SilenceUsage, cmd.SilenceErrors = true, true
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("%s %v: err = %v, want one line containing %q", tc.verb, tc.args, err, tc.want)
			}
		})
	}
}

func TestEveryVerbHasHelpWithExample(t *testing.T) {
	t.Parallel()
	for _, v := range []Verb{Promote, Abort, Retry, Pause, Resume} {
		cmd := NewCommand(streams.IO{}, v)
		if cmd.Short == "" || cmd.Long == "" || !strings.Contains(cmd.Example, "lockstep "+string(v)) {
			t.Errorf("%s: help or example missing", v)
		}
	}
}
