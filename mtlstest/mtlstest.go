// Package mtlstest is the test kit of [github.com/certgate/mtls]: it mints certificate
// authorities, client and server certificates, CRLs and OCSP responses in memory, runs an OCSP
// responder, and builds the requests the middleware sees, over TLS ([NewRequest]) or from a
// TLS-terminating proxy in any header format ([Proxy]).
//
// Everything here is for tests and examples: keys are generated on the fly, never persisted, and
// the functions panic on failure (as net/http/httptest does), because a failure to mint a
// certificate is a bug in the test, not a condition to handle.
//
//	root := mtlstest.NewRootCA("Test Root CA")
//	issuing := root.NewIntermediate("Test Issuing CA")
//	alice := issuing.NewClient("alice", mtlstest.WithURIs("spiffe://example.test/alice"))
//
//	m, _ := mtls.New(mtls.Config{RootCAs: root.Pool()})
//	id, err := m.Authenticate(mtlstest.NewRequest("GET", "https://api.example.test/", alice.Chain()...))
//
// # Identities for handler tests
//
// A handler behind the middleware reads the client from its request's context. To test it
// alone, put an identity there with [github.com/certgate/mtls.NewContext], built by
// [github.com/certgate/mtls.NewIdentity] from a minted chain: policies judge that identity
// exactly as they judge the one the middleware builds for the same chain.
//
//	id := mtls.NewIdentity(alice.VerifiedChain())
//	r := httptest.NewRequest("GET", "/", nil)
//	r = r.WithContext(mtls.NewContext(r.Context(), id))
//
// # Layout
//
// This package does not import package mtls, so that mtls's own internal tests can use it; the
// identity constructor therefore lives in mtls, and a [Proxy] takes any value with the methods
// of an mtls.Format. The formats that mtls can write (mtls.Encoder) are written by their own
// Encode; the others are written by this package as their proxy writes them.
package mtlstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// KeyType selects the key algorithm of a minted certificate.
type KeyType int

const (
	// ECDSAP256 is the default: fast to generate and to verify.
	ECDSAP256 KeyType = iota
	// RSA2048 matches what most enterprise CAs still issue.
	RSA2048
	// Ed25519 keys.
	Ed25519
)

// Option adjusts a certificate before it is signed.
type Option func(*spec)

type spec struct {
	tmpl    x509.Certificate
	keyType KeyType
	key     crypto.Signer
}

// WithValidity sets NotBefore and NotAfter.
func WithValidity(notBefore, notAfter time.Time) Option {
	return func(s *spec) { s.tmpl.NotBefore, s.tmpl.NotAfter = notBefore, notAfter }
}

// WithSubject replaces the whole subject name.
func WithSubject(name pkix.Name) Option { return func(s *spec) { s.tmpl.Subject = name } }

// WithSerial sets the serial number.
func WithSerial(serial *big.Int) Option { return func(s *spec) { s.tmpl.SerialNumber = serial } }

// WithDNS adds DNS name SANs.
func WithDNS(names ...string) Option {
	return func(s *spec) { s.tmpl.DNSNames = append(s.tmpl.DNSNames, names...) }
}

// WithEmails adds email address SANs.
func WithEmails(emails ...string) Option {
	return func(s *spec) { s.tmpl.EmailAddresses = append(s.tmpl.EmailAddresses, emails...) }
}

// WithURIs adds URI SANs, such as SPIFFE IDs. It panics on an unparsable URI.
func WithURIs(uris ...string) Option {
	return func(s *spec) {
		for _, raw := range uris {
			u, err := url.Parse(raw)
			if err != nil {
				panic(fmt.Sprintf("mtlstest: bad URI %q: %v", raw, err))
			}
			s.tmpl.URIs = append(s.tmpl.URIs, u)
		}
	}
}

// WithIPs adds IP address SANs. It panics on an unparsable address.
func WithIPs(ips ...string) Option {
	return func(s *spec) {
		for _, raw := range ips {
			ip := net.ParseIP(raw)
			if ip == nil {
				panic(fmt.Sprintf("mtlstest: bad IP %q", raw))
			}
			s.tmpl.IPAddresses = append(s.tmpl.IPAddresses, ip)
		}
	}
}

// WithExtKeyUsage replaces the extended key usages (clients get clientAuth by default).
// Pass none to mint a certificate without the extension.
func WithExtKeyUsage(usages ...x509.ExtKeyUsage) Option {
	return func(s *spec) { s.tmpl.ExtKeyUsage = usages }
}

