package fleet

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Cluster Secret conventions: Argo CD's, as written by `argocd cluster
// add`, and Lockstep's own, which use the same data layout under another
// label in the coordinator's namespace (package access writes them).
const (
	SecretTypeLabel   = "argocd.argoproj.io/secret-type"
	SecretTypeCluster = "cluster"
	// DefaultArgoCDNamespace is where Argo CD keeps cluster Secrets.
	DefaultArgoCDNamespace = "argocd"
	// LockstepSecretTypeLabel marks the coordinator's own member Secrets;
	// DefaultLockstepNamespace is where they live.
	LockstepSecretTypeLabel  = "lockstep.dev/secret-type"
	DefaultLockstepNamespace = "lockstep-system"
	// AnnotationReportingCluster on a cluster Secret gives the member's
	// Prometheus external "cluster" label, which analysis needs to find the
	// member in the metrics (it often differs from the Argo CD name).
	AnnotationReportingCluster = "lockstep.dev/reporting-cluster"
)

// Member is one member cluster and how to reach it.
type Member struct {
	// Name is the cluster's name in Argo CD (or the kubeconfig context).
	Name string
	// Config reaches the cluster's API server.
	Config *rest.Config
	// Reporting is the member's metrics label value, if its Secret says so.
	Reporting string
	// Labels are its Secret's labels (what selectors, waves included,
	// match).
	Labels map[string]string
}

// Secrets says where cluster Secrets are and how they are labelled.
type Secrets struct {
	Namespace string
	// TypeLabel must have the value "cluster" on every cluster Secret.
	TypeLabel string
}

// ArgoCDSecrets are Argo CD's cluster Secrets in namespace (default argocd):
// the credentials people and the CLI use.
func ArgoCDSecrets(namespace string) Secrets {
	if namespace == "" {
		namespace = DefaultArgoCDNamespace
	}
	return Secrets{Namespace: namespace, TypeLabel: SecretTypeLabel}
}

// LockstepSecrets are the coordinator's own member Secrets in namespace
// (default lockstep-system).
func LockstepSecrets(namespace string) Secrets {
	if namespace == "" {
		namespace = DefaultLockstepNamespace
	}
	return Secrets{Namespace: namespace, TypeLabel: LockstepSecretTypeLabel}
}

func (s Secrets) kind() string {
	if s.TypeLabel == SecretTypeLabel {
		return "Argo CD cluster Secret"
	}
	return "cluster Secret (" + s.TypeLabel + "=" + SecretTypeCluster + ")"
}

// UnknownMembersError lists member names that no cluster Secret carries.
type UnknownMembersError struct {
	Names     []string
	Namespace string
	Kind      string
}

func (e *UnknownMembersError) Error() string {
	return fmt.Sprintf("no %s in namespace %s for: %s", cmp.Or(e.Kind, "cluster Secret"), e.Namespace, strings.Join(e.Names, ", "))
}

// SecretError says which cluster Secrets cannot be used: one that does not
// parse (Duplicate false), or several that register the same cluster.
type SecretError struct {
	// Secrets are namespace/name of the Secrets at fault.
	Secrets   []string
	Cluster   string
	Duplicate bool
	Err       error
}

func (e *SecretError) Error() string {
	if e.Duplicate {
		return fmt.Sprintf("cluster %s is registered by more than one Secret: %s", e.Cluster, strings.Join(e.Secrets, ", "))
	}
	return e.Err.Error()
}

func (e *SecretError) Unwrap() error { return e.Err }

