package eks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"lockstep.dev/lockstep/internal/lab/provider"
)

// fakeEnv names the state directory of the fake eksctl. When it is set the
// test binary is the fake eksctl (see TestMain).
const fakeEnv = "LOCKSTEP_FAKE_EKSCTL_STATE"

func TestMain(m *testing.M) {
	if dir := os.Getenv(fakeEnv); dir != "" {
		os.Exit(fakeEksctl(dir, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeEksctl answers the eksctl commands the provider runs. Its state
// directory holds one file per existing cluster, optional failure markers
// (fail-get, fail-create-<name>) and the log of calls.
func fakeEksctl(dir string, args []string) int {
	flag := func(name string) string {
		i := slices.Index(args, name)
		if i < 0 || i+1 >= len(args) {
			return ""
		}
		return args[i+1]
	}
	exists := func(name string) bool { _, err := os.Stat(filepath.Join(dir, "cluster-"+name)); return err == nil }
	marker := func(name string) bool { _, err := os.Stat(filepath.Join(dir, name)); return err == nil }
	withLock(dir, func() {
		f, _ := os.OpenFile(filepath.Join(dir, "calls"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		fmt.Fprintln(f, strings.Join(args, " "))
		f.Close()
	})
	cmd := strings.Join(args[:min(2, len(args))], " ")
	switch cmd {
	case "get cluster":
		name := flag("--name")
		if marker("fail-get") {
			fmt.Fprintln(os.Stderr, "Error: checking AWS STS access – cannot get role ARN for current session: no valid credentials")
			return 1
		}
		if !exists(name) {
			fmt.Fprintf(os.Stderr, "Error: unable to describe control plane %q: operation error EKS: DescribeCluster, https response error StatusCode: 404, ResourceNotFoundException: No cluster found for name: %s.\n", name, name)
			return 1
		}
		fmt.Printf(`[{"Name": %q, "Status": "ACTIVE", "Version": "1.33"}]`+"\n", name)
		return 0
	case "create cluster":
		b, err := os.ReadFile(flag("-f"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "Error:", err)
			return 1
		}
		d := yaml.NewDecoder(bytes.NewReader(b))
		d.KnownFields(true)
		var cc ClusterConfig
		if err := d.Decode(&cc); err != nil {
			fmt.Fprintln(os.Stderr, "Error: loading config file:", err)
			return 1
		}
		name, region := cc.Metadata.Name, cc.Metadata.Region
		fmt.Fprintf(os.Stderr, "[ℹ]  eksctl version 0.215.0\n[ℹ]  using region %s\n", region)
		if marker("fail-create-" + name) {
			fmt.Fprintf(os.Stderr, "[✖]  AWS::EC2::EIP/NATIP: CREATE_FAILED – \"The maximum number of addresses has been reached.\"\nError: failed to create cluster %q\n", name)
			return 1
		}
		os.WriteFile(filepath.Join(dir, "cluster-"+name), nil, 0o644)
		if err := writeContext(dir, flag("--kubeconfig"), name, region); err != nil {
			fmt.Fprintln(os.Stderr, "Error:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "[✔]  EKS cluster %q in %q region is ready\n", name, region)
		return 0
	case "utils write-kubeconfig":
		if err := writeContext(dir, flag("--kubeconfig"), flag("--cluster"), flag("--region")); err != nil {
			fmt.Fprintln(os.Stderr, "Error:", err)
			return 1
		}
		return 0
	case "delete cluster":
		os.Remove(filepath.Join(dir, "cluster-"+flag("--name")))
		fmt.Fprintf(os.Stderr, "[✔]  all cluster resources were deleted\n")
		return 0
	}
	fmt.Fprintf(os.Stderr, "Error: unknown command %q\n", cmd)
	return 1
}

// writeContext merges the context eksctl writes into the kubeconfig, under
// a lock as eksctl does.
func writeContext(dir, path, name, region string) error {
	var err error
	withLock(dir, func() {
		cfg := clientcmdapi.NewConfig()
		if b, rerr := os.ReadFile(path); rerr == nil {
			if cfg, err = clientcmd.Load(b); err != nil {
				return
			}
		}
		entry := ClusterEntry(name, region)
		ctx := "lab-user@" + entry
		cfg.Clusters[entry] = &clientcmdapi.Cluster{Server: "https://" + strings.ToUpper(name) + ".gr7.eks.amazonaws.com"}
		cfg.AuthInfos[ctx] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{Command: "aws", Args: []string{"eks", "get-token"}, APIVersion: "client.authentication.k8s.io/v1beta1"}}
		cfg.Contexts[ctx] = &clientcmdapi.Context{Cluster: entry, AuthInfo: ctx}
		cfg.CurrentContext = ctx
		err = clientcmd.WriteToFile(*cfg, path)
	})
	return err
}

func withLock(dir string, f func()) {
	lock := filepath.Join(dir, "lock")
	for os.Mkdir(lock, 0o755) != nil {
		time.Sleep(5 * time.Millisecond)
	}
	defer os.Remove(lock)
	f()
}

// fake returns a provider whose eksctl is this test binary, through a
// wrapper script that points it at a fresh state directory.
func fake(t *testing.T, c Config, clusters ...string) (*Provider, string) {
	t.Helper()
	state := t.TempDir()
	for _, name := range clusters {
		if err := os.WriteFile(filepath.Join(state, "cluster-"+name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "eksctl")
	body := fmt.Sprintf("#!/bin/sh\n%s=%q exec %q \"$@\"\n", fakeEnv, state, exe)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	c.Eksctl = script
	p := New(c)
	p.getenv = func(string) string { return "" }
	return p, state
}

func calls(t *testing.T, state string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "calls"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func callsWith(all []string, prefix string) []string {
	var out []string
	for _, c := range all {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

func TestUpDryRunCreatesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := New(Config{Eksctl: filepath.Join(dir, "no-such-eksctl")})
	p.getenv = func(k string) string { return map[string]string{"AWS_REGION": "eu-west-3"}[k] }
	var out bytes.Buffer
	fleet, err := p.Up(context.Background(), provider.Options{Dir: dir, Out: &out, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := fleet.Validate(); err != nil {
		t.Fatal(err)
	}
	want := []provider.Cluster{
		{Name: "argo-hub", Role: "hub", Context: "argo-hub.eu-west-3.eksctl.io"},
		{Name: "argo-rollout1", Role: "workload", Network: "network1", Context: "argo-rollout1.eu-west-3.eksctl.io"},
		{Name: "argo-rollout2", Role: "workload", Network: "network2", Context: "argo-rollout2.eu-west-3.eksctl.io"},
	}
	if got := fleet.All(); !slices.Equal(got, want) {
		t.Errorf("clusters\n got %+v\nwant %+v", got, want)
	}
	for _, c := range want {
		b, err := os.ReadFile(filepath.Join(dir, "eks", c.Name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("region: eu-west-3")) {
			t.Errorf("%s.yaml does not use AWS_REGION:\n%s", c.Name, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "kubeconfig")); !os.IsNotExist(err) {
		t.Errorf("dry run wrote a kubeconfig (%v)", err)
	}
	if fleet.LoadBalancerAnnotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] != "internet-facing" {
		t.Errorf("the fleet does not ask the installers for internet-facing NLBs: %v", fleet.LoadBalancerAnnotations)
	}
	notes := strings.Join(fleet.Notes, "\n")
	for _, w := range []string{"aws-load-balancer-controller", "aws-load-balancer-type: external", "Dry run"} {
		if !strings.Contains(notes, w) {
			t.Errorf("notes lack %q", w)
		}
	}
}

func TestUpCreatesMissingClusters(t *testing.T) {
	t.Parallel()
	p, state := fake(t, Config{}, "argo-hub")
	dir := t.TempDir()
	var out bytes.Buffer
	o := provider.Options{Dir: dir, Out: &out}
	fleet, err := p.Up(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if err := fleet.Validate(); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	all := calls(t, state)
	wantCreate := []string{
		"create cluster -f " + filepath.Join(dir, "eks", "argo-rollout1.yaml") + " --kubeconfig " + kubeconfig,
		"create cluster -f " + filepath.Join(dir, "eks", "argo-rollout2.yaml") + " --kubeconfig " + kubeconfig,
	}
	if got := callsWith(all, "create "); !slices.Equal(got, wantCreate) {
		t.Errorf("creates\n got %q\nwant %q", got, wantCreate)
	}
	// argo-hub existed but the kubeconfig lacked it: eksctl writes it.
	if got := callsWith(all, "utils write-kubeconfig"); !slices.Equal(got, []string{"utils write-kubeconfig --cluster argo-hub --region us-west-2 --kubeconfig " + kubeconfig}) {
		t.Errorf("write-kubeconfig calls %q", got)
	}
	for _, c := range fleet.All() {
		if want := "lab-user@" + c.Name + ".us-west-2.eksctl.io"; c.Context != want || c.Server != "" {
			t.Errorf("%s: context %q server %q, want %q and no server", c.Name, c.Context, c.Server, want)
		}
	}
	if fleet.Kubeconfig != kubeconfig {
		t.Errorf("kubeconfig %q", fleet.Kubeconfig)
	}
	for _, w := range []string{"eks: cluster argo-hub exists in us-west-2 (ACTIVE), kept", "[argo-rollout1] [ℹ]  eksctl version", "[argo-rollout2] [✔]  EKS cluster"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}

	// A second Up finds everything and runs only the lookups.
	if err := os.Remove(filepath.Join(state, "calls")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if got := calls(t, state); len(got) != 3 || len(callsWith(got, "get cluster")) != 3 {
		t.Errorf("second Up ran %q", got)
	}
}

func TestUpErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		markers []string
		want    []string
	}{
		{"credentials", []string{"fail-get"}, []string{"eks: eksctl get cluster argo-hub:", "no valid credentials"}},
		{"one create fails", []string{"fail-create-argo-rollout2"}, []string{"eks: create argo-rollout2:", "Error: failed to create cluster"}},
		{"two creates fail", []string{"fail-create-argo-hub", "fail-create-argo-rollout1"}, []string{"argo-hub: Error", "; argo-rollout1: Error"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, state := fake(t, Config{})
			for _, m := range tt.markers {
				if err := os.WriteFile(filepath.Join(state, m), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := p.Up(context.Background(), provider.Options{Dir: t.TempDir()})
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

// TestMissingEksctl changes PATH, so it cannot run in parallel.
func TestMissingEksctl(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, c := range []Config{{}, {Eksctl: "/nonexistent/eksctl"}} {
		_, err := New(c).Up(context.Background(), provider.Options{Dir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "not found") || !strings.Contains(err.Error(), "https://eksctl.io/installation/") {
			t.Errorf("Eksctl %q: err = %v, want a not-found error with the install hint", c.Eksctl, err)
		}
	}
}

func TestDownDeletesAndPrunesKubeconfig(t *testing.T) {
	t.Parallel()
	p, state := fake(t, Config{Region: "eu-north-1"}, "argo-hub", "argo-rollout1")
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	for _, name := range []string{"argo-hub", "argo-rollout1", "someone-else"} {
		if err := writeContext(state, kubeconfig, name, "eu-north-1"); err != nil {
			t.Fatal(err)
		}
	}
	var out bytes.Buffer
	if err := p.Down(context.Background(), provider.Options{Dir: dir, Out: &out}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"delete cluster --name argo-hub --region eu-north-1 --wait",
		"delete cluster --name argo-rollout1 --region eu-north-1 --wait",
	}
	if got := callsWith(calls(t, state), "delete "); !slices.Equal(got, want) {
		t.Errorf("deletes\n got %q\nwant %q", got, want)
	}
	if !strings.Contains(out.String(), "argo-rollout2 does not exist in eu-north-1") {
		t.Errorf("output:\n%s", out.String())
	}
	kc, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var contexts []string
	for name := range kc.Contexts {
		contexts = append(contexts, name)
	}
	if want := []string{"lab-user@someone-else.eu-north-1.eksctl.io"}; !slices.Equal(contexts, want) {
		t.Errorf("contexts left %q, want %q", contexts, want)
	}
	if _, ok := kc.Clusters["argo-hub.eu-north-1.eksctl.io"]; ok {
		t.Error("cluster entry of argo-hub left behind")
	}
}

func TestFindContext(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	entry := "a.us-west-2.eksctl.io"
	cfg.Clusters[entry] = &clientcmdapi.Cluster{Server: "https://a"}
	cfg.Clusters["b"] = &clientcmdapi.Cluster{Server: "https://b"}
	for ctx, cl := range map[string]string{"zed@" + entry: entry, "alice@" + entry: entry, "b": "b"} {
		cfg.Contexts[ctx] = &clientcmdapi.Context{Cluster: cl}
	}
	write := func(current string) {
		cfg.CurrentContext = current
		if err := clientcmd.WriteToFile(*cfg, path); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		current, entry, want string
	}{
		{"b", entry, "alice@" + entry},
		{"zed@" + entry, entry, "zed@" + entry},
		{"b", "c.us-west-2.eksctl.io", ""},
	}
	for _, tt := range tests {
		write(tt.current)
		got, err := findContext(path, tt.entry)
		if err != nil || got != tt.want {
			t.Errorf("current %q, entry %q: got %q, %v; want %q", tt.current, tt.entry, got, err, tt.want)
		}
	}
	if got, err := findContext(filepath.Join(dir, "missing"), entry); got != "" || err != nil {
		t.Errorf("missing file: %q, %v", got, err)
	}
}