// WithCA marks the certificate as a CA (basicConstraints CA:TRUE, keyCertSign), which a client
// certificate must never be.
func WithCA() Option {
	return func(s *spec) {
		s.tmpl.IsCA, s.tmpl.BasicConstraintsValid = true, true
		s.tmpl.KeyUsage |= x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
}

// WithKeyType selects the key algorithm.
func WithKeyType(kt KeyType) Option { return func(s *spec) { s.keyType = kt } }

// WithKey signs the certificate for an existing key, as a renewal that keeps its key does.
func WithKey(key crypto.Signer) Option { return func(s *spec) { s.key = key } }

// WithExtension adds an extra extension.
func WithExtension(ext pkix.Extension) Option {
	return func(s *spec) { s.tmpl.ExtraExtensions = append(s.tmpl.ExtraExtensions, ext) }
}

// WithOCSPServer sets the Authority Information Access OCSP responder URLs.
func WithOCSPServer(urls ...string) Option {
	return func(s *spec) { s.tmpl.OCSPServer = append(s.tmpl.OCSPServer, urls...) }
}

// WithCRLDistributionPoints sets the CRL distribution point URLs.
func WithCRLDistributionPoints(urls ...string) Option {
	return func(s *spec) {
		s.tmpl.CRLDistributionPoints = append(s.tmpl.CRLDistributionPoints, urls...)
	}
}

// WithMaxPathLen constrains how many intermediates may follow a CA (0 means none).
func WithMaxPathLen(n int) Option {
	return func(s *spec) { s.tmpl.MaxPathLen, s.tmpl.MaxPathLenZero = n, n == 0 }
}

// CA is a certificate authority with its private key.
type CA struct {
	Certificate *x509.Certificate
	Key         crypto.Signer
	// Parent is the issuing CA, nil for a root.
	Parent *CA
}

// Leaf is an end-entity certificate with its key and the intermediates between it and the root
// (the root itself excluded), in the order a TLS peer presents them.
type Leaf struct {
	Certificate   *x509.Certificate
	Key           crypto.Signer
	Intermediates []*x509.Certificate

	root *x509.Certificate // the root CA of the issuer, nil for a self-signed leaf
}

// NewRootCA mints a self-signed root CA valid from an hour ago for ten years.
func NewRootCA(commonName string, opts ...Option) *CA {
	s := newSpec(commonName, opts, WithCA())
	cert := sign(s, nil, nil)
	return &CA{Certificate: cert, Key: s.key}
}

// NewIntermediate mints a CA issued by ca.
func (ca *CA) NewIntermediate(commonName string, opts ...Option) *CA {
	s := newSpec(commonName, opts, WithCA())
	cert := sign(s, ca.Certificate, ca.Key)
	return &CA{Certificate: cert, Key: s.key, Parent: ca}
}

// NewClient mints a client certificate (EKU clientAuth, digitalSignature) issued by ca.
func (ca *CA) NewClient(commonName string, opts ...Option) *Leaf {
	defaults := func(s *spec) {
		s.tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		s.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	return ca.newLeaf(newSpec(commonName, opts, defaults))
}

// NewServer mints a server certificate (EKU serverAuth) for the given DNS names or IP addresses.
func (ca *CA) NewServer(hosts ...string) *Leaf {
	s := newSpec(hosts[0], nil, func(s *spec) {
		s.tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		s.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				s.tmpl.IPAddresses = append(s.tmpl.IPAddresses, ip)
			} else {
				s.tmpl.DNSNames = append(s.tmpl.DNSNames, h)
			}
		}
	})
	return ca.newLeaf(s)
}

func (ca *CA) newLeaf(s *spec) *Leaf {
	cert := sign(s, ca.Certificate, ca.Key)
	var inter []*x509.Certificate
	c := ca
	for ; c.Parent != nil; c = c.Parent {
		inter = append(inter, c.Certificate)
	}
	return &Leaf{Certificate: cert, Key: s.key, Intermediates: inter, root: c.Certificate}
}

// NewSelfSigned mints a self-signed client certificate (not a CA, EKU clientAuth), the kind a
// partner registers by its fingerprint.
func NewSelfSigned(commonName string, opts ...Option) *Leaf {
	s := newSpec(commonName, opts, func(s *spec) {
		s.tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		s.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	})
	return &Leaf{Certificate: sign(s, nil, nil), Key: s.key}
}

// Pool returns a pool holding only this CA's certificate.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Certificate)
	return p
}

