package dashboard

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium is Debian's headless shell, installed by hack/install-deps.sh --browser.
const chromium = "/usr/bin/chromium-headless-shell"

// browser is one headless Chromium for the package's tests.
type browser struct {
	ctx context.Context
}

func newBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	if _, err := exec.LookPath(chromium); err != nil {
		t.Fatalf("%s: %v (hack/install-deps.sh --browser installs it; make test runs that)", chromium, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.WindowSize(1400, 1000),
		chromedp.UserDataDir(t.TempDir()),
		// The machine's network is closed: without these Chromium keeps
		// dialling Google's hosts.
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-sync", true))
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start %s: %v", chromium, err)
	}
	return &browser{ctx: ctx}
}

func (b *browser) do(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

func eval[T any](t *testing.T, b *browser, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// until evaluates js every 50 ms until it is true.
func (b *browser) until(t *testing.T, timeout time.Duration, what, js string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		// A page still loading has no elements yet: an exception is "not
		// yet", not a failure.
		if eval[bool](t, b, "(() => { try { return !!("+js+") } catch (e) { return false } })()") {
			return
		}
		if time.Now().After(deadline) {
			shot := b.screenshot(t, "failed-"+filepath.Base(t.Name()))
			t.Fatalf("page did not show %s within %s (screenshot %s)", what, timeout, shot)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// screenshot saves the page as a PNG artefact and returns its path.
func (b *browser) screenshot(t *testing.T, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	dir := artifacts(t)
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
	}
	return p
}

// artifacts is where screenshots go: $LOCKSTEP_ARTIFACTS/dashboard, else
// _artifacts/dashboard in the repository (ignored by git).
func artifacts(t *testing.T) string {
	t.Helper()
	root := os.Getenv("LOCKSTEP_ARTIFACTS")
	if root == "" {
		root = filepath.Join("..", "..", "_artifacts")
	}
	dir := filepath.Join(root, "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

func ms(d float64) string { return fmt.Sprintf("%.0f ms", d) }

// report prints a measurement and appends it to the artefacts'
// measurements.txt: `go test` shows a passing package's output only with
// -v, the file keeps it either way.
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	fmt.Println(line)
	f, err := os.OpenFile(filepath.Join(artifacts(t), "measurements.txt"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.RFC3339), line)
}
