package ocspcheck

import (
	"crypto/x509"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certgate/mtls/internal/certfile"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ocsp"
)

// FuzzOCSPResponse reads fixed fixtures from testdata (an issuer, a leaf, OCSP responses about
// them), rebuilt with:
//
//	MTLS_WRITE_OCSP_FIXTURES=1 go test -run TestWriteFixtures ./internal/ocspcheck
//
// which also rewrites its seed corpus under testdata/fuzz.

var fixtureTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestWriteFixtures(t *testing.T) {
	if os.Getenv("MTLS_WRITE_OCSP_FIXTURES") != "1" {
		t.Skip("set MTLS_WRITE_OCSP_FIXTURES=1 to rebuild the fixtures")
	}
	from, until := fixtureTime.Add(-time.Hour), fixtureTime.Add(20*365*24*time.Hour)
	root := mtlstest.NewRootCA("Fixture Root CA", mtlstest.WithValidity(from, until))
	issuer := root.NewIntermediate("Fixture Issuing CA", mtlstest.WithValidity(from, until))
	leaf := issuer.NewClient("fixture-client", mtlstest.WithValidity(from, until), mtlstest.WithSerial(big.NewInt(0x7eadbeef)))
	signer := issuer.NewOCSPSigner("Fixture OCSP", mtlstest.WithValidity(from, until))
	write := func(name string, data []byte) {
		require.NoError(t, os.WriteFile(filepath.Join("testdata", name), data, 0o644))
	}
	write("issuer.pem", issuer.CertPEM())
	write("leaf.pem", leaf.CertPEM())
	answer := func(status int, s *mtlstest.Leaf, next bool) []byte {
		return issuer.NewOCSPResponse(leaf.Certificate, mtlstest.OCSPAnswer{Status: status, Signer: s,
			ThisUpdate: fixtureTime, NextUpdate: until, NoNextUpdate: !next})
	}
	seeds := map[string][]byte{
		"ocsp-good.der":         answer(ocsp.Good, nil, true),
		"ocsp-revoked.der":      answer(ocsp.Revoked, nil, true),
		"ocsp-unknown.der":      answer(ocsp.Unknown, nil, true),
		"ocsp-delegated.der":    answer(ocsp.Good, signer, true),
		"ocsp-no-next.der":      answer(ocsp.Good, nil, false),
		"ocsp-trylater.der":     ocsp.TryLaterErrorResponse,
		"ocsp-unauthorized.der": ocsp.UnauthorizedErrorResponse,
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzOCSPResponse")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for name, der := range seeds {
		write(name, der)
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", der)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
}

func readFixtureCert(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	certs, err := certfile.Certificates(data)
	require.NoError(t, err)
	return certs[0]
}

// FuzzOCSPResponse feeds arbitrary bytes to Verify. It must never panic, and it may only accept
// a response whose signed part is one the issuer really signed.
func FuzzOCSPResponse(f *testing.F) {
	issuer := readFixtureCert(f, "issuer.pem")
	leaf := readFixtureCert(f, "leaf.pem")
	now := fixtureTime.Add(time.Minute)
	signed := map[string]bool{}
	matches, err := filepath.Glob(filepath.Join("testdata", "ocsp-*.der"))
	require.NoError(f, err)
	for _, m := range matches {
		data, err := os.ReadFile(m)
		require.NoError(f, err)
		if resp, err := ocsp.ParseResponseForCert(data, leaf, nil); err == nil {
			signed[string(resp.TBSResponseData)] = true
		}
	}
	f.Fuzz(func(t *testing.T, der []byte) {
		resp, err := Verify(der, leaf, issuer, now, 2*time.Minute)
		if err != nil {
			return
		}
		if !signed[string(resp.TBSResponseData)] {
			t.Fatalf("accepted a response the issuer did not sign")
		}
	})
}
