package install_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/utils/ptr"

	"lockstep.dev/lockstep/internal/deploy"
	"lockstep.dev/lockstep/test/fleettest"
)

// warnings collects the warnings the apiserver returns (deprecated APIs,
// Pod Security violations of a Deployment's template).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// TestInstallWithoutLabDryRun server-side applies both ways to install the
// coordinator without the lab, the kustomize base (config/default) and the
// Helm chart (charts/lockstep), to the fleet's hub with dryRun=All: the
// real apiserver validates, defaults and admits every object, and nothing
// is stored.
//
// The install holds no object of its own CRD's kinds, so the CRD is dry-run
// like the rest. Only a scratch namespace is created for real, since a
// namespaced dry run needs its namespace to exist: both renderings go
// there (the kustomize base through an overlay, the chart as its release
// namespace), which also proves they move with the namespace. It enforces
// the restricted Pod Security Standard, and any warning the apiserver
// returns (a Deployment whose pods it would refuse, a deprecated API)
// fails the test.
func TestInstallWithoutLabDryRun(t *testing.T) {
	fleettest.Need(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cfg := fleettest.RESTConfig(t, "argo-hub")
	w := &warnings{}
	cfg.WarningHandler = w
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	version, err := dc.ServerVersion()
	if err != nil {
		t.Fatal(err)
	}

	ns := "lockstep-dryrun-" + utilrand.String(5)
	restricted := map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: restricted}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", ns, err)
		}
	})

	k, err := deploy.Kustomize("../../config/default", ns)
	if err != nil {
		t.Fatal(err)
	}
	h, err := deploy.Helm("../../charts/lockstep", deploy.HelmOptions{Namespace: ns, KubeVersion: version.GitVersion})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		name string
		objs []*unstructured.Unstructured
	}{{"kustomize", k}, {"helm", h}} {
		t.Run(r.name, func(t *testing.T) {
			w.take()
			for _, o := range r.objs {
				if err := dryRunApply(ctx, dyn, mapper, o); err != nil {
					t.Errorf("%s: %v", deploy.Key(o), err)
				}
				for _, msg := range w.take() {
					t.Errorf("%s: apiserver warning: %s", deploy.Key(o), msg)
				}
			}
			t.Logf("%d objects accepted: %s", len(r.objs), strings.Join(deploy.Keys(r.objs), ", "))
		})
	}

	// A dry run stores nothing.
	if _, err := cs.AppsV1().Deployments(ns).Get(ctx, "lockstep-coordinator", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get the dry-run Deployment: %v, want NotFound", err)
	}
}

// dryRunApply server-side applies o with dryRun=All. Force takes fields
// over from other managers (the lab's installer, on a hub where it ran):
// the object is judged, not who owns it.
func dryRunApply(ctx context.Context, dyn dynamic.Interface, mapper meta.RESTMapper, o *unstructured.Unstructured) error {
	gvk := o.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("map %s: %w", gvk, err)
	}
	var res dynamic.ResourceInterface = dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if o.GetNamespace() == "" {
			return fmt.Errorf("namespaced %s without a namespace", gvk.Kind)
		}
		res = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
	}
	data, err := json.Marshal(o.Object)
	if err != nil {
		return err
	}
	_, err = res.Patch(ctx, o.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
		DryRun:       []string{metav1.DryRunAll},
		FieldManager: "lockstep-install-dryrun",
		Force:        ptr.To(true),
	})
	return err
}
