package local

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// userPrefix names the cluster and user entries the local fleet writes
// into a person's kubeconfig; contexts are named after the clusters, as in
// the fleet's own kubeconfig, so `--context argo-hub` works without
// --kubeconfig.
const userPrefix = "lockstep-local-"

// UserKubeconfig is the kubeconfig people use: the first file of
// $KUBECONFIG, else ~/.kube/config (as kind and kubectl pick it).
func UserKubeconfig() string {
	if env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar); env != "" {
		for _, p := range filepath.SplitList(env) {
			if p != "" {
				return p
			}
		}
	}
	return clientcmd.RecommendedHomeFile
}

// AddToKubeconfig copies the fleet's contexts into the kubeconfig at path,
// as `kind create cluster` does: a context per cluster, named after it,
// with cluster and user entries prefixed lockstep-local-. A context of the
// same name that is not the fleet's is left alone and reported; the
// current context becomes argo-hub only when there was none or it was the
// fleet's. It returns the contexts written.
func AddToKubeconfig(path string, st *State) ([]string, []string, error) {
	fleet, err := clientcmd.LoadFromFile(st.Kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := loadOrNew(path)
	if err != nil {
		return nil, nil, err
	}
	var added, skipped []string
	for _, c := range st.Clusters {
		ctx, ok := fleet.Contexts[c.Name]
		if !ok {
			continue
		}
		if old, ok := cfg.Contexts[c.Name]; ok && !strings.HasPrefix(old.Cluster, userPrefix) {
			skipped = append(skipped, c.Name)
			continue
		}
		cfg.Clusters[userPrefix+c.Name] = fleet.Clusters[ctx.Cluster]
		cfg.AuthInfos[userPrefix+c.Name] = fleet.AuthInfos[ctx.AuthInfo]
		cfg.Contexts[c.Name] = &clientcmdapi.Context{Cluster: userPrefix + c.Name, AuthInfo: userPrefix + c.Name, Namespace: ctx.Namespace}
		added = append(added, c.Name)
	}
	cur, ok := cfg.Contexts[cfg.CurrentContext]
	if cfg.CurrentContext == "" || !ok || strings.HasPrefix(cur.Cluster, userPrefix) {
		if _, ours := cfg.Contexts[HubName]; ours && strings.HasPrefix(cfg.Contexts[HubName].Cluster, userPrefix) {
			cfg.CurrentContext = HubName
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, nil, err
	}
	return added, skipped, clientcmd.WriteToFile(*cfg, path)
}

// RemoveFromKubeconfig deletes what AddToKubeconfig wrote for the fleet's
// clusters (matched by server), and nothing else.
func RemoveFromKubeconfig(path string, st *State) ([]string, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	servers := map[string]bool{}
	for _, c := range st.Clusters {
		servers[c.Server] = true
	}
	var removed []string
	for name, ctx := range cfg.Contexts {
		cl, ok := cfg.Clusters[ctx.Cluster]
		if !strings.HasPrefix(ctx.Cluster, userPrefix) || !ok || !servers[cl.Server] {
			continue
		}
		delete(cfg.Clusters, ctx.Cluster)
		delete(cfg.AuthInfos, ctx.AuthInfo)
		delete(cfg.Contexts, name)
		removed = append(removed, name)
		if cfg.CurrentContext == name {
			cfg.CurrentContext = ""
		}
	}
	if len(removed) == 0 {
		return nil, nil
	}
	return removed, clientcmd.WriteToFile(*cfg, path)
}

func loadOrNew(path string) (*clientcmdapi.Config, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return clientcmdapi.NewConfig(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// AddContexts adds the fleet's contexts to the person's kubeconfig at path
// ("none" or "" skips it) and says so on out; a failure is a warning, the
// fleet runs anyway.
func AddContexts(out io.Writer, path string, st *State) {
	if path == "none" || path == "" {
		return
	}
	added, skipped, err := AddToKubeconfig(path, st)
	if err != nil {
		fmt.Fprintf(out, "warning: contexts not added to %s: %v\n", path, err)
		return
	}
	if len(added) > 0 {
		fmt.Fprintf(out, "contexts %s added to %s (kubectl --context %s get nodes)\n", strings.Join(added, ", "), path, added[0])
	}
	if len(skipped) > 0 {
		fmt.Fprintf(out, "warning: %s already name other clusters in %s; left alone\n", strings.Join(skipped, ", "), path)
	}
}

// RemoveContexts removes from the kubeconfig at path the entries
// AddContexts added for the fleet in dir, and says what it did on out.
// "none" or "" leaves the kubeconfig alone, as with AddContexts.
func RemoveContexts(out io.Writer, path, dir string) {
	if path == "none" || path == "" {
		return
	}
	st, err := ReadState(dir)
	if err != nil {
		return
	}
	removed, err := RemoveFromKubeconfig(path, st)
	if err != nil {
		fmt.Fprintf(out, "warning: contexts left in %s: %v\n", path, err)
		return
	}
	if len(removed) > 0 {
		fmt.Fprintf(out, "removed contexts %s from %s\n", strings.Join(removed, ", "), path)
	}
}
