package kind

import (
	"bytes"
	"net/netip"
	"reflect"
	"regexp"
	"strings"
	"testing"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"

	"lockstep.dev/lockstep/internal/lab/provider"
)

func TestConfigsDefaultLab(t *testing.T) {
	t.Parallel()
	cfgs, err := Configs(provider.Options{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, role string }{
		{"argo-hub", provider.RoleHub},
		{"argo-rollout1", provider.RoleWork},
		{"argo-rollout2", provider.RoleWork},
	}
	if len(cfgs) != len(want) {
		t.Fatalf("got %d configs, want %d", len(cfgs), len(want))
	}
	for i, w := range want {
		c := cfgs[i]
		if c.Name != w.name {
			t.Errorf("config %d: name %q, want %q", i, c.Name, w.name)
		}
		if c.Kind != "Cluster" || c.APIVersion != "kind.x-k8s.io/v1alpha4" {
			t.Errorf("%s: kind/apiVersion %q/%q", c.Name, c.Kind, c.APIVersion)
		}
		if c.Networking.APIServerAddress != "127.0.0.1" {
			t.Errorf("%s: apiServerAddress %q, want 127.0.0.1", c.Name, c.Networking.APIServerAddress)
		}
		if c.Networking.IPFamily != v1alpha4.IPv4Family {
			t.Errorf("%s: ipFamily %q", c.Name, c.Networking.IPFamily)
		}
		if len(c.Nodes) != 1 || c.Nodes[0].Role != v1alpha4.ControlPlaneRole {
			t.Errorf("%s: nodes %+v, want one control-plane", c.Name, c.Nodes)
		}
		if got := c.Nodes[0].Labels[LabRoleLabel]; got != w.role {
			t.Errorf("%s: %s label %q, want %q", c.Name, LabRoleLabel, got, w.role)
		}
		if c.Nodes[0].Image != "" {
			t.Errorf("%s: image %q, want kind's default (empty)", c.Name, c.Nodes[0].Image)
		}
	}
}

func TestConfigsOptions(t *testing.T) {
	t.Parallel()
	o := provider.Options{Hub: "hub", Workloads: []string{"w1", "w2", "w3"}}
	cfgs, err := Configs(o, Config{NodeImage: "kindest/node:v1.33.1", Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgs) != 4 || cfgs[0].Name != "hub" || cfgs[3].Name != "w3" {
		t.Fatalf("names: %v", names(cfgs))
	}
	for _, c := range cfgs {
		roles := map[v1alpha4.NodeRole]int{}
		for _, n := range c.Nodes {
			roles[n.Role]++
			if n.Image != "kindest/node:v1.33.1" {
				t.Errorf("%s: image %q", c.Name, n.Image)
			}
		}
		if roles[v1alpha4.ControlPlaneRole] != 1 || roles[v1alpha4.WorkerRole] != 2 {
			t.Errorf("%s: roles %v, want 1 control-plane and 2 workers", c.Name, roles)
		}
	}
}

func TestConfigsErrors(t *testing.T) {
	t.Parallel()
	many := make([]string, MaxClusters)
	for i := range many {
		many[i] = provider.WorkloadName(i + 1)
	}
	tests := []struct {
		name string
		o    provider.Options
		c    Config
		want string
	}{
		{"too many clusters", provider.Options{Workloads: many}, Config{}, "room for 12"},
		{"upper case", provider.Options{Hub: "Argo-Hub"}, Config{}, `"Argo-Hub"`},
		{"underscore", provider.Options{Workloads: []string{"argo_rollout1"}}, Config{}, `"argo_rollout1"`},
		{"duplicate", provider.Options{Workloads: []string{"a", "a"}}, Config{}, `"a" used twice`},
		{"hub is a workload", provider.Options{Hub: "a", Workloads: []string{"a"}}, Config{}, `"a" used twice`},
		{"negative workers", provider.Options{}, Config{Workers: -1}, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Configs(tt.o, tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// TestSubnetsDoNotOverlap checks every pod and service subnet of the
// largest lab against every other one and against the ranges Docker hands
// to its networks (the kind network among them).
func TestSubnetsDoNotOverlap(t *testing.T) {
	t.Parallel()
	workloads := make([]string, MaxClusters-1)
	for i := range workloads {
		workloads[i] = provider.WorkloadName(i + 1)
	}
	cfgs, err := Configs(provider.Options{Workloads: workloads}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	type subnet struct {
		what string
		p    netip.Prefix
	}
	var all []subnet
	for _, c := range cfgs {
		for what, s := range map[string]string{"pods": c.Networking.PodSubnet, "services": c.Networking.ServiceSubnet} {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				t.Fatalf("%s %s: %v", c.Name, what, err)
			}
			if p != p.Masked() {
				t.Errorf("%s %s: %s is not a network address", c.Name, what, s)
			}
			all = append(all, subnet{c.Name + " " + what, p})
		}
	}
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			if all[i].p.Overlaps(all[j].p) {
				t.Errorf("%s (%s) overlaps %s (%s)", all[i].what, all[i].p, all[j].what, all[j].p)
			}
		}
		for _, docker := range []string{"172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8"} {
			if all[i].p.Overlaps(netip.MustParsePrefix(docker)) {
				t.Errorf("%s (%s) overlaps %s", all[i].what, all[i].p, docker)
			}
		}
	}
}

// TestRenderRoundTrip decodes every rendered config the way kind's own
// loader does (go.yaml.in/yaml/v3 with unknown fields rejected, see
// sigs.k8s.io/kind/pkg/internal/apis/config/encoding) and as strict JSON
// YAML, and checks what kind's validation would check.
func TestRenderRoundTrip(t *testing.T) {
	t.Parallel()
	cfgs, err := Configs(provider.Options{}, Config{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfgs {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			b, err := Render(c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeLikeKind(b)
			if err != nil {
				t.Fatalf("kind's decoder: %v", err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Errorf("yaml.v3 round trip:\n got %+v\nwant %+v", got, c)
			}
			var strict v1alpha4.Cluster
			if err := yaml.UnmarshalStrict(b, &strict); err != nil {
				t.Fatalf("strict decode: %v", err)
			}
			if !reflect.DeepEqual(&strict, c) {
				t.Errorf("sigs.k8s.io/yaml round trip:\n got %+v\nwant %+v", &strict, c)
			}
			v1alpha4.SetDefaultsCluster(got)
			if err := validateLikeKind(got); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestRenderDecoderRejectsUnknownFields shows the round trip above can fail:
// a misspelled field is refused by the decoder kind uses.
func TestRenderDecoderRejectsUnknownFields(t *testing.T) {
	t.Parallel()
	cfgs, err := Configs(provider.Options{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Render(cfgs[0])
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(b, []byte("podSubnet:"), []byte("podSubnett:"), 1)
	if _, err := decodeLikeKind(bad); err == nil {
		t.Fatal("a misspelled field decoded without error")
	}
}

func decodeLikeKind(b []byte) (*v1alpha4.Cluster, error) {
	d := yamlv3.NewDecoder(bytes.NewReader(b))
	d.KnownFields(true)
	out := &v1alpha4.Cluster{}
	return out, d.Decode(out)
}

// validateLikeKind repeats the checks of kind's internal Cluster.Validate
// (sigs.k8s.io/kind/pkg/internal/apis/config/validate.go), which cannot be
// imported.
func validateLikeKind(c *v1alpha4.Cluster) error {
	var errs []string
	if !regexp.MustCompile(`^[a-z0-9.-]+$`).MatchString(c.Name) {
		errs = append(errs, "invalid name "+c.Name)
	}
	for _, s := range []string{c.Networking.PodSubnet, c.Networking.ServiceSubnet} {
		if p, err := netip.ParsePrefix(s); err != nil || !p.Addr().Is4() {
			errs = append(errs, "bad IPv4 subnet "+s)
		}
	}
	if a, err := netip.ParseAddr(c.Networking.APIServerAddress); err != nil || !a.IsLoopback() {
		errs = append(errs, "API server address not on loopback: "+c.Networking.APIServerAddress)
	}
	cp := 0
	for _, n := range c.Nodes {
		switch n.Role {
		case v1alpha4.ControlPlaneRole:
			cp++
		case v1alpha4.WorkerRole:
		default:
			errs = append(errs, "bad node role "+string(n.Role))
		}
		if n.Image == "" {
			errs = append(errs, "node without image after defaulting")
		}
	}
	if cp < 1 {
		errs = append(errs, "no control-plane node")
	}
	if len(errs) > 0 {
		return errorString(strings.Join(errs, "; "))
	}
	return nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

func names(cfgs []*v1alpha4.Cluster) []string {
	var out []string
	for _, c := range cfgs {
		out = append(out, c.Name)
	}
	return out
}
