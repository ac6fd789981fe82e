package local

import (
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func TestUserKubeconfigContexts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fleetCfg := clientcmdapi.NewConfig()
	st := &State{Kubeconfig: filepath.Join(dir, "fleet"), Clusters: []ClusterInfo{
		{Name: HubName, Server: "https://127.0.0.1:1001"}, {Name: "argo-rollout1", Server: "https://127.0.0.1:1002"}}}
	for _, c := range st.Clusters {
		fleetCfg.Clusters[c.Name] = &clientcmdapi.Cluster{Server: c.Server}
		fleetCfg.AuthInfos[c.Name] = &clientcmdapi.AuthInfo{Token: "t-" + c.Name}
		fleetCfg.Contexts[c.Name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: c.Name}
	}
	if err := clientcmd.WriteToFile(*fleetCfg, st.Kubeconfig); err != nil {
		t.Fatal(err)
	}
	// A person's kubeconfig with their own cluster, current, and a context
	// that happens to be called argo-rollout1.
	user := clientcmdapi.NewConfig()
	user.Clusters["prod"] = &clientcmdapi.Cluster{Server: "https://prod.example.com"}
	user.AuthInfos["me"] = &clientcmdapi.AuthInfo{Token: "mine"}
	user.Contexts["prod"] = &clientcmdapi.Context{Cluster: "prod", AuthInfo: "me"}
	user.Contexts["argo-rollout1"] = &clientcmdapi.Context{Cluster: "prod", AuthInfo: "me"}
	user.CurrentContext = "prod"
	path := filepath.Join(dir, "home", ".kube", "config")
	if _, _, err := AddToKubeconfig(path, st); err != nil {
		t.Fatalf("into a missing file: %v", err)
	}
	if err := clientcmd.WriteToFile(*user, path); err != nil {
		t.Fatal(err)
	}
	added, skipped, err := AddToKubeconfig(path, st)
	if err != nil || !slices.Equal(added, []string{HubName}) || !slices.Equal(skipped, []string{"argo-rollout1"}) {
		t.Fatalf("added %v skipped %v err %v", added, skipped, err)
	}
	got, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hub := got.Contexts[HubName]
	if hub == nil || got.Clusters[hub.Cluster].Server != "https://127.0.0.1:1001" || got.AuthInfos[hub.AuthInfo].Token != "t-argo-hub" {
		t.Errorf("argo-hub context %+v", hub)
	}
	if got.CurrentContext != "prod" || got.Contexts["argo-rollout1"].Cluster != "prod" || got.AuthInfos["me"].Token != "mine" {
		t.Errorf("the person's entries changed: current %q, argo-rollout1 %+v", got.CurrentContext, got.Contexts["argo-rollout1"])
	}
	removed, err := RemoveFromKubeconfig(path, st)
	if err != nil || !slices.Equal(removed, []string{HubName}) {
		t.Fatalf("removed %v, %v", removed, err)
	}
	got, _ = clientcmd.LoadFromFile(path)
	if _, ok := got.Contexts[HubName]; ok || got.Contexts["prod"] == nil || got.Contexts["argo-rollout1"] == nil || len(got.Clusters) != 1 {
		t.Errorf("after removal: contexts %v clusters %v", got.Contexts, got.Clusters)
	}
}
