package mtls

import (
	"crypto/x509"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ocsp"
)

// The fuzz targets read fixed fixtures from testdata/revocation (an issuer, a leaf, OCSP
// responses about them), rebuilt with:
//
//	MTLS_WRITE_REVOCATION_FIXTURES=1 go test -run TestWriteRevocationFixtures .
//
// which also rewrites the seed corpora under testdata/fuzz.

var revocationFixtureTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestWriteRevocationFixtures(t *testing.T) {
	if os.Getenv("MTLS_WRITE_REVOCATION_FIXTURES") != "1" {
		t.Skip("set MTLS_WRITE_REVOCATION_FIXTURES=1 to rebuild testdata/revocation")
	}
	from, until := revocationFixtureTime.Add(-time.Hour), revocationFixtureTime.Add(20*365*24*time.Hour)
	root := mtlstest.NewRootCA("Fixture Root CA", mtlstest.WithValidity(from, until))
	issuer := root.NewIntermediate("Fixture Issuing CA", mtlstest.WithValidity(from, until))
	leaf := issuer.NewClient("fixture-client", mtlstest.WithValidity(from, until), mtlstest.WithSerial(big.NewInt(0x7eadbeef)))
	signer := issuer.NewOCSPSigner("Fixture OCSP", mtlstest.WithValidity(from, until))
	dir := filepath.Join("testdata", "revocation")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	write := func(name string, data []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}
	write("issuer.pem", issuer.CertPEM())
	write("leaf.pem", leaf.CertPEM())
	answer := func(status int, s *mtlstest.Leaf, next bool) []byte {
		return issuer.NewOCSPResponse(leaf.Certificate, mtlstest.OCSPAnswer{Status: status, Signer: s,
			ThisUpdate: revocationFixtureTime, NextUpdate: until, NoNextUpdate: !next})
	}
	ocspSeeds := map[string][]byte{
		"ocsp-good.der":         answer(ocsp.Good, nil, true),
		"ocsp-revoked.der":      answer(ocsp.Revoked, nil, true),
		"ocsp-unknown.der":      answer(ocsp.Unknown, nil, true),
		"ocsp-delegated.der":    answer(ocsp.Good, signer, true),
		"ocsp-no-next.der":      answer(ocsp.Good, nil, false),
		"ocsp-trylater.der":     ocsp.TryLaterErrorResponse,
		"ocsp-unauthorized.der": ocsp.UnauthorizedErrorResponse,
	}
	for name, der := range ocspSeeds {
		write(name, der)
		writeSeed(t, "FuzzOCSPResponse", name, der)
	}
}

func writeSeed(t *testing.T, target, name string, data []byte) {
	dir := filepath.Join("testdata", "fuzz", target)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
}

func readFixtureCert(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "revocation", name))
	require.NoError(t, err)
	certs, err := ParsePEMCertificates(data)
	require.NoError(t, err)
	return certs[0]
}

func addFixtureSeeds(f *testing.F, prefix string) {
	matches, err := filepath.Glob(filepath.Join("testdata", "revocation", prefix+"*.der"))
	require.NoError(f, err)
	for _, m := range matches {
		data, err := os.ReadFile(m)
		require.NoError(f, err)
		f.Add(data)
	}
}

// FuzzOCSPResponse feeds arbitrary bytes to the response verification. It must never panic, and
// it may only accept a response whose signed part is one the issuer really signed.
func FuzzOCSPResponse(f *testing.F) {
	addFixtureSeeds(f, "ocsp-")
	issuer := readFixtureCert(f, "issuer.pem")
	leaf := readFixtureCert(f, "leaf.pem")
	now := revocationFixtureTime.Add(time.Minute)
	signed := map[string]bool{}
	matches, _ := filepath.Glob(filepath.Join("testdata", "revocation", "ocsp-*.der"))
	for _, m := range matches {
		data, _ := os.ReadFile(m)
		if resp, err := ocsp.ParseResponseForCert(data, leaf, nil); err == nil {
			signed[string(resp.TBSResponseData)] = true
		}
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		resp, err := verifyOCSPResponse(der, leaf, issuer, now, defaultClockSkew)
		if err != nil {
			return
		}
		if !signed[string(resp.TBSResponseData)] {
			t.Fatalf("accepted a response the issuer did not sign")
		}
	})
}
