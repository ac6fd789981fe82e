package coordinator

import (
	"bytes"
	"os"
	"path/filepath"
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

func TestDashboardToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good, short := filepath.Join(dir, "good"), filepath.Join(dir, "short")
	_ = os.WriteFile(good, []byte("0123456789abcdef-token\n"), 0o600)
	_ = os.WriteFile(short, []byte("abc"), 0o600)
	for _, c := range []struct {
		addr, file, want, err string
	}{
		{"", "", "", ""},
		{"127.0.0.1:8099", "", "", ""},
		{":8099", "", "", "is not loopback: give --dashboard-token-file"},
		{"0.0.0.0:8099", good, "0123456789abcdef-token", ""},
		{":8099", short, "", "shorter than 16 characters"},
		{":8099", filepath.Join(dir, "missing"), "", "--dashboard-token-file"},
	} {
		got, err := dashboardToken(c.addr, c.file)
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%q %q: %q, %v; want %q, %q", c.addr, c.file, got, err, c.want, c.err)
		}
	}
}

// The coordinator-only command serves no page, and says so before it
// starts anything.
func TestNoPageWithoutPage(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	cmd := NewCommand(streams.IO{In: strings.NewReader(""), Out: &out, ErrOut: &out})
	cmd.SetArgs([]string{"--dashboard-address", "127.0.0.1:0", "--kubeconfig", "/nonexistent"})
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "this binary serves no dashboard") {
		t.Fatalf("err = %v", err)
	}
}
