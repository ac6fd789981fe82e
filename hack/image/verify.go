package main

import (
	"archive/tar"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// imageInfo is what a layout says about one platform's image.
type imageInfo struct {
	Platform platform
	Digest   v1.Hash
	Size     int64 // manifest, config and compressed layers
	Config   *v1.ConfigFile
	// Files are the image's files by absolute path, the last layer's
	// header winning.
	Files map[string]*tar.Header
	// Entrypoint is the content of the entrypoint's file.
	Entrypoint []byte
	// SBOMs are the SPDX documents of artifacts whose subject is the image.
	SBOMs [][]byte
}

// layoutInfo is what an OCI layout written by build holds.
type layoutInfo struct {
	IndexDigest v1.Hash
	Index       *v1.IndexManifest
	RefName     string
	Images      []imageInfo
}

// inspectLayout reads an OCI layout: the one image index of index.json,
// each platform image's config and files, and the SBOM artifacts listed
// beside the index whose subject is one of its images.
func inspectLayout(dir string) (*layoutInfo, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	top, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	tm, err := top.IndexManifest()
	if err != nil {
		return nil, err
	}
	info := &layoutInfo{}
	sboms := map[v1.Hash][][]byte{}
	var idx v1.ImageIndex
	for _, d := range tm.Manifests {
		switch {
		case d.MediaType == types.OCIImageIndex:
			if info.Index != nil {
				return nil, errors.New("index.json lists more than one image index")
			}
			if idx, err = top.ImageIndex(d.Digest); err != nil {
				return nil, err
			}
			if info.Index, err = idx.IndexManifest(); err != nil {
				return nil, err
			}
			info.IndexDigest, info.RefName = d.Digest, d.Annotations["org.opencontainers.image.ref.name"]
		case d.ArtifactType == spdxMediaType:
			art, err := top.Image(d.Digest)
			if err != nil {
				return nil, err
			}
			m, err := art.Manifest()
			if err != nil {
				return nil, err
			}
			if m.Subject == nil {
				return nil, fmt.Errorf("SBOM %s has no subject", d.Digest)
			}
			if m.ArtifactType != spdxMediaType || len(m.Layers) != 1 || m.Layers[0].MediaType != spdxMediaType {
				return nil, fmt.Errorf("SBOM %s: artifactType %q with layers %v; want one %s layer", d.Digest, m.ArtifactType, m.Layers, spdxMediaType)
			}
			l, err := art.LayerByDigest(m.Layers[0].Digest)
			if err != nil {
				return nil, err
			}
			b, err := readAll(l.Compressed())
			if err != nil {
				return nil, err
			}
			sboms[m.Subject.Digest] = append(sboms[m.Subject.Digest], b)
		default:
			return nil, fmt.Errorf("index.json lists an unexpected %s (artifactType %q)", d.MediaType, d.ArtifactType)
		}
	}
	if info.Index == nil {
		return nil, errors.New("index.json lists no image index")
	}
	for _, d := range info.Index.Manifests {
		if d.Platform == nil {
			return nil, fmt.Errorf("image %s has no platform in the index", d.Digest)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		ii := imageInfo{Platform: platform{d.Platform.OS, d.Platform.Architecture}, Digest: d.Digest, SBOMs: sboms[d.Digest]}
		if ii.Config, err = img.ConfigFile(); err != nil {
			return nil, err
		}
		if ii.Size, err = imageSize(img); err != nil {
			return nil, err
		}
		ii.Files = map[string]*tar.Header{}
		layers, err := img.Layers()
		if err != nil {
			return nil, err
		}
		var entry string
		if ep := ii.Config.Config.Entrypoint; len(ep) > 0 {
			entry = path.Clean("/" + ep[0])
		}
		for _, l := range layers {
			rc, err := l.Uncompressed()
			if err != nil {
				return nil, err
			}
			err = func() error {
				defer rc.Close()
				tr := tar.NewReader(rc)
				for {
					h, err := tr.Next()
					if err == io.EOF {
						return nil
					}
					if err != nil {
						return err
					}
					p := path.Clean("/" + h.Name)
					ii.Files[p] = h
					if p == entry && h.Typeflag == tar.TypeReg {
						if ii.Entrypoint, err = io.ReadAll(tr); err != nil {
							return err
						}
					}
				}
			}()
			if err != nil {
				return nil, fmt.Errorf("image %s: layer: %w", d.Digest, err)
			}
		}
		info.Images = append(info.Images, ii)
	}
	return info, nil
}

func readAll(rc io.ReadCloser, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// elfMachines are the ELF machines of the architectures built.
var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// checkImage lists what is wrong with one platform's image: its config
// (entrypoint, a non-root user, labels), its files (the entrypoint a
// static executable for the platform, no setuid or setgid file, the
// nonroot user in /etc/passwd) and its SBOM (exactly one, SPDX 2.3,
// listing every module of the binary's build information with its purl).
func checkImage(ii imageInfo) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", ii.Platform, fmt.Sprintf(format, args...)))
	}
	c := ii.Config
	if c.OS != ii.Platform.OS || c.Architecture != ii.Platform.Arch {
		bad("config is for %s/%s", c.OS, c.Architecture)
	}
	if !slices.Equal(c.Config.Entrypoint, []string{entrypoint}) {
		bad("entrypoint %q, want [%s]", c.Config.Entrypoint, entrypoint)
	}
	user, group, _ := strings.Cut(c.Config.User, ":")
	if uid, err := strconv.Atoi(user); err != nil || uid == 0 {
		bad("user %q: want a numeric non-root uid (Kubernetes' runAsNonRoot cannot check a name)", c.Config.User)
	} else if uid != nonroot || group != strconv.Itoa(nonroot) {
		bad("user %q, want %d:%d", c.Config.User, nonroot, nonroot)
	}
	for _, l := range []string{"org.opencontainers.image.source", "org.opencontainers.image.revision", "org.opencontainers.image.version"} {
		if c.Config.Labels[l] == "" {
			bad("no label %s", l)
		}
	}

	for p, h := range ii.Files {
		if h.Mode&(04000|02000) != 0 {
			bad("%s is setuid or setgid (mode %o)", p, h.Mode)
		}
		if strings.HasPrefix(path.Base(p), ".wh.") {
			bad("%s is a whiteout", p)
		}
	}
	h := ii.Files[entrypoint]
	switch {
	case h == nil:
		bad("no %s", entrypoint)
		return errs
	case h.Typeflag != tar.TypeReg:
		bad("%s is not a regular file", entrypoint)
		return errs
	case h.Mode&0o111 == 0:
		bad("%s is not executable (mode %o)", entrypoint, h.Mode)
	}
	if p := ii.Files["/etc/passwd"]; p == nil {
		bad("no /etc/passwd")
	}
	f, err := elf.NewFile(bytes.NewReader(ii.Entrypoint))
	if err != nil {
		bad("%s is not an ELF executable: %v", entrypoint, err)
		return errs
	}
	if want, ok := elfMachines[ii.Platform.Arch]; ok && f.Machine != want {
		bad("%s is for %s, want %s", entrypoint, f.Machine, want)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			bad("%s is dynamically linked", entrypoint)
		}
	}
	bi, err := buildinfo.Read(bytes.NewReader(ii.Entrypoint))
	if err != nil {
		bad("%s: no Go build information: %v", entrypoint, err)
		return errs
	}
	for _, s := range bi.Settings {
		if s.Key == "CGO_ENABLED" && s.Value != "0" {
			bad("%s was built with CGO_ENABLED=%s", entrypoint, s.Value)
		}
	}

	if len(ii.SBOMs) != 1 {
		bad("%d SBOMs, want 1", len(ii.SBOMs))
		return errs
	}
	var doc spdxDocument
	if err := json.Unmarshal(ii.SBOMs[0], &doc); err != nil {
		bad("SBOM: %v", err)
		return errs
	}
	if doc.SPDXVersion != "SPDX-2.3" {
		bad("SBOM spdxVersion %q, want SPDX-2.3", doc.SPDXVersion)
	}
	listed := map[string]string{} // name@version → purl
	for _, p := range doc.Packages {
		var purl string
		for _, r := range p.ExternalRefs {
			if r.ReferenceType == "purl" {
				purl = r.ReferenceLocator
			}
		}
		listed[p.Name+"@"+p.VersionInfo] = purl
	}
	for _, m := range bi.Deps {
		if m.Replace != nil {
			m = m.Replace
		}
		if purl, ok := listed[m.Path+"@"+m.Version]; !ok {
			bad("SBOM does not list %s@%s", m.Path, m.Version)
		} else if !strings.HasPrefix(purl, "pkg:golang/") {
			bad("SBOM: %s@%s has purl %q", m.Path, m.Version, purl)
		}
	}
	if _, ok := listed["stdlib@"+bi.GoVersion]; !ok {
		bad("SBOM does not list stdlib@%s", bi.GoVersion)
	}
	return errs
}

// verifyLayout checks an OCI layout written by build: one image index,
// tagged, with exactly the platforms wanted, each image passing
// checkImage.
func verifyLayout(dir string, platforms []platform) error {
	info, err := inspectLayout(dir)
	if err != nil {
		return err
	}
	var errs []error
	if info.RefName == "" {
		errs = append(errs, errors.New("the index has no org.opencontainers.image.ref.name"))
	}
	var got, want []string
	for _, ii := range info.Images {
		got = append(got, ii.Platform.String())
		errs = append(errs, checkImage(ii)...)
	}
	for _, p := range platforms {
		want = append(want, p.String())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		errs = append(errs, fmt.Errorf("the index has platforms %v, want %v", got, want))
	}
	return errors.Join(errs...)
}
