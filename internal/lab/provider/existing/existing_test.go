package existing

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"lockstep.dev/lockstep/internal/lab/provider"
)

// apiServer answers /version like a Kubernetes API server.
func apiServer(t *testing.T, gitVersion string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/version" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"major":"1","minor":"33","gitVersion":"` + gitVersion + `","platform":"linux/amd64"}`))
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func handlerServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

// writeKubeconfig writes one context (and cluster and user) per entry.
func writeKubeconfig(t *testing.T, path string, servers map[string]string) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	for ctx, server := range servers {
		cfg.Clusters[ctx+"-cluster"] = &clientcmdapi.Cluster{Server: server}
		cfg.AuthInfos[ctx+"-user"] = &clientcmdapi.AuthInfo{Token: "token"}
		cfg.Contexts[ctx] = &clientcmdapi.Context{Cluster: ctx + "-cluster", AuthInfo: ctx + "-user"}
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUpAllAnswer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kc := writeKubeconfig(t, filepath.Join(dir, "kc"), map[string]string{
		"argo-hub":      apiServer(t, "v1.33.1"),
		"argo-rollout1": apiServer(t, "v1.32.4"),
		"argo-rollout2": apiServer(t, "v1.32.5"),
		"unrelated":     closedPort(t),
	})
	var out bytes.Buffer
	fleet, err := New(Config{Kubeconfig: kc}).Up(context.Background(), provider.Options{Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	want := &provider.Fleet{
		Provider:   "existing",
		Kubeconfig: kc,
		Hub:        provider.Cluster{Name: "argo-hub", Role: "hub", Context: "argo-hub"},
		Workloads: []provider.Cluster{
			{Name: "argo-rollout1", Role: "workload", Context: "argo-rollout1", Network: "network1"},
			{Name: "argo-rollout2", Role: "workload", Context: "argo-rollout2", Network: "network2"},
		},
	}
	if fleet.Provider != want.Provider || fleet.Kubeconfig != want.Kubeconfig || !slices.Equal(fleet.All(), want.All()) {
		t.Errorf("fleet\n got %+v\nwant %+v", fleet, want)
	}
	for _, w := range []string{"argo-hub: context argo-hub answers (Kubernetes v1.33.1)", "argo-rollout2: context argo-rollout2 answers (Kubernetes v1.32.5)"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
}

func TestUpCustomNamesAndContexts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kc := writeKubeconfig(t, filepath.Join(dir, "kc"), map[string]string{
		"kind-hub": apiServer(t, "v1.33.0"),
		"east":     apiServer(t, "v1.33.0"),
		"west":     apiServer(t, "v1.33.0"),
	})
	p := New(Config{Kubeconfig: kc, HubContext: "kind-hub", WorkloadContexts: []string{"west", "east"}})
	fleet, err := p.Up(context.Background(), provider.Options{Hub: "h", Workloads: []string{"w1", "w2"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []provider.Cluster{
		{Name: "h", Role: "hub", Context: "kind-hub"},
		{Name: "w1", Role: "workload", Context: "west", Network: "network1"},
		{Name: "w2", Role: "workload", Context: "east", Network: "network2"},
	}
	if got := fleet.All(); !slices.Equal(got, want) {
		t.Errorf("clusters\n got %+v\nwant %+v", got, want)
	}
}

func TestUpErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		servers func(t *testing.T) map[string]string
		cfg     Config
		want    []string
	}{
		{
			name: "one context missing",
			servers: func(t *testing.T) map[string]string {
				return map[string]string{"argo-hub": apiServer(t, "v1.33.0"), "argo-rollout1": apiServer(t, "v1.33.0"), "other": apiServer(t, "v1.33.0")}
			},
			want: []string{`context "argo-rollout2" (for argo-rollout2) not in`, "(available: argo-hub, argo-rollout1, other)"},
		},
		{
			name:    "every context missing",
			servers: func(t *testing.T) map[string]string { return map[string]string{} },
			want:    []string{`contexts "argo-hub" (for argo-hub), "argo-rollout1" (for argo-rollout1), "argo-rollout2" (for argo-rollout2) not in`, "(available: none)"},
		},
		{
			name: "closed port",
			servers: func(t *testing.T) map[string]string {
				return map[string]string{"argo-hub": apiServer(t, "v1.33.0"), "argo-rollout1": apiServer(t, "v1.33.0"), "argo-rollout2": closedPort(t)}
			},
			want: []string{`context "argo-rollout2" (argo-rollout2) does not answer`, "connection refused"},
		},
		{
			name: "two do not answer",
			servers: func(t *testing.T) map[string]string {
				return map[string]string{"argo-hub": closedPort(t), "argo-rollout1": apiServer(t, "v1.33.0"), "argo-rollout2": closedPort(t)}
			},
			want: []string{`context "argo-hub" (argo-hub) does not answer`, `; context "argo-rollout2" (argo-rollout2) does not answer`},
		},
		{
			name: "not an API server",
			servers: func(t *testing.T) map[string]string {
				html := handlerServer(t, func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<html>\n<body>hello</body>\n</html>")) })
				return map[string]string{"argo-hub": html, "argo-rollout1": apiServer(t, "v1.33.0"), "argo-rollout2": apiServer(t, "v1.33.0")}
			},
			want: []string{`context "argo-hub" (argo-hub) does not answer`, "not a Kubernetes version"},
		},
		{
			name: "server error",
			servers: func(t *testing.T) map[string]string {
				fail := handlerServer(t, func(w http.ResponseWriter, _ *http.Request) {
					http.Error(w, "etcd\nis down", http.StatusInternalServerError)
				})
				return map[string]string{"argo-hub": apiServer(t, "v1.33.0"), "argo-rollout1": fail, "argo-rollout2": apiServer(t, "v1.33.0")}
			},
			want: []string{`context "argo-rollout1" (argo-rollout1) does not answer`},
		},
		{
			name: "wrong number of workload contexts",
			servers: func(t *testing.T) map[string]string {
				return map[string]string{"argo-hub": apiServer(t, "v1.33.0")}
			},
			cfg:  Config{WorkloadContexts: []string{"only-one"}},
			want: []string{"1 workload contexts for 2 workload clusters (argo-rollout1, argo-rollout2)"},
		},
		{
			name: "same context twice",
			servers: func(t *testing.T) map[string]string {
				return map[string]string{"argo-hub": apiServer(t, "v1.33.0")}
			},
			cfg:  Config{WorkloadContexts: []string{"argo-hub", "x"}},
			want: []string{`context "argo-hub" given for both argo-hub and argo-rollout1`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.Kubeconfig = writeKubeconfig(t, filepath.Join(t.TempDir(), "kc"), tt.servers(t))
			_, err := New(cfg).Up(context.Background(), provider.Options{})
			if err == nil {
				t.Fatal("Up succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestUpMissingKubeconfigFile(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Kubeconfig: filepath.Join(t.TempDir(), "nope")}).Up(context.Background(), provider.Options{})
	if err == nil || !strings.Contains(err.Error(), "existing: read kubeconfig") {
		t.Fatalf("err = %v", err)
	}
}

func TestUpTimesOut(t *testing.T) {
	t.Parallel()
	hang := handlerServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	kc := writeKubeconfig(t, filepath.Join(t.TempDir(), "kc"), map[string]string{
		"argo-hub": apiServer(t, "v1.33.0"), "argo-rollout1": hang, "argo-rollout2": apiServer(t, "v1.33.0"),
	})
	p := New(Config{Kubeconfig: kc})
	p.timeout = 200 * time.Millisecond
	start := time.Now()
	_, err := p.Up(context.Background(), provider.Options{})
	if err == nil || !strings.Contains(err.Error(), `context "argo-rollout1" (argo-rollout1) does not answer`) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s with a 200ms timeout", d)
	}
}

func TestDryRunDoesNotProbe(t *testing.T) {
	t.Parallel()
	kc := writeKubeconfig(t, filepath.Join(t.TempDir(), "kc"), map[string]string{
		"argo-hub": closedPort(t), "argo-rollout1": closedPort(t), "argo-rollout2": closedPort(t),
	})
	fleet, err := New(Config{Kubeconfig: kc}).Up(context.Background(), provider.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := fleet.Validate(); err != nil {
		t.Fatal(err)
	}
	// A missing context is still an error in a dry run.
	_, err = New(Config{Kubeconfig: kc, HubContext: "gone"}).Up(context.Background(), provider.Options{DryRun: true})
	if err == nil || !strings.Contains(err.Error(), `"gone"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestDownLeavesClustersAlone(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := New(Config{}).Down(context.Background(), provider.Options{Out: &out}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "leaving argo-hub, argo-rollout1, argo-rollout2 alone") {
		t.Errorf("output %q", out.String())
	}
}

// TestDefaultKubeconfig sets KUBECONFIG, so it cannot run in parallel.
func TestDefaultKubeconfig(t *testing.T) {
	hub, w1, w2 := apiServer(t, "v1.33.0"), apiServer(t, "v1.33.0"), apiServer(t, "v1.33.0")
	src := t.TempDir()
	a := writeKubeconfig(t, filepath.Join(src, "a"), map[string]string{"argo-hub": hub})
	b := writeKubeconfig(t, filepath.Join(src, "b"), map[string]string{"argo-rollout1": w1, "argo-rollout2": w2})
	all := writeKubeconfig(t, filepath.Join(src, "all"), map[string]string{"argo-hub": hub, "argo-rollout1": w1, "argo-rollout2": w2})

	t.Run("one file", func(t *testing.T) {
		t.Setenv("KUBECONFIG", all)
		fleet, err := New(Config{}).Up(context.Background(), provider.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if fleet.Kubeconfig != all {
			t.Errorf("kubeconfig %q, want %q", fleet.Kubeconfig, all)
		}
	})
	t.Run("several files are merged", func(t *testing.T) {
		t.Setenv("KUBECONFIG", a+string(os.PathListSeparator)+b)
		dir := t.TempDir()
		fleet, err := New(Config{}).Up(context.Background(), provider.Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(dir, "kubeconfig"); fleet.Kubeconfig != want {
			t.Errorf("kubeconfig %q, want %q", fleet.Kubeconfig, want)
		}
		merged, err := clientcmd.LoadFromFile(fleet.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range fleet.All() {
			if _, ok := merged.Contexts[c.Context]; !ok {
				t.Errorf("merged kubeconfig lacks %s", c.Context)
			}
		}
	})
	t.Run("several files and no directory", func(t *testing.T) {
		t.Setenv("KUBECONFIG", a+string(os.PathListSeparator)+b)
		_, err := New(Config{}).Up(context.Background(), provider.Options{})
		if err == nil || !strings.Contains(err.Error(), "give one kubeconfig") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("none", func(t *testing.T) {
		t.Setenv("KUBECONFIG", filepath.Join(src, "missing"))
		_, err := New(Config{}).Up(context.Background(), provider.Options{})
		if err == nil || !strings.Contains(err.Error(), "no kubeconfig found") {
			t.Fatalf("err = %v", err)
		}
	})
}
