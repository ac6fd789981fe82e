package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestLabUpDryRunWritesProviderConfigs runs `lab up --provider kind|eks
// --dry-run` through the real entry point: the provider's configs are
// written, nothing is created, and no installer runs (no cluster).
func TestLabUpDryRunWritesProviderConfigs(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		provider, kind, apiVersion string
	}{
		{"kind", "Cluster", "kind.x-k8s.io/v1alpha4"},
		{"eks", "ClusterConfig", "eksctl.io/v1alpha5"},
	} {
		t.Run(c.provider, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var out, errOut bytes.Buffer
			code := Run([]string{"lab", "up", "--provider", c.provider, "--dry-run", "--provider-dir", dir, "--eks-region", "eu-west-1"}, nil, &out, &errOut)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			if !strings.Contains(out.String(), "no installer ran") {
				t.Errorf("output does not say no installer ran:\n%s", out.String())
			}
			for _, name := range []string{"argo-hub", "argo-rollout1", "argo-rollout2"} {
				b, err := os.ReadFile(filepath.Join(dir, c.provider, name+".yaml"))
				if err != nil {
					t.Fatal(err)
				}
				var doc struct {
					APIVersion string `json:"apiVersion"`
					Kind       string `json:"kind"`
					Name       string `json:"name"`
					Metadata   struct {
						Name   string `json:"name"`
						Region string `json:"region"`
					} `json:"metadata"`
				}
				if err := yaml.Unmarshal(b, &doc); err != nil {
					t.Fatal(err)
				}
				got := doc.Name + doc.Metadata.Name
				if doc.Kind != c.kind || doc.APIVersion != c.apiVersion || got != name {
					t.Errorf("%s: kind %s apiVersion %s name %q", name, doc.Kind, doc.APIVersion, got)
				}
				if c.provider == "eks" && doc.Metadata.Region != "eu-west-1" {
					t.Errorf("%s: region %q, want the flag's eu-west-1", name, doc.Metadata.Region)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "kubeconfig")); err == nil {
				t.Errorf("a dry run wrote a kubeconfig")
			}
		})
	}
}

// TestLabBadInputIsOneLine: refused before anything is touched.
func TestLabBadInputIsOneLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, args := range [][]string{
		{"lab", "up", "--provider", "nope"},
		{"lab", "up", "--provider", "existing", "--from", "nosuch", "--provider-dir", dir},
		{"lab", "up", "--provider", "existing", "--from", "argocd", "--resume", "--provider-dir", dir},
		{"lab", "up", "--provider", "eks", "--eks-region", "moon-1", "--dry-run", "--provider-dir", dir},
		{"lab", "up", "--provider", "existing", "--kubeconfig", filepath.Join(dir, "missing"), "--provider-dir", dir},
		{"lab", "verify", "--provider", "kind"},
		{"lab", "verify", "-o", "xml"},
		{"lab", "status", "--provider", "eks"},
		{"lab", "down", "--provider", "nope"},
	} {
		var out, errOut bytes.Buffer
		if code := Run(args, nil, &out, &errOut); code == 0 {
			t.Errorf("%v succeeded", args)
			continue
		}
		if n := strings.Count(strings.TrimSpace(errOut.String()), "\n"); n != 0 || !strings.HasPrefix(errOut.String(), "error: ") {
			t.Errorf("%v: stderr %q, want one `error:` line", args, errOut.String())
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "eks")); len(entries) > 0 {
		t.Errorf("a refused eks run wrote %d files", len(entries))
	}
}
