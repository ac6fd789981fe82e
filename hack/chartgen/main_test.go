package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestChartUpToDate fails when charts/lockstep/files differs from the
// generated manifests it copies.
func TestChartUpToDate(t *testing.T) {
	t.Parallel()
	d, err := diff("../../config", "../../charts/lockstep")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range d {
		t.Errorf("charts/lockstep: %s", l)
	}
	if len(d) > 0 {
		t.Log("run make generate and commit the result")
	}
}

func write(t *testing.T, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSync(t *testing.T) {
	t.Parallel()
	cfg, chart := t.TempDir(), t.TempDir()
	write(t, cfg, "crd/a.yaml", "crd a\n")
	write(t, cfg, "crd/kustomization.yaml", "hand-written\n")
	write(t, cfg, "rbac/hub/role.yaml", "role v2\n")
	write(t, cfg, "rbac/workload/role.yaml", "not for the hub\n")
	write(t, cfg, "approval/policy.yaml", "policy\n")
	write(t, chart, "files/approval/policy.yaml", "policy\n")
	write(t, chart, "files/rbac/hub/role.yaml", "role v1\n")
	write(t, chart, "files/crd/gone.yaml", "a CRD that is no longer generated\n")
	write(t, chart, "templates/x.yaml", "the chart's own\n")

	d, err := diff(cfg, chart)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"extra files/crd/gone.yaml", "missing files/crd/a.yaml", "stale files/rbac/hub/role.yaml"}; !slices.Equal(d, want) {
		t.Errorf("diff before sync = %q, want %q", d, want)
	}
	if err := sync(cfg, chart); err != nil {
		t.Fatal(err)
	}
	if d, err := diff(cfg, chart); err != nil || len(d) > 0 {
		t.Errorf("diff after sync = %q, %v; want none", d, err)
	}
	for rel, want := range map[string]string{"files/crd/a.yaml": "crd a\n", "files/rbac/hub/role.yaml": "role v2\n", "templates/x.yaml": "the chart's own\n"} {
		if b, err := os.ReadFile(filepath.Join(chart, rel)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", rel, b, err, want)
		}
	}
	for _, rel := range []string{"files/crd/gone.yaml", "files/crd/kustomization.yaml", "files/rbac/workload/role.yaml"} {
		if _, err := os.Stat(filepath.Join(chart, rel)); !os.IsNotExist(err) {
			t.Errorf("%s exists after sync (%v)", rel, err)
		}
	}
}

func TestNoManifests(t *testing.T) {
	t.Parallel()
	if err := sync(t.TempDir(), t.TempDir()); err == nil {
		t.Error("sync from an empty config directory succeeded; want an error (a chart without its CRD and roles)")
	}
}
