package fleet

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// secretConfig is data.config as the fuzz test reads it on its own:
// pointers tell a field that is absent (or null) from one that is set.
type secretConfig struct {
	Username        string `json:"username"`
	Password        string `json:"password"`
	BearerToken     string `json:"bearerToken"`
	TLSClientConfig struct {
		Insecure   bool   `json:"insecure"`
		ServerName string `json:"serverName"`
		CAData     string `json:"caData"`
		CertData   string `json:"certData"`
		KeyData    string `json:"keyData"`
	} `json:"tlsClientConfig"`
	ExecProviderConfig *json.RawMessage `json:"execProviderConfig"`
	AWSAuthConfig      *json.RawMessage `json:"awsAuthConfig"`
}

// FuzzMemberFromSecret feeds cluster Secrets: what `argocd cluster add`,
// the local fleet and package access write, and the auth kinds Lockstep
// refuses.
func FuzzMemberFromSecret(f *testing.F) {
	ca := base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"))
	for _, config := range []string{
		`{"bearerToken":"tok","tlsClientConfig":{"insecure":false,"caData":"` + ca + `"}}`,
		`{"tlsClientConfig":{"caData":"` + ca + `","certData":"` + ca + `","keyData":"a2V5","serverName":"kubernetes.default"}}`,
		`{"username":"admin","password":"p","tlsClientConfig":{"insecure":true}}`,
		`{"execProviderConfig":{"command":"argocd-k8s-auth","args":["aws"],"apiVersion":"client.authentication.k8s.io/v1beta1"},"tlsClientConfig":{}}`,
		`{"awsAuthConfig":{"clusterName":"prod","roleARN":"arn:aws:iam::1:role/x"}}`,
		`{"tlsClientConfig":{"caData":"%%%"}}`,
		`{"BEARERTOKEN":"case-insensitive","tlsClientConfig":null}`,
		// A templated Secret (Helm, Terraform) may write the field it does
		// not use as null: that is no exec authentication.
		`{"bearerToken":"tok","execProviderConfig":null,"awsAuthConfig":null}`,
		`null`, `{}`, `{`, `[]`, ``,
	} {
		f.Add("argocd", "cluster-argo-rollout1-1234", "argo-rollout1", "https://10.0.0.1:6443", []byte(config), "data-producer-1")
	}
	f.Add("lockstep-system", "member-x", "", "https://x", []byte(`{}`), "")
	f.Add("ns", "s", "x", "", []byte(`{}`), "")
	f.Fuzz(func(t *testing.T, namespace, secretName, name, server string, config []byte, reporting string) {
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: secretName, Annotations: map[string]string{AnnotationReportingCluster: reporting}},
			Data:       map[string][]byte{"name": []byte(name), "server": []byte(server), "config": config},
		}
		m, err := MemberFromSecret(sec)
		if err != nil {
			if !strings.Contains(err.Error(), namespace+"/"+secretName) {
				t.Fatalf("error %q does not name Secret %s/%s", err, namespace, secretName)
			}
			// Kubernetes names cannot break a line; nothing else may.
			if !strings.ContainsAny(namespace+secretName, "\n\r") && strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error spans lines: %q", err)
			}
			// Refused for an authentication it does not ask for?
			var asked secretConfig
			if strings.Contains(err.Error(), "exec and AWS authentication are not supported") &&
				json.Unmarshal(config, &asked) == nil && asked.ExecProviderConfig == nil && asked.AWSAuthConfig == nil {
				t.Fatalf("data.config %q was refused as exec or AWS authentication: %v", config, err)
			}
			return
		}
		if m.Name != name || m.Name == "" || m.Config == nil || m.Config.Host != server || server == "" || m.Reporting != reporting {
			t.Fatalf("member %+v (host %q) from name %q, server %q", m, m.Config.Host, name, server)
		}
		var want secretConfig
		if len(config) > 0 {
			if err := json.Unmarshal(config, &want); err != nil {
				t.Fatalf("data.config %q was accepted but does not parse: %v", config, err)
			}
		}
		// Exec and AWS authentication are refused, never ignored: a
		// member reached without them would get no credentials.
		if want.ExecProviderConfig != nil || want.AWSAuthConfig != nil {
			t.Fatalf("data.config %q asks for exec or AWS authentication, but the member was accepted", config)
		}
		c := m.Config
		if c.BearerToken != want.BearerToken || c.Username != want.Username || c.Password != want.Password ||
			c.Insecure != want.TLSClientConfig.Insecure || c.ServerName != want.TLSClientConfig.ServerName {
			t.Fatalf("config %+v from data.config %q", c, config)
		}
		for _, f := range []struct {
			field string
			in    string
			out   []byte
		}{
			{"caData", want.TLSClientConfig.CAData, c.CAData},
			{"certData", want.TLSClientConfig.CertData, c.CertData},
			{"keyData", want.TLSClientConfig.KeyData, c.KeyData},
		} {
			if f.in == "" {
				if f.out != nil {
					t.Fatalf("%s set from nothing: %q", f.field, f.out)
				}
				continue
			}
			if b, err := base64.StdEncoding.DecodeString(f.in); err != nil || !bytes.Equal(b, f.out) {
				t.Fatalf("%s %q read as %q (%v)", f.field, f.in, f.out, err)
			}
		}
	})
}
