package istio

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// The keys of the Secrets that hold the CAs. The cacerts keys are the ones
// istiod reads from istio-system/cacerts ("plug in CA certificates").
const (
	keyRootCert  = "root-cert.pem"
	keyRootKey   = "root-key.pem"
	keyCACert    = "ca-cert.pem"
	keyCAKey     = "ca-key.pem"
	keyCertChain = "cert-chain.pem"
)

// Lifetimes and names of the CAs. The names follow Istio's
// tools/certs/common.mk; the root lives ten years like Istio's, the
// intermediates two (Istio's make targets give them ten too, but an
// intermediate is cheap to reissue and its key sits in every cluster).
const (
	rootValidity         = 10 * 365 * 24 * time.Hour
	intermediateValidity = 2 * 365 * 24 * time.Hour
	// backdate absorbs clock skew between this machine and the clusters.
	backdate = time.Hour

	caOrg            = "Istio"
	rootCN           = "Root CA"
	intermediateCN   = "Intermediate CA"
	intermediateSAN  = "istiod.istio-system.svc"
	caKeyUsage       = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	pemCertificate   = "CERTIFICATE"
	pemECPrivateKey  = "EC PRIVATE KEY"
	pemPKCS8Key      = "PRIVATE KEY"
	pemRSAPrivateKey = "RSA PRIVATE KEY"
)

// ca is a certificate with its signing key.
type ca struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
}

// newRootCA generates the mesh's root CA and returns it as the data of
// the hub's root Secret (root-cert.pem, root-key.pem). ECDSA P-256 keys:
// istiod accepts them for a plugged-in CA, and they are generated in
// microseconds where RSA 4096 takes seconds.
func newRootCA(now time.Time) (map[string][]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate root key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{caOrg}, CommonName: rootCN},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(rootValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              caKeyUsage,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("sign root certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		keyRootCert: pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der}),
		keyRootKey:  keyPEM,
	}, nil
}

// parseRootCA reads the hub's root Secret data back, checking that the key
// is the certificate's.
func parseRootCA(data map[string][]byte) (*ca, error) {
	cert, err := parseCert(data[keyRootCert])
	if err != nil {
		return nil, fmt.Errorf("root CA %s: %w", keyRootCert, err)
	}
	key, err := parseKey(data[keyRootKey])
	if err != nil {
		return nil, fmt.Errorf("root CA %s: %w", keyRootKey, err)
	}
	if err := keyMatches(cert, key); err != nil {
		return nil, fmt.Errorf("root CA: %w", err)
	}
	if !cert.IsCA {
		return nil, errors.New("root CA: certificate is not a CA")
	}
	return &ca{cert: cert, key: key, certPEM: data[keyRootCert]}, nil
}

// newCACerts issues cluster's intermediate CA from root and returns it as
// the data of istio-system/cacerts, the files Istio's
// tools/certs/Makefile.selfsigned.mk writes for `<cluster>-cacerts`.
// root-cert.pem is the root Secret's bytes, unchanged, so every cluster
// carries byte-identical trust anchors.
func newCACerts(root *ca, cluster string, now time.Time) (map[string][]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate %s intermediate key: %w", cluster, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(intermediateValidity)
	if notAfter.After(root.cert.NotAfter) {
		// An intermediate outliving its root would fail verification
		// anyway; say when it really ends.
		notAfter = root.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{Organization: []string{caOrg}, CommonName: intermediateCN,
			Locality: []string{cluster}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		// pathlen:0 as in Istio's intermediate.conf: it signs workload
		// certificates only.
		MaxPathLen:     0,
		MaxPathLenZero: true,
		KeyUsage:       caKeyUsage,
		DNSNames:       []string{intermediateSAN},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.cert, key.Public(), root.key)
	if err != nil {
		return nil, fmt.Errorf("sign %s intermediate certificate: %w", cluster, err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	chain := append(append([]byte{}, certPEM...), root.certPEM...)
	return map[string][]byte{
		keyCACert:    certPEM,
		keyCAKey:     keyPEM,
		keyRootCert:  append([]byte{}, root.certPEM...),
		keyCertChain: chain,
	}, nil
}

// sameRoot tells whether existing cacerts data were issued under root: a
// cluster whose CA chains to another root would not be trusted by the rest
// of the mesh, and replacing its CA is the user's call, not the
// installer's.
func sameRoot(cacerts map[string][]byte, root *ca) bool {
	return bytes.Equal(bytes.TrimSpace(cacerts[keyRootCert]), bytes.TrimSpace(root.certPEM))
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n, nil
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemECPrivateKey, Bytes: der}), nil
}

func parseCert(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != pemCertificate {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// parseKey reads the key formats istiod itself reads for a plugged-in CA,
// so a root made by Istio's Makefile (RSA) works too.
func parseKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM key")
	}
	var k any
	var err error
	switch blk.Type {
	case pemECPrivateKey:
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case pemRSAPrivateKey:
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case pemPKCS8Key:
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("unsupported PEM key type %q", blk.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", k)
	}
	return s, nil
}

func keyMatches(cert *x509.Certificate, key crypto.Signer) error {
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return errors.New("key does not match certificate")
	}
	return nil
}
