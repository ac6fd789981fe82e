package local

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Component is one pinned upstream build: a tool module under tools/ whose
// binaries, plus the upstream files the fleet needs from the same module
// (CRDs, config manifests), are cached once per component+version+flags.
type Component struct {
	Name      string
	Version   string
	Dir       string   // tool module directory under tools/
	Packages  []string // packages to build, relative to the tool module
	Binaries  []string // names of the files go build writes
	Tags      []string
	LDFlags   []string
	Toolchain string // GOTOOLCHAIN for this build only, "" for the machine's Go
	Assets    []Asset
	// Estimate is the cold build time seen on a 2-core machine, shown as
	// progress so a person knows what to expect.
	Estimate time.Duration
}

// Asset copies upstream files (a glob inside a module's source tree) into the
// component's cache directory.
type Asset struct {
	Module, Version string
	Glob            string // relative to the module root
	To              string // directory relative to the cache dir
	// Executable marks scripts: the module cache stores every file
	// read-only without the execute bit.
	Executable bool
}

// Components returns the pinned component matrix of the local fleet. The
// versions and flags are the ones ../shared/fleet-recipes.md proved here.
func Components() []Component {
	kubeLD := []string{"-s", "-w"}
	for _, p := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		kubeLD = append(kubeLD,
			"-X", p+".gitVersion=v1.35.4", "-X", p+".gitMajor=1", "-X", p+".gitMinor=35", "-X", p+".gitTreeState=clean")
	}
	const kwokDir = "kustomize/stage/"
	return []Component{
		{
			Name: "kube", Version: "v1.35.4", Dir: "kube",
			Packages: []string{"k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager", "k8s.io/kubernetes/cmd/kube-scheduler"},
			Binaries: []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"},
			LDFlags:  kubeLD, Estimate: 15 * time.Minute,
		},
		{
			Name: "etcd", Version: "v3.6.16", Dir: "etcd",
			Packages: []string{"."}, Binaries: []string{"etcd"},
			LDFlags: []string{"-s", "-w"}, Estimate: 2 * time.Minute,
		},
		{
			Name: "kwok", Version: "v0.8.0", Dir: "kwok",
			Packages: []string{"sigs.k8s.io/kwok/cmd/kwok"}, Binaries: []string{"kwok"},
			LDFlags: []string{"-s", "-w"}, Estimate: 3 * time.Minute,
			Assets: []Asset{
				{Module: "sigs.k8s.io/kwok", Version: "v0.8.0", Glob: kwokDir + "node/fast/node-initialize.yaml", To: "stages"},
				{Module: "sigs.k8s.io/kwok", Version: "v0.8.0", Glob: kwokDir + "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml", To: "stages"},
				{Module: "sigs.k8s.io/kwok", Version: "v0.8.0", Glob: kwokDir + "pod/fast/pod-ready.yaml", To: "stages"},
				{Module: "sigs.k8s.io/kwok", Version: "v0.8.0", Glob: kwokDir + "pod/fast/pod-complete.yaml", To: "stages"},
				{Module: "sigs.k8s.io/kwok", Version: "v0.8.0", Glob: kwokDir + "pod/fast/pod-delete.yaml", To: "stages"},
			},
		},
		{
			Name: "rollouts", Version: "v1.10.1", Dir: "rollouts",
			Packages: []string{"github.com/argoproj/argo-rollouts/cmd/rollouts-controller"},
			Binaries: []string{"rollouts-controller"},
			LDFlags: []string{"-s", "-w",
				"-X", "github.com/argoproj/argo-rollouts/utils/version.version=1.10.1",
				"-X", "github.com/argoproj/argo-rollouts/utils/version.gitTag=v1.10.1"},
			Estimate: 8 * time.Minute,
			Assets: []Asset{
				{Module: "github.com/argoproj/argo-rollouts", Version: "v1.10.1", Glob: "manifests/crds/*-crd.yaml", To: "crds"},
				{Module: "istio.io/api", Version: "v1.32.0", Glob: "kubernetes/customresourcedefinitions.gen.yaml", To: "istio"},
			},
		},
		{
			Name: "thanos", Version: "v0.42.4", Dir: "thanos",
			Packages: []string{"github.com/thanos-io/thanos/cmd/thanos"}, Binaries: []string{"thanos"},
			// Without slicelabels every sidecar panics on the querier's first call.
			Tags: []string{"netgo", "slicelabels"}, LDFlags: []string{"-s", "-w"}, Estimate: 9 * time.Minute,
		},
		{
			Name: "argocd", Version: "v3.6.1", Dir: "argocd",
			Packages: []string{"github.com/argoproj/argo-cd/v3/cmd"}, Binaries: []string{"argocd"},
			LDFlags:   []string{"-s", "-w", "-X", "github.com/argoproj/argo-cd/v3/common.version=3.6.1"},
			Toolchain: "go1.27.3", Estimate: 9 * time.Minute,
			Assets: []Asset{
				{Module: "github.com/argoproj/argo-cd/v3", Version: "v3.6.1", Glob: "manifests/crds/*-crd.yaml", To: "crds"},
				{Module: "github.com/argoproj/argo-cd/v3", Version: "v3.6.1", Glob: "manifests/base/config/argocd-*.yaml", To: "config"},
				{Module: "github.com/argoproj/argo-cd/v3", Version: "v3.6.1", Glob: "hack/git-verify-wrapper.sh", To: "bin", Executable: true},
			},
		},
	}
}

