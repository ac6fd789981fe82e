package eks

import (
	"bytes"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"lockstep.dev/lockstep/internal/lab/provider"
)

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	tests := []struct {
		name   string
		in     Config
		getenv func(string) string
		want   Config
	}{
		{"all defaults", Config{}, env(), Config{Region: "us-west-2", KubernetesVersion: "1.33", InstanceType: "m5.large", Nodes: 2}},
		{"no environment", Config{}, nil, Config{Region: "us-west-2", KubernetesVersion: "1.33", InstanceType: "m5.large", Nodes: 2}},
		{"AWS_REGION", Config{}, env("AWS_REGION", "eu-west-1", "AWS_DEFAULT_REGION", "ap-south-1"), Config{Region: "eu-west-1", KubernetesVersion: "1.33", InstanceType: "m5.large", Nodes: 2}},
		{"AWS_DEFAULT_REGION", Config{}, env("AWS_DEFAULT_REGION", "ap-south-1"), Config{Region: "ap-south-1", KubernetesVersion: "1.33", InstanceType: "m5.large", Nodes: 2}},
		{"explicit wins", Config{Region: "us-east-2", KubernetesVersion: "1.31", InstanceType: "t3.xlarge", Nodes: 5, Eksctl: "/x/eksctl"}, env("AWS_REGION", "eu-west-1"),
			Config{Region: "us-east-2", KubernetesVersion: "1.31", InstanceType: "t3.xlarge", Nodes: 5, Eksctl: "/x/eksctl"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.in.WithDefaults(tt.getenv); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestClusterConfigsErrors(t *testing.T) {
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
		{"bad region", provider.Options{}, Config{Region: "mars-1"}, `"mars-1" is not an AWS region`},
		{"bad version", provider.Options{}, Config{KubernetesVersion: "v1.33"}, `"v1.33"`},
		{"bad instance type", provider.Options{}, Config{InstanceType: "large"}, `"large"`},
		{"negative nodes", provider.Options{}, Config{Nodes: -1}, "got -1"},
		{"too many nodes", provider.Options{}, Config{Nodes: MaxNodes + 1}, "1 to 100"},
		{"underscore", provider.Options{Hub: "argo_hub"}, Config{}, `"argo_hub"`},
		{"leading digit", provider.Options{Workloads: []string{"1rollout"}}, Config{}, `"1rollout"`},
		{"too long", provider.Options{Hub: "a" + strings.Repeat("b", 100)}, Config{}, "must match"},
		{"duplicate", provider.Options{Workloads: []string{"w", "w"}}, Config{}, `"w" used twice`},
		{"too many clusters", provider.Options{Workloads: many}, Config{}, "room for 90"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ClusterConfigs(tt.o, tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// TestClusterConfigsSeedLab renders the seed's lab, decodes it back with
// unknown fields rejected and checks what the mesh and Argo CD need.
func TestClusterConfigsSeedLab(t *testing.T) {
	t.Parallel()
	ccs, err := ClusterConfigs(provider.Options{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ name, role, meshType, network, cidr string }{
		{"argo-hub", "hub", "mesh-mgmt", "", "10.10.0.0/16"},
		{"argo-rollout1", "workload", "mesh-workload", "network1", "10.11.0.0/16"},
		{"argo-rollout2", "workload", "mesh-workload", "network2", "10.12.0.0/16"},
	}
	if len(ccs) != len(want) {
		t.Fatalf("%d configs, want %d", len(ccs), len(want))
	}
	for i, w := range want {
		b, err := Render(ccs[i])
		if err != nil {
			t.Fatal(err)
		}
		d := yaml.NewDecoder(bytes.NewReader(b))
		d.KnownFields(true)
		var cc ClusterConfig
		if err := d.Decode(&cc); err != nil {
			t.Fatalf("%s: decode: %v", w.name, err)
		}
		if !reflect.DeepEqual(&cc, ccs[i]) {
			t.Errorf("%s: round trip differs:\n got %+v\nwant %+v", w.name, cc, *ccs[i])
		}
		if cc.APIVersion != "eksctl.io/v1alpha5" || cc.Kind != "ClusterConfig" {
			t.Errorf("%s: %s/%s", w.name, cc.APIVersion, cc.Kind)
		}
		m := cc.Metadata
		if m.Name != w.name || m.Region != "us-west-2" || m.Version != "1.33" {
			t.Errorf("%s: metadata %+v", w.name, m)
		}
		wantTags := map[string]string{LabRoleTag: w.role, MeshTypeTag: w.meshType}
		if w.network != "" {
			wantTags[NetworkTag] = w.network
		}
		if !reflect.DeepEqual(m.Tags, wantTags) {
			t.Errorf("%s: tags %v, want %v", w.name, m.Tags, wantTags)
		}
		if cc.IAM == nil || !cc.IAM.WithOIDC {
			t.Errorf("%s: OIDC is off", w.name)
		} else if sa := cc.IAM.ServiceAccounts; len(sa) != 1 || sa[0].Metadata.Name != "aws-load-balancer-controller" ||
			sa[0].Metadata.Namespace != "kube-system" || sa[0].WellKnownPolicies == nil || !sa[0].WellKnownPolicies.AWSLoadBalancerController {
			t.Errorf("%s: load balancer controller service account %+v", w.name, sa)
		}
		if v := cc.VPC; v == nil || v.CIDR != w.cidr || v.NAT == nil || v.NAT.Gateway != "Single" ||
			v.ClusterEndpoints == nil || !v.ClusterEndpoints.PublicAccess || !v.ClusterEndpoints.PrivateAccess {
			t.Errorf("%s: vpc %+v", w.name, v)
		}
		addons := map[string]Addon{}
		for _, a := range cc.Addons {
			addons[a.Name] = a
		}
		for _, a := range []string{"vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver"} {
			if _, ok := addons[a]; !ok {
				t.Errorf("%s: no %s add-on", w.name, a)
			}
		}
		if p := addons["aws-ebs-csi-driver"].WellKnownPolicies; p == nil || !p.EBSCSIController {
			t.Errorf("%s: the EBS CSI driver has no IAM policy", w.name)
		}
		if len(cc.ManagedNodeGroups) != 1 {
			t.Fatalf("%s: %d nodegroups", w.name, len(cc.ManagedNodeGroups))
		}
		ng := cc.ManagedNodeGroups[0]
		if ng.Name != w.meshType+"-ng" || ng.InstanceType != "m5.large" || ng.DesiredCapacity != 2 || ng.MinSize != 2 || ng.MaxSize != 4 ||
			!ng.PrivateNetworking || ng.Labels[LabRoleTag] != w.role || ng.Tags[LabRoleTag] != w.role || ng.AMIFamily != "AmazonLinux2023" {
			t.Errorf("%s: nodegroup %+v", w.name, ng)
		}
	}
}

func TestClusterConfigsCustom(t *testing.T) {
	t.Parallel()
	ccs, err := ClusterConfigs(provider.Options{Hub: "hub", Workloads: []string{"w1"}},
		Config{Region: "eu-central-1", KubernetesVersion: "1.32", InstanceType: "c6i.xlarge", Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(ccs) != 2 || ccs[0].Metadata.Name != "hub" || ccs[1].Metadata.Name != "w1" {
		t.Fatalf("clusters %v", ccs)
	}
	for _, cc := range ccs {
		ng := cc.ManagedNodeGroups[0]
		if cc.Metadata.Region != "eu-central-1" || cc.Metadata.Version != "1.32" || ng.InstanceType != "c6i.xlarge" ||
			ng.DesiredCapacity != 3 || ng.MinSize != 3 || ng.MaxSize != 6 {
			t.Errorf("%s: %+v %+v", cc.Metadata.Name, cc.Metadata, ng)
		}
	}
}

// TestVPCsDoNotOverlap checks the VPC ranges of the largest lab against
// each other and against EKS's default service ranges.
func TestVPCsDoNotOverlap(t *testing.T) {
	t.Parallel()
	var ps []netip.Prefix
	for i := range MaxClusters {
		p, err := netip.ParsePrefix(VPCCIDR(i))
		if err != nil || p != p.Masked() || p.Bits() != 16 {
			t.Fatalf("cluster %d: bad VPC range %s (%v)", i, VPCCIDR(i), err)
		}
		for _, q := range ps {
			if p.Overlaps(q) {
				t.Errorf("%s overlaps %s", p, q)
			}
		}
		for _, svc := range []string{"10.100.0.0/16", "172.20.0.0/16"} {
			if p.Overlaps(netip.MustParsePrefix(svc)) {
				t.Errorf("%s overlaps EKS's default service range %s", p, svc)
			}
		}
		ps = append(ps, p)
	}
}