// MembersFromSecrets returns the clusters registered by src's Secrets
// that match selector, or that are named in names (exactly one of the two
// must be given). Members come back in the order of names, or sorted by
// name for a selector. A name without a Secret is an *UnknownMembersError:
// a typo must not shrink the fleet silently. A broken or duplicated Secret
// of a wanted cluster is a *SecretError naming it.
func MembersFromSecrets(ctx context.Context, r client.Reader, src Secrets, selector *metav1.LabelSelector, names []string) ([]Member, error) {
	namespace := src.Namespace
	if (selector == nil) == (len(names) == 0) {
		return nil, errors.New("give exactly one of a selector and names")
	}
	sel := labels.NewSelector()
	if selector != nil {
		var err error
		if sel, err = metav1.LabelSelectorAsSelector(selector); err != nil {
			return nil, fmt.Errorf("member selector: %w", err)
		}
	}
	typeReq, err := labels.NewRequirement(src.TypeLabel, "=", []string{SecretTypeCluster})
	if err != nil {
		return nil, err
	}
	sel = sel.Add(*typeReq)
	var list corev1.SecretList
	if err := r.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("list cluster Secrets in %s: %w", namespace, err)
	}
	// Only the Secrets that matter are parsed and checked: a broken or
	// duplicated registration of a cluster this fleet does not use must not
	// block it.
	wanted := map[string]bool{}
	for _, n := range names {
		wanted[n] = true
	}
	byName := map[string]Member{}
	from := map[string][]string{}
	slices.SortFunc(list.Items, func(a, b corev1.Secret) int { return strings.Compare(a.Name, b.Name) })
	for i := range list.Items {
		sec := &list.Items[i]
		if selector == nil && !wanted[string(sec.Data["name"])] {
			continue
		}
		m, err := MemberFromSecret(sec)
		if err != nil {
			return nil, &SecretError{Secrets: []string{sec.Namespace + "/" + sec.Name}, Cluster: string(sec.Data["name"]), Err: err}
		}
		from[m.Name] = append(from[m.Name], sec.Namespace+"/"+sec.Name)
		byName[m.Name] = m
	}
	for _, n := range slices.Sorted(maps.Keys(from)) {
		if len(from[n]) > 1 {
			return nil, &SecretError{Secrets: from[n], Cluster: n, Duplicate: true}
		}
	}
	if selector != nil {
		out := make([]Member, 0, len(byName))
		for _, n := range slices.Sorted(maps.Keys(byName)) {
			out = append(out, byName[n])
		}
		return out, nil
	}
	var out []Member
	var unknown []string
	for _, n := range names {
		m, ok := byName[n]
		if !ok {
			unknown = append(unknown, n)
			continue
		}
		out = append(out, m)
	}
	if len(unknown) > 0 {
		return nil, &UnknownMembersError{Names: unknown, Namespace: namespace, Kind: src.kind()}
	}
	return out, nil
}

