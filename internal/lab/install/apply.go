package install

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"lockstep.dev/lockstep/internal/kube"
)

// Counts is what applies did to a cluster: objects created, changed, and
// left as they were.
type Counts struct {
	Created, Changed, Unchanged int
	// Touched names the created or changed objects (kind/ns/name), so a
	// run that should have changed nothing says what it did change.
	Touched []string
}

func (n *Counts) add(o Counts) {
	n.Created += o.Created
	n.Changed += o.Changed
	n.Unchanged += o.Unchanged
	n.Touched = append(n.Touched, o.Touched...)
}

// String is "3 created, 1 changed, 40 unchanged".
func (n Counts) String() string {
	return fmt.Sprintf("%d created, %d changed, %d unchanged", n.Created, n.Changed, n.Unchanged)
}

// Apply server-side applies objects to a cluster in order, waiting for the
// CRDs among them to be established before applying what follows them, and
// counts what changed (an object is unchanged when the apply left its
// resourceVersion as it was).
func (c *Context) Apply(cl *Cluster, objs ...*unstructured.Unstructured) error {
	var crds []string
	for i, o := range objs {
		if len(crds) > 0 && o.GetKind() != "CustomResourceDefinition" && !c.DryRun {
			if err := kube.WaitEstablished(c, cl.Applier.Dynamic, crds, time.Minute); err != nil {
				return fmt.Errorf("%s: %w", cl.Name, err)
			}
			crds = nil
		}
		if len(o.GetLabels()) == 0 {
			// An object with no field but its name (Argo Rollouts' empty
			// notification Secret) is re-owned by every apply and would
			// count as changed on each run: give it one field Lockstep owns.
			o = o.DeepCopy()
			o.SetLabels(map[string]string{"app.kubernetes.io/managed-by": "lockstep"})
		}
		n, err := applyOne(c, cl, o)
		if err != nil {
			return fmt.Errorf("%s: object %d of %d: %w", cl.Name, i+1, len(objs), err)
		}
		if c.counts != nil {
			c.counts.add(n)
		}
		if o.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, o.GetName())
		}
	}
	if len(crds) > 0 && !c.DryRun {
		return kube.WaitEstablished(c, cl.Applier.Dynamic, crds, time.Minute)
	}
	return nil
}

func applyOne(ctx context.Context, cl *Cluster, o *unstructured.Unstructured) (Counts, error) {
	ri, err := cl.Applier.Resource(o.GroupVersionKind(), o.GetNamespace())
	if err != nil {
		return Counts{}, fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
	}
	cur, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return Counts{}, fmt.Errorf("get %s %s: %w", o.GetKind(), o.GetName(), err)
	}
	if err != nil {
		cur = nil
	}
	after, err := cl.Applier.ApplyOne(ctx, o)
	if err != nil {
		return Counts{}, err
	}
	id := o.GetKind() + "/" + o.GetName()
	if o.GetNamespace() != "" {
		id = o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
	}
	switch {
	case cur == nil:
		return Counts{Created: 1, Touched: []string{id}}, nil
	case !cl.Applier.DryRun && after.GetResourceVersion() == cur.GetResourceVersion():
		return Counts{Unchanged: 1}, nil
	case !cl.Applier.DryRun && sameContent(withoutStatus(cur), withoutStatus(after)):
		// The resourceVersion moved but nothing the apply owns did: a
		// controller wrote the object's status in between (an admission
		// policy's type checking, a Deployment's rollout).
		return Counts{Unchanged: 1}, nil
	case cl.Applier.DryRun && sameContent(cur, after):
		// A dry run writes nothing, so the resourceVersion never moves:
		// compare what would be stored instead.
		return Counts{Unchanged: 1}, nil
	}
	return Counts{Changed: 1, Touched: []string{id}}, nil
}

// withoutStatus is u without its status, which its controller writes.
func withoutStatus(u *unstructured.Unstructured) *unstructured.Unstructured {
	c := u.DeepCopy()
	delete(c.Object, "status")
	return c
}

// sameContent compares two versions of an object, ignoring the bookkeeping
// a write changes by itself.
func sameContent(a, b *unstructured.Unstructured) bool {
	strip := func(u *unstructured.Unstructured) map[string]any {
		c := u.DeepCopy()
		c.SetManagedFields(nil)
		c.SetResourceVersion("")
		c.SetGeneration(0)
		return c.Object
	}
	return equality.Semantic.DeepEqual(strip(a), strip(b))
}

// Namespace returns a Namespace object with labels, and Lockstep's
// managed-by label (an apply of a Namespace with no fields at all would
// re-own its metadata on every run and count as a change).
func Namespace(name string, labels map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("Namespace")
	u.SetName(name)
	u.SetLabels(merge(labels, map[string]string{"app.kubernetes.io/managed-by": "lockstep"}))
	return u
}