// SHA256 returns the lowercase hex SHA-256 fingerprint of the CA certificate, as
// mtls.RequireIssuerThumbprints takes it.
func (ca *CA) SHA256() string { return fingerprint(ca.Certificate) }

func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// CertPEM returns the CA certificate in PEM.
func (ca *CA) CertPEM() []byte { return EncodePEM(ca.Certificate) }

// Chain returns the leaf followed by its intermediates.
func (l *Leaf) Chain() []*x509.Certificate {
	return append([]*x509.Certificate{l.Certificate}, l.Intermediates...)
}

// VerifiedChain returns the chain as verification returns it: the leaf, its intermediates and
// the root CA (the leaf alone when self-signed). It is what mtls.Identity.Chain holds after the
// middleware verified the leaf, and what mtls.NewIdentity takes.
func (l *Leaf) VerifiedChain() []*x509.Certificate {
	if l.root == nil {
		return l.Chain()
	}
	return append(l.Chain(), l.root)
}

// SHA256 returns the lowercase hex SHA-256 fingerprint of the leaf, as mtls.Identity.SHA256,
// mtls.RequireThumbprints and pinning take it.
func (l *Leaf) SHA256() string { return fingerprint(l.Certificate) }

// TLSCertificate returns the leaf and its intermediates for use in a tls.Config.
func (l *Leaf) TLSCertificate() tls.Certificate {
	tc := tls.Certificate{PrivateKey: l.Key, Leaf: l.Certificate}
	for _, c := range l.Chain() {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc
}

// ClientTLSConfig returns a client-side TLS configuration presenting this certificate and
// trusting serverRoots (nil: the system roots).
func (l *Leaf) ClientTLSConfig(serverRoots *x509.CertPool) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{l.TLSCertificate()},
		RootCAs:      serverRoots,
		MinVersion:   tls.VersionTLS12,
	}
}

// CertPEM returns the leaf certificate in PEM.
func (l *Leaf) CertPEM() []byte { return EncodePEM(l.Certificate) }

// ChainPEM returns the leaf followed by its intermediates in PEM.
func (l *Leaf) ChainPEM() []byte { return EncodePEM(l.Chain()...) }

// KeyPEM returns the private key in PKCS #8 PEM.
func (l *Leaf) KeyPEM() []byte { return keyPEM(l.Key) }

// KeyPEM returns the CA's private key in PKCS #8 PEM, for tools that sign with it (such as
// openssl ca).
func (ca *CA) KeyPEM() []byte { return keyPEM(ca.Key) }

func keyPEM(key crypto.Signer) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		panic("mtlstest: marshal key: " + err.Error())
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// WriteFile writes data (such as [CA.CertPEM] or a CRL) to the file name in dir, readable by the
// owner only, and returns its path: the way to feed a test's PEM to settings that take files,
// such as mtls.Config.RootCAFiles. It panics on failure.
//
//	cfg.RootCAFiles = []string{mtlstest.WriteFile(t.TempDir(), "root.pem", root.CertPEM())}
func WriteFile(dir, name string, data []byte) string {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		panic("mtlstest: " + err.Error())
	}
	return path
}

// EncodePEM encodes certificates as concatenated PEM blocks.
func EncodePEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// newSpec builds a template: defaults first, then the caller's options, so that callers win.
func newSpec(commonName string, opts []Option, defaults ...Option) *spec {
	now := time.Now()
	s := &spec{tmpl: x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
	}}
	for _, o := range defaults {
		o(s)
	}
	for _, o := range opts {
		o(s)
	}
	if s.key == nil {
		s.key = newKey(s.keyType)
	}
	return s
}

func sign(s *spec, parent *x509.Certificate, parentKey crypto.Signer) *x509.Certificate {
	if parent == nil {
		parent, parentKey = &s.tmpl, s.key
	}
	der, err := x509.CreateCertificate(rand.Reader, &s.tmpl, parent, s.key.Public(), parentKey)
	if err != nil {
		panic("mtlstest: create certificate: " + err.Error())
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic("mtlstest: parse certificate: " + err.Error())
	}
	return cert
}

func newKey(kt KeyType) crypto.Signer {
	var (
		key crypto.Signer
		err error
	)
	switch kt {
	case RSA2048:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case Ed25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		panic("mtlstest: generate key: " + err.Error())
	}
	return key
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("mtlstest: serial: " + err.Error())
	}
	return n.Add(n, big.NewInt(1))
}
