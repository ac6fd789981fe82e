package sources

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

// unreachable is a proxy address nothing listens on.
const unreachable = "http://127.0.0.1:1"

func TestSourceString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  Source
		want string
	}{
		{Istio, "istio.io/istio@v0.0.0-20260827124520-eed52ebb66ad"},
		{ArgoCD, "github.com/argoproj/argo-cd/v3@v3.6.1"},
		{Source{Module: "github.com/BurntSushi/toml", Version: "v1.6.0"}, "github.com/BurntSushi/toml@v1.6.0"},
	}
	for _, tt := range tests {
		if got := tt.src.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
	}
}

func TestPinsAreWellFormed(t *testing.T) {
	t.Parallel()
	for _, s := range []Source{Istio, ArgoCD, ArgoRollouts, PrometheusOperator} {
		if _, _, err := s.escaped(); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}

func TestProxyFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		goproxy, want string
	}{
		{"", DefaultProxy},
		{"https://proxy.golang.org,direct", "https://proxy.golang.org"},
		{"direct", DefaultProxy},
		{"off", DefaultProxy},
		{"file:///srv/mods,https://a.example/mirror/|https://b.example", "https://a.example/mirror"},
		{" http://athens:3000 ,direct", "http://athens:3000"},
	}
	for _, tt := range tests {
		if got := proxyFromEnv(tt.goproxy); got != tt.want {
			t.Errorf("proxyFromEnv(%q) = %q, want %q", tt.goproxy, got, tt.want)
		}
	}
}

func TestResolverFromEnv(t *testing.T) {
	t.Parallel()
	sep := string(filepath.ListSeparator)
	tests := []struct {
		name                 string
		env                  map[string]string
		wantModCache         string
		wantCacheDir         string
		wantProxy            string
		wantOffline          bool
		home, userCacheInput string
	}{
		{
			name:         "defaults",
			home:         "/home/u",
			wantModCache: filepath.Join("/home/u", "go", "pkg", "mod"),
			wantCacheDir: filepath.Join("/home/u/.cache", "lockstep", "sources"),
			wantProxy:    DefaultProxy,
		},
		{
			name:         "GOMODCACHE wins over GOPATH",
			env:          map[string]string{"GOMODCACHE": "/mc", "GOPATH": "/gp"},
			home:         "/home/u",
			wantModCache: "/mc",
			wantCacheDir: filepath.Join("/home/u/.cache", "lockstep", "sources"),
			wantProxy:    DefaultProxy,
		},
		{
			name:         "first GOPATH entry",
			env:          map[string]string{"GOPATH": sep + "/gp1" + sep + "/gp2", "GOPROXY": "https://goproxy.example,direct"},
			home:         "/home/u",
			wantModCache: filepath.Join("/gp1", "pkg", "mod"),
			wantCacheDir: filepath.Join("/home/u/.cache", "lockstep", "sources"),
			wantProxy:    "https://goproxy.example",
		},
		{
			name:         "lockstep cache dir and offline",
			env:          map[string]string{"LOCKSTEP_CACHE_DIR": "/lc", "LOCKSTEP_SOURCES": "offline"},
			home:         "/home/u",
			wantModCache: filepath.Join("/home/u", "go", "pkg", "mod"),
			wantCacheDir: filepath.Join("/lc", "sources"),
			wantProxy:    DefaultProxy,
			wantOffline:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			userCache := tt.userCacheInput
			if userCache == "" {
				userCache = tt.home + "/.cache"
			}
			r := resolverFromEnv(func(k string) string { return tt.env[k] }, tt.home, userCache)
			if r.ModCache != tt.wantModCache || r.CacheDir != tt.wantCacheDir || r.Proxy != tt.wantProxy || r.Offline != tt.wantOffline {
				t.Errorf("got ModCache=%q CacheDir=%q Proxy=%q Offline=%v, want %q %q %q %v",
					r.ModCache, r.CacheDir, r.Proxy, r.Offline, tt.wantModCache, tt.wantCacheDir, tt.wantProxy, tt.wantOffline)
			}
		})
	}
}

