package crl

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certgate/mtls/internal/certfile"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/require"
)

// FuzzParseCRL's seed corpus under testdata/fuzz, and the issuer of its CRLs in testdata, are
// rebuilt with:
//
//	MTLS_WRITE_CRL_FIXTURES=1 go test -run TestWriteFixtures ./internal/crl

func TestWriteFixtures(t *testing.T) {
	if os.Getenv("MTLS_WRITE_CRL_FIXTURES") != "1" {
		t.Skip("set MTLS_WRITE_CRL_FIXTURES=1 to rebuild the fixtures")
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	from, until := at.Add(-time.Hour), at.Add(20*365*24*time.Hour)
	root := mtlstest.NewRootCA("Fixture Root CA", mtlstest.WithValidity(from, until))
	issuer := root.NewIntermediate("Fixture Issuing CA", mtlstest.WithValidity(from, until))
	require.NoError(t, os.WriteFile(filepath.Join("testdata", "issuer.pem"), issuer.CertPEM(), 0o644))
	listed := big.NewInt(0x7eadbeef)
	idp := pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 28}, Critical: true,
		Value: []byte{0x30, 0x0b, 0xa0, 0x09, 0xa0, 0x07, 0x86, 0x05, 'h', 't', 't', 'p', ':'}}
	seeds := map[string][]byte{
		"crl-empty.der":   issuer.NewCRL(mtlstest.CRL{ThisUpdate: at, NextUpdate: until}),
		"crl-revokes.der": issuer.NewCRL(mtlstest.CRL{ThisUpdate: at, NextUpdate: until, Revoked: []*big.Int{listed, big.NewInt(1), big.NewInt(-5), new(big.Int).Lsh(big.NewInt(1), 159)}}),
		"crl-idp.der":     issuer.NewCRL(mtlstest.CRL{ThisUpdate: at, NextUpdate: until, ExtraExtensions: []pkix.Extension{idp}}),
		"crl-many.der":    issuer.NewCRL(mtlstest.CRL{ThisUpdate: at, NextUpdate: until, RevokedSerials: [][]byte{{1}, {0x80}, {1, 2, 3}, {0xff, 0xff}, {0}}}),
		// Revocation dates from 2050 are GeneralizedTime.
		"crl-generalized-time.der": issuer.NewCRL(mtlstest.CRL{ThisUpdate: at, NextUpdate: until,
			Revoked: []*big.Int{listed}, RevokedAt: time.Date(2051, 1, 1, 0, 0, 0, 0, time.UTC)}),
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParseCRL")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for name, der := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", der)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
}

func fixtureIssuer(t testing.TB) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "issuer.pem"))
	require.NoError(t, err)
	certs, err := certfile.Certificates(data)
	require.NoError(t, err)
	return certs[0]
}

// FuzzParseCRL feeds arbitrary bytes to the CRL scanner. It must never panic, and whatever it
// accepts that x509.ParseRevocationList also accepts must list the same serials.
func FuzzParseCRL(f *testing.F) {
	issuer := fixtureIssuer(f)
	f.Fuzz(func(t *testing.T, der []byte) {
		c, err := Parse(der)
		if err != nil {
			return
		}
		_ = c.CheckSigner(issuer)
		c.Serials.Revoked(big.NewInt(1))
		rl, err := x509.ParseRevocationList(der)
		if err != nil {
			return
		}
		for _, e := range rl.RevokedCertificateEntries {
			if !c.Serials.Revoked(e.SerialNumber) {
				t.Fatalf("serial %x listed by x509 but not found by the scanner", e.SerialNumber)
			}
		}
		if c.Serials.Len() > len(rl.RevokedCertificateEntries) {
			t.Fatalf("scanner found %d serials, x509 %d", c.Serials.Len(), len(rl.RevokedCertificateEntries))
		}
	})
}
