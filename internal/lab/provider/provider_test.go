package provider

import (
	"strings"
	"testing"
)

func TestFleetValidate(t *testing.T) {
	t.Parallel()
	ok := func() *Fleet {
		return &Fleet{Kubeconfig: "/k", Hub: Cluster{Name: "argo-hub", Context: "h"},
			Workloads: []Cluster{{Name: "argo-rollout1", Context: "w1"}, {Name: "argo-rollout2", Context: "w2"}}}
	}
	for _, c := range []struct {
		name string
		mod  func(*Fleet)
		want string
	}{
		{"complete", func(*Fleet) {}, ""},
		{"no kubeconfig", func(f *Fleet) { f.Kubeconfig = "" }, "no kubeconfig"},
		{"no workloads", func(f *Fleet) { f.Workloads = nil }, "no workload"},
		{"no context", func(f *Fleet) { f.Workloads[1].Context = "" }, "needs a name and a context"},
		{"duplicate name", func(f *Fleet) { f.Workloads[1].Name = "argo-hub" }, `"argo-hub" used twice`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := ok()
			c.mod(f)
			err := f.Validate()
			if (err == nil) != (c.want == "") || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("Validate() = %v, want %q", err, c.want)
			}
		})
	}
}

func TestFleetAtFollowsAll(t *testing.T) {
	t.Parallel()
	f := &Fleet{Hub: Cluster{Name: "h"}, Workloads: []Cluster{{Name: "a"}, {Name: "b"}}}
	for i, c := range f.All() {
		if f.At(i).Name != c.Name {
			t.Fatalf("At(%d) = %s, All()[%d] = %s", i, f.At(i).Name, i, c.Name)
		}
	}
	f.At(2).Server = "https://b"
	if f.Workloads[1].Server != "https://b" {
		t.Fatal("At does not point into the fleet")
	}
}

func TestDefaultNames(t *testing.T) {
	t.Parallel()
	hub, w := (&Options{}).Names()
	if hub != "argo-hub" || strings.Join(w, ",") != "argo-rollout1,argo-rollout2" {
		t.Fatalf("defaults %s %v, want the seed's names", hub, w)
	}
	hub, w = (&Options{Hub: "x", Workloads: []string{"y"}}).Names()
	if hub != "x" || len(w) != 1 || w[0] != "y" {
		t.Fatalf("explicit names not kept: %s %v", hub, w)
	}
}

func TestNewFleetLayout(t *testing.T) {
	t.Parallel()
	f := NewFleet("p", "/k", []string{"h", "a", "b"}, func(i int, name string) string { return name + "-ctx" })
	if f.Hub.Name != "h" || f.Hub.Role != RoleHub || f.Hub.Network != "" || f.Hub.Context != "h-ctx" {
		t.Errorf("hub %+v", f.Hub)
	}
	for i, w := range f.Workloads {
		if w.Role != RoleWork || w.Network != NetworkName(i+1) || w.Context != w.Name+"-ctx" {
			t.Errorf("workload %d %+v", i, w)
		}
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
}