// fakeModCache lays out one extracted module the way the go command does:
// the tree under <escaped path>@<escaped version> and the zip's hash in
// cache/download. ziphash "" writes no .ziphash file.
func fakeModCache(t *testing.T, root string, s Source, ziphash string, partial bool) string {
	t.Helper()
	escPath, escVer, err := s.escaped()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, filepath.FromSlash(escPath)+"@"+escVer)
	writeFiles(t, dir, map[string]string{"go.mod": "module " + s.Module + "\n", "decode.go": "package toml\n"})
	dl := filepath.Join(root, "cache", "download", filepath.FromSlash(escPath), "@v", escVer)
	if ziphash != "" {
		writeFiles(t, filepath.Dir(dl), map[string]string{filepath.Base(dl) + ".ziphash": ziphash})
	}
	if partial {
		writeFiles(t, filepath.Dir(dl), map[string]string{filepath.Base(dl) + ".partial": ""})
	}
	return dir
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDirFromModuleCache(t *testing.T) {
	t.Parallel()
	toml := Source{"github.com/BurntSushi/toml", "v1.6.0", "h1:dy9Q1qxQ1p6XFPyWGo0qflBPOlYFLFKk8mbcZyfLTfQ="}
	tests := []struct {
		name    string
		setup   func(t *testing.T, root string) (wantDir string)
		wantErr error // nil: success with wantDir
	}{
		{
			name: "escaped path with capitals",
			setup: func(t *testing.T, root string) string {
				fakeModCache(t, root, toml, toml.Sum, false)
				return filepath.Join(root, "github.com", "!burnt!sushi", "toml@v1.6.0")
			},
		},
		{
			name: "unescaped directory is not the module",
			setup: func(t *testing.T, root string) string {
				writeFiles(t, filepath.Join(root, "github.com", "BurntSushi", "toml@v1.6.0"), map[string]string{"go.mod": "module x\n"})
				return ""
			},
			wantErr: ErrOffline,
		},
		{
			name: "module cache holds other content",
			setup: func(t *testing.T, root string) string {
				fakeModCache(t, root, toml, "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", false)
				return ""
			},
			wantErr: ErrChecksumMismatch,
		},
		{
			name: "no ziphash: the go command did not finish",
			setup: func(t *testing.T, root string) string {
				fakeModCache(t, root, toml, "", false)
				return ""
			},
			wantErr: ErrOffline,
		},
		{
			name: "partial extraction",
			setup: func(t *testing.T, root string) string {
				fakeModCache(t, root, toml, toml.Sum, true)
				return ""
			},
			wantErr: ErrOffline,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			want := tt.setup(t, root)
			r := &Resolver{ModCache: root, CacheDir: t.TempDir(), Proxy: unreachable, Offline: true}
			got, err := r.Dir(context.Background(), toml)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Dir() = %q, %v; want error %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != want {
				t.Fatalf("Dir() = %q, %v; want %q", got, err, want)
			}
			b, err := r.ReadFile(context.Background(), toml, "decode.go")
			if err != nil || string(b) != "package toml\n" {
				t.Errorf("ReadFile(decode.go) = %q, %v", b, err)
			}
		})
	}
}