// Key identifies a build: the same component, version and flags on the same
// platform always map to the same cache directory.
func (c Component) Key() string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	_ = enc.Encode([]any{c.Name, c.Version, c.Packages, c.Binaries, c.Tags, c.LDFlags, c.Toolchain, c.Assets, runtime.GOOS, runtime.GOARCH})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// Cache is the on-disk component cache.
type Cache struct {
	Root string // e.g. ~/.cache/lockstep
}

// DefaultCache honours LOCKSTEP_CACHE_DIR, then the user's cache directory.
func DefaultCache() (Cache, error) {
	if d := os.Getenv("LOCKSTEP_CACHE_DIR"); d != "" {
		return Cache{Root: d}, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return Cache{}, fmt.Errorf("find cache directory (set LOCKSTEP_CACHE_DIR): %w", err)
	}
	return Cache{Root: filepath.Join(d, "lockstep")}, nil
}

// Dir is where a component's build lives.
func (c Cache) Dir(comp Component) string {
	return filepath.Join(c.Root, "components", comp.Name+"-"+comp.Version+"-"+comp.Key())
}

const completeMarker = ".complete"

// Ready reports whether a component is fully built.
func (c Cache) Ready(comp Component) bool {
	_, err := os.Stat(filepath.Join(c.Dir(comp), completeMarker))
	return err == nil
}

// Bin returns the path of a cached binary of a component.
func (c Cache) Bin(comp, bin string) string {
	for _, k := range Components() {
		if k.Name == comp {
			return filepath.Join(c.Dir(k), "bin", bin)
		}
	}
	return ""
}

// Asset returns the path of a cached asset directory of a component.
func (c Cache) Asset(comp, dir string) string {
	for _, k := range Components() {
		if k.Name == comp {
			return filepath.Join(c.Dir(k), dir)
		}
	}
	return ""
}

// ErrNotBuilt is returned when a fleet needs a component the cache lacks.
var ErrNotBuilt = errors.New("component not built")

// Check returns an error naming the first missing component, so a warm
// start never compiles and a cold one says what to run.
func (c Cache) Check() error {
	for _, comp := range Components() {
		if !c.Ready(comp) {
			return fmt.Errorf("%w: %s %s is not in %s; run `lockstep lab build` (or `make components`) from a Lockstep checkout", ErrNotBuilt, comp.Name, comp.Version, c.Root)
		}
	}
	return nil
}

