package eks

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"

	"lockstep.dev/lockstep/internal/lab/provider"
)

// Defaults of Config.
const (
	DefaultRegion            = "us-west-2"
	DefaultKubernetesVersion = "1.33"
	DefaultInstanceType      = "m5.large"
	DefaultNodes             = 2
)

// Tags and labels the lab puts on its clusters and nodes.
const (
	LabRoleTag  = "lockstep.dev/lab-role"
	MeshTypeTag = "lockstep.dev/mesh-type"
	NetworkTag  = "lockstep.dev/network"
)

// The seed script's cluster types (its -t flag).
const (
	MeshMgmt     = "mesh-mgmt"
	MeshWorkload = "mesh-workload"
)

// APIVersion and Kind of eksctl's config file.
const (
	APIVersion = "eksctl.io/v1alpha5"
	Kind       = "ClusterConfig"
)

// LoadBalancerControllerSA is the IAM service account eksctl creates for
// the AWS Load Balancer Controller (namespace kube-system).
const LoadBalancerControllerSA = "aws-load-balancer-controller"

// MaxNodes bounds Config.Nodes.
const MaxNodes = 100

var (
	// eksctl names CloudFormation stacks after the cluster, so the name
	// must satisfy CloudFormation's rule as well as EKS's (1-100 chars).
	validName    = regexp.MustCompile(`^[a-zA-Z][-a-zA-Z0-9]{0,99}$`)
	validRegion  = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]+$`)
	validVersion = regexp.MustCompile(`^1\.[0-9]+$`)
	validType    = regexp.MustCompile(`^[a-z0-9-]+\.[a-z0-9]+$`)
)

// Config is what the CLI sets on the EKS provider.
type Config struct {
	// Region is the AWS region of every cluster (default: AWS_REGION, then
	// AWS_DEFAULT_REGION, then DefaultRegion).
	Region string
	// KubernetesVersion is the EKS version, "1.33" style.
	KubernetesVersion string
	// InstanceType is the EC2 type of the nodes.
	InstanceType string
	// Nodes is the desired (and minimum) size of each cluster's nodegroup;
	// the maximum is twice that.
	Nodes int
	// Eksctl is the eksctl binary (default: the one on PATH).
	Eksctl string
}

// WithDefaults fills the empty fields; getenv is os.Getenv outside tests.
func (c Config) WithDefaults(getenv func(string) string) Config {
	if c.Region == "" && getenv != nil {
		c.Region = getenv("AWS_REGION")
		if c.Region == "" {
			c.Region = getenv("AWS_DEFAULT_REGION")
		}
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.KubernetesVersion == "" {
		c.KubernetesVersion = DefaultKubernetesVersion
	}
	if c.InstanceType == "" {
		c.InstanceType = DefaultInstanceType
	}
	if c.Nodes == 0 {
		c.Nodes = DefaultNodes
	}
	return c
}

// Validate checks a defaulted Config.
func (c Config) Validate() error {
	switch {
	case !validRegion.MatchString(c.Region):
		return fmt.Errorf("eks: %q is not an AWS region (like us-west-2)", c.Region)
	case !validVersion.MatchString(c.KubernetesVersion):
		return fmt.Errorf("eks: Kubernetes version %q is not like %q", c.KubernetesVersion, DefaultKubernetesVersion)
	case !validType.MatchString(c.InstanceType):
		return fmt.Errorf("eks: %q is not an EC2 instance type (like %s)", c.InstanceType, DefaultInstanceType)
	case c.Nodes < 1 || c.Nodes > MaxNodes:
		return fmt.Errorf("eks: nodes per cluster must be 1 to %d (got %d)", MaxNodes, c.Nodes)
	}
	return nil
}

// ClusterConfig is the subset of eksctl's ClusterConfig the lab writes.
// Field names follow eksctl's schema exactly (testdata/schema.json).
type ClusterConfig struct {
	APIVersion        string             `json:"apiVersion" yaml:"apiVersion"`
	Kind              string             `json:"kind" yaml:"kind"`
	Metadata          ClusterMeta        `json:"metadata" yaml:"metadata"`
	IAM               *ClusterIAM        `json:"iam,omitempty" yaml:"iam,omitempty"`
	VPC               *ClusterVPC        `json:"vpc,omitempty" yaml:"vpc,omitempty"`
	Addons            []Addon            `json:"addons,omitempty" yaml:"addons,omitempty"`
	ManagedNodeGroups []ManagedNodeGroup `json:"managedNodeGroups,omitempty" yaml:"managedNodeGroups,omitempty"`
}

// ClusterMeta is eksctl's metadata block.
type ClusterMeta struct {
	Name    string            `json:"name" yaml:"name"`
	Region  string            `json:"region" yaml:"region"`
	Version string            `json:"version,omitempty" yaml:"version,omitempty"`
	Tags    map[string]string `json:"tags,omitempty" yaml:"tags,omitempty"`
}

// ClusterIAM is eksctl's iam block.
type ClusterIAM struct {
	WithOIDC        bool                `json:"withOIDC,omitempty" yaml:"withOIDC,omitempty"`
	ServiceAccounts []IAMServiceAccount `json:"serviceAccounts,omitempty" yaml:"serviceAccounts,omitempty"`
}

// IAMServiceAccount is an IRSA service account eksctl creates.
type IAMServiceAccount struct {
	Metadata          ServiceAccountMeta `json:"metadata" yaml:"metadata"`
	WellKnownPolicies *WellKnownPolicies `json:"wellKnownPolicies,omitempty" yaml:"wellKnownPolicies,omitempty"`
}

// ServiceAccountMeta names a service account.
type ServiceAccountMeta struct {
	Name      string            `json:"name" yaml:"name"`
	Namespace string            `json:"namespace" yaml:"namespace"`
	Labels    map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
}

// WellKnownPolicies are eksctl's canned IAM policies.
type WellKnownPolicies struct {
	AWSLoadBalancerController bool `json:"awsLoadBalancerController,omitempty" yaml:"awsLoadBalancerController,omitempty"`
	EBSCSIController          bool `json:"ebsCSIController,omitempty" yaml:"ebsCSIController,omitempty"`
}

// ClusterVPC is eksctl's vpc block.
type ClusterVPC struct {
	CIDR             string            `json:"cidr,omitempty" yaml:"cidr,omitempty"`
	NAT              *ClusterNAT       `json:"nat,omitempty" yaml:"nat,omitempty"`
	ClusterEndpoints *ClusterEndpoints `json:"clusterEndpoints,omitempty" yaml:"clusterEndpoints,omitempty"`
}

// ClusterNAT is the VPC's NAT gateway mode (HighlyAvailable, Single,
// Disable).
type ClusterNAT struct {
	Gateway string `json:"gateway" yaml:"gateway"`
}

// ClusterEndpoints says where the API server answers.
type ClusterEndpoints struct {
	PrivateAccess bool `json:"privateAccess" yaml:"privateAccess"`
	PublicAccess  bool `json:"publicAccess" yaml:"publicAccess"`
}

// Addon is an EKS add-on.
type Addon struct {
	Name              string             `json:"name" yaml:"name"`
	Version           string             `json:"version,omitempty" yaml:"version,omitempty"`
	WellKnownPolicies *WellKnownPolicies `json:"wellKnownPolicies,omitempty" yaml:"wellKnownPolicies,omitempty"`
}

// ManagedNodeGroup is an EKS managed nodegroup.
type ManagedNodeGroup struct {
	Name              string            `json:"name" yaml:"name"`
	AMIFamily         string            `json:"amiFamily,omitempty" yaml:"amiFamily,omitempty"`
	InstanceType      string            `json:"instanceType,omitempty" yaml:"instanceType,omitempty"`
	DesiredCapacity   int               `json:"desiredCapacity,omitempty" yaml:"desiredCapacity,omitempty"`
	MinSize           int               `json:"minSize,omitempty" yaml:"minSize,omitempty"`
	MaxSize           int               `json:"maxSize,omitempty" yaml:"maxSize,omitempty"`
	VolumeSize        int               `json:"volumeSize,omitempty" yaml:"volumeSize,omitempty"`
	VolumeType        string            `json:"volumeType,omitempty" yaml:"volumeType,omitempty"`
	PrivateNetworking bool              `json:"privateNetworking,omitempty" yaml:"privateNetworking,omitempty"`
	Labels            map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Tags              map[string]string `json:"tags,omitempty" yaml:"tags,omitempty"`
}

// ClusterEntry is the name eksctl gives the cluster entry of its kubeconfig
// (its contexts are <IAM identity>@ClusterEntry).
func ClusterEntry(name, region string) string { return name + "." + region + ".eksctl.io" }

// VPCCIDR is the VPC range of the i-th cluster of the lab (0 is the hub).
func VPCCIDR(i int) string { return "10." + strconv.Itoa(10+i) + ".0.0/16" }

// MaxClusters is how many clusters the VPC plan has room for: 10.10.0.0/16
// to 10.99.0.0/16, clear of 10.100.0.0/16, one of EKS's default service
// ranges.
const MaxClusters = 90

// ClusterConfigs returns one eksctl ClusterConfig per lab cluster, the hub
// first, then the workloads in order. Empty Config fields take the package
// defaults (not the environment: see Config.WithDefaults). It does no I/O.
func ClusterConfigs(o provider.Options, c Config) ([]*ClusterConfig, error) {
	c = c.WithDefaults(nil)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	hub, workloads := o.Names()
	names := append([]string{hub}, workloads...)
	if len(names) > MaxClusters {
		return nil, fmt.Errorf("eks: %d clusters requested, the VPC plan has room for %d", len(names), MaxClusters)
	}
	seen := map[string]bool{}
	out := make([]*ClusterConfig, 0, len(names))
	for i, name := range names {
		if !validName.MatchString(name) {
			return nil, fmt.Errorf("eks: cluster name %q must match %s", name, validName)
		}
		if seen[name] {
			return nil, fmt.Errorf("eks: cluster name %q used twice", name)
		}
		seen[name] = true
		role, meshType := provider.RoleHub, MeshMgmt
		tags := map[string]string{}
		if i > 0 {
			role, meshType = provider.RoleWork, MeshWorkload
			tags[NetworkTag] = provider.NetworkName(i)
		}
		tags[LabRoleTag] = role
		tags[MeshTypeTag] = meshType
		out = append(out, &ClusterConfig{
			APIVersion: APIVersion,
			Kind:       Kind,
			Metadata: ClusterMeta{
				Name:    name,
				Region:  c.Region,
				Version: c.KubernetesVersion,
				Tags:    tags,
			},
			IAM: &ClusterIAM{
				WithOIDC: true,
				ServiceAccounts: []IAMServiceAccount{{
					Metadata:          ServiceAccountMeta{Name: LoadBalancerControllerSA, Namespace: "kube-system"},
					WellKnownPolicies: &WellKnownPolicies{AWSLoadBalancerController: true},
				}},
			},
			VPC: &ClusterVPC{
				CIDR:             VPCCIDR(i),
				NAT:              &ClusterNAT{Gateway: "Single"},
				ClusterEndpoints: &ClusterEndpoints{PrivateAccess: true, PublicAccess: true},
			},
			Addons: []Addon{
				{Name: "vpc-cni"},
				{Name: "coredns"},
				{Name: "kube-proxy"},
				{Name: "aws-ebs-csi-driver", WellKnownPolicies: &WellKnownPolicies{EBSCSIController: true}},
			},
			ManagedNodeGroups: []ManagedNodeGroup{{
				Name:              meshType + "-ng",
				AMIFamily:         "AmazonLinux2023",
				InstanceType:      c.InstanceType,
				DesiredCapacity:   c.Nodes,
				MinSize:           c.Nodes,
				MaxSize:           2 * c.Nodes,
				VolumeSize:        80,
				VolumeType:        "gp3",
				PrivateNetworking: true,
				Labels:            map[string]string{LabRoleTag: role},
				Tags:              map[string]string{LabRoleTag: role, MeshTypeTag: meshType},
			}},
		})
	}
	return out, nil
}

// Render encodes a ClusterConfig as the file `eksctl create cluster -f`
// reads, fields in eksctl's preferred order.
func Render(cc *ClusterConfig) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# EKS cluster %s, generated by lockstep (eksctl create cluster -f this-file)\n", cc.Metadata.Name)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(cc); err != nil {
		return nil, fmt.Errorf("eks: encode config of %s: %w", cc.Metadata.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("eks: encode config of %s: %w", cc.Metadata.Name, err)
	}
	return b.Bytes(), nil
}
