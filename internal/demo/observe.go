package demo

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"lockstep.dev/lockstep/internal/rollouts"
)

var (
	rolloutGVR     = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	analysisRunGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "analysisruns"}
	appGVR         = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}
)

// ClusterView is what the demo shows of one cluster at one moment.
type ClusterView struct {
	Cluster string `json:"cluster"`
	Image   string `json:"image"`
	// ErrorRate is the pod template's fault annotation ("" when none).
	ErrorRate string `json:"errorRate,omitempty"`
	Phase     string `json:"phase"`
	Message   string `json:"message,omitempty"`
	Step      int64  `json:"step"`
	Steps     int    `json:"steps"`
	Aborted   bool   `json:"aborted"`
	Stable    string `json:"stableRS"`
	Current   string `json:"currentPodHash"`
	// Observed is false while the controller has not seen the latest spec:
	// status then describes the previous revision.
	Observed bool `json:"observed"`
	// Weights of the VirtualService route: stable/canary.
	StableWeight int64  `json:"stableWeight"`
	CanaryWeight int64  `json:"canaryWeight"`
	Analysis     string `json:"analysis,omitempty"` // phase of the newest AnalysisRun
	Err          string `json:"error,omitempty"`
}

func (v ClusterView) key() string {
	return fmt.Sprintf("%s|%s|%d|%v|%d/%d|%s|%s|%v", v.Image, v.Phase, v.Step, v.Aborted, v.StableWeight, v.CanaryWeight, v.Analysis, v.Err, v.Observed)
}

// Line is one progress line.
func (v ClusterView) Line() string {
	if v.Err != "" {
		return fmt.Sprintf("%-14s unreachable: %s", v.Cluster, v.Err)
	}
	s := fmt.Sprintf("%-14s %-11s step %2d/%d  weights stable %3d / canary %3d  image %s", v.Cluster, v.Phase, v.Step, v.Steps, v.StableWeight, v.CanaryWeight, imageVersion(v.Image))
	if v.Analysis != "" {
		s += "  analysis " + v.Analysis
	}
	if v.Aborted {
		s += "  ABORTED"
	}
	return s
}

func imageVersion(image string) string {
	if i := strings.LastIndex(image, "-"); i >= 0 {
		return image[i+1:]
	}
	return image
}

// observe reads the Rollout, its VirtualService and its newest AnalysisRun.
func observe(ctx context.Context, cluster string, dyn dynamic.Interface, ns, name string) ClusterView {
	v := ClusterView{Cluster: cluster}
	ro, err := dyn.Resource(rolloutGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		v.Err = firstLine(err.Error())
		return v
	}
	containers, _, _ := unstructured.NestedSlice(ro.Object, "spec", "template", "spec", "containers")
	if len(containers) > 0 {
		if c, ok := containers[0].(map[string]any); ok {
			v.Image, _ = c["image"].(string)
		}
	}
	v.ErrorRate, _, _ = unstructured.NestedString(ro.Object, "spec", "template", "metadata", "annotations", ErrorRateAnnot)
	v.Phase, _, _ = unstructured.NestedString(ro.Object, "status", "phase")
	v.Message, _, _ = unstructured.NestedString(ro.Object, "status", "message")
	v.Step, _, _ = unstructured.NestedInt64(ro.Object, "status", "currentStepIndex")
	steps, _, _ := unstructured.NestedSlice(ro.Object, "spec", "strategy", "canary", "steps")
	v.Steps = len(steps)
	v.Aborted, _, _ = unstructured.NestedBool(ro.Object, "status", "abort")
	v.Stable, _, _ = unstructured.NestedString(ro.Object, "status", "stableRS")
	v.Current, _, _ = unstructured.NestedString(ro.Object, "status", "currentPodHash")
	// Argo Rollouts writes observedGeneration as a string.
	og, _, _ := unstructured.NestedFieldNoCopy(ro.Object, "status", "observedGeneration")
	v.Observed = fmt.Sprint(og) == fmt.Sprint(ro.GetGeneration())
	// The weights of the route the Rollout itself manages.
	if w, err := rollouts.TrafficWeights(ctx, dyn, ro); err == nil && w != nil {
		v.StableWeight, v.CanaryWeight = int64(w.Stable), int64(w.Canary)
	}
	if runs, err := dyn.Resource(analysisRunGVR).Namespace(ns).List(ctx, metav1.ListOptions{}); err == nil {
		var newest *unstructured.Unstructured
		for i := range runs.Items {
			r := &runs.Items[i]
			if newest == nil || newerRun(r, newest) {
				newest = r
			}
		}
		if newest != nil && newest.GetLabels()["rollouts-pod-template-hash"] == v.Current {
			v.Analysis, _, _ = unstructured.NestedString(newest.Object, "status", "phase")
			if v.Analysis == "" {
				v.Analysis = "Pending"
			}
		}
	}
	return v
}

// newerRun orders AnalysisRuns by creation time, then name (Rollouts
// suffixes a run's name with a counter).
func newerRun(a, b *unstructured.Unstructured) bool {
	ta, tb := a.GetCreationTimestamp().Time, b.GetCreationTimestamp().Time
	if !ta.Equal(tb) {
		return ta.After(tb)
	}
	return a.GetName() > b.GetName()
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