// FindToolsDir locates the tool modules: LOCKSTEP_TOOLS_DIR, else a tools/
// directory above the working directory or the executable.
func FindToolsDir() (string, error) {
	if d := os.Getenv("LOCKSTEP_TOOLS_DIR"); d != "" {
		return d, nil
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, s := range starts {
		for d := s; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "tools", "kube", "go.mod")); err == nil {
				return filepath.Join(d, "tools"), nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", errors.New("cannot find the tool modules (tools/kube/go.mod); run from a Lockstep checkout or set LOCKSTEP_TOOLS_DIR")
}

// Builder builds missing components into the cache.
type Builder struct {
	Cache    Cache
	ToolsDir string
	Out      io.Writer // progress for people
	Log      io.Writer // go build output
	// Tick is how often a running build reports that it is still running.
	Tick time.Duration
}

// Ensure builds every component that is not cached yet, in order.
func (b Builder) Ensure(ctx context.Context, only ...string) error {
	want := map[string]bool{}
	for _, o := range only {
		want[o] = true
	}
	comps := Components()
	for i, comp := range comps {
		if len(want) > 0 && !want[comp.Name] {
			continue
		}
		if b.Cache.Ready(comp) {
			fmt.Fprintf(b.Out, "[%d/%d] %s %s: cached\n", i+1, len(comps), comp.Name, comp.Version)
			continue
		}
		fmt.Fprintf(b.Out, "[%d/%d] %s %s: building (cold build takes about %s on 2 cores)\n", i+1, len(comps), comp.Name, comp.Version, comp.Estimate)
		start := time.Now()
		if err := b.build(ctx, comp); err != nil {
			return fmt.Errorf("build %s %s: %w", comp.Name, comp.Version, err)
		}
		fmt.Fprintf(b.Out, "[%d/%d] %s %s: built in %s\n", i+1, len(comps), comp.Name, comp.Version, time.Since(start).Round(time.Second))
		b.prune(comp)
	}
	return nil
}

func (b Builder) build(ctx context.Context, comp Component) error {
	final := b.Cache.Dir(comp)
	tmp := final + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(tmp, "bin"), 0o755); err != nil {
		return err
	}
	env := os.Environ()
	if comp.Toolchain != "" {
		env = append(env, "GOTOOLCHAIN="+comp.Toolchain)
	}
	args := []string{"build", "-trimpath"}
	if len(comp.Tags) > 0 {
		args = append(args, "-tags", strings.Join(comp.Tags, ","))
	}
	args = append(args, "-ldflags", strings.Join(comp.LDFlags, " "))
	out := filepath.Join(tmp, "bin") + string(filepath.Separator)
	if len(comp.Binaries) == 1 {
		out = filepath.Join(tmp, "bin", comp.Binaries[0])
	}
	args = append(args, "-o", out)
	args = append(args, comp.Packages...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = filepath.Join(b.ToolsDir, comp.Dir)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = b.Log, b.Log
	if err := b.runWithTicks(cmd, comp); err != nil {
		return err
	}
	for _, bin := range comp.Binaries {
		if _, err := os.Stat(filepath.Join(tmp, "bin", bin)); err != nil {
			return fmt.Errorf("go build did not produce %s: %w", bin, err)
		}
	}
	for _, a := range comp.Assets {
		if err := b.copyAsset(ctx, env, comp, a, tmp); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, completeMarker), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

func (b Builder) runWithTicks(cmd *exec.Cmd, comp Component) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := b.Tick
	if tick <= 0 {
		tick = 30 * time.Second
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			fmt.Fprintf(b.Out, "      %s: still building (%s of about %s)\n", comp.Name, time.Since(start).Round(time.Second), comp.Estimate)
		}
	}
}

// copyAsset resolves a module's source directory through `go mod download`
// (the same module cache the build used) and copies the matching files.
func (b Builder) copyAsset(ctx context.Context, env []string, comp Component, a Asset, tmp string) error {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", a.Module+"@"+a.Version)
	cmd.Dir = filepath.Join(b.ToolsDir, comp.Dir)
	cmd.Env = env
	cmd.Stderr = b.Log
	raw, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("download %s@%s: %w", a.Module, a.Version, err)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(raw, &info); err != nil || info.Dir == "" {
		return fmt.Errorf("download %s@%s: no source directory (%s)", a.Module, a.Version, info.Error)
	}
	matches, err := filepath.Glob(filepath.Join(info.Dir, a.Glob))
	if err != nil || len(matches) == 0 {
		return fmt.Errorf("asset %s in %s@%s: no file matches", a.Glob, a.Module, a.Version)
	}
	if err := os.MkdirAll(filepath.Join(tmp, a.To), 0o755); err != nil {
		return err
	}
	for _, m := range matches {
		to := filepath.Join(tmp, a.To, filepath.Base(m))
		if err := copyFile(m, to); err != nil {
			return err
		}
		if a.Executable {
			if err := os.Chmod(to, 0o755); err != nil {
				return err
			}
		}
	}
	return nil
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	// Module cache files are read-only; the copy must stay writable so a
	// rebuild can replace it, and keep the execute bit of scripts.
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, st.Mode().Perm()|0o200)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, bufio.NewReader(src)); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// prune removes other builds of a component (older versions or flags): the
// cache holds one build per component, and a rebuild after a branch switch
// is a relink from Go's own build cache.
func (b Builder) prune(comp Component) {
	keep := b.Cache.Dir(comp)
	old, _ := filepath.Glob(filepath.Join(b.Cache.Root, "components", comp.Name+"-*"))
	for _, d := range old {
		if d != keep && !strings.HasSuffix(d, ".tmp") {
			_ = os.RemoveAll(d)
		}
	}
}
