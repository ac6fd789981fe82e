// Command image builds the lockstep container image without a Docker
// daemon: it cross-compiles ./cmd/lockstep-coordinator, the coordinator
// alone, as /lockstep (CGO_ENABLED=0, -trimpath,
// -ldflags=-s -w) for each platform, lays it on a minimal root (an
// /etc/passwd and /etc/group with the nonroot user 65532, the host's CA
// bundle when it has one, /tmp, /home/nonroot) and writes one image per
// platform and an image index over them as an OCI image layout directory,
// with go-containerregistry. `make image` runs it.
//
// Each image gets an SBOM: an SPDX 2.3 JSON document generated from the
// build information embedded in its binary (debug/buildinfo), listing the
// main module, the Go standard library and every module linked in, with
// version and purl. It is attached the OCI 1.1 way, as an artifact
// manifest (artifactType application/spdx+json, the empty config, the
// document as its one layer) whose subject is the platform image. In the
// layout, these manifests are listed in index.json beside the image index,
// where ORAS and other referrer-aware tools look; with -push they are
// pushed by digest after the index, and go-containerregistry registers
// them with the registry's referrers API, or its fallback tag
// (sha256-<digest>) where the registry has none.
//
// Having written the layout, it checks it (the checks of its tests) and
// fails when the image is not what it should be.
//
// Usage:
//
//	go run ./hack/image [-o bin/image] [-platforms linux/amd64,linux/arm64]
//	    [-version V] [-revision SHA] [-source URL] [-push REGISTRY/lockstep:TAG]
//
// The package imports go-containerregistry and the standard library only.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	o := options{Log: os.Stderr}
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "comma-separated os/arch list")
	fs.StringVar(&o.Out, "o", "bin/image", "OCI image layout directory to write (replaced if it is one)")
	fs.StringVar(&o.Dir, "C", ".", "module directory to build in")
	fs.StringVar(&o.Package, "pkg", "./cmd/lockstep-coordinator", "main package to build (the coordinator alone: what the Deployments run)")
	fs.StringVar(&o.Version, "version", "", "image and binary version (default: git describe --tags --always --dirty, or dev)")
	fs.StringVar(&o.Revision, "revision", "", "source revision (default: git rev-parse HEAD)")
	fs.StringVar(&o.Source, "source", "https://lockstep.dev/lockstep", "org.opencontainers.image.source label")
	fs.StringVar(&o.CACerts, "ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to copy into the image; none if missing or empty")
	push := fs.String("push", "", "also push the index and the SBOMs to this reference (REGISTRY/REPO:TAG)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, p := range strings.Split(*platforms, ",") {
		pl, err := parsePlatform(strings.TrimSpace(p))
		if err != nil {
			return err
		}
		o.Platforms = append(o.Platforms, pl)
	}
	if o.Version == "" {
		o.Version = gitOr(o.Dir, "dev", "describe", "--tags", "--always", "--dirty")
	}
	if o.Revision == "" {
		o.Revision = gitOr(o.Dir, "unknown", "rev-parse", "HEAD")
	}
	created, err := createdTime(o.Dir)
	if err != nil {
		return err
	}
	o.Created = created

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	b, err := build(ctx, o)
	if err != nil {
		return err
	}
	if err := verifyLayout(o.Out, o.Platforms); err != nil {
		return fmt.Errorf("the layout %s fails its checks: %w", o.Out, err)
	}
	fmt.Fprintf(o.Log, "wrote %s (%s): index %s, %s\n", o.Out, time.Since(start).Round(time.Second), b.IndexDigest, b.summary())
	if *push != "" {
		if err := pushTo(ctx, *push, b); err != nil {
			return err
		}
		fmt.Fprintf(o.Log, "pushed %s@%s and %d SBOMs\n", *push, b.IndexDigest, len(b.SBOMs))
	}
	return nil
}

// gitOr returns git's trimmed output, or def when git fails (no git, no
// repository, no commit).
func gitOr(dir, def string, args ...string) string {
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
	if s := strings.TrimSpace(string(out)); err == nil && s != "" {
		return s
	}
	return def
}

// createdTime is the images' creation time, which is also every file's
// modification time in their layers: SOURCE_DATE_EPOCH when set, else the
// commit's time, else the epoch, so that a rebuild of one commit gives the
// same digests.
func createdTime(dir string) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	if n, err := strconv.ParseInt(gitOr(dir, "", "log", "-1", "--format=%ct"), 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Unix(0, 0).UTC(), nil
}
