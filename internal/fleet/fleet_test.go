package fleet

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func clusterSecret(name, cluster string, mods ...func(*corev1.Secret)) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "argocd",
			Labels: map[string]string{SecretTypeLabel: SecretTypeCluster, "lockstep.dev/role": "workload"},
		},
		Data: map[string][]byte{
			"name":   []byte(cluster),
			"server": []byte("https://" + cluster + ".example:6443"),
			"config": []byte(`{"bearerToken":"tok-` + cluster + `","tlsClientConfig":{"caData":"` + base64.StdEncoding.EncodeToString([]byte("CA")) + `"}}`),
		},
	}
	for _, m := range mods {
		m(s)
	}
	return s
}

func TestMemberFromSecret(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		mod     func(*corev1.Secret)
		wantErr string
	}{
		{name: "token and CA"},
		{name: "missing server", mod: func(s *corev1.Secret) { delete(s.Data, "server") }, wantErr: "data.name and data.server are required"},
		{name: "bad config JSON", mod: func(s *corev1.Secret) { s.Data["config"] = []byte("{") }, wantErr: "data.config"},
		{name: "bad caData", mod: func(s *corev1.Secret) { s.Data["config"] = []byte(`{"tlsClientConfig":{"caData":"%%%"}}`) }, wantErr: "tlsClientConfig.caData"},
		{name: "exec auth refused", mod: func(s *corev1.Secret) { s.Data["config"] = []byte(`{"execProviderConfig":{"command":"x"}}`) }, wantErr: "not supported"},
		{name: "reporting label with PromQL", mod: func(s *corev1.Secret) {
			s.Annotations = map[string]string{AnnotationReportingCluster: `x"} or vector(1)`}
		}, wantErr: "is not a cluster label value"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := clusterSecret("c1", "argo-rollout1")
			if c.mod != nil {
				c.mod(s)
			}
			m, err := MemberFromSecret(s)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != "argo-rollout1" || m.Config.BearerToken != "tok-argo-rollout1" || string(m.Config.CAData) != "CA" || m.Config.Host != "https://argo-rollout1.example:6443" {
				t.Errorf("member = %+v", m)
			}
		})
	}
}

func TestMembersFromSecrets(t *testing.T) {
	t.Parallel()
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	other := clusterSecret("c3", "other", func(s *corev1.Secret) {
		delete(s.Labels, "lockstep.dev/role")
		s.Annotations = map[string]string{AnnotationReportingCluster: "data-producer-9"}
	})
	notCluster := clusterSecret("repo", "repo", func(s *corev1.Secret) { s.Labels[SecretTypeLabel] = "repository" })
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		clusterSecret("c2", "argo-rollout2"), clusterSecret("c1", "argo-rollout1"), other, notCluster,
	).Build()
	ctx := context.Background()

	names := func(ms []Member) string {
		var out []string
		for _, m := range ms {
			out = append(out, m.Name)
		}
		return strings.Join(out, ",")
	}
	ms, err := MembersFromSecrets(ctx, c, ArgoCDSecrets(""), &metav1.LabelSelector{MatchLabels: map[string]string{"lockstep.dev/role": "workload"}}, nil)
	if err != nil || names(ms) != "argo-rollout1,argo-rollout2" {
		t.Errorf("by selector: %q, %v", names(ms), err)
	}
	ms, err = MembersFromSecrets(ctx, c, ArgoCDSecrets(""), nil, []string{"other", "argo-rollout2"})
	if err != nil || names(ms) != "other,argo-rollout2" || ms[0].Reporting != "data-producer-9" {
		t.Errorf("by names: %q, %v", names(ms), err)
	}
	_, err = MembersFromSecrets(ctx, c, ArgoCDSecrets(""), nil, []string{"argo-rollout1", "nope", "repo"})
	var unknown *UnknownMembersError
	if !errors.As(err, &unknown) || strings.Join(unknown.Names, ",") != "nope,repo" {
		t.Errorf("unknown names: %v", err)
	}
	// A broken registration of another cluster does not matter by name,
	// but does when the selector picks it.
	broken := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		clusterSecret("c1", "argo-rollout1"), clusterSecret("bad", "broken", func(s *corev1.Secret) { s.Data["config"] = []byte("{") }),
	).Build()
	if ms, err := MembersFromSecrets(ctx, broken, ArgoCDSecrets(""), nil, []string{"argo-rollout1"}); err != nil || len(ms) != 1 {
		t.Errorf("by name next to a broken Secret: %v", err)
	}
	var bad *SecretError
	if _, err := MembersFromSecrets(ctx, broken, ArgoCDSecrets(""), &metav1.LabelSelector{}, nil); !errors.As(err, &bad) || bad.Duplicate ||
		strings.Join(bad.Secrets, ",") != "argocd/bad" || !strings.Contains(err.Error(), "argocd/bad") {
		t.Errorf("by selector including a broken Secret: err = %v", err)
	}
	// Two Secrets for one cluster: both are named, in name order.
	dup := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		clusterSecret("c1", "argo-rollout1"), clusterSecret("c0", "argo-rollout1"), clusterSecret("c2", "argo-rollout2"),
	).Build()
	if _, err := MembersFromSecrets(ctx, dup, ArgoCDSecrets(""), nil, []string{"argo-rollout1"}); !errors.As(err, &bad) || !bad.Duplicate ||
		strings.Join(bad.Secrets, ",") != "argocd/c0,argocd/c1" || bad.Cluster != "argo-rollout1" {
		t.Errorf("duplicate: err = %v", err)
	}
	// The coordinator's own Secrets are another label in another
	// namespace: Argo CD's are not members for it.
	if _, err := MembersFromSecrets(ctx, c, LockstepSecrets(""), nil, []string{"argo-rollout1"}); !errors.As(err, &unknown) ||
		!strings.Contains(err.Error(), "lockstep.dev/secret-type=cluster") || !strings.Contains(err.Error(), "lockstep-system") {
		t.Errorf("Argo CD Secrets read as the coordinator's: %v", err)
	}
	if _, err := MembersFromSecrets(ctx, c, ArgoCDSecrets(""), nil, nil); err == nil {
		t.Error("neither selector nor names: no error")
	}
}

