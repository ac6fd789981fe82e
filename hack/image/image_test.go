package main

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx"
	"github.com/spdx/tools-golang/spdxlib"
)

var both = []platform{{"linux", "amd64"}, {"linux", "arm64"}}

// tiny is hack/image/testdata/tiny, a stand-in for lockstep that links
// k8s.io/client-go and cross-compiles in seconds (lockstep takes minutes
// per platform; TestMakeImageLayout checks the image `make image` built).
var tiny struct {
	once   sync.Once
	dir    string
	opts   options
	built  *built
	err    error
	certs  []byte
	elapse time.Duration
}

func tinyOptions(out, certs string) options {
	return options{
		Out:       out,
		Dir:       "../..",
		Package:   "./hack/image/testdata/tiny",
		Platforms: both,
		Version:   "v0.0.0-test",
		Revision:  "0123456789abcdef0123456789abcdef01234567",
		Source:    "https://lockstep.dev/lockstep",
		CACerts:   certs,
		Created:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

// buildTiny builds the tiny image for both platforms once per test run.
func buildTiny(t *testing.T) (options, *built) {
	t.Helper()
	tiny.once.Do(func() {
		tiny.dir, tiny.err = os.MkdirTemp("", "lockstep-image-test-")
		if tiny.err != nil {
			return
		}
		certs := filepath.Join(tiny.dir, "ca.crt")
		tiny.certs = []byte("-----BEGIN CERTIFICATE-----\nnot a real one\n-----END CERTIFICATE-----\n")
		if tiny.err = os.WriteFile(certs, tiny.certs, 0o644); tiny.err != nil {
			return
		}
		tiny.opts = tinyOptions(filepath.Join(tiny.dir, "layout"), certs)
		start := time.Now()
		tiny.built, tiny.err = build(context.Background(), tiny.opts)
		tiny.elapse = time.Since(start)
	})
	if tiny.err != nil {
		t.Fatal(tiny.err)
	}
	t.Logf("tiny image for %v built in %s", both, tiny.elapse.Round(100*time.Millisecond))
	return tiny.opts, tiny.built
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tiny.dir != "" {
		os.RemoveAll(tiny.dir)
	}
	os.Exit(code)
}

// readSPDX parses an SBOM with the SPDX project's own Go library, not this
// package's types, and validates its relationships.
func readSPDX(t *testing.T, b []byte) *spdx.Document {
	t.Helper()
	doc, err := spdxjson.Read(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("SBOM does not parse as SPDX JSON: %v", err)
	}
	if err := spdxlib.ValidateDocument(doc); err != nil {
		t.Errorf("SBOM is not a valid SPDX document: %v", err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" {
		t.Errorf("SBOM is %s with data license %s; want SPDX-2.3, CC0-1.0", doc.SPDXVersion, doc.DataLicense)
	}
	return doc
}

// spdxPackage finds a package by name in an SPDX document.
func findPackage(doc *spdx.Document, name string) *spdx.Package {
	for _, p := range doc.Packages {
		if p.PackageName == name {
			return p
		}
	}
	return nil
}

func purlOf(p *spdx.Package) string {
	for _, r := range p.PackageExternalReferences {
		if r.RefType == "purl" {
			return r.Locator
		}
	}
	return ""
}

func TestBuildLayout(t *testing.T) {
	t.Parallel()
	o, b := buildTiny(t)
	if err := verifyLayout(o.Out, both); err != nil {
		t.Fatalf("verifyLayout: %v", err)
	}
	info, err := inspectLayout(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	if info.IndexDigest != b.IndexDigest || info.RefName != o.Version {
		t.Errorf("index.json lists index %s tagged %q, want %s tagged %q", info.IndexDigest, info.RefName, b.IndexDigest, o.Version)
	}
	if info.Index.MediaType != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("index media type %s", info.Index.MediaType)
	}
	for _, want := range []string{"org.opencontainers.image.source", "org.opencontainers.image.revision", "org.opencontainers.image.version"} {
		if info.Index.Annotations[want] == "" {
			t.Errorf("the index has no %s annotation", want)
		}
	}
	platforms := map[string]bool{}
	for _, ii := range info.Images {
		platforms[ii.Platform.String()] = true
		t.Run(ii.Platform.String(), func(t *testing.T) {
			c := ii.Config.Config
			if len(c.Entrypoint) != 1 || c.Entrypoint[0] != "/lockstep" {
				t.Errorf("entrypoint %q, want [/lockstep]", c.Entrypoint)
			}
			if c.User != "65532:65532" {
				t.Errorf("user %q, want 65532:65532", c.User)
			}
			if c.WorkingDir == "" {
				t.Error("no working directory")
			}
			for k, want := range map[string]string{
				"org.opencontainers.image.source":   o.Source,
				"org.opencontainers.image.revision": o.Revision,
				"org.opencontainers.image.version":  o.Version,
			} {
				if c.Labels[k] != want {
					t.Errorf("label %s = %q, want %q", k, c.Labels[k], want)
				}
			}
			h := ii.Files["/lockstep"]
			if h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 == 0 {
				t.Fatalf("/lockstep: %+v, want an executable regular file", h)
			}
			for p, h := range ii.Files {
				if h.Mode&(04000|02000) != 0 {
					t.Errorf("%s is setuid or setgid", p)
				}
				if !h.ModTime.Equal(o.Created) {
					t.Errorf("%s has mtime %s, want the build's %s (reproducible layers)", p, h.ModTime, o.Created)
				}
			}
			if h := ii.Files["/home/nonroot"]; h == nil || h.Uid != 65532 {
				t.Errorf("/home/nonroot: %+v, want a directory owned by 65532", h)
			}
			if h := ii.Files[caPath]; h == nil || h.Size != int64(len(tiny.certs)) {
				t.Errorf("%s: %+v, want the host's CA bundle", caPath, h)
			}
			bi, err := buildinfo.Read(bytes.NewReader(ii.Entrypoint))
			if err != nil {
				t.Fatal(err)
			}
			var clientGo string
			for _, m := range bi.Deps {
				if m.Path == "k8s.io/client-go" {
					clientGo = m.Version
				}
			}
			if clientGo == "" {
				t.Fatal("the binary does not link k8s.io/client-go; the test program should")
			}
			if len(ii.SBOMs) != 1 {
				t.Fatalf("%d SBOMs, want 1", len(ii.SBOMs))
			}
			doc := readSPDX(t, ii.SBOMs[0])
			p := findPackage(doc, "k8s.io/client-go")
			if p == nil {
				t.Fatal("the SBOM does not list k8s.io/client-go")
			}
			if p.PackageVersion != clientGo || purlOf(p) != "pkg:golang/k8s.io/client-go@"+clientGo {
				t.Errorf("k8s.io/client-go in the SBOM: version %q, purl %q; want %s", p.PackageVersion, purlOf(p), clientGo)
			}
			if len(doc.Packages) != len(bi.Deps)+2 {
				t.Errorf("the SBOM lists %d packages, want %d modules, the main module and stdlib", len(doc.Packages), len(bi.Deps))
			}
			if p := findPackage(doc, "stdlib"); p == nil || p.PackageVersion != bi.GoVersion {
				t.Errorf("stdlib in the SBOM: %+v, want %s", p, bi.GoVersion)
			}
		})
	}
	if len(platforms) != 2 || !platforms["linux/amd64"] || !platforms["linux/arm64"] {
		t.Errorf("the index has %v, want linux/amd64 and linux/arm64", platforms)
	}
}

// TestReproducible builds the tiny image again: the same input gives the
// same index digest.
func TestReproducible(t *testing.T) {
	t.Parallel()
	o, b := buildTiny(t)
	o.Out = t.TempDir()
	again, err := build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if again.IndexDigest != b.IndexDigest {
		t.Errorf("rebuild gave index %s, first build %s", again.IndexDigest, b.IndexDigest)
	}
}

// TestChecksCatch feeds checkImage images that are wrong in one way each.
func TestChecksCatch(t *testing.T) {
	t.Parallel()
	o, _ := buildTiny(t)
	info, err := inspectLayout(o.Out)
	if err != nil {
		t.Fatal(err)
	}
	good := info.Images[0]
	if errs := checkImage(good); len(errs) > 0 {
		t.Fatalf("the built image fails: %v", errs)
	}
	for _, c := range []struct {
		name   string
		modify func(ii *imageInfo)
		want   string
	}{
		{"root user", func(ii *imageInfo) { ii.Config.Config.User = "0:0" }, "non-root"},
		{"user by name", func(ii *imageInfo) { ii.Config.Config.User = "nonroot" }, "non-root"},
		{"other entrypoint", func(ii *imageInfo) { ii.Config.Config.Entrypoint = []string{"/bin/sh"} }, "entrypoint"},
		{"setuid file", func(ii *imageInfo) {
			ii.Files["/bin/su"] = &tar.Header{Name: "bin/su", Mode: 04755, Typeflag: tar.TypeReg}
		}, "setuid"},
		{"not executable", func(ii *imageInfo) { h := *ii.Files["/lockstep"]; h.Mode = 0o644; ii.Files["/lockstep"] = &h }, "not executable"},
		{"no binary", func(ii *imageInfo) { delete(ii.Files, "/lockstep") }, "no /lockstep"},
		{"wrong architecture", func(ii *imageInfo) {
			ii.Platform.Arch = map[string]string{"amd64": "arm64", "arm64": "amd64"}[ii.Platform.Arch]
			ii.Config.Architecture = ii.Platform.Arch
		}, "is for"},
		{"no SBOM", func(ii *imageInfo) { ii.SBOMs = nil }, "0 SBOMs"},
		{"SBOM without client-go", func(ii *imageInfo) {
			ii.SBOMs = [][]byte{bytes.ReplaceAll(ii.SBOMs[0], []byte(`"k8s.io/client-go"`), []byte(`"k8s.io/other"`))}
		}, "does not list k8s.io/client-go"},
		{"no revision label", func(ii *imageInfo) { delete(ii.Config.Config.Labels, "org.opencontainers.image.revision") }, "revision"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ii := good
			cfg := *good.Config
			cfg.Config.Labels = map[string]string{}
			for k, v := range good.Config.Config.Labels {
				cfg.Config.Labels[k] = v
			}
			ii.Config = &cfg
			ii.Files = map[string]*tar.Header{}
			for k, v := range good.Files {
				ii.Files[k] = v
			}
			c.modify(&ii)
			err := errors.Join(checkImage(ii)...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("checkImage = %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestPush pushes the tiny image to an in-process registry on loopback,
// with and without the OCI 1.1 referrers API, and finds each image's SBOM
// through the referrers of its digest.
func TestPush(t *testing.T) {
	t.Parallel()
	_, b := buildTiny(t)
	for _, referrersAPI := range []bool{true, false} {
		t.Run(fmt.Sprintf("referrers API %t", referrersAPI), func(t *testing.T) {
			t.Parallel()
			opts := []registry.Option{registry.Logger(log.New(io.Discard, "", 0))}
			if referrersAPI {
				opts = append(opts, registry.WithReferrersSupport(true))
			}
			srv := httptest.NewServer(registry.New(opts...))
			defer srv.Close()
			ref := strings.TrimPrefix(srv.URL, "http://") + "/lockstep:v0.0.0-test"
			if err := pushTo(context.Background(), ref, b); err != nil {
				t.Fatal(err)
			}
			r, err := name.ParseReference(ref)
			if err != nil {
				t.Fatal(err)
			}
			idx, err := remote.Index(r)
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := idx.Digest(); d != b.IndexDigest {
				t.Errorf("registry has index %s, pushed %s", d, b.IndexDigest)
			}
			for i, img := range b.Images {
				refs, err := remote.Referrers(r.Context().Digest(img.Digest.String()))
				if err != nil {
					t.Fatalf("%s: referrers: %v", img.Platform, err)
				}
				m, err := refs.IndexManifest()
				if err != nil {
					t.Fatal(err)
				}
				want, _ := b.SBOMs[i].Digest()
				if len(m.Manifests) != 1 || m.Manifests[0].Digest != want {
					t.Fatalf("%s: referrers %+v, want the SBOM %s", img.Platform, m.Manifests, want)
				}
				// The referrer's artifactType is not compared: the in-process
				// registry reports the config's media type (the OCI 1.1 draft's
				// rule); the manifest itself must say SPDX.
				sbom, err := remote.Image(r.Context().Digest(want.String()))
				if err != nil {
					t.Fatal(err)
				}
				if sm, err := sbom.Manifest(); err != nil || sm.ArtifactType != spdxMediaType || sm.Subject == nil || sm.Subject.Digest != img.Digest {
					t.Errorf("%s: pushed SBOM manifest %+v (%v), want artifactType %s with subject %s", img.Platform, sm, err, spdxMediaType, img.Digest)
				}
			}
		})
	}
}

// TestMakeImageLayout checks the lockstep image that `make image` wrote to
// bin/image (both platforms, the real binary), when there is one.
func TestMakeImageLayout(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the layout make image writes is not checked")
	}
	dir := cmp.Or(os.Getenv("LOCKSTEP_IMAGE_LAYOUT"), "../../bin/image")
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		t.Skipf("no OCI layout at %s: run make image (or set LOCKSTEP_IMAGE_LAYOUT) to check the real image", dir)
	}
	if err := verifyLayout(dir, both); err != nil {
		t.Fatal(err)
	}
	info, err := inspectLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ii := range info.Images {
		doc := readSPDX(t, ii.SBOMs[0])
		for _, m := range []string{"k8s.io/client-go", "sigs.k8s.io/controller-runtime", "lockstep.dev/lockstep"} {
			if findPackage(doc, m) == nil {
				t.Errorf("%s: the SBOM does not list %s", ii.Platform, m)
			}
		}
		t.Logf("%s: %s, %.1f MiB compressed, %d SBOM packages", ii.Platform, ii.Digest, float64(ii.Size)/(1<<20), len(doc.Packages))
	}
}

func TestPurl(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ path, version, want string }{
		{"k8s.io/client-go", "v0.37.2", "pkg:golang/k8s.io/client-go@v0.37.2"},
		{"github.com/BurntSushi/toml", "v1.6.0", "pkg:golang/github.com/BurntSushi/toml@v1.6.0"},
		{"github.com/docker/cli", "v29.7.2+incompatible", "pkg:golang/github.com/docker/cli@v29.7.2%2Bincompatible"},
		{"stdlib", "go1.26.8", "pkg:golang/stdlib@go1.26.8"},
	} {
		if got := purlRef(c.path, c.version).ReferenceLocator; got != c.want {
			t.Errorf("purl(%s, %s) = %s, want %s", c.path, c.version, got, c.want)
		}
	}
	if got := spdxIDPart("github.com/foo_bar/baz+x"); got != "github.com-foo-bar-baz-x" {
		t.Errorf("spdxIDPart = %s", got)
	}
}

func TestParsePlatform(t *testing.T) {
	t.Parallel()
	if p, err := parsePlatform("linux/arm64"); err != nil || p != (platform{"linux", "arm64"}) {
		t.Errorf("parsePlatform(linux/arm64) = %v, %v", p, err)
	}
	for _, bad := range []string{"linux", "linux/", "/amd64", "linux/arm/v7"} {
		if _, err := parsePlatform(bad); err == nil {
			t.Errorf("parsePlatform(%q) succeeded", bad)
		}
	}
}

// TestRefusesToReplace keeps build from deleting a directory that is not an
// OCI layout.
func TestRefusesToReplace(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := writeLayout(options{Out: dir}, &built{})
	if err == nil || !strings.Contains(err.Error(), "not an OCI layout") {
		t.Errorf("writeLayout over a plain directory: %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious")); err != nil {
		t.Errorf("the directory's file is gone: %v", err)
	}
}

// TestRunEntryPoint goes through the command's own flags: one platform,
// the version and creation time given, and the layout checked by run.
func TestRunEntryPoint(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1767323045")
	out := filepath.Join(t.TempDir(), "layout")
	err := run([]string{"-o", out, "-C", "../..", "-pkg", "./hack/image/testdata/tiny", "-platforms", "linux/amd64",
		"-version", "v0.0.1-run", "-revision", "abc", "-ca-certs", filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	info, err := inspectLayout(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Images) != 1 || info.Images[0].Platform != (platform{"linux", "amd64"}) {
		t.Fatalf("images %+v, want one linux/amd64", info.Images)
	}
	c := info.Images[0].Config
	if !c.Created.Time.Equal(time.Unix(1767323045, 0)) || c.Config.Labels["org.opencontainers.image.version"] != "v0.0.1-run" || c.Config.Labels["org.opencontainers.image.revision"] != "abc" {
		t.Errorf("created %s, labels %v", c.Created.Time, c.Config.Labels)
	}
	if err := run([]string{"-platforms", "linux/sparc"}); err == nil {
		t.Error("an unknown platform was accepted")
	}
}
