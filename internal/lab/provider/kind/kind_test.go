package kind

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/kind/pkg/cluster"

	"lockstep.dev/lockstep/internal/lab/provider"
)

// fakeKind stands in for kind's library: it keeps the clusters in a list and
// writes kubeconfig entries the way kind names them.
type fakeKind struct {
	clusters  []string
	created   []string
	deleted   []string
	createErr error
}

func (f *fakeKind) List() ([]string, error) { return slices.Clone(f.clusters), nil }

func (f *fakeKind) Create(name string, _ ...cluster.CreateOption) error {
	if f.createErr != nil {
		return f.createErr
	}
	f.created = append(f.created, name)
	f.clusters = append(f.clusters, name)
	return nil
}

func (f *fakeKind) ExportKubeConfig(name, path string, internal bool) error {
	if internal {
		return errors.New("the lab exports the external kubeconfig")
	}
	cfg := clientcmdapi.NewConfig()
	if b, err := os.ReadFile(path); err == nil {
		if cfg, err = clientcmd.Load(b); err != nil {
			return err
		}
	}
	ctx := ContextName(name)
	cfg.Clusters[ctx] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:" + fmt.Sprint(40000+len(f.clusters))}
	cfg.AuthInfos[ctx] = &clientcmdapi.AuthInfo{Token: "t"}
	cfg.Contexts[ctx] = &clientcmdapi.Context{Cluster: ctx, AuthInfo: ctx}
	return clientcmd.WriteToFile(*cfg, path)
}

// KubeConfig answers with a server that differs from InternalServer, so the
// test sees the provider read it rather than compute it.
func (f *fakeKind) KubeConfig(name string, internal bool) (string, error) {
	if !internal {
		return "", errors.New("the lab reads the internal kubeconfig")
	}
	cfg := clientcmdapi.NewConfig()
	ctx := ContextName(name)
	cfg.Clusters[ctx] = &clientcmdapi.Cluster{Server: "https://" + name + ".internal:6443"}
	cfg.AuthInfos[ctx] = &clientcmdapi.AuthInfo{}
	cfg.Contexts[ctx] = &clientcmdapi.Context{Cluster: ctx, AuthInfo: ctx}
	b, err := clientcmd.Write(*cfg)
	return string(b), err
}

func (f *fakeKind) Delete(name, _ string) error {
	f.deleted = append(f.deleted, name)
	f.clusters = slices.DeleteFunc(f.clusters, func(c string) bool { return c == name })
	return nil
}

func withFake(f *fakeKind) *Provider {
	p := New(Config{})
	p.connect = func(io.Writer) (api, error) { return f, nil }
	return p
}

func TestUpDryRunCreatesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := New(Config{})
	p.connect = func(io.Writer) (api, error) {
		t.Error("dry run reached kind's library")
		return nil, errors.New("no")
	}
	var out bytes.Buffer
	fleet, err := p.Up(context.Background(), provider.Options{Dir: dir, Out: &out, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := fleet.Validate(); err != nil {
		t.Fatal(err)
	}
	if fleet.Provider != "kind" || fleet.Kubeconfig != filepath.Join(dir, "kubeconfig") {
		t.Errorf("fleet provider/kubeconfig = %q/%q", fleet.Provider, fleet.Kubeconfig)
	}
	want := []provider.Cluster{
		{Name: "argo-hub", Role: provider.RoleHub, Context: "kind-argo-hub", Server: "https://argo-hub-control-plane:6443"},
		{Name: "argo-rollout1", Role: provider.RoleWork, Context: "kind-argo-rollout1", Network: "network1", Server: "https://argo-rollout1-control-plane:6443"},
		{Name: "argo-rollout2", Role: provider.RoleWork, Context: "kind-argo-rollout2", Network: "network2", Server: "https://argo-rollout2-control-plane:6443"},
	}
	if got := fleet.All(); !slices.Equal(got, want) {
		t.Errorf("clusters:\n got %+v\nwant %+v", got, want)
	}
	for _, c := range want {
		b, err := os.ReadFile(filepath.Join(dir, "kind", c.Name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeLikeKind(b)
		if err != nil || got.Name != c.Name {
			t.Errorf("%s.yaml: name %q, err %v", c.Name, got.Name, err)
		}
	}
	if _, err := os.Stat(fleet.Kubeconfig); !os.IsNotExist(err) {
		t.Errorf("dry run wrote a kubeconfig (stat: %v)", err)
	}
	notes := strings.Join(fleet.Notes, "\n")
	for _, w := range []string{"LoadBalancer", "cloud-provider-kind", "go install sigs.k8s.io/cloud-provider-kind@latest", "MetalLB"} {
		if !strings.Contains(notes, w) {
			t.Errorf("notes lack %q:\n%s", w, notes)
		}
	}
	if !strings.Contains(out.String(), "dry run") {
		t.Errorf("output does not say dry run:\n%s", out.String())
	}
}

func TestUpCreatesOnlyMissingClusters(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := &fakeKind{clusters: []string{"argo-hub", "someone-else"}}
	p := withFake(f)
	o := provider.Options{Dir: dir, Out: io.Discard}
	fleet, err := p.Up(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"argo-rollout1", "argo-rollout2"}; !slices.Equal(f.created, want) {
		t.Errorf("created %v, want %v", f.created, want)
	}
	for _, c := range fleet.All() {
		if want := "https://" + c.Name + ".internal:6443"; c.Server != want {
			t.Errorf("%s: server %q, want %q from the internal kubeconfig", c.Name, c.Server, want)
		}
	}
	kc, err := clientcmd.LoadFromFile(fleet.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range fleet.All() {
		if _, ok := kc.Contexts[c.Context]; !ok {
			t.Errorf("kubeconfig lacks context %s", c.Context)
		}
	}

	// Up is idempotent: a second run creates nothing.
	f.created = nil
	if _, err := p.Up(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if len(f.created) != 0 {
		t.Errorf("second Up created %v", f.created)
	}
}

func TestUpErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		o    provider.Options
		f    *fakeKind
		ctx  func() context.Context
		want string
	}{
		{"no dir", provider.Options{}, &fakeKind{}, context.Background, "no directory"},
		{"create fails", provider.Options{}, &fakeKind{createErr: errors.New("boom")}, context.Background, "create cluster argo-hub: boom"},
		{"cancelled", provider.Options{}, &fakeKind{}, func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.name != "no dir" {
				tt.o.Dir = t.TempDir()
			}
			_, err := withFake(tt.f).Up(tt.ctx(), tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestDownDeletesOnlyTheLab(t *testing.T) {
	t.Parallel()
	f := &fakeKind{clusters: []string{"argo-rollout2", "someone-else", "argo-hub"}}
	var out bytes.Buffer
	if err := withFake(f).Down(context.Background(), provider.Options{Dir: t.TempDir(), Out: &out}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"argo-hub", "argo-rollout2"}; !slices.Equal(f.deleted, want) {
		t.Errorf("deleted %v, want %v", f.deleted, want)
	}
	if !strings.Contains(out.String(), "argo-rollout1 does not exist") {
		t.Errorf("output does not mention the missing cluster:\n%s", out.String())
	}
}

func TestServerOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw, ctx, want string
		wantErr              bool
	}{
		{"by context", kubeconfig(map[string]string{"kind-a": "https://a:6443", "kind-b": "https://b:6443"}), "kind-b", "https://b:6443", false},
		{"only cluster", kubeconfig(map[string]string{"other": "https://x:6443"}), "kind-a", "https://x:6443", false},
		{"ambiguous", kubeconfig(map[string]string{"x": "https://x", "y": "https://y"}), "kind-a", "", true},
		{"garbage", "{", "kind-a", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := serverOf([]byte(tt.raw), tt.ctx)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("serverOf = %q, %v; want %q (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestLoggerShowsOnlyVerbosityZero(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	l := logger{&b}
	l.V(0).Infof("creating %s", "x")
	l.V(1).Info("debug detail")
	l.Warn("careful")
	if got := b.String(); got != "kind: creating x\nkind: warning: careful\n" {
		t.Errorf("logger wrote %q", got)
	}
	if l.V(1).Enabled() || !l.V(0).Enabled() {
		t.Error("Enabled disagrees with what is printed")
	}
}

func kubeconfig(servers map[string]string) string {
	cfg := clientcmdapi.NewConfig()
	for name, s := range servers {
		cfg.Clusters[name] = &clientcmdapi.Cluster{Server: s}
		cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{}
		cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	}
	b, _ := clientcmd.Write(*cfg)
	return string(b)
}
