package deploy

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartv2util "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"lockstep.dev/lockstep/internal/kube"
)

// DefaultNamespace is where both renderings install the coordinator unless
// told otherwise: config/default's namespace, and the namespace the README
// gives `helm install`.
const DefaultNamespace = "lockstep-system"

// KubeVersion is the Kubernetes version the chart is rendered for when
// HelmOptions names none. Helm's client-only default (v1.20 under `go
// test`) is older than the chart's kubeVersion.
const KubeVersion = "v1.33.0"

// Kustomize builds the kustomization in dir as `kustomize build dir` does
// (load restrictions on, no plugins). With a namespace other than "" it
// builds an overlay of dir that sets that namespace instead, the way a user
// would move the install elsewhere.
func Kustomize(dir, namespace string) ([]*unstructured.Unstructured, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	root := abs
	if namespace != "" {
		overlay, err := os.MkdirTemp("", "lockstep-kustomize-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(overlay)
		// kustomize refuses absolute paths to bases.
		rel, err := filepath.Rel(overlay, abs)
		if err != nil {
			return nil, err
		}
		k := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: %s\nresources:\n- %s\n", namespace, filepath.ToSlash(rel))
		if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o644); err != nil {
			return nil, err
		}
		root = overlay
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), root)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	b, err := m.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	objs, err := kube.DecodeYAML(b)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return objs, nil
}

// HelmOptions are the release a chart is rendered as.
type HelmOptions struct {
	ReleaseName string // default "lockstep"
	Namespace   string // default DefaultNamespace
	Values      map[string]any
	KubeVersion string // default KubeVersion
}

// Helm renders the chart in dir as `helm template` (a client-only dry run
// of `helm install`) does: the values are checked against the chart's
// values.schema.json and its kubeVersion against o.KubeVersion, the
// templates are rendered as a first install (revision 1) and sorted into
// Helm's install order, CRDs of a crds/ directory first. Helm's action
// package does the same around these calls, but it also brings in the
// registry, provenance and lint code, which a renderer does not need.
func Helm(dir string, o HelmOptions) ([]*unstructured.Unstructured, error) {
	ch, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", dir, err)
	}
	kv, err := common.ParseKubeVersion(cmp.Or(o.KubeVersion, KubeVersion))
	if err != nil {
		return nil, err
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	if c := ch.Metadata.KubeVersion; c != "" && !chartv2util.IsCompatibleRange(c, kv.String()) {
		return nil, fmt.Errorf("chart %s requires Kubernetes %s, not %s", dir, c, kv.Version)
	}
	vals := o.Values
	if vals == nil {
		vals = map[string]any{}
	}
	opts := common.ReleaseOptions{
		Name:      cmp.Or(o.ReleaseName, "lockstep"),
		Namespace: cmp.Or(o.Namespace, DefaultNamespace),
		Revision:  1,
		IsInstall: true,
	}
	rv, err := chartutil.ToRenderValuesWithSchemaValidation(ch, vals, opts, caps, false)
	if err != nil {
		return nil, fmt.Errorf("values of chart %s: %w", dir, err)
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", dir, err)
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", dir, err)
	}
	if len(hooks) > 0 {
		// Hooks are applied outside a release's manifest; the chart has
		// none, and a test applying the manifest would miss them.
		return nil, fmt.Errorf("render chart %s: %d hooks, the chart is expected to have none", dir, len(hooks))
	}
	var objs []*unstructured.Unstructured
	for _, crd := range ch.CRDObjects() {
		o, err := kube.DecodeYAML(crd.File.Data)
		if err != nil {
			return nil, fmt.Errorf("chart %s: %s: %w", dir, crd.Filename, err)
		}
		objs = append(objs, o...)
	}
	for _, m := range manifests {
		o, err := kube.DecodeYAML([]byte(m.Content))
		if err != nil {
			return nil, fmt.Errorf("chart %s: %s: %w", dir, m.Name, err)
		}
		objs = append(objs, o...)
	}
	return objs, nil
}

// Key names an object by kind, namespace and name ("Role lockstep-system/x",
// "ClusterRole x").
func Key(o *unstructured.Unstructured) string {
	if o.GetNamespace() == "" {
		return o.GetKind() + " " + o.GetName()
	}
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

// Keys are the sorted keys of objs.
func Keys(objs []*unstructured.Unstructured) []string {
	out := make([]string, 0, len(objs))
	for _, o := range objs {
		out = append(out, Key(o))
	}
	sort.Strings(out)
	return out
}
