package istio

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartv2util "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"

	"lockstep.dev/lockstep/internal/kube"
)

// release is one chart installation, as `helm install NAME CHART -n NS
// --set ...` would make it.
type release struct {
	// Chart is the chart's directory inside the istio module.
	Chart     string
	Name      string
	Namespace string
	Values    map[string]any
}

// releaseService is what the charts' app.kubernetes.io/managed-by label
// says. Helm's renderer says "Helm", but no Helm release (no release
// Secret, no revision) ever exists for these objects: they are Lockstep's,
// applied with its field manager, and the label says so.
const releaseService = "lockstep"

// render renders a chart the way `helm install` would for a first install
// (IsInstall, revision 1) and returns its objects in apply order: chart
// CRDs and templated CRDs first (Apply waits for them to be established),
// then Namespaces, then everything else in Helm's install order.
// NOTES.txt and empty documents are dropped. Objects a template left
// without a namespace get the release's when namespaced says they need
// one, as Helm's kube client does.
//
// Rendering is deterministic: the same chart, values and capabilities give
// the same objects, so applying them again changes nothing.
func render(chartDir string, r release, caps *common.Capabilities, namespaced func(*unstructured.Unstructured) bool) ([]*unstructured.Unstructured, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", r.Chart, err)
	}
	if caps == nil {
		caps = common.DefaultCapabilities
	}
	if c := ch.Metadata.KubeVersion; c != "" && !chartv2util.IsCompatibleRange(c, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart %s requires Kubernetes %s, the cluster runs %s", r.Chart, c, caps.KubeVersion.Version)
	}
	vals, err := chartutil.ToRenderValues(ch, r.Values,
		common.ReleaseOptions{Name: r.Name, Namespace: r.Namespace, Revision: 1, IsInstall: true}, caps)
	if err != nil {
		return nil, fmt.Errorf("values of %s (%s): %w", r.Name, r.Chart, err)
	}
	if rel, ok := vals["Release"].(map[string]any); ok {
		rel["Service"] = releaseService
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		return nil, fmt.Errorf("render %s (%s): %w", r.Name, r.Chart, err)
	}

	var objs []*unstructured.Unstructured
	for _, crd := range ch.CRDObjects() {
		o, err := kube.DecodeYAML(crd.File.Data)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.Chart, crd.Filename, err)
		}
		objs = append(objs, o...)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.HasSuffix(n, "NOTES.txt") || path.Ext(n) == ".txt" || strings.TrimSpace(files[n]) == "" {
			continue
		}
		o, err := kube.DecodeYAML([]byte(files[n]))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		objs = append(objs, o...)
	}
	for _, o := range objs {
		prune(o.Object)
		if o.GetNamespace() == "" && namespaced != nil && namespaced(o) {
			o.SetNamespace(r.Namespace)
		}
	}
	sortForApply(objs)
	return objs, nil
}

// prune drops what a template wrote as null (`env:` with no items) and the
// empty annotations and labels maps of metadata (`annotations: {}`). They
// mean "unset", but server-side apply does not record ownership of an empty
// map while the live object has none, and does once a controller has added
// a key (the Deployment controller's revision annotation): the second apply
// of unchanged objects would then rewrite managedFields, a change.
func prune(m map[string]any) {
	for k, v := range m {
		switch v := v.(type) {
		case nil:
			delete(m, k)
		case map[string]any:
			prune(v)
			if k == "metadata" {
				for _, f := range []string{"annotations", "labels"} {
					if x, ok := v[f].(map[string]any); ok && len(x) == 0 {
						delete(v, f)
					}
				}
			}
		case []any:
			for _, e := range v {
				if em, ok := e.(map[string]any); ok {
					prune(em)
				}
			}
		}
	}
}

// sortForApply orders objects CRDs, Namespaces, then Helm's InstallOrder;
// kinds Helm does not know (ValidatingAdmissionPolicy, custom resources)
// come last. The sort is stable, so objects of a kind keep the chart's
// order.
func sortForApply(objs []*unstructured.Unstructured) {
	rank := func(o *unstructured.Unstructured) int {
		switch o.GetKind() {
		case "CustomResourceDefinition":
			return 0
		case "Namespace":
			return 1
		}
		if i := slices.Index(releaseutil.InstallOrder, o.GetKind()); i >= 0 {
			return 2 + i
		}
		return 2 + len(releaseutil.InstallOrder)
	}
	sort.SliceStable(objs, func(i, j int) bool { return rank(objs[i]) < rank(objs[j]) })
}

// capabilities are what a chart's .Capabilities would be against the
// cluster: its Kubernetes version and API group versions from discovery.
func capabilities(dc discovery.DiscoveryInterface) (*common.Capabilities, error) {
	v, err := dc.ServerVersion()
	if err != nil {
		return nil, fmt.Errorf("server version: %w", err)
	}
	kv, err := common.ParseKubeVersion(v.GitVersion)
	if err != nil {
		return nil, fmt.Errorf("parse server version %q: %w", v.GitVersion, err)
	}
	caps := &common.Capabilities{KubeVersion: *kv, APIVersions: common.DefaultVersionSet,
		HelmVersion: common.DefaultCapabilities.HelmVersion}
	groups, err := dc.ServerGroups()
	if err != nil {
		return nil, fmt.Errorf("server groups: %w", err)
	}
	var vs common.VersionSet
	for _, g := range groups.Groups {
		for _, gv := range g.Versions {
			vs = append(vs, gv.GroupVersion)
		}
	}
	if len(vs) > 0 {
		sort.Strings(vs)
		caps.APIVersions = vs
	}
	return caps, nil
}

// ignoreWebhookFailures sets failurePolicy Ignore on every webhook of the
// Mutating- and ValidatingWebhookConfigurations among objs and returns how
// many it set. It is the one change made for a simulated data plane: kwok
// nodes run no istiod, so nothing will ever answer those webhooks, and with
// Istio's Fail the apiserver would refuse every pod in an injected
// namespace and every Istio resource.
func ignoreWebhookFailures(objs []*unstructured.Unstructured) (int, error) {
	n := 0
	for _, o := range objs {
		if o.GetAPIVersion() != "admissionregistration.k8s.io/v1" ||
			(o.GetKind() != "MutatingWebhookConfiguration" && o.GetKind() != "ValidatingWebhookConfiguration") {
			continue
		}
		hooks, _, err := unstructured.NestedSlice(o.Object, "webhooks")
		if err != nil {
			return n, fmt.Errorf("%s %s: webhooks: %w", o.GetKind(), o.GetName(), err)
		}
		for _, h := range hooks {
			m, ok := h.(map[string]any)
			if !ok {
				return n, fmt.Errorf("%s %s: a webhook is not an object", o.GetKind(), o.GetName())
			}
			m["failurePolicy"] = "Ignore"
			n++
		}
		if err := unstructured.SetNestedSlice(o.Object, hooks, "webhooks"); err != nil {
			return n, fmt.Errorf("%s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return n, nil
}
