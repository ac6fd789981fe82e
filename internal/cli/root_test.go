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
