package meshsim

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMainFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string // "" means success
	}{
		{name: "help", args: []string{"-h"}},
		{name: "no cluster", args: nil, want: "--cluster is required"},
		{name: "stray argument", args: []string{"--cluster", cluster1, "extra"}, want: "unexpected arguments"},
		{name: "peer without context", args: []string{"--cluster", cluster1, "--peer", cluster2}, want: "NAME=VALUE"},
		{name: "peer twice", args: []string{"--cluster", cluster1, "--peer", "a=x", "--peer", "a=y"}, want: "given twice"},
		{name: "unknown flag", args: []string{"--nope"}, want: "flag provided but not defined"},
		{name: "missing kubeconfig", args: []string{"--cluster", cluster1, "--kubeconfig", filepath.Join(t.TempDir(), "none")}, want: "local cluster"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stderr strings.Builder
			err := Main(t.Context(), tt.args, &stderr)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Main() = %v", err)
				}
				if !strings.Contains(stderr.String(), "-peer-eastwest") {
					t.Fatalf("usage lacks -peer-eastwest:\n%s", stderr.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Main() = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

// cancelOnWrite cancels a context once the log contains a marker.
type cancelOnWrite struct {
	mu     sync.Mutex
	buf    strings.Builder
	marker string
	cancel context.CancelFunc
}

func (c *cancelOnWrite) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if strings.Contains(c.buf.String(), c.marker) {
		c.cancel()
	}
	return len(p), nil
}

// TestMainRuns drives the whole command against API servers that do not
// exist: it must still bind its ports, then stop cleanly when asked.
func TestMainRuns(t *testing.T) {
	t.Parallel()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	const doc = `apiVersion: v1
kind: Config
clusters:
- name: c1
  cluster: {server: "https://127.0.0.1:1"}
- name: c2
  cluster: {server: "https://127.0.0.1:2"}
users:
- name: u
  user: {token: test}
contexts:
- name: kind-argo-rollout1
  context: {cluster: c1, user: u}
- name: kind-argo-rollout2
  context: {cluster: c2, user: u}
current-context: kind-argo-rollout1
`
	if err := os.WriteFile(kubeconfig, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	stderr := &cancelOnWrite{marker: "meshsim listening", cancel: cancel}
	err := Main(ctx, []string{
		"--cluster", cluster1, "--kubeconfig", kubeconfig,
		"--peer", cluster2 + "=kind-argo-rollout2",
		"--peer-eastwest", cluster2 + "=http://127.0.0.1:1",
		"--ingress-addr", "127.0.0.1:0", "--eastwest-addr", ":0", "--metrics-addr", "localhost:0",
		"--seed", "42",
	}, stderr)
	if err != nil {
		t.Fatalf("Main() = %v", err)
	}
	stderr.mu.Lock()
	defer stderr.mu.Unlock()
	if !strings.Contains(stderr.buf.String(), "meshsim stopped") {
		t.Fatalf("log lacks the clean stop:\n%s", stderr.buf.String())
	}
}
