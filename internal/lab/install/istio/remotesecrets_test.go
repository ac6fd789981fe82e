package istio

import (
	"bytes"
	"encoding/base64"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func TestRemoteKubeconfig(t *testing.T) {
	t.Parallel()
	ca := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	for _, tc := range []struct {
		cluster, server, token string
	}{
		{"argo-rollout2", "https://127.0.0.1:6443", "tok-2"},
		{"argo-rollout1", "https://argo-rollout1-control-plane:6443", "eyJhbGciOi.x.y"},
	} {
		t.Run(tc.cluster, func(t *testing.T) {
			t.Parallel()
			b, err := remoteKubeconfig(tc.cluster, tc.server, ca, []byte(tc.token))
			if err != nil {
				t.Fatal(err)
			}
			again, err := remoteKubeconfig(tc.cluster, tc.server, ca, []byte(tc.token))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, again) {
				t.Error("two encodings of the same kubeconfig differ: re-applying the remote secret would change it")
			}
			cfg, err := clientcmd.Load(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Clusters) != 1 || len(cfg.Contexts) != 1 || len(cfg.AuthInfos) != 1 {
				t.Fatalf("kubeconfig has %d clusters, %d contexts, %d users; want one each", len(cfg.Clusters), len(cfg.Contexts), len(cfg.AuthInfos))
			}
			if cfg.CurrentContext != tc.cluster {
				t.Errorf("current-context %q, want %q", cfg.CurrentContext, tc.cluster)
			}
			cl, ok := cfg.Clusters[tc.cluster]
			if !ok || cl.Server != tc.server || !bytes.Equal(cl.CertificateAuthorityData, ca) {
				t.Errorf("cluster %q: %+v", tc.cluster, cl)
			}
			ctx, ok := cfg.Contexts[tc.cluster]
			if !ok || ctx.Cluster != tc.cluster || ctx.AuthInfo != tc.cluster {
				t.Errorf("context %q: %+v", tc.cluster, ctx)
			}
			u, ok := cfg.AuthInfos[tc.cluster]
			if !ok || u.Token != tc.token {
				t.Errorf("user %q has not the token", tc.cluster)
			}
		})
	}
}

// The bytes are istioctl's: its createBearerTokenKubeconfig encoded with
// client-go's latest codec.
func TestRemoteKubeconfigEncoding(t *testing.T) {
	t.Parallel()
	b, err := remoteKubeconfig("c2", "https://10.0.0.2:6443", []byte("CA"), []byte("TOKEN"))
	if err != nil {
		t.Fatal(err)
	}
	want := `apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://10.0.0.2:6443
  name: c2
contexts:
- context:
    cluster: c2
    user: c2
  name: c2
current-context: c2
kind: Config
users:
- name: c2
  user:
    token: TOKEN
`
	if string(b) != want {
		t.Errorf("kubeconfig:\n%s\nwant:\n%s", b, want)
	}
}

func TestRemoteSecret(t *testing.T) {
	t.Parallel()
	kc := []byte("apiVersion: v1\nkind: Config\n")
	s := remoteSecret("argo-rollout2", kc)
	if s.GetName() != "istio-remote-secret-argo-rollout2" || s.GetNamespace() != "istio-system" {
		t.Errorf("secret %s/%s", s.GetNamespace(), s.GetName())
	}
	if s.GetLabels()["istio/multiCluster"] != "true" {
		t.Errorf("labels %v, want istio/multiCluster=true", s.GetLabels())
	}
	if s.GetAnnotations()["networking.istio.io/cluster"] != "argo-rollout2" {
		t.Errorf("annotations %v", s.GetAnnotations())
	}
	data, _ := s.Object["data"].(map[string]any)
	if len(data) != 1 {
		t.Fatalf("data %v, want one key", data)
	}
	enc, _ := data["argo-rollout2"].(string)
	got, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || !bytes.Equal(got, kc) {
		t.Errorf("data[argo-rollout2] = %q (%v), want the kubeconfig", got, err)
	}
}
