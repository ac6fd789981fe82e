package kube

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

// FieldManager is the server-side apply manager of everything Lockstep applies.
const FieldManager = "lockstep"

// DecodeYAML splits a multi-document YAML (or JSON) stream into objects,
// skipping empty documents and List wrappers' emptiness.
func DecodeYAML(data []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*unstructured.Unstructured
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("document %d: missing apiVersion or kind", i)
		}
		if u.IsList() {
			l, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("document %d: %w", i, err)
			}
			for j := range l.Items {
				out = append(out, &l.Items[j])
			}
			continue
		}
		out = append(out, u)
	}
}

// Applier applies objects with server-side apply to one cluster.
type Applier struct {
	Dynamic dynamic.Interface
	Mapper  meta.ResettableRESTMapper
	// DryRun sends every request with dryRun=All: nothing is persisted.
	DryRun bool
}

// NewApplier builds an Applier whose REST mapping follows discovery and is
// refreshed when a kind is unknown (for instance right after a CRD).
func NewApplier(cfg *rest.Config) (*Applier, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Applier{Dynamic: dyn, Mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// Resource returns the dynamic resource interface for an object.
func (a *Applier) Resource(gvk schema.GroupVersionKind, namespace string) (dynamic.ResourceInterface, error) {
	m, err := a.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		a.Mapper.Reset()
		m, err = a.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if namespace == "" {
			namespace = metav1.NamespaceDefault
		}
		return a.Dynamic.Resource(m.Resource).Namespace(namespace), nil
	}
	return a.Dynamic.Resource(m.Resource), nil
}

// Apply server-side applies each object, forcing ownership of the fields it
// sets (Lockstep is the declared owner of what it installs).
func (a *Applier) Apply(ctx context.Context, objs ...*unstructured.Unstructured) error {
	for _, o := range objs {
		if _, err := a.ApplyOne(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// ApplyOne server-side applies one object and returns what the API server
// answered (the object as stored, with its resourceVersion).
func (a *Applier) ApplyOne(ctx context.Context, o *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	ri, err := a.Resource(o.GroupVersionKind(), o.GetNamespace())
	if err != nil {
		return nil, fmt.Errorf("apply %s %s: %w", o.GetKind(), o.GetName(), err)
	}
	{
		o = o.DeepCopy()
		o.SetManagedFields(nil)
		o.SetResourceVersion("")
		body, err := o.MarshalJSON()
		if err != nil {
			return nil, err
		}
		force := true
		// Strict: an unknown or duplicated field is an error, not a
		// warning, so a typo in a manifest never applies half of it.
		opts := metav1.PatchOptions{FieldManager: FieldManager, Force: &force, FieldValidation: "Strict"}
		if a.DryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		got, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, opts)
		if err != nil {
			return nil, fmt.Errorf("apply %s %s: %w", o.GetKind(), nsName(o), err)
		}
		return got, nil
	}
}

func nsName(o *unstructured.Unstructured) string {
	if o.GetNamespace() == "" {
		return o.GetName()
	}
	return o.GetNamespace() + "/" + o.GetName()
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// WaitEstablished waits until every named CRD reports Established.
func WaitEstablished(ctx context.Context, dyn dynamic.Interface, names []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, n := range names {
		for {
			u, err := dyn.Resource(crdGVR).Get(ctx, n, metav1.GetOptions{})
			if err == nil && conditionTrue(u, "Established") {
				break
			}
			if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
				// Transient: keep polling until the deadline.
				_ = err
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("CRD %s not established: %w", n, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func conditionTrue(u *unstructured.Unstructured, typ string) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == typ && m["status"] == "True" {
			return true
		}
	}
	return false
}

// ReadYAML reads and decodes a multi-document YAML file of fsys (the
// embedded manifests, the GitOps tree); errors name the path.
func ReadYAML(fsys fs.FS, path string) ([]*unstructured.Unstructured, error) {
	b, err := fs.ReadFile(fsys, path)
	if err != nil {
		return nil, err
	}
	objs, err := DecodeYAML(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return objs, nil
}

// ReadYAMLs is ReadYAML of several files, in order.
func ReadYAMLs(fsys fs.FS, paths ...string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, p := range paths {
		objs, err := ReadYAML(fsys, p)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

// Object builds an object Lockstep writes itself: top-level fields (spec,
// data, rules, ...), its name and namespace (empty: cluster-scoped), and
// the app.kubernetes.io/managed-by=lockstep label.
func Object(apiVersion, kind, namespace, name string, fields map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	for k, v := range fields {
		u.Object[k] = v
	}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetName(name)
	if namespace != "" {
		u.SetNamespace(namespace)
	}
	u.SetLabels(map[string]string{"app.kubernetes.io/managed-by": "lockstep"})
	return u
}
