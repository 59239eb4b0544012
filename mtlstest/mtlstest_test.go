package mtlstest_test

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChainVerifies(t *testing.T) {
	root := mtlstest.NewRootCA("Root")
	issuing := root.NewIntermediate("Issuing", mtlstest.WithMaxPathLen(0))
	leaf := issuing.NewClient("alice", mtlstest.WithURIs("spiffe://example.test/alice"), mtlstest.WithKeyType(mtlstest.RSA2048))

	inter := x509.NewCertPool()
	inter.AddCert(issuing.Certificate)
	chains, err := leaf.Certificate.Verify(x509.VerifyOptions{
		Roots: root.Pool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	require.NoError(t, err)
	require.Len(t, chains[0], 3)
	assert.Equal(t, []*x509.Certificate{leaf.Certificate, issuing.Certificate}, leaf.Chain())
	assert.Equal(t, "spiffe://example.test/alice", leaf.Certificate.URIs[0].String())
	assert.False(t, leaf.Certificate.IsCA)
}

func TestOptions(t *testing.T) {
	nb, na := time.Now().Add(-time.Minute).Truncate(time.Second), time.Now().Add(time.Hour).Truncate(time.Second)
	ca := mtlstest.NewRootCA("Root")
	c := ca.NewClient("x", mtlstest.WithValidity(nb, na), mtlstest.WithDNS("a.test"), mtlstest.WithEmails("x@a.test"),
		mtlstest.WithIPs("2001:db8::1"), mtlstest.WithExtKeyUsage(), mtlstest.WithOCSPServer("http://127.0.0.1:1/ocsp"),
		mtlstest.WithCRLDistributionPoints("http://127.0.0.1:1/crl"), mtlstest.WithKeyType(mtlstest.Ed25519)).Certificate
	assert.True(t, c.NotBefore.Equal(nb))
	assert.True(t, c.NotAfter.Equal(na))
	assert.Equal(t, []string{"a.test"}, c.DNSNames)
	assert.Equal(t, []string{"x@a.test"}, c.EmailAddresses)
	assert.Equal(t, "2001:db8::1", c.IPAddresses[0].String())
	assert.Empty(t, c.ExtKeyUsage)
	assert.Equal(t, []string{"http://127.0.0.1:1/ocsp"}, c.OCSPServer)
	assert.Equal(t, []string{"http://127.0.0.1:1/crl"}, c.CRLDistributionPoints)
	assert.Equal(t, x509.Ed25519, c.PublicKeyAlgorithm)

	renewed := ca.NewClient("x", mtlstest.WithKey(ca.NewClient("y").Key))
	assert.NotNil(t, renewed)
}

func TestPEMAndTLS(t *testing.T) {
	self := mtlstest.NewSelfSigned("partner")
	_, err := tls.X509KeyPair(self.CertPEM(), self.KeyPEM())
	require.NoError(t, err)
	ca := mtlstest.NewRootCA("CA", mtlstest.WithKeyType(mtlstest.RSA2048))
	_, err = tls.X509KeyPair(ca.CertPEM(), ca.KeyPEM())
	require.NoError(t, err)
	block, rest := pem.Decode(self.ChainPEM())
	require.NotNil(t, block)
	assert.Empty(t, rest)
	assert.Equal(t, self.Certificate.Raw, block.Bytes)

	srv := mtlstest.NewRootCA("Server CA").NewServer("localhost", "127.0.0.1")
	assert.Equal(t, []string{"localhost"}, srv.Certificate.DNSNames)
	assert.Equal(t, "127.0.0.1", srv.Certificate.IPAddresses[0].String())
	cfg := srv.ClientTLSConfig(nil)
	assert.Len(t, cfg.Certificates, 1)
}

func TestVerifiedChainAndFiles(t *testing.T) {
	root := mtlstest.NewRootCA("Root")
	issuing := root.NewIntermediate("Issuing")
	leaf := issuing.NewClient("alice")
	assert.Equal(t, []*x509.Certificate{leaf.Certificate, issuing.Certificate, root.Certificate}, leaf.VerifiedChain())
	assert.Equal(t, []*x509.Certificate{root.Certificate}, root.NewClient("bob").VerifiedChain()[1:])
	self := mtlstest.NewSelfSigned("partner")
	assert.Equal(t, []*x509.Certificate{self.Certificate}, self.VerifiedChain())

	sum := sha256.Sum256(leaf.Certificate.Raw)
	assert.Equal(t, hex.EncodeToString(sum[:]), leaf.SHA256())

	dir := t.TempDir()
	path := mtlstest.WriteFile(dir, "root.pem", root.CertPEM())
	assert.Equal(t, filepath.Join(dir, "root.pem"), path)
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, root.CertPEM(), got)
	assert.Panics(t, func() { mtlstest.WriteFile(filepath.Join(dir, "missing"), "x", nil) })
}
