package coordinator

import (
	"bytes"
	"strings"
	"testing"

	"lockstep.dev/lockstep/internal/cli/streams"
)

func TestHelpHasExample(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	cmd := NewCommand(streams.IO{In: strings.NewReader(""), Out: &out, ErrOut: &out})
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--help"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lockstep coordinator --kubeconfig", "--thanos-url", "--metrics-addr", "127.0.0.1:0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

func TestBadFlagsAreOneLineErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--log-level", "loud"},
		{"--log-format", "xml"},
		{"--kubeconfig", "/nonexistent/kubeconfig"},
	} {
		var out bytes.Buffer
		cmd := NewCommand(streams.IO{In: strings.NewReader(""), Out: &out, ErrOut: &out})
		cmd.SetArgs(args)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.Execute()
		if err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: err = %v, want a one-line error", args, err)
		}
	}
}
