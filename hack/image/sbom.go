package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"runtime/debug"
	"strings"
	"time"
)

// spdxMediaType is the media type of an SPDX JSON document, used as the
// SBOM artifact's artifactType and as its layer's media type.
const spdxMediaType = "application/spdx+json"

// The subset of SPDX 2.3 (JSON) that the SBOM uses.
type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	SPDXID                string            `json:"SPDXID"`
	Name                  string            `json:"name"`
	VersionInfo           string            `json:"versionInfo,omitempty"`
	Supplier              string            `json:"supplier,omitempty"`
	DownloadLocation      string            `json:"downloadLocation"`
	FilesAnalyzed         bool              `json:"filesAnalyzed"`
	Checksums             []spdxChecksum    `json:"checksums,omitempty"`
	LicenseConcluded      string            `json:"licenseConcluded,omitempty"`
	LicenseDeclared       string            `json:"licenseDeclared,omitempty"`
	CopyrightText         string            `json:"copyrightText,omitempty"`
	Comment               string            `json:"comment,omitempty"`
	PrimaryPackagePurpose string            `json:"primaryPackagePurpose,omitempty"`
	ExternalRefs          []spdxExternalRef `json:"externalRefs,omitempty"`
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxExternalRef struct {
	ReferenceCategory string `json:"referenceCategory"`
	ReferenceType     string `json:"referenceType"`
	ReferenceLocator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	SPDXElementID      string `json:"spdxElementId"`
	RelationshipType   string `json:"relationshipType"`
	RelatedSPDXElement string `json:"relatedSpdxElement"`
}

// sbomInput is what an SBOM describes: one platform's binary.
type sbomInput struct {
	Name     string // the binary's name, "lockstep"
	Version  string // the version it was built as (the main module says "(devel)" without VCS stamping)
	Platform platform
	Binary   []byte
	Info     *debug.BuildInfo
	Created  time.Time
	Source   string // where the source lives, for the document namespace
}

// sbom returns the SPDX 2.3 JSON document of a Go binary from its build
// information: a package for the main module (the application, with the
// binary's SHA-256), one for the Go standard library it was built with,
// and one per module linked in (a replaced module is described by its
// replacement), each with a purl; the main module DEPENDS_ON the others.
// Licenses are NOASSERTION: build information does not carry them.
func sbom(in sbomInput) ([]byte, error) {
	if in.Info == nil {
		return nil, fmt.Errorf("no build information in %s", in.Name)
	}
	sum := sha256.Sum256(in.Binary)
	digest := hex.EncodeToString(sum[:])
	mainID := "SPDXRef-Package-" + spdxIDPart(in.Info.Main.Path)
	doc := spdxDocument{
		SPDXVersion: "SPDX-2.3",
		DataLicense: "CC0-1.0",
		SPDXID:      "SPDXRef-DOCUMENT",
		Name:        fmt.Sprintf("%s %s %s", in.Name, in.Version, in.Platform),
		// Unique per binary: the same version built twice for one
		// platform is the same binary only if the digests agree.
		DocumentNamespace: fmt.Sprintf("%s/spdx/%s-%s-%s-%s-%s", strings.TrimRight(in.Source, "/"), in.Name, in.Version, in.Platform.OS, in.Platform.Arch, digest),
		CreationInfo: spdxCreationInfo{
			Created:  in.Created.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: lockstep-hack-image"},
		},
	}
	doc.Packages = append(doc.Packages, spdxPackage{
		SPDXID:                mainID,
		Name:                  in.Info.Main.Path,
		VersionInfo:           in.Version,
		DownloadLocation:      "NOASSERTION",
		Checksums:             []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: digest}},
		LicenseConcluded:      "NOASSERTION",
		LicenseDeclared:       "NOASSERTION",
		CopyrightText:         "NOASSERTION",
		Comment:               fmt.Sprintf("the %s binary for %s, package %s, built with %s", in.Name, in.Platform, in.Info.Path, in.Info.GoVersion),
		PrimaryPackagePurpose: "APPLICATION",
		ExternalRefs:          []spdxExternalRef{purlRef(in.Info.Main.Path, in.Version)},
	})
	doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", mainID})
	add := func(id, name, version, comment string) {
		doc.Packages = append(doc.Packages, spdxPackage{
			SPDXID:                id,
			Name:                  name,
			VersionInfo:           version,
			DownloadLocation:      "NOASSERTION",
			LicenseConcluded:      "NOASSERTION",
			LicenseDeclared:       "NOASSERTION",
			CopyrightText:         "NOASSERTION",
			Comment:               comment,
			PrimaryPackagePurpose: "LIBRARY",
			ExternalRefs:          []spdxExternalRef{purlRef(name, version)},
		})
		doc.Relationships = append(doc.Relationships, spdxRelationship{mainID, "DEPENDS_ON", id})
	}
	add("SPDXRef-Package-stdlib", "stdlib", in.Info.GoVersion, "the Go standard library")
	for i, m := range in.Info.Deps {
		path, version, comment := m.Path, m.Version, ""
		if m.Sum != "" {
			comment = "go.sum " + m.Sum
		}
		if r := m.Replace; r != nil {
			comment = fmt.Sprintf("%s@%s replaced by %s@%s", m.Path, m.Version, r.Path, r.Version)
			path, version = r.Path, r.Version
			if r.Sum != "" {
				comment += ", go.sum " + r.Sum
			}
		}
		add(fmt.Sprintf("SPDXRef-Package-go-module-%d-%s", i, spdxIDPart(path)), path, version, comment)
	}
	return json.MarshalIndent(doc, "", "  ")
}

var notIDChar = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// spdxIDPart makes s usable in an SPDX identifier (letters, digits, '.'
// and '-').
func spdxIDPart(s string) string {
	return strings.Trim(notIDChar.ReplaceAllString(s, "-"), "-")
}

// purlRef is the package URL of a Go module (or of stdlib):
// pkg:golang/<module path>@<version>, each path segment and the version
// percent-encoded where the purl specification asks.
func purlRef(path, version string) spdxExternalRef {
	segs := strings.Split(path, "/")
	for i, s := range segs {
		segs[i] = purlEscape(s)
	}
	loc := "pkg:golang/" + strings.Join(segs, "/")
	if version != "" {
		loc += "@" + purlEscape(version)
	}
	return spdxExternalRef{ReferenceCategory: "PACKAGE-MANAGER", ReferenceType: "purl", ReferenceLocator: loc}
}

func purlEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-', c == '_', c == '~':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
