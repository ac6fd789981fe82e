package istio

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"lockstep.dev/lockstep/internal/lab/install"
)

// What `istioctl create-remote-secret` reads and writes
// (istioctl/pkg/multicluster/remote_secret.go).
const (
	readerServiceAccount = "istio-reader-service-account"
	// readerTokenSecret is the long-lived token of the reader
	// ServiceAccount. istioctl names the one it creates
	// "<sa>-istio-remote-secret-token" but takes any token Secret of the
	// ServiceAccount it finds first, so it reuses this one.
	readerTokenSecret  = "istio-reader-service-account-token"
	remoteSecretPrefix = "istio-remote-secret-"
	// MultiClusterLabel marks the Secrets istiod's secret controller
	// watches for remote clusters.
	MultiClusterLabel = "istio/multiCluster"
	// ClusterAnnotation names the remote cluster of a remote secret.
	ClusterAnnotation = "networking.istio.io/cluster"
)

// RemoteSecretName is the name of the Secret that gives other clusters'
// istiods access to cluster's apiserver.
func RemoteSecretName(cluster string) string { return remoteSecretPrefix + cluster }

// remoteSecretsAction joins the control planes into one mesh: for every
// ordered pair (A, B) of workload clusters, A's istiod gets a kubeconfig
// for B's apiserver, authenticated as B's istio-reader-service-account, in
// the Secret istio-system/istio-remote-secret-B: what
// `istioctl create-remote-secret --context=B --name=B | kubectl apply
// --context=A -f -` does in the guide.
type remoteSecretsAction struct{}

func (remoteSecretsAction) Name() string { return "istio-remote-secrets" }
func (remoteSecretsAction) Description() string {
	return "Istio endpoint discovery: a remote secret for every pair of workload clusters"
}

func (remoteSecretsAction) Execute(c *install.Context) error {
	kubeconfigs := map[string][]byte{}
	for _, b := range c.Workloads {
		if err := ensureReaderServiceAccount(c, b); err != nil {
			return err
		}
		ca, token, err := readerToken(c, b)
		if err != nil {
			return err
		}
		if c.DryRun && token == nil {
			c.Logf("%s: dry run: the reader token does not exist yet, remote secrets skipped", b.Name)
			continue
		}
		kc, err := remoteKubeconfig(b.Name, server(b), ca, token)
		if err != nil {
			return fmt.Errorf("%s: %w", b.Name, err)
		}
		kubeconfigs[b.Name] = kc
	}
	for _, a := range c.Workloads {
		var to []string
		for _, b := range c.Workloads {
			kc, ok := kubeconfigs[b.Name]
			if a == b || !ok {
				continue
			}
			if err := c.Apply(a, remoteSecret(b.Name, kc)); err != nil {
				return err
			}
			to = append(to, fmt.Sprintf("%s (%s)", b.Name, server(b)))
		}
		if len(to) > 0 {
			c.Logf("%s: istiod reads %s", a.Name, strings.Join(to, ", "))
		}
	}
	return nil
}

// server is the address other clusters reach cl's apiserver at.
func server(cl *install.Cluster) string {
	if cl.Server != "" {
		return cl.Server
	}
	return cl.Config.Host
}

