package dashboard

import (
	"os"
	"strings"
	"testing"
)

// The vendored uPlot is the version hack/fetch-uplot.sh pins, with its
// licence beside it (`make verify-vendor` compares the files themselves
// with the npm registry's).
func TestVendoredUPlotIsThePinnedVersion(t *testing.T) {
	t.Parallel()
	version, err := assets.ReadFile("assets/vendor/uplot/VERSION")
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile("../../hack/fetch-uplot.sh")
	if err != nil {
		t.Fatal(err)
	}
	if want := "VERSION=" + strings.TrimSpace(string(version)) + "\n"; !strings.Contains(string(script), want) {
		t.Errorf("hack/fetch-uplot.sh does not pin %q", strings.TrimSpace(want))
	}
	licence, err := assets.ReadFile("assets/vendor/uplot/LICENSE")
	if err != nil || !strings.Contains(string(licence), "The MIT License") || !strings.Contains(string(licence), "Leon Sorokin") {
		t.Errorf("uPlot's licence is missing or not MIT: %v", err)
	}
	js, err := assets.ReadFile("assets/vendor/uplot/uPlot.iife.min.js")
	if err != nil || !strings.Contains(string(js), "uPlot") {
		t.Errorf("uPlot.iife.min.js: %v", err)
	}
}