// SecretData is the data of a cluster Secret in Argo CD's layout (name,
// server, and a config with the bearer token and CA), base64-encoded as an
// unstructured Secret's data holds it; MemberFromSecret reads it back. Its
// bytes depend only on the arguments, so applying it again changes nothing.
func SecretData(name, server string, token, ca []byte) (map[string]any, error) {
	conf, err := json.Marshal(map[string]any{
		"bearerToken":     string(token),
		"tlsClientConfig": map[string]any{"insecure": false, "caData": base64.StdEncoding.EncodeToString(ca)},
	})
	if err != nil {
		return nil, err
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	return map[string]any{"name": b64(name), "server": b64(server), "config": b64(string(conf))}, nil
}

// clusterConfig is the JSON in a cluster Secret's data.config.
type clusterConfig struct {
	Username        string `json:"username,omitempty"`
	Password        string `json:"password,omitempty"`
	BearerToken     string `json:"bearerToken,omitempty"`
	TLSClientConfig struct {
		Insecure   bool   `json:"insecure,omitempty"`
		ServerName string `json:"serverName,omitempty"`
		CAData     string `json:"caData,omitempty"`
		CertData   string `json:"certData,omitempty"`
		KeyData    string `json:"keyData,omitempty"`
	} `json:"tlsClientConfig"`
	// Pointers, so that an explicit null (templated Secrets write it)
	// reads as absent, while {} still asks for that authentication.
	ExecProviderConfig *json.RawMessage `json:"execProviderConfig,omitempty"`
	AWSAuthConfig      *json.RawMessage `json:"awsAuthConfig,omitempty"`
}

// MemberFromSecret turns one Argo CD cluster Secret into a Member. It
// supports bearer tokens, basic auth and client certificates; exec and AWS
// auth are refused with a clear error rather than half supported.
func MemberFromSecret(sec *corev1.Secret) (Member, error) {
	name := string(sec.Data["name"])
	server := string(sec.Data["server"])
	where := fmt.Sprintf("cluster Secret %s/%s", sec.Namespace, sec.Name)
	if name == "" || server == "" {
		return Member{}, fmt.Errorf("%s: data.name and data.server are required", where)
	}
	var cc clusterConfig
	if raw := sec.Data["config"]; len(raw) > 0 {
		if err := json.Unmarshal(raw, &cc); err != nil {
			return Member{}, fmt.Errorf("%s: data.config: %w", where, err)
		}
	}
	if cc.ExecProviderConfig != nil || cc.AWSAuthConfig != nil {
		return Member{}, fmt.Errorf("%s: exec and AWS authentication are not supported; use a bearer token or client certificate", where)
	}
	cfg := &rest.Config{
		Host:        server,
		BearerToken: cc.BearerToken,
		Username:    cc.Username,
		Password:    cc.Password,
		TLSClientConfig: rest.TLSClientConfig{
			Insecure:   cc.TLSClientConfig.Insecure,
			ServerName: cc.TLSClientConfig.ServerName,
		},
	}
	for _, f := range []struct {
		field string
		in    string
		out   *[]byte
	}{
		{"caData", cc.TLSClientConfig.CAData, &cfg.TLSClientConfig.CAData},
		{"certData", cc.TLSClientConfig.CertData, &cfg.TLSClientConfig.CertData},
		{"keyData", cc.TLSClientConfig.KeyData, &cfg.TLSClientConfig.KeyData},
	} {
		if f.in == "" {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(f.in)
		if err != nil {
			return Member{}, fmt.Errorf("%s: tlsClientConfig.%s: %w", where, f.field, err)
		}
		*f.out = b
	}
	reporting := sec.Annotations[AnnotationReportingCluster]
	if reporting != "" && !labelValue.MatchString(reporting) {
		return Member{}, fmt.Errorf("%s: annotation %s: %q is not a cluster label value (letters, digits, '-', '_', '.', ':')", where, AnnotationReportingCluster, reporting)
	}
	return Member{Name: name, Config: cfg, Reporting: reporting, Labels: sec.Labels}, nil
}

// labelValue is what a cluster's label value may be (the CRD's pattern
// for spec.analysis.clusters[]): it goes into PromQL queries.
var labelValue = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.:]*[A-Za-z0-9])?$`)

// MembersFromKubeconfig returns one member per named context of the
// kubeconfig at path ("" means the default loading rules), for running
// without Argo CD.
func MembersFromKubeconfig(path string, contexts []string) ([]Member, error) {
	if len(contexts) == 0 {
		return nil, errors.New("no kubeconfig contexts given")
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	out := make([]Member, 0, len(contexts))
	for _, c := range contexts {
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: c}).ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("kubeconfig context %s: %w", c, err)
		}
		out = append(out, Member{Name: c, Config: cfg})
	}
	return out, nil
}

// Insecure says, in a few words, why talking to a member over cfg can be
// overheard or impersonated: a server certificate that is not checked, or
// plain http. It is empty for a verified https connection.
func Insecure(cfg *rest.Config) string {
	var why []string
	if cfg.Insecure {
		why = append(why, "tlsClientConfig.insecure: the server's certificate is not checked")
	}
	if strings.HasPrefix(strings.ToLower(cfg.Host), "http://") {
		why = append(why, "server is plain http://: credentials and traffic travel in the clear")
	}
	return strings.Join(why, "; ")
}
