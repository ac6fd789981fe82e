package sources

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

// Source is one pinned upstream: a Go module version and the go.sum hash of
// its zip.
type Source struct {
	// Module is the module path, e.g. "istio.io/istio".
	Module string
	// Version is the module version: a tag or a pseudo-version.
	Version string
	// Sum is the "h1:" dirhash of the module zip, exactly as in go.sum.
	Sum string
}

// String returns module@version, the form `go mod download` takes.
func (s Source) String() string { return s.Module + "@" + s.Version }

// The pinned upstreams. To move a pin, take the Sum that
// `go mod download -json MODULE@VERSION` prints.
var (
	// Istio provides Istio's Helm charts under manifests/charts (base,
	// istio-control/istio-discovery, gateway) and its Grafana dashboards
	// under manifests/addons/dashboards. Istio tags its releases without
	// the "v" a Go module version needs, so the module proxy serves only
	// pseudo-versions of master; this is the newest one, and its VERSION
	// file says 1.31.
	Istio = Source{"istio.io/istio", "v0.0.0-20260827124520-eed52ebb66ad", "h1:ui9TJjRMAV/hb5ehQaZDq7IUGxuQP6dra9lapT/VjHI="}

	// ArgoCD provides Argo CD's manifests/install.yaml.
	ArgoCD = Source{"github.com/argoproj/argo-cd/v3", "v3.6.1", "h1:OmhqeKiR3C//awbFrhQqFdtRI+Qiv17j8vqm3UkMj/g="}

	// ArgoRollouts provides Argo Rollouts' manifests/install.yaml.
	ArgoRollouts = Source{"github.com/argoproj/argo-rollouts", "v1.10.1", "h1:6oyVPGiHHxu3ixkT6mngemh88HLPDoTX1IwO6KNR1Y4="}

	// PrometheusOperator provides prometheus-operator's bundle.yaml (its
	// CRDs and the operator's Deployment and RBAC).
	PrometheusOperator = Source{"github.com/prometheus-operator/prometheus-operator", "v0.85.0", "h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s="}
)

// Pinned lists every pinned source, for `lockstep lab build` to fetch
// and verify them all up front.
func Pinned() []Source { return []Source{Istio, ArgoCD, ArgoRollouts, PrometheusOperator} }

var (
	// ErrChecksumMismatch is wrapped by every error about content whose
	// hash is not the pinned Sum.
	ErrChecksumMismatch = errors.New("checksum mismatch")
	// ErrOffline is wrapped by the error of a resolve that found nothing
	// on disk while network fetches were off.
	ErrOffline = errors.New("not on disk and sources are offline")
)

// markerName is the file, inside a directory this package extracted, that
// holds the Sum the zip was verified against. It is written before the
// directory is renamed into place, so a directory with a matching marker is
// always a complete, verified tree.
const markerName = ".lockstep-sum"

// DefaultProxy is the Go module proxy used when GOPROXY names none.
const DefaultProxy = "https://proxy.golang.org"

// Resolver finds the files of pinned sources on disk, fetching and
// verifying them through a Go module proxy when they are not there yet.
// Its zero value fetches nothing and looks nowhere; use DefaultResolver.
type Resolver struct {
	// ModCache is the Go module cache (GOMODCACHE), read first. Empty
	// skips it.
	ModCache string
	// CacheDir holds the modules this package fetched itself.
	CacheDir string
	// Proxy is the base URL of the Go module proxy to fetch from.
	Proxy string
	// Offline forbids fetches: only what is already on disk resolves.
	Offline bool
	// Out receives one progress line per fetch; nil discards it.
	Out io.Writer
}

// DefaultResolver returns a Resolver configured from the environment
// without running the go command: ModCache is GOMODCACHE, else the first
// GOPATH entry's pkg/mod, else ~/go/pkg/mod (settings made with `go env -w`
// are not seen); CacheDir is $LOCKSTEP_CACHE_DIR/sources, else
// lockstep/sources in the user's cache directory (~/.cache on Linux);
// Proxy is the first http(s) entry of GOPROXY, else DefaultProxy; and
// LOCKSTEP_SOURCES=offline turns fetches off. Progress goes to stderr.
func DefaultResolver() *Resolver {
	home, _ := os.UserHomeDir()
	userCache, _ := os.UserCacheDir()
	r := resolverFromEnv(os.Getenv, home, userCache)
	r.Out = os.Stderr
	return r
}

func resolverFromEnv(getenv func(string) string, home, userCache string) *Resolver {
	r := &Resolver{
		Proxy:   proxyFromEnv(getenv("GOPROXY")),
		Offline: getenv("LOCKSTEP_SOURCES") == "offline",
	}
	gopath := ""
	for _, p := range filepath.SplitList(getenv("GOPATH")) {
		if p != "" {
			gopath = p
			break
		}
	}
	switch {
	case getenv("GOMODCACHE") != "":
		r.ModCache = getenv("GOMODCACHE")
	case gopath != "":
		r.ModCache = filepath.Join(gopath, "pkg", "mod")
	case home != "":
		r.ModCache = filepath.Join(home, "go", "pkg", "mod")
	}
	switch {
	case getenv("LOCKSTEP_CACHE_DIR") != "":
		r.CacheDir = filepath.Join(getenv("LOCKSTEP_CACHE_DIR"), "sources")
	case userCache != "":
		r.CacheDir = filepath.Join(userCache, "lockstep", "sources")
	}
	return r
}

