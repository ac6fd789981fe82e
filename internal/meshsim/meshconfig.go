package meshsim

import (
	"bytes"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/yaml"
)

// Istio keeps its mesh-wide settings (MeshConfig) as YAML in the "mesh" key
// of the ConfigMap "istio" in istio-system, which the istiod chart renders
// from its meshConfig values. Meshsim reads the same object.
const (
	MeshConfigNamespace = "istio-system"
	MeshConfigName      = "istio"
	MeshConfigKey       = "mesh"
)

// MeshConfig is the part of Istio's MeshConfig that changes routing in the
// simulated data plane: serviceSettings, whose clusterLocal setting keeps a
// host's traffic inside the cluster that sends it (Istio:
// https://istio.io/latest/docs/ops/configuration/traffic-management/multicluster/).
// Everything else in the mesh config is ignored.
type MeshConfig struct {
	ServiceSettings []ServiceSettings `json:"serviceSettings,omitempty"`
}

// ServiceSettings applies settings to hosts; a host is a service's FQDN or
// a wildcard "*.suffix", as in Istio.
type ServiceSettings struct {
	Settings struct {
		ClusterLocal bool `json:"clusterLocal,omitempty"`
	} `json:"settings"`
	Hosts []string `json:"hosts"`
}

// ParseMeshConfig reads the mesh config's YAML. Empty text is the default
// (every host mesh-wide).
func ParseMeshConfig(text string) (MeshConfig, error) {
	var mc MeshConfig
	if strings.TrimSpace(text) == "" {
		return mc, nil
	}
	if err := yaml.NewYAMLOrJSONDecoder(bytes.NewReader([]byte(text)), 4096).Decode(&mc); err != nil {
		return MeshConfig{}, fmt.Errorf("mesh config: %w", err)
	}
	return mc, nil
}

// ClusterLocal reports whether host's endpoints are limited to the local
// cluster. As in Istio, the last matching setting wins.
func (mc MeshConfig) ClusterLocal(host string) bool {
	local := false
	for _, s := range mc.ServiceSettings {
		for _, h := range s.Hosts {
			if hostMatches(h, host) {
				local = s.Settings.ClusterLocal
			}
		}
	}
	return local
}

func hostMatches(pattern, host string) bool {
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(host, suffix)
	}
	return pattern == host
}
