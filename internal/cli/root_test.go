package cli

import (
	"bytes"
	"strings"
	"testing"

	"lockstep.dev/lockstep/internal/cli/streams"
)

func TestEveryCommandHasHelpWithAnExample(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	root := NewRootCommand(streams.IO{Out: &out, ErrOut: &out})
	for _, c := range root.Commands() {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("lockstep %s has no example in --help", c.Name())
		}
		for _, sub := range c.Commands() {
			if !sub.Hidden && strings.TrimSpace(sub.Example) == "" {
				t.Errorf("lockstep %s %s has no example in --help", c.Name(), sub.Name())
			}
		}
	}
}

func TestKubectlPluginName(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := RunAs("/usr/local/bin/kubectl-lockstep", []string{"--help"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "kubectl lockstep [command]") {
		t.Fatalf("plugin help does not read `kubectl lockstep`:\n%s", out.String())
	}
}

func TestUnknownCommandIsOneLine(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := Run([]string{"frobnicate"}, nil, &out, &errOut); code == 0 {
		t.Fatal("unknown command succeeded")
	}
	if n := strings.Count(strings.TrimSpace(errOut.String()), "\n"); n != 0 || !strings.HasPrefix(errOut.String(), "error: ") {
		t.Fatalf("stderr %q: want one `error:` line", errOut.String())
	}
}

func TestDashboardBadFlagsAreOneLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--threshold", "2"}, "--threshold 2: want a success rate in (0, 1]"},
		{[]string{"--rate-query", "up"}, "--rate-query must contain {{cluster}}"},
		{[]string{"--interval", "10ms"}, "--interval 10ms: want at least 200ms"},
		{[]string{"--port", "70000", "--clusters", "a"}, "--port 70000: want 0-65535"},
		{[]string{"--address", "example.com", "--clusters", "a"}, `--address "example.com": want an IP address`},
		{[]string{"--rollout", "nonamespace"}, `--rollout "nonamespace": want NAMESPACE/NAME`},
	} {
		var out, errOut bytes.Buffer
		args := append([]string{"dashboard", "--kubeconfig", "/nonexistent", "--dir", t.TempDir()}, tc.args...)
		if code := Run(args, nil, &out, &errOut); code == 0 {
			t.Errorf("%v: succeeded", tc.args)
			continue
		}
		got := strings.TrimSpace(errOut.String())
		if strings.Count(got, "\n") != 0 || !strings.Contains(got, tc.want) || out.Len() != 0 {
			t.Errorf("%v: stdout %q stderr %q, want one line with %q and nothing served", tc.args, out.String(), got, tc.want)
		}
	}
}
