package dashboard

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"lockstep.dev/lockstep/internal/cli/status"
	"lockstep.dev/lockstep/internal/dashboard"
)

// target reads two kubeconfig contexts whose API servers do not exist:
// enough to serve pages and to show that an action reaches the verbs.
func target(t *testing.T) *status.TargetFlags {
	t.Helper()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := `apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: a
  user: {token: x}
contexts:
- name: a
  context: {cluster: a, user: a}
current-context: a
`
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	f := status.NewTargetFlags()
	*f.Hub.KubeConfig = kc
	f.Clusters = []string{"a"}
	return f
}

func postAbort(t *testing.T, r *Running, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, r.Base+"/api/rollouts/helloworld/helloworld/actions/abort", nil)
	req.Header.Set(dashboard.TokenHeader, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestStartOnAnOpenAddress(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		warning string
		code    int
		body    string
	}{
		{"loopback", Config{}, "", http.StatusBadGateway, "cluster a"},
		{"open, actions off", Config{Address: "0.0.0.0"}, "not loopback: anyone with the URL (token included) sees the fleet", http.StatusForbidden, "not loopback, without --allow-actions"},
		{"open, --allow-actions", Config{Address: "0.0.0.0", AllowActions: true}, "can abort or promote it", http.StatusBadGateway, "cluster a"},
		{"read-only", Config{ReadOnly: true}, "", http.StatusForbidden, "--read-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			tc.cfg.Target = target(t)
			r, err := Start(ctx, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { cancel(); _ = r.Wait() }()
			if tc.warning == "" && r.Warning != "" || !strings.Contains(r.Warning, tc.warning) {
				t.Errorf("warning %q, want %q", r.Warning, tc.warning)
			}
			if !strings.HasPrefix(r.Base, "http://127.0.0.1:") {
				t.Errorf("base %q", r.Base)
			}
			if (r.Token == "") != tc.cfg.ReadOnly {
				t.Errorf("token %q with read-only %v", r.Token, tc.cfg.ReadOnly)
			}
			// An allowed abort goes to the verbs' code, which cannot reach
			// the cluster and says so per cluster.
			code, body := postAbort(t, r, r.Token)
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Errorf("abort: %d %s, want %d with %q", code, body, tc.code, tc.body)
			}
		})
	}
}

func TestStartRefusesABusyPort(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, err := Start(ctx, Config{Target: target(t)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(first.Base[strings.LastIndex(first.Base, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Start(ctx, Config{Target: target(t), Port: p}); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("second dashboard on port %d: %v", p, err)
	}
}

// Exposed (here on loopback, as --exposed; a non-loopback --address
// implies it): a read without the token, a foreign Host and one client's
// ninth page stream are refused; with the token and an allowed Host the
// page answers, read-only or not.
func TestExposedReads(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, err := Start(ctx, Config{Target: target(t), Exposed: true, ReadOnly: true, AllowedHosts: []string{"dashboard.example"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = r.Wait() }()
	if r.Token == "" {
		t.Fatal("an exposed read-only dashboard has no token for reads")
	}
	get := func(path, host, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, r.Base+path, nil)
		if host != "" {
			req.Host = host
		}
		if token != "" {
			req.Header.Set(dashboard.TokenHeader, token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp.StatusCode, string(b)
	}
	page := "/api/rollouts/helloworld/helloworld"
	for _, tc := range []struct {
		name, host, token string
		code              int
		body              string
	}{
		{"no token", "", "", http.StatusUnauthorized, "open the URL it printed"},
		{"wrong token", "", "guess", http.StatusUnauthorized, "open the URL it printed"},
		{"foreign host", "evil.example", r.Token, http.StatusForbidden, `host "evil.example" refused`},
		{"allowed host", "dashboard.example", r.Token, http.StatusOK, `"ref"`},
		{"IP address", "", r.Token, http.StatusOK, `"ref"`},
	} {
		if code, body := get(page, tc.host, tc.token); code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s: %d %s, want %d %q", tc.name, code, body, tc.code, tc.body)
		}
	}
	if code, _ := get("/healthz", "", ""); code != http.StatusOK {
		t.Errorf("/healthz without token: %d", code)
	}
}
