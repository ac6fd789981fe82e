package local

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// PKI is the fleet's certificate material on disk. One CA signs the serving
// certificate every apiserver of the fleet uses (they all listen on
// 127.0.0.1); service-account keys and admin tokens are per cluster so a
// credential of one cluster is never valid in another.
type PKI struct {
	Dir string
}

func (p PKI) CACert() string      { return filepath.Join(p.Dir, "ca.crt") }
func (p PKI) CAKey() string       { return filepath.Join(p.Dir, "ca.key") }
func (p PKI) ServingCert() string { return filepath.Join(p.Dir, "serving.crt") }
func (p PKI) ServingKey() string  { return filepath.Join(p.Dir, "serving.key") }
func (p PKI) SAKey(cluster string) string {
	return filepath.Join(p.Dir, cluster+"-sa.key")
}
func (p PKI) SAPub(cluster string) string {
	return filepath.Join(p.Dir, cluster+"-sa.pub")
}
func (p PKI) TokenFile(cluster string) string {
	return filepath.Join(p.Dir, cluster+"-tokens.csv")
}
func (p PKI) AdminToken(cluster string) string {
	return filepath.Join(p.Dir, cluster+"-admin.token")
}

// Ensure creates whatever material is missing. Existing files are kept, so a
// restarted fleet keeps its identities and the kubeconfig stays valid.
func (p PKI) Ensure(clusters []string) error {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return err
	}
	if !exists(p.CACert()) || !exists(p.CAKey()) {
		if err := p.writeCA(); err != nil {
			return fmt.Errorf("create CA: %w", err)
		}
	}
	if !exists(p.ServingCert()) {
		if err := p.writeServing(); err != nil {
			return fmt.Errorf("create serving certificate: %w", err)
		}
	}
	for _, c := range clusters {
		if !exists(p.SAKey(c)) {
			if err := p.writeSAKey(c); err != nil {
				return fmt.Errorf("create service-account key of %s: %w", c, err)
			}
		}
		if !exists(p.AdminToken(c)) {
			tok, err := randomHex(24)
			if err != nil {
				return err
			}
			if err := os.WriteFile(p.AdminToken(c), []byte(tok), 0o600); err != nil {
				return err
			}
			// kube-apiserver's static token file: token,user,uid,"group".
			line := fmt.Sprintf("%s,lockstep-admin,lockstep-admin,\"system:masters\"\n", tok)
			if err := os.WriteFile(p.TokenFile(c), []byte(line), 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// Token returns a cluster's admin bearer token.
func (p PKI) Token(cluster string) (string, error) {
	b, err := os.ReadFile(p.AdminToken(cluster))
	return string(b), err
}

func (p PKI) writeCA() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "lockstep-fleet-ca", Organization: []string{"lockstep"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	return writeCertKey(p.CACert(), p.CAKey(), der, key)
}

func (p PKI) loadCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(p.CACert())
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(p.CAKey())
	if err != nil {
		return nil, nil, err
	}
	cblk, _ := pem.Decode(cb)
	kblk, _ := pem.Decode(kb)
	if cblk == nil || kblk == nil {
		return nil, nil, fmt.Errorf("CA files in %s are not PEM", p.Dir)
	}
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kblk.Bytes)
	return cert, key, err
}

func (p PKI) writeServing() error {
	ca, caKey, err := p.loadCA()
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	return writeCertKey(p.ServingCert(), p.ServingKey(), der, key)
}

func (p PKI) writeSAKey(cluster string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(p.SAKey(cluster), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(p.SAPub(cluster), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

func writeCertKey(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
