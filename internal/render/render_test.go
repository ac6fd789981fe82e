package render

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"lockstep.dev/lockstep/gitops"
)

func params() Params {
	p := Guide()
	p.RepoURL, p.ThanosURL = "git://127.0.0.1:9418/fleet.git", "http://127.0.0.1:10902"
	return p
}

func TestBytes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in, want, wantErr string
	}{
		{name: "substitutes", in: "url: ${REPO_URL}\npause: {duration: ${PAUSE}}", want: "url: git://127.0.0.1:9418/fleet.git\npause: {duration: 20s}"},
		{name: "argo templates pass through", in: "name: '{{.name}}'\nq: {{args.service}}", want: "name: '{{.name}}'\nq: {{args.service}}"},
		{name: "unknown placeholder", in: "x: ${NOPE}", wantErr: "unknown placeholder ${NOPE}"},
		{name: "seconds", in: "${ANALYSIS_INITIAL_DELAY} ${SCALE_DOWN_DELAY} ${ROLLOUT_MODE}", want: "60s 30 strategy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Bytes("f.yaml", []byte(tc.in), params())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	mod := func(f func(*Params)) Params { p := params(); f(&p); return p }
	cases := map[string]Params{
		"no repo":        mod(func(p *Params) { p.RepoURL = "" }),
		"no revision":    mod(func(p *Params) { p.Revision = "" }),
		"no thanos":      mod(func(p *Params) { p.ThanosURL = "" }),
		"short pause":    mod(func(p *Params) { p.Pause = 500 * time.Millisecond }),
		"short interval": mod(func(p *Params) { p.AnalysisInterval = 0 }),
		"negative delay": mod(func(p *Params) { p.ScaleDownDelay = -time.Second }),
		"unknown mode":   mod(func(p *Params) { p.Mode = "sideways" }),
	}
	for name, p := range cases {
		if err := p.Validate(); err == nil {
			t.Errorf("%s: Validate passed", name)
		}
	}
	if err := params().Validate(); err != nil {
		t.Fatalf("guide params: %v", err)
	}
}

// TestTreeRendersTheRealGitOpsTree leaves no placeholder behind in the
// committed tree, in either mode, and keeps the guide's names.
func TestTreeRendersTheRealGitOpsTree(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{ModeIndependent, ModeLockstep} {
		p := params()
		p.Mode = mode
		files, err := Tree(gitops.Tree, p)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		for _, want := range []string{
			"argo-resources/application-set/appset-helloworld.yaml",
			"istio-resources/application-set/appset-istio-resources.yaml",
			"argo-resources/rollout/appset-rollouts.yaml",
			"argo-resources/rollout/strategy/rollout.yaml",
			"argo-resources/rollout/lockstep/rollout.yaml",
			"monitoring/monitor.yaml",
			"lockstep/fleetrollout/fleetrollout.yaml",
		} {
			if _, ok := files[want]; !ok {
				t.Errorf("%s: rendered tree lacks %s", mode, want)
			}
		}
		for path, b := range files {
			if strings.Contains(string(b), "${") {
				t.Errorf("%s: %s keeps a placeholder", mode, path)
			}
		}
		if !strings.Contains(string(files["argo-resources/rollout/appset-rollouts.yaml"]), "path: argo-resources/rollout/"+mode) {
			t.Errorf("%s: the rollouts ApplicationSet does not deploy that mode", mode)
		}
	}
}

func TestTreeCopiesNonYAML(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{"README.md": {Data: []byte("${NOT_RENDERED}")}, "a/b.yaml": {Data: []byte("x: ${REVISION}")}}
	files, err := Tree(fsys, params())
	if err != nil {
		t.Fatal(err)
	}
	if string(files["README.md"]) != "${NOT_RENDERED}" || string(files["a/b.yaml"]) != "x: main" {
		t.Fatalf("files = %q", files)
	}
}
