// Command chartgen copies the generated manifests that the Helm chart
// charts/lockstep needs into its files/ directory: the CRDs of config/crd,
// the coordinator's hub roles of config/rbac/hub and the FleetApproval
// admission policy of config/approval, byte for byte.
// hack/generate.sh runs it after controller-gen (make generate), and
// TestChartUpToDate fails when the committed copies differ.
//
// Why copies: Helm reads only files inside a chart, so the chart cannot
// point at config/ as the kustomize base does. Its templates parse the
// copies (.Files.Get) rather than restating the rules, so the chart never
// holds a hand-written rule or schema, and a new +kubebuilder:rbac marker
// reaches it with make generate.
//
// Usage: go run ./hack/chartgen [-config config] [-chart charts/lockstep]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// copies are the directories whose generated *.yaml files the chart
// carries, as (directory under config, directory under the chart).
var copies = []struct{ from, to string }{
	{"crd", "files/crd"},
	{"rbac/hub", "files/rbac/hub"},
	{"approval", "files/approval"},
}

// handWritten are YAML files in those directories that are not generated:
// the kustomize base's kustomization files.
var handWritten = []string{"kustomization.yaml"}

func main() {
	configDir := flag.String("config", "config", "directory of the generated manifests")
	chartDir := flag.String("chart", "charts/lockstep", "the chart's directory")
	flag.Parse()
	if err := sync(*configDir, *chartDir); err != nil {
		fmt.Fprintln(os.Stderr, "chartgen:", err)
		os.Exit(1)
	}
}

// want returns the chart's copies: path under the chart → content.
func want(configDir string) (map[string][]byte, error) {
	return read(configDir, true)
}

// have returns the copies the chart holds now.
func have(chartDir string) (map[string][]byte, error) {
	return read(chartDir, false)
}

// read reads the generated manifests of every copy, on its config side
// (root is config/, and each must have some) or its chart side; the keys
// are paths under the chart.
func read(root string, fromConfig bool) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, c := range copies {
		dir := filepath.Join(root, c.to)
		if fromConfig {
			dir = filepath.Join(root, c.from)
		}
		names, err := yamlFiles(dir)
		if err != nil {
			return nil, err
		}
		if fromConfig && len(names) == 0 {
			return nil, fmt.Errorf("no generated manifests in %s", dir)
		}
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(dir, n))
			if err != nil {
				return nil, err
			}
			out[filepath.ToSlash(filepath.Join(c.to, n))] = b
		}
	}
	return out, nil
}

// yamlFiles lists the generated *.yaml files of dir ("" if it is missing).
func yamlFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".yaml") && !slices.Contains(handWritten, e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// diff lists how the chart's copies differ from the generated manifests,
// one line per file; none means the chart is up to date.
func diff(configDir, chartDir string) ([]string, error) {
	w, err := want(configDir)
	if err != nil {
		return nil, err
	}
	h, err := have(chartDir)
	if err != nil {
		return nil, err
	}
	var out []string
	for p, b := range w {
		switch hb, ok := h[p]; {
		case !ok:
			out = append(out, "missing "+p)
		case !bytes.Equal(hb, b):
			out = append(out, "stale "+p)
		}
	}
	for p := range h {
		if _, ok := w[p]; !ok {
			out = append(out, "extra "+p)
		}
	}
	slices.Sort(out)
	return out, nil
}

// sync makes the chart's copies equal to the generated manifests: it
// writes what is missing or stale and removes copies of manifests that are
// gone.
func sync(configDir, chartDir string) error {
	w, err := want(configDir)
	if err != nil {
		return err
	}
	h, err := have(chartDir)
	if err != nil {
		return err
	}
	for p := range h {
		if _, ok := w[p]; !ok {
			if err := os.Remove(filepath.Join(chartDir, p)); err != nil {
				return err
			}
		}
	}
	for p, b := range w {
		if hb, ok := h[p]; ok && bytes.Equal(hb, b) {
			continue
		}
		dst := filepath.Join(chartDir, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