// EnsureSecret returns the data of a Secret, creating it with gen's data
// when it does not exist yet. It is how generated credentials are made once
// and then shared by every component and every later run. Values are never
// printed.
func (c *Context) EnsureSecret(cl *Cluster, namespace, name string, labels map[string]string, gen func() (map[string][]byte, error)) (map[string][]byte, error) {
	sc := cl.Kube.CoreV1().Secrets(namespace)
	if s, err := sc.Get(c, name, metav1.GetOptions{}); err == nil {
		if c.counts != nil {
			c.counts.Unchanged++
		}
		return s.Data, nil
	} else if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%s: get secret %s/%s: %w", cl.Name, namespace, name, err)
	}
	data, err := gen()
	if err != nil {
		return nil, fmt.Errorf("%s: generate secret %s/%s: %w", cl.Name, namespace, name, err)
	}
	// Created if missing, never applied: an apply here would take the
	// Namespace's fields from the action that owns it (labels included).
	nso := metav1.CreateOptions{}
	if c.DryRun {
		nso.DryRun = []string{metav1.DryRunAll}
	}
	if _, err := cl.Kube.CoreV1().Namespaces().Create(c, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, nso); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("%s: create namespace %s: %w", cl.Name, namespace, err)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace,
		Labels: merge(labels, map[string]string{"app.kubernetes.io/managed-by": "lockstep"})}, Data: data}
	opts := metav1.CreateOptions{FieldManager: kube.FieldManager}
	if c.DryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	if _, err := sc.Create(c, s, opts); err != nil {
		if apierrors.IsAlreadyExists(err) {
			// Another run made it first: theirs wins, so everyone agrees.
			got, gerr := sc.Get(c, name, metav1.GetOptions{})
			if gerr != nil {
				return nil, gerr
			}
			return got.Data, nil
		}
		return nil, fmt.Errorf("%s: create secret %s/%s: %w", cl.Name, namespace, name, err)
	}
	if c.counts != nil {
		c.counts.Created++
		c.counts.Touched = append(c.counts.Touched, "Secret/"+namespace+"/"+name)
	}
	return data, nil
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// WaitDeployments waits until the named Deployments (all of the namespace
// when none are named) have every replica updated and available.
func (c *Context) WaitDeployments(cl *Cluster, namespace string, names ...string) error {
	if c.DryRun {
		return nil
	}
	var pending []string
	err := wait.PollUntilContextTimeout(c, time.Second, c.Settings.Timeout, true, func(ctx context.Context) (bool, error) {
		p, err := notAvailable(ctx, cl.Kube, namespace, names)
		if err != nil {
			if ctx.Err() == nil {
				pending = []string{firstLine(err.Error())}
			}
			return false, nil
		}
		pending = p
		return len(pending) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("%s: deployments not available in %s after %s: %s", cl.Name, namespace, c.Settings.Timeout, strings.Join(pending, ", "))
	}
	return nil
}

func notAvailable(ctx context.Context, kc kubernetes.Interface, namespace string, names []string) ([]string, error) {
	list, err := kc.AppsV1().Deployments(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	byName := map[string]*appsv1.Deployment{}
	for i := range list.Items {
		byName[list.Items[i].Name] = &list.Items[i]
	}
	if len(names) == 0 {
		for n := range byName {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	var pending []string
	for _, n := range names {
		d, ok := byName[n]
		if !ok {
			pending = append(pending, n+" (missing)")
			continue
		}
		if !DeploymentAvailable(d) {
			pending = append(pending, fmt.Sprintf("%s (%d/%d available)", n, d.Status.AvailableReplicas, replicas(d)))
		}
	}
	return pending, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// DeploymentAvailable is kubectl rollout status's test: the controller saw
// the latest spec and every replica is updated and available.
func DeploymentAvailable(d *appsv1.Deployment) bool {
	want := replicas(d)
	return d.Status.ObservedGeneration >= d.Generation &&
		d.Status.UpdatedReplicas == want && d.Status.AvailableReplicas == want && d.Status.Replicas == want
}

// detectDataPlane calls a cluster simulated when it has nodes and every one
// is managed by kwok.
func detectDataPlane(ctx context.Context, kc kubernetes.Interface) (DataPlane, error) {
	nodes, err := kc.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("list nodes: %w", err)
	}
	if len(nodes.Items) == 0 {
		return DataPlaneReal, nil
	}
	for _, n := range nodes.Items {
		if n.Annotations["kwok.x-k8s.io/node"] != "fake" {
			return DataPlaneReal, nil
		}
	}
	return DataPlaneSimulated, nil
}