func TestNotConnectedError(t *testing.T) {
	t.Parallel()
	cause := errors.New("dial tcp: refused")
	err := error(&NotConnectedError{Cluster: "argo-rollout2", Err: cause})
	wrapped := errors.Join(errors.New("x"), err)
	if !errors.Is(wrapped, ErrClusterNotConnected) || !errors.Is(err, cause) {
		t.Error("errors.Is does not see ErrClusterNotConnected or the cause")
	}
	if got := err.Error(); got != "cluster argo-rollout2 not connected: dial tcp: refused" {
		t.Errorf("Error() = %q", got)
	}
}

func TestCacheHealth(t *testing.T) {
	t.Parallel()
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" && healthy.Load() {
			w.Write([]byte("ok"))
			return
		}
		http.Error(w, "not ready", http.StatusInternalServerError)
	}))
	defer srv.Close()

	events := make(chan string, 16)
	c := NewCache(CacheOptions{
		HealthInterval: 20 * time.Millisecond, FailureThreshold: 2,
		OnEvent: func(name string) {
			select {
			case events <- name:
			default:
			}
		},
	})
	defer c.Stop()
	ctx := context.Background()

	if _, err := c.Client(ctx, "argo-rollout1"); !errors.Is(err, ErrClusterNotConnected) {
		t.Fatalf("unregistered member: err = %v, want ErrClusterNotConnected", err)
	}
	if err := c.Update([]Member{{Name: "argo-rollout1", Config: &rest.Config{Host: srv.URL}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client(ctx, "argo-rollout1"); err != nil {
		t.Fatalf("healthy member: %v", err)
	}
	healthy.Store(false)
	waitFor(t, func() bool { return !c.Connected("argo-rollout1") })
	_, err := c.Client(ctx, "argo-rollout1")
	var nc *NotConnectedError
	if !errors.As(err, &nc) || nc.Cluster != "argo-rollout1" || !strings.Contains(err.Error(), "500") {
		t.Fatalf("unhealthy member: err = %v", err)
	}
	healthy.Store(true)
	waitFor(t, func() bool { return c.Connected("argo-rollout1") })
	if len(events) == 0 {
		t.Error("no OnEvent call on connection changes")
	}
}

func TestCacheFirstProbeDownIsNotConnected(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	c := NewCache(CacheOptions{HealthInterval: time.Hour})
	defer c.Stop()
	if err := c.Update([]Member{{Name: "dead", Config: &rest.Config{Host: url}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client(context.Background(), "dead"); !errors.Is(err, ErrClusterNotConnected) {
		t.Fatalf("err = %v, want ErrClusterNotConnected", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// What SecretData writes (the installers and the coordinator's
// registration), MemberFromSecret reads back.
func TestSecretDataRoundTrips(t *testing.T) {
	t.Parallel()
	data, err := SecretData("argo-rollout1", "https://127.0.0.1:6443", []byte("tok"), []byte("CA"))
	if err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{Data: map[string][]byte{}}
	for k, v := range data {
		b, err := base64.StdEncoding.DecodeString(v.(string))
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		sec.Data[k] = b
	}
	m, err := MemberFromSecret(sec)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "argo-rollout1" || m.Config.Host != "https://127.0.0.1:6443" || m.Config.BearerToken != "tok" || string(m.Config.CAData) != "CA" {
		t.Fatalf("%+v", m)
	}
}

func TestInsecure(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cfg  rest.Config
		want string
	}{
		{rest.Config{Host: "https://a:6443"}, ""},
		{rest.Config{Host: "https://a:6443", TLSClientConfig: rest.TLSClientConfig{Insecure: true}}, "tlsClientConfig.insecure"},
		{rest.Config{Host: "HTTP://a:8080"}, "plain http://"},
	} {
		if got := Insecure(&c.cfg); (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s insecure=%t: %q, want %q", c.cfg.Host, c.cfg.Insecure, got, c.want)
		}
	}
}
