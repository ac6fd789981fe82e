package local

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func lookPath(bin string) (string, error) { return exec.LookPath(bin) }

// kubeconfig builds a config whose contexts are named after the clusters.
// namespace, when set, is the default namespace of every context.
func (f *fleet) kubeconfig(namespace string, clusters ...string) (*clientcmdapi.Config, error) {
	ca, err := os.ReadFile(f.pki.CACert())
	if err != nil {
		return nil, err
	}
	cfg := clientcmdapi.NewConfig()
	for _, c := range clusters {
		tok, err := f.pki.Token(c)
		if err != nil {
			return nil, err
		}
		cfg.Clusters[c] = &clientcmdapi.Cluster{Server: f.server(c), CertificateAuthorityData: ca}
		cfg.AuthInfos[c] = &clientcmdapi.AuthInfo{Token: tok}
		cfg.Contexts[c] = &clientcmdapi.Context{Cluster: c, AuthInfo: c, Namespace: namespace}
	}
	cfg.CurrentContext = clusters[0]
	return cfg, nil
}

func (f *fleet) kubeconfigPath(name string) string {
	return filepath.Join(f.opt.Dir, name)
}

// writeKubeconfigs writes the fleet's kubeconfig (all contexts) and one per
// cluster for the processes of that cluster.
func (f *fleet) writeKubeconfigs(context.Context) error {
	all, err := f.kubeconfig("", f.clusters...)
	if err != nil {
		return err
	}
	if err := clientcmd.WriteToFile(*all, f.kubeconfigPath("kubeconfig")); err != nil {
		return err
	}
	for _, c := range f.clusters {
		one, err := f.kubeconfig("", c)
		if err != nil {
			return err
		}
		if err := clientcmd.WriteToFile(*one, f.clusterKubeconfig(c)); err != nil {
			return err
		}
	}
	argo, err := f.kubeconfig(ArgoCDNS, HubName)
	if err != nil {
		return err
	}
	if err := clientcmd.WriteToFile(*argo, f.kubeconfigPath("argocd.kubeconfig")); err != nil {
		return err
	}
	return f.s.Update(func(st *State) {
		st.Clusters = []ClusterInfo{{Name: HubName, Role: RoleHub, Server: f.server(HubName)}}
		for i, w := range f.workloads {
			st.Clusters = append(st.Clusters, ClusterInfo{Name: w, Role: RoleWorkload, Server: f.server(w), PrometheusCluster: PrometheusClusterLabel(i + 1)})
		}
	})
}

func (f *fleet) clusterKubeconfig(c string) string {
	return f.kubeconfigPath(filepath.Join("kubeconfigs", c))
}

// restConfig is an admin client configuration for a cluster of the fleet.
func (f *fleet) restConfig(c string) (*rest.Config, error) {
	return RESTConfig(f.kubeconfigPath("kubeconfig"), c)
}

// RESTConfig loads a context of a kubeconfig file.
func RESTConfig(path, context string) (*rest.Config, error) {
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: path},
		&clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s context %s: %w", path, context, err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	// Deprecation and naming warnings from the server (Argo CD's own
	// finalizer name, for one) are not the user's to act on.
	cfg.WarningHandler = rest.NoWarnings{}
	return cfg, nil
}
