package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// ArgoCDClusters checks every workload named in want has an Argo CD
// cluster Secret on the hub whose credentials reach that cluster's API
// server and may patch Rollouts there: what `argocd cluster list` shows as
// Successful, checked without the argocd CLI.
func ArgoCDClusters(ctx context.Context, hub kubernetes.Interface, namespace string, want []string) []Result {
	secrets, err := hub.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{LabelSelector: "argocd.argoproj.io/secret-type=cluster"})
	if err != nil {
		return []Result{{Name: "Argo CD clusters", Detail: "cannot list cluster Secrets: " + firstLine(err.Error()),
			Fix: "check the hub context and that Argo CD is installed (`lockstep lab up --from argocd`)"}}
	}
	byName := map[string]map[string][]byte{}
	secretsOf := map[string][]string{}
	for _, s := range secrets.Items {
		n := string(s.Data["name"])
		byName[n] = s.Data
		secretsOf[n] = append(secretsOf[n], s.Name)
	}
	var out []Result
	names := append([]string(nil), want...)
	sort.Strings(names)
	for _, w := range names {
		r := Result{Name: "Argo CD cluster " + w, Fix: "re-register it: `lockstep lab up --from argocd-clusters`"}
		data, ok := byName[w]
		if !ok {
			r.Detail = "no cluster Secret in " + namespace
			out = append(out, r)
			continue
		}
		if dup := secretsOf[w]; len(dup) > 1 {
			// The coordinator refuses a cluster registered twice.
			sort.Strings(dup)
			r.Detail = "registered by more than one Secret: " + strings.Join(dup, ", ")
			r.Fix = "delete the extra Secrets in " + namespace + ", then `lockstep lab up --from argocd-clusters`"
			out = append(out, r)
			continue
		}
		cfg, err := restConfigFromSecret(data)
		if err != nil {
			r.Detail = err.Error()
			out = append(out, r)
			continue
		}
		r.Detail, r.OK = probe(ctx, cfg)
		out = append(out, r)
	}
	return out
}

func restConfigFromSecret(data map[string][]byte) (*rest.Config, error) {
	var conf struct {
		BearerToken     string `json:"bearerToken"`
		TLSClientConfig struct {
			Insecure bool   `json:"insecure"`
			CAData   []byte `json:"caData"`
		} `json:"tlsClientConfig"`
	}
	if err := json.Unmarshal(data["config"], &conf); err != nil {
		return nil, fmt.Errorf("unreadable config in cluster Secret: %v", err)
	}
	if conf.BearerToken == "" {
		return nil, fmt.Errorf("cluster Secret has no bearerToken")
	}
	return &rest.Config{Host: string(data["server"]), BearerToken: conf.BearerToken, Timeout: 10 * time.Second,
		TLSClientConfig: rest.TLSClientConfig{Insecure: conf.TLSClientConfig.Insecure, CAData: conf.TLSClientConfig.CAData}}, nil
}

func probe(ctx context.Context, cfg *rest.Config) (string, bool) {
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err.Error(), false
	}
	v, err := kc.Discovery().ServerVersion()
	if err != nil {
		return "API server " + cfg.Host + " not reachable with the Secret's credentials: " + firstLine(err.Error()), false
	}
	rev, err := kc.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{Spec: authv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authv1.ResourceAttributes{Group: "argoproj.io", Resource: "rollouts", Verb: "patch"}}}, metav1.CreateOptions{})
	if err != nil {
		return "access review failed: " + firstLine(err.Error()), false
	}
	if !rev.Status.Allowed {
		return "connected (" + v.GitVersion + ") but may not patch Rollouts: " + strings.TrimSpace(rev.Status.Reason), false
	}
	return "connected (" + v.GitVersion + "), may patch Rollouts", true
}