// testModule builds a real module zip with golang.org/x/mod/zip and returns
// its bytes and its h1: hash.
func testModule(t *testing.T, mod, version string, files map[string]string) ([]byte, string) {
	t.Helper()
	src := t.TempDir()
	writeFiles(t, src, files)
	zipFile := filepath.Join(t.TempDir(), "m.zip")
	f, err := os.Create(zipFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := modzip.CreateFromDir(f, module.Version{Path: mod, Version: version}, src); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	sum, err := dirhash.HashZip(zipFile, dirhash.Hash1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(zipFile)
	if err != nil {
		t.Fatal(err)
	}
	return b, sum
}

// fakeProxy serves zips by URL path and counts the requests.
func fakeProxy(t *testing.T, zips map[string][]byte) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hits.Add(1)
		b, ok := zips[req.URL.Path]
		if !ok {
			http.Error(w, "not found: "+req.URL.Path, http.StatusNotFound)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

var exampleFiles = map[string]string{
	"go.mod":                   "module example.com/Upstream\n",
	"manifests/install.yaml":   "kind: Namespace\n",
	"manifests/charts/a/x.txt": "x\n",
}

// assertNothingKept fails if cacheDir holds any file or any module or
// temporary directory.
func assertNothingKept(t *testing.T, cacheDir string) {
	t.Helper()
	err := filepath.WalkDir(cacheDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() || strings.Contains(d.Name(), "@") || strings.HasPrefix(d.Name(), ".") {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}

func TestFetchFromProxy(t *testing.T) {
	t.Parallel()
	src := Source{Module: "example.com/Upstream", Version: "v1.2.3"}
	zipBytes, sum := testModule(t, src.Module, src.Version, exampleFiles)
	src.Sum = sum
	srv, hits := fakeProxy(t, map[string][]byte{"/example.com/!upstream/@v/v1.2.3.zip": zipBytes})

	var out bytes.Buffer
	cacheDir := t.TempDir()
	r := &Resolver{ModCache: t.TempDir(), CacheDir: cacheDir, Proxy: srv.URL, Out: &out}
	ctx := context.Background()
	dir, err := r.Dir(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cacheDir, "example.com", "!upstream@v1.2.3"); dir != want {
		t.Errorf("Dir() = %q, want %q", dir, want)
	}
	if b, err := r.ReadFile(ctx, src, "manifests/install.yaml"); err != nil || string(b) != "kind: Namespace\n" {
		t.Errorf("ReadFile(manifests/install.yaml) = %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, markerName)); err != nil || strings.TrimSpace(string(b)) != sum {
		t.Errorf("marker = %q, %v; want %s", b, err, sum)
	}
	if lines := strings.Split(strings.TrimSpace(out.String()), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "fetched "+src.String()) {
		t.Errorf("progress output = %q, want one fetched line", out.String())
	}
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil || len(entries) != 1 {
		t.Errorf("entries beside the module = %v, %v; want only the module", entries, err)
	}

	// A second resolve comes from the cache: no request, and it works
	// offline too.
	before := hits.Load()
	for _, again := range []*Resolver{
		{ModCache: r.ModCache, CacheDir: cacheDir, Proxy: srv.URL},
		{ModCache: r.ModCache, CacheDir: cacheDir, Proxy: unreachable, Offline: true},
	} {
		if got, err := again.Dir(ctx, src); err != nil || got != dir {
			t.Errorf("second Dir() = %q, %v; want %q", got, err, dir)
		}
	}
	if hits.Load() != before {
		t.Errorf("second resolve made %d requests, want none", hits.Load()-before)
	}
}

func TestFetchFailuresKeepNothing(t *testing.T) {
	t.Parallel()
	const mod, version = "example.com/Upstream", "v1.2.3"
	const url = "/example.com/!upstream/@v/v1.2.3.zip"
	good, goodSum := testModule(t, mod, version, exampleFiles)
	other, otherSum := testModule(t, "example.com/other", version, map[string]string{"go.mod": "module example.com/other\n"})
	corrupt := bytes.Clone(good)
	for i := len(corrupt) / 3; i < len(corrupt)/2; i++ {
		corrupt[i] ^= 0xff
	}

	tests := []struct {
		name    string
		served  []byte // nil: 404
		sum     string
		wantErr error
		wantIn  []string
	}{
		{
			name: "wrong sum", served: good, sum: otherSum,
			wantErr: ErrChecksumMismatch, wantIn: []string{mod + "@" + version, "pinned " + otherSum, "served " + goodSum},
		},
		{name: "corrupted bytes", served: corrupt, sum: goodSum, wantIn: []string{mod + "@" + version}},
		{name: "not a zip", served: []byte("<html>captive portal</html>"), sum: goodSum, wantIn: []string{"verify " + mod}},
		{name: "not found", sum: goodSum, wantIn: []string{"404", "not found: " + url}},
		// The hash matches, but the zip is another module's: extraction
		// fails after the temporary tree was made.
		{name: "zip of another module", served: other, sum: otherSum, wantIn: []string{"extract " + mod}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			zips := map[string][]byte{}
			if tt.served != nil {
				zips[url] = tt.served
			}
			srv, _ := fakeProxy(t, zips)
			cacheDir := t.TempDir()
			r := &Resolver{ModCache: t.TempDir(), CacheDir: cacheDir, Proxy: srv.URL}
			dir, err := r.Dir(context.Background(), Source{mod, version, tt.sum})
			if err == nil {
				t.Fatalf("Dir() = %q, want an error", dir)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v is not %v", err, tt.wantErr)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			assertNothingKept(t, cacheDir)
		})
	}
}

func TestUnverifiedCacheDirIsReplaced(t *testing.T) {
	t.Parallel()
	src := Source{Module: "example.com/Upstream", Version: "v1.2.3"}
	zipBytes, sum := testModule(t, src.Module, src.Version, exampleFiles)
	src.Sum = sum
	srv, hits := fakeProxy(t, map[string][]byte{"/example.com/!upstream/@v/v1.2.3.zip": zipBytes})

	tests := []struct {
		name   string
		marker string // "" writes none
	}{
		{name: "no marker"},
		{name: "marker of another sum", marker: "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cacheDir := t.TempDir()
			final := filepath.Join(cacheDir, "example.com", "!upstream@v1.2.3")
			stale := map[string]string{"manifests/install.yaml": "stale\n"}
			if tt.marker != "" {
				stale[markerName] = tt.marker
			}
			writeFiles(t, final, stale)

			offline := &Resolver{CacheDir: cacheDir, Proxy: unreachable, Offline: true}
			if _, err := offline.Dir(context.Background(), src); !errors.Is(err, ErrOffline) {
				t.Fatalf("offline Dir() over an unverified tree: err = %v, want %v", err, ErrOffline)
			}
			before := hits.Load()
			r := &Resolver{CacheDir: cacheDir, Proxy: srv.URL}
			b, err := r.ReadFile(context.Background(), src, "manifests/install.yaml")
			if err != nil || string(b) != "kind: Namespace\n" {
				t.Errorf("ReadFile() = %q, %v; want the fetched content", b, err)
			}
			if hits.Load() != before+1 {
				t.Errorf("requests = %d, want 1", hits.Load()-before)
			}
			entries, _ := os.ReadDir(filepath.Dir(final))
			if len(entries) != 1 {
				t.Errorf("entries beside the module = %v, want only the module", entries)
			}
		})
	}
}

func TestConcurrentFetch(t *testing.T) {
	t.Parallel()
	src := Source{Module: "example.com/Upstream", Version: "v1.2.3"}
	zipBytes, sum := testModule(t, src.Module, src.Version, exampleFiles)
	src.Sum = sum
	srv, _ := fakeProxy(t, map[string][]byte{"/example.com/!upstream/@v/v1.2.3.zip": zipBytes})
	cacheDir := t.TempDir()

	const n = 8
	var wg sync.WaitGroup
	dirs, errs := make([]string, n), make([]error, n)
	for i := range n {
		wg.Go(func() {
			r := &Resolver{CacheDir: cacheDir, Proxy: srv.URL}
			dirs[i], errs[i] = r.Dir(context.Background(), src)
			if errs[i] == nil {
				// Whatever a caller gets is a whole tree.
				_, errs[i] = r.ReadFile(context.Background(), src, "manifests/charts/a/x.txt")
			}
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || dirs[i] != dirs[0] {
			t.Errorf("caller %d: Dir() = %q, %v; want %q", i, dirs[i], errs[i], dirs[0])
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(dirs[0]))
	if len(entries) != 1 {
		t.Errorf("entries beside the module = %v, want only the module", entries)
	}
}

func TestOfflineWithEmptyCache(t *testing.T) {
	t.Parallel()
	uuid := Source{"github.com/google/uuid", "v1.6.0", "h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0="}
	r := &Resolver{ModCache: t.TempDir(), CacheDir: t.TempDir(), Proxy: unreachable, Offline: true}
	_, err := r.Dir(context.Background(), uuid)
	if !errors.Is(err, ErrOffline) {
		t.Fatalf("Dir() error = %v, want %v", err, ErrOffline)
	}
	if msg := err.Error(); !strings.Contains(msg, "go mod download github.com/google/uuid@v1.6.0") || strings.Contains(msg, "\n") {
		t.Errorf("error %q is not one line saying how to get the module", msg)
	}
}

func TestPathAndReadFile(t *testing.T) {
	t.Parallel()
	src := Source{Module: "example.com/Upstream", Version: "v1.2.3"}
	zipBytes, sum := testModule(t, src.Module, src.Version, exampleFiles)
	src.Sum = sum
	srv, _ := fakeProxy(t, map[string][]byte{"/example.com/!upstream/@v/v1.2.3.zip": zipBytes})
	r := &Resolver{CacheDir: t.TempDir(), Proxy: srv.URL}
	dir, err := r.Dir(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		rel      string
		wantPath string // "" wants an error
		wantRead string // "" wants ReadFile to fail
	}{
		{rel: "manifests/install.yaml", wantPath: filepath.Join(dir, "manifests", "install.yaml"), wantRead: "kind: Namespace\n"},
		{rel: "manifests/charts/a", wantPath: filepath.Join(dir, "manifests", "charts", "a")},
		{rel: "manifests/missing.yaml"},
		{rel: "../../etc/passwd"},
		{rel: "/etc/passwd"},
		{rel: markerName},
	}
	for _, tt := range tests {
		t.Run(tt.rel, func(t *testing.T) {
			t.Parallel()
			p, err := r.Path(context.Background(), src, tt.rel)
			if tt.wantPath == "" {
				if err == nil {
					t.Fatalf("Path(%q) = %q, want an error", tt.rel, p)
				}
				if msg := err.Error(); !strings.Contains(msg, src.String()) || !strings.Contains(msg, tt.rel) {
					t.Errorf("error %q does not name the source and the path", msg)
				}
			} else if err != nil || p != tt.wantPath {
				t.Errorf("Path(%q) = %q, %v; want %q", tt.rel, p, err, tt.wantPath)
			}
			b, err := r.ReadFile(context.Background(), src, tt.rel)
			if tt.wantRead == "" {
				if err == nil {
					t.Errorf("ReadFile(%q) = %q, want an error", tt.rel, b)
				}
			} else if err != nil || string(b) != tt.wantRead {
				t.Errorf("ReadFile(%q) = %q, %v; want %q", tt.rel, b, err, tt.wantRead)
			}
		})
	}
}

// TestFetchThroughRealProxy fetches a small real module through the Go
// module proxy into empty caches.
func TestFetchThroughRealProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: needs the Go module proxy")
	}
	t.Parallel()
	uuid := Source{"github.com/google/uuid", "v1.6.0", "h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0="}
	ctx := context.Background()
	var out bytes.Buffer
	cacheDir := t.TempDir()
	r := &Resolver{ModCache: t.TempDir(), CacheDir: cacheDir, Proxy: proxyFromEnv(os.Getenv("GOPROXY")), Out: &out}
	dir, err := r.Dir(ctx, uuid)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cacheDir, "github.com", "google", "uuid@v1.6.0"); dir != want {
		t.Errorf("Dir() = %q, want %q", dir, want)
	}
	if _, err := r.Path(ctx, uuid, "uuid.go"); err != nil {
		t.Error(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, markerName)); err != nil || strings.TrimSpace(string(b)) != uuid.Sum {
		t.Errorf("marker = %q, %v; want %s", b, err, uuid.Sum)
	}
	t.Logf("progress: %s", strings.TrimSpace(out.String()))

	// The unreachable proxy really is unreachable: an empty cache fails...
	cold := &Resolver{ModCache: t.TempDir(), CacheDir: t.TempDir(), Proxy: unreachable}
	if _, err := cold.Dir(ctx, uuid); err == nil {
		t.Fatal("Dir() through an unreachable proxy succeeded with an empty cache")
	}
	// ...and the warm cache needs no network.
	warm := &Resolver{ModCache: r.ModCache, CacheDir: cacheDir, Proxy: unreachable}
	if got, err := warm.Dir(ctx, uuid); err != nil || got != dir {
		t.Errorf("second Dir() = %q, %v; want %q from the cache", got, err, dir)
	}
}

// TestPinnedSources resolves every pin from this machine's Go module cache,
// filling it with `go mod download` first where needed, and checks that the
// files the installers use are there.
func TestPinnedSources(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH: cannot reach the Go module cache")
	}
	t.Parallel()
	modCache := goEnv(t, goBin, "GOMODCACHE")
	if d := DefaultResolver().ModCache; d != modCache {
		t.Logf("DefaultResolver().ModCache = %q, but go env GOMODCACHE = %q (set with go env -w?)", d, modCache)
	}
	// CacheDir is only used if the go command cannot put a pin into the
	// module cache (for example a toolchain older than the module's go line).
	cacheDir := t.TempDir()

	const crd = "kind: CustomResourceDefinition"
	tests := []struct {
		src   Source
		dirs  []string
		files map[string]string // path: a string it must contain
	}{
		{
			src:  Istio,
			dirs: []string{"manifests/charts/base", "manifests/charts/istio-control/istio-discovery", "manifests/charts/gateway"},
			files: map[string]string{
				"manifests/charts/base/Chart.yaml":                          "name: base",
				"manifests/charts/istio-control/istio-discovery/Chart.yaml": "name: istiod",
				"manifests/charts/gateway/Chart.yaml":                       "name: gateway",
				"manifests/addons/dashboards/istio-mesh-dashboard.gen.json": `"title"`,
				"VERSION": "1.31",
			},
		},
		{src: ArgoCD, files: map[string]string{"manifests/install.yaml": crd}},
		{src: ArgoRollouts, files: map[string]string{"manifests/install.yaml": crd}},
		{src: PrometheusOperator, files: map[string]string{"bundle.yaml": crd}},
	}
	for _, tt := range tests {
		t.Run(tt.src.Module, func(t *testing.T) {
			t.Parallel()
			inModCache := ensureDownloaded(t, goBin, modCache, tt.src)
			r := &Resolver{ModCache: modCache, CacheDir: cacheDir, Proxy: proxyFromEnv(os.Getenv("GOPROXY")), Out: testWriter{t}}
			ctx := context.Background()
			dir, err := r.Dir(ctx, tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if inModCache && !strings.HasPrefix(dir, modCache+string(filepath.Separator)) {
				t.Errorf("Dir() = %q, want it inside the module cache %q", dir, modCache)
			}
			for _, d := range tt.dirs {
				p, err := r.Path(ctx, tt.src, d)
				if err != nil {
					t.Error(err)
					continue
				}
				if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
					t.Errorf("%s: %s is not a directory", tt.src, d)
				}
			}
			for f, want := range tt.files {
				b, err := r.ReadFile(ctx, tt.src, f)
				switch {
				case err != nil:
					t.Error(err)
				case !bytes.Contains(b, []byte(want)):
					t.Errorf("%s: %s does not contain %q", tt.src, f, want)
				case strings.HasSuffix(f, ".json") && !json.Valid(b):
					t.Errorf("%s: %s is not valid JSON", tt.src, f)
				}
			}
		})
	}
}

// ensureDownloaded puts s into the module cache with `go mod download` if
// it is not there, and reports whether it is there now.
func ensureDownloaded(t *testing.T, goBin, modCache string, s Source) bool {
	t.Helper()
	escPath, escVer, err := s.escaped()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(modCache, filepath.FromSlash(escPath)+"@"+escVer)
	if _, err := os.Stat(dir); err == nil {
		return true
	}
	if testing.Short() {
		t.Skipf("-short: %s is not in the module cache and downloading it needs the network", s)
	}
	// Outside any module, so that no go.mod or go.sum is touched.
	cmd := exec.Command(goBin, "mod", "download", "-json", s.String())
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "GOMODCACHE="+modCache, "GOFLAGS=-mod=mod", "GOWORK=off")
	// The go command may extract a module and still fail, as it does
	// when the module's go line is newer than the toolchain.
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Logf("go mod download %s: %v\n%s", s, err, out)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Logf("%s is not in the module cache; the resolver fetches it from the proxy", s)
		return false
	}
	return true
}

func goEnv(t *testing.T, goBin, key string) string {
	t.Helper()
	out, err := exec.Command(goBin, "env", key).Output()
	if err != nil {
		t.Fatalf("go env %s: %v", key, err)
	}
	return strings.TrimSpace(string(out))
}

// testWriter sends progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