// ensureReaderServiceAccount makes sure the ServiceAccount istiods
// authenticate as exists. Istio's base chart creates it and the istiod
// chart binds it to istio-reader-clusterrole-istio-system; when it is
// missing (a base chart installed with enableReaderRBAC=false) it is
// created with that binding from the same charts, as istioctl does.
func ensureReaderServiceAccount(c *install.Context, cl *install.Cluster) error {
	_, err := cl.Kube.CoreV1().ServiceAccounts(SystemNamespace).Get(c, readerServiceAccount, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("%s: get serviceaccount %s/%s: %w", cl.Name, SystemNamespace, readerServiceAccount, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range []release{baseRelease(), istiodRelease(c.Settings, cl.Name, network(c, cl))} {
		rendered, err := renderRelease(c, cl, r)
		if err != nil {
			return err
		}
		objs = append(objs, readerRBAC(rendered)...)
	}
	if len(objs) == 0 {
		return fmt.Errorf("%s: the Istio charts render no %s", cl.Name, readerServiceAccount)
	}
	c.Logf("%s: creating %s/%s and its reader role binding", cl.Name, SystemNamespace, readerServiceAccount)
	return c.Apply(cl, objs...)
}

// readerRBAC picks the reader ServiceAccount and its ClusterRole and
// binding out of rendered charts, as istioctl's generateServiceAccountYAML
// does.
func readerRBAC(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		switch {
		case o.GetKind() == "ServiceAccount" && o.GetName() == readerServiceAccount,
			(o.GetKind() == "ClusterRole" || o.GetKind() == "ClusterRoleBinding") && strings.HasPrefix(o.GetName(), "istio-reader-clusterrole"):
			out = append(out, o)
		}
	}
	return out
}

// readerToken applies the reader ServiceAccount's long-lived token Secret
// (Kubernetes 1.24+ no longer makes one) and waits for the token controller
// to fill it, returning the cluster's CA and the token.
func readerToken(c *install.Context, cl *install.Cluster) (ca, token []byte, err error) {
	s := &unstructured.Unstructured{}
	s.SetAPIVersion("v1")
	s.SetKind("Secret")
	s.SetName(readerTokenSecret)
	s.SetNamespace(SystemNamespace)
	s.SetAnnotations(map[string]string{corev1.ServiceAccountNameKey: readerServiceAccount})
	s.SetLabels(map[string]string{"app.kubernetes.io/managed-by": "lockstep"})
	s.Object["type"] = string(corev1.SecretTypeServiceAccountToken)
	if err := c.Apply(cl, s); err != nil {
		return nil, nil, err
	}
	if c.DryRun {
		got, err := cl.Kube.CoreV1().Secrets(SystemNamespace).Get(c, readerTokenSecret, metav1.GetOptions{})
		if err != nil {
			return nil, nil, nil
		}
		return got.Data[corev1.ServiceAccountRootCAKey], got.Data[corev1.ServiceAccountTokenKey], nil
	}
	var last string
	err = wait.PollUntilContextTimeout(c, 200*time.Millisecond, c.Settings.Timeout, true, func(ctx context.Context) (bool, error) {
		got, err := cl.Kube.CoreV1().Secrets(SystemNamespace).Get(ctx, readerTokenSecret, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		ca, token = got.Data[corev1.ServiceAccountRootCAKey], got.Data[corev1.ServiceAccountTokenKey]
		last = "token controller has not filled it"
		return len(ca) > 0 && len(token) > 0, nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: token secret %s/%s not filled after %s (%s)", cl.Name, SystemNamespace, readerTokenSecret, c.Settings.Timeout, last)
	}
	return ca, token, nil
}

// remoteKubeconfig is the kubeconfig istioctl create-remote-secret writes
// for a bearer token: one cluster, context and user, all named after the
// cluster, encoded with client-go's latest codec. The encoding sorts map
// keys and has no timestamps, so the same inputs give the same bytes and
// re-applying the Secret changes nothing.
func remoteKubeconfig(cluster, server string, caData, token []byte) ([]byte, error) {
	cfg := clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{cluster: {
			Server:                   server,
			CertificateAuthorityData: caData,
		}},
		AuthInfos: map[string]*clientcmdapi.AuthInfo{cluster: {Token: string(token)}},
		Contexts: map[string]*clientcmdapi.Context{cluster: {
			Cluster:  cluster,
			AuthInfo: cluster,
		}},
		CurrentContext: cluster,
	}
	if err := clientcmd.Validate(cfg); err != nil {
		return nil, fmt.Errorf("remote kubeconfig: %w", err)
	}
	b, err := clientcmd.Write(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode remote kubeconfig: %w", err)
	}
	return b, nil
}

// remoteSecret is the Secret istioctl create-remote-secret --name=cluster
// prints, in istio-system.
func remoteSecret(cluster string, kubeconfig []byte) *unstructured.Unstructured {
	s := &unstructured.Unstructured{}
	s.SetAPIVersion("v1")
	s.SetKind("Secret")
	s.SetName(RemoteSecretName(cluster))
	s.SetNamespace(SystemNamespace)
	s.SetLabels(map[string]string{MultiClusterLabel: "true"})
	s.SetAnnotations(map[string]string{ClusterAnnotation: cluster})
	s.Object["data"] = map[string]any{cluster: base64.StdEncoding.EncodeToString(kubeconfig)}
	return s
}

// RemoteKubeconfig returns the kubeconfig of the remote secret for remote
// that is stored in cluster, for checks that it still authenticates.
func RemoteKubeconfig(ctx context.Context, cl *install.Cluster, remote string) ([]byte, error) {
	s, err := cl.Kube.CoreV1().Secrets(SystemNamespace).Get(ctx, RemoteSecretName(remote), metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: get remote secret %s/%s: %w", cl.Name, SystemNamespace, RemoteSecretName(remote), err)
	}
	b, ok := s.Data[remote]
	if !ok {
		return nil, fmt.Errorf("%s: remote secret %s/%s has no key %q", cl.Name, SystemNamespace, RemoteSecretName(remote), remote)
	}
	return b, nil
}