// proxyFromEnv returns the first http(s) proxy of a GOPROXY list. Entries
// are separated by commas or pipes; "direct", "off" and file:// entries
// cannot serve this package and are skipped.
func proxyFromEnv(goproxy string) string {
	for _, p := range strings.FieldsFunc(goproxy, func(r rune) bool { return r == ',' || r == '|' }) {
		p = strings.TrimSpace(p)
		if strings.HasPrefix(p, "https://") || strings.HasPrefix(p, "http://") {
			return strings.TrimSuffix(p, "/")
		}
	}
	return DefaultProxy
}

// Dir returns a directory holding the files of s's module, which must be
// treated as read-only. In order it takes: the module's directory in the Go
// module cache; the tree a previous call extracted into CacheDir; and,
// unless Offline, the module zip downloaded from Proxy, which is kept only
// if it hashes to s.Sum, and is extracted into CacheDir.
func (r *Resolver) Dir(ctx context.Context, s Source) (string, error) {
	escPath, escVer, err := s.escaped()
	if err != nil {
		return "", err
	}
	if dir, ok, err := r.fromModCache(s, escPath, escVer); err != nil || ok {
		return dir, err
	}
	final := ""
	if r.CacheDir != "" {
		final = filepath.Join(r.CacheDir, filepath.FromSlash(escPath)+"@"+escVer)
		if verified(final, s.Sum) {
			return final, nil
		}
	}
	if r.Offline {
		return "", fmt.Errorf("%s: %w: run `go mod download %s`, or unset LOCKSTEP_SOURCES=offline to fetch it", s, ErrOffline, s)
	}
	if final == "" {
		return "", fmt.Errorf("%s: no source cache directory to fetch into (set LOCKSTEP_CACHE_DIR)", s)
	}
	if err := r.fetch(ctx, s, escPath, escVer, final); err != nil {
		return "", err
	}
	return final, nil
}

// fetch downloads s's zip from the proxy and installs it at final.
func (r *Resolver) fetch(ctx context.Context, s Source, escPath, escVer, final string) error {
	if err := os.MkdirAll(r.CacheDir, 0o777); err != nil {
		return fmt.Errorf("fetch %s: %w", s, err)
	}
	zipFile, size, err := r.download(ctx, s, escPath, escVer)
	if err != nil {
		return err
	}
	defer os.Remove(zipFile)
	if err := r.install(ctx, s, zipFile, final); err != nil {
		return err
	}
	r.progress("fetched %s (%s) from %s, verified %s", s, humanSize(size), r.Proxy, s.Sum)
	return nil
}

// Path returns the path of rel, a slash-separated file or directory inside
// s's module, after checking that it exists.
func (r *Resolver) Path(ctx context.Context, s Source, rel string) (string, error) {
	if !fs.ValidPath(rel) || rel == markerName {
		return "", fmt.Errorf("%s: %q is not a path inside the module", s, rel)
	}
	dir, err := r.Dir(ctx, s)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%s: %s does not exist in the module (%s)", s, rel, dir)
		}
		return "", fmt.Errorf("%s: %s: %w", s, rel, err)
	}
	return p, nil
}

// ReadFile returns the content of rel, a slash-separated file path inside
// s's module.
func (r *Resolver) ReadFile(ctx context.Context, s Source, rel string) ([]byte, error) {
	p, err := r.Path(ctx, s, rel)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", s, rel, err)
	}
	return b, nil
}

// escaped checks s and returns its module path and version in the
// case-encoded form the module cache and proxies use.
func (s Source) escaped() (escPath, escVer string, err error) {
	if err := module.Check(s.Module, s.Version); err != nil {
		return "", "", fmt.Errorf("source %s: %w", s, err)
	}
	if !strings.HasPrefix(s.Sum, "h1:") {
		return "", "", fmt.Errorf("source %s: sum %q is not an h1: hash", s, s.Sum)
	}
	if escPath, err = module.EscapePath(s.Module); err != nil {
		return "", "", fmt.Errorf("source %s: %w", s, err)
	}
	if escVer, err = module.EscapeVersion(s.Version); err != nil {
		return "", "", fmt.Errorf("source %s: %w", s, err)
	}
	return escPath, escVer, nil
}

