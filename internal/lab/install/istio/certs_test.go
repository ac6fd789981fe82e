package istio

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"testing"
	"time"
)

func TestCACertsChainToSharedRoot(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rootData, err := newRootCA(now)
	if err != nil {
		t.Fatal(err)
	}
	root, err := parseRootCA(rootData)
	if err != nil {
		t.Fatal(err)
	}
	if got := root.cert.NotAfter.Sub(now); got != rootValidity {
		t.Errorf("root lifetime %s, want %s", got, rootValidity)
	}
	if root.cert.Subject.CommonName != rootCN || !slices.Equal(root.cert.Subject.Organization, []string{caOrg}) {
		t.Errorf("root subject %q", root.cert.Subject)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root.cert)

	for _, cluster := range []string{"argo-rollout1", "argo-rollout2", "argo-rollout3"} {
		t.Run(cluster, func(t *testing.T) {
			t.Parallel()
			data, err := newCACerts(root, cluster, now)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{keyCACert, keyCAKey, keyRootCert, keyCertChain} {
				if len(data[k]) == 0 {
					t.Fatalf("cacerts has no %s", k)
				}
			}
			ca, err := parseCert(data[keyCACert])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ca.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Errorf("intermediate does not verify against the root: %v", err)
			}
			if !ca.IsCA || !ca.MaxPathLenZero || ca.MaxPathLen != 0 {
				t.Errorf("intermediate IsCA=%v pathlen=%d zero=%v, want a CA with pathlen 0", ca.IsCA, ca.MaxPathLen, ca.MaxPathLenZero)
			}
			if ca.KeyUsage != caKeyUsage {
				t.Errorf("intermediate key usage %v, want %v", ca.KeyUsage, caKeyUsage)
			}
			if !slices.Equal(ca.Subject.Locality, []string{cluster}) || ca.Subject.CommonName != intermediateCN {
				t.Errorf("intermediate subject %q, want CN=%s, L=%s", ca.Subject, intermediateCN, cluster)
			}
			if !slices.Equal(ca.DNSNames, []string{intermediateSAN}) {
				t.Errorf("intermediate SANs %v, want %s", ca.DNSNames, intermediateSAN)
			}
			if got := ca.NotAfter.Sub(now); got != intermediateValidity {
				t.Errorf("intermediate lifetime %s, want %s", got, intermediateValidity)
			}
			key, err := parseKey(data[keyCAKey])
			if err != nil {
				t.Fatal(err)
			}
			if err := keyMatches(ca, key); err != nil {
				t.Errorf("ca-key.pem: %v", err)
			}
			chain := pemCerts(t, data[keyCertChain])
			if len(chain) != 2 || !chain[0].Equal(ca) || !chain[1].Equal(root.cert) {
				t.Errorf("cert-chain.pem holds %d certificates, want the intermediate then the root", len(chain))
			}
			if !bytes.Equal(data[keyRootCert], rootData[keyRootCert]) {
				t.Error("root-cert.pem differs from the root Secret's bytes")
			}
			if !sameRoot(data, root) {
				t.Error("sameRoot is false for cacerts issued by the root")
			}
		})
	}
}

// The hub's root Secret already exists on a rerun or for a new cluster:
// reading its data back must give the same root, and what it issues must
// carry that root's bytes, not a new root.
func TestExistingRootIsReused(t *testing.T) {
	t.Parallel()
	now := time.Now()
	stored, err := newRootCA(now)
	if err != nil {
		t.Fatal(err)
	}
	other, err := newRootCA(now)
	if err != nil {
		t.Fatal(err)
	}
	otherRoot, err := parseRootCA(other)
	if err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		root, err := parseRootCA(stored)
		if err != nil {
			t.Fatal(err)
		}
		data, err := newCACerts(root, "argo-rollout1", now)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data[keyRootCert], stored[keyRootCert]) {
			t.Errorf("run %d: cacerts root-cert.pem is not the stored root", run)
		}
		if sameRoot(data, otherRoot) {
			t.Errorf("run %d: cacerts claims to chain to an unrelated root", run)
		}
	}
}

func TestParseRootCARejects(t *testing.T) {
	t.Parallel()
	a, err := newRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := newRootCA(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data map[string][]byte
	}{
		{"key of another root", map[string][]byte{keyRootCert: a[keyRootCert], keyRootKey: b[keyRootKey]}},
		{"no certificate", map[string][]byte{keyRootKey: a[keyRootKey]}},
		{"no key", map[string][]byte{keyRootCert: a[keyRootCert]}},
		{"garbage key", map[string][]byte{keyRootCert: a[keyRootCert], keyRootKey: []byte("not a key")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := parseRootCA(tc.data); err == nil {
				t.Error("parseRootCA accepted it")
			}
		})
	}
}

func pemCerts(t *testing.T, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}