// fromModCache returns s's directory in the Go module cache if the go
// command finished extracting it there. The go command verified the zip
// against go.sum or the checksum database and recorded its hash in the
// .ziphash file beside it; that hash must be the pinned one. Like the go
// command, a directory without a .ziphash, or with a .partial left by an
// interrupted extraction, is not trusted.
func (r *Resolver) fromModCache(s Source, escPath, escVer string) (string, bool, error) {
	if r.ModCache == "" {
		return "", false, nil
	}
	dir := filepath.Join(r.ModCache, filepath.FromSlash(escPath)+"@"+escVer)
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", false, nil
	}
	dl := filepath.Join(r.ModCache, "cache", "download", filepath.FromSlash(escPath), "@v", escVer)
	if _, err := os.Stat(dl + ".partial"); err == nil {
		return "", false, nil
	}
	h, err := os.ReadFile(dl + ".ziphash")
	if err != nil {
		return "", false, nil
	}
	if got := strings.TrimSpace(string(h)); got != s.Sum {
		return "", false, fmt.Errorf("%s: %w: pinned %s, the Go module cache (%s) has %s", s, ErrChecksumMismatch, s.Sum, r.ModCache, got)
	}
	return dir, true, nil
}

// verified reports whether dir is a tree this package extracted from a zip
// that hashed to sum.
func verified(dir, sum string) bool {
	b, err := os.ReadFile(filepath.Join(dir, markerName))
	return err == nil && strings.TrimSpace(string(b)) == sum
}

// install verifies the downloaded zipFile against s.Sum and extracts it to
// final. Nothing is kept unless every step succeeds, and final appears in
// one rename, so concurrent callers never see half a tree.
func (r *Resolver) install(ctx context.Context, s Source, zipFile, final string) error {
	got, err := dirhash.HashZip(zipFile, dirhash.Hash1)
	if err != nil {
		return fmt.Errorf("verify %s from %s: %w", s, r.Proxy, err)
	}
	if got != s.Sum {
		return fmt.Errorf("%s: %w: pinned %s, %s served %s", s, ErrChecksumMismatch, s.Sum, r.Proxy, got)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("extract %s: %w", s, err)
	}

	parent, base := filepath.Dir(final), filepath.Base(final)
	if err := os.MkdirAll(parent, 0o777); err != nil {
		return fmt.Errorf("extract %s: %w", s, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("extract %s: %w", s, err)
	}
	defer os.RemoveAll(tmp) // gone already after a successful rename
	if err := modzip.Unzip(tmp, module.Version{Path: s.Module, Version: s.Version}, zipFile); err != nil {
		return fmt.Errorf("extract %s: %w", s, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, markerName), []byte(s.Sum+"\n"), 0o444); err != nil {
		return fmt.Errorf("extract %s: %w", s, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("extract %s: %w", s, err)
	}
	if err := publish(tmp, final, s.Sum); err != nil {
		return fmt.Errorf("extract %s into %s: %w", s, final, err)
	}
	return nil
}

func (r *Resolver) progress(format string, args ...any) {
	if r.Out != nil {
		fmt.Fprintf(r.Out, format+"\n", args...)
	}
}

// publish renames the verified tree tmp to final. If final exists and is
// verified, a concurrent fetch got there first and its tree is used; if it
// exists unverified, it is moved aside and replaced.
func publish(tmp, final, sum string) error {
	for attempt := 0; ; attempt++ {
		err := os.Rename(tmp, final)
		if err == nil || verified(final, sum) {
			return nil
		}
		if _, statErr := os.Stat(final); attempt > 0 || statErr != nil {
			return err
		}
		stale, mkErr := os.MkdirTemp(filepath.Dir(final), "."+filepath.Base(final)+".stale-*")
		if mkErr != nil {
			return mkErr
		}
		if mvErr := os.Rename(final, filepath.Join(stale, "tree")); mvErr != nil && !errors.Is(mvErr, fs.ErrNotExist) {
			os.RemoveAll(stale)
			return mvErr
		}
		// Best effort: a leftover we cannot delete is out of the way already.
		os.RemoveAll(stale)
	}
}

// download saves s's zip from the proxy to a temporary file in CacheDir and
// returns its name and size.
func (r *Resolver) download(ctx context.Context, s Source, escPath, escVer string) (string, int64, error) {
	if r.Proxy == "" {
		return "", 0, fmt.Errorf("fetch %s: no module proxy configured", s)
	}
	u := strings.TrimSuffix(r.Proxy, "/") + "/" + escPath + "/@v/" + escVer + ".zip"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", 0, fmt.Errorf("fetch %s: %w", s, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("fetch %s: %w", s, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Proxies explain a refusal in the first line of the body.
		line, _ := bufio.NewReader(io.LimitReader(resp.Body, 512)).ReadString('\n')
		if line = strings.TrimSpace(line); line != "" {
			return "", 0, fmt.Errorf("fetch %s: GET %s: %s: %s", s, u, resp.Status, line)
		}
		return "", 0, fmt.Errorf("fetch %s: GET %s: %s", s, u, resp.Status)
	}

	f, err := os.CreateTemp(r.CacheDir, ".download-*.zip")
	if err != nil {
		return "", 0, fmt.Errorf("fetch %s: %w", s, err)
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, modzip.MaxZipFile+1))
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err == nil && n > modzip.MaxZipFile {
		err = fmt.Errorf("zip is larger than %d bytes", modzip.MaxZipFile)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", 0, fmt.Errorf("fetch %s: %w", s, err)
	}
	return f.Name(), n, nil
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
