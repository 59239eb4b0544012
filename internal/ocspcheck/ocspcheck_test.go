package ocspcheck

import (
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ocsp"
)

func TestVerify(t *testing.T) {
	const skew = 2 * time.Minute
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	from, until := now.Add(-24*time.Hour), now.Add(365*24*time.Hour)
	root := mtlstest.NewRootCA("Verify Root", mtlstest.WithValidity(from, until))
	issuer := root.NewIntermediate("Verify Issuing CA", mtlstest.WithValidity(from, until))
	other := root.NewIntermediate("Verify Other CA", mtlstest.WithValidity(from, until))
	leaf := issuer.NewClient("alice", mtlstest.WithValidity(from, until), mtlstest.WithSerial(big.NewInt(42)))
	twin := other.NewClient("twin", mtlstest.WithValidity(from, until), mtlstest.WithSerial(big.NewInt(42)))
	delegate := issuer.NewOCSPSigner("Delegated OCSP", mtlstest.WithValidity(from, until))
	subCA := issuer.NewOCSPSigner("Sub CA with OCSPSigning", mtlstest.WithCA(), mtlstest.WithValidity(from, until))
	noEKU := issuer.NewClient("not a responder", mtlstest.WithValidity(from, until))
	foreign := other.NewOCSPSigner("Other CA's OCSP", mtlstest.WithValidity(from, until))
	expiredSigner := issuer.NewOCSPSigner("Expired OCSP", mtlstest.WithValidity(from, now.Add(-time.Hour)))
	sha1, err := ocsp.CreateResponse(issuer.Certificate, issuer.Certificate, ocsp.Response{
		Status: ocsp.Good, SerialNumber: leaf.Certificate.SerialNumber,
		ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour),
		SignatureAlgorithm: x509.ECDSAWithSHA1,
	}, issuer.Key)
	require.NoError(t, err)
	answer := func(a mtlstest.OCSPAnswer) []byte {
		if a.ThisUpdate.IsZero() {
			a.ThisUpdate = now.Add(-time.Minute)
		}
		return issuer.NewOCSPResponse(leaf.Certificate, a)
	}
	tests := []struct {
		name    string
		der     []byte
		status  int
		wantErr string
	}{
		{"good, signed by the issuer", answer(mtlstest.OCSPAnswer{}), ocsp.Good, ""},
		{"revoked", answer(mtlstest.OCSPAnswer{Status: ocsp.Revoked}), ocsp.Revoked, ""},
		{"delegated responder", answer(mtlstest.OCSPAnswer{Signer: delegate}), ocsp.Good, ""},
		{"no nextUpdate, within its TTL", answer(mtlstest.OCSPAnswer{NoNextUpdate: true}), ocsp.Good, ""},
		{"expired within the skew", answer(mtlstest.OCSPAnswer{ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(-time.Minute)}), ocsp.Good, ""},
		{"delegated responder is a CA", answer(mtlstest.OCSPAnswer{Signer: subCA}), 0, "is a CA certificate"},
		{"delegated responder without OCSPSigning", answer(mtlstest.OCSPAnswer{Signer: noEKU}), 0, "lacks the OCSPSigning"},
		{"delegated responder of another CA", answer(mtlstest.OCSPAnswer{Signer: foreign}), 0, "not issued by the certificate's issuer"},
		{"delegated responder expired", answer(mtlstest.OCSPAnswer{Signer: expiredSigner}), 0, "outside its validity period"},
		{"about another issuer's certificate of the same serial", other.NewOCSPResponse(twin.Certificate, mtlstest.OCSPAnswer{ThisUpdate: now.Add(-time.Minute)}), 0, "another issuer"},
		{"SHA-1 signature", sha1, 0, "insecure algorithm"},
		{"thisUpdate in the future", answer(mtlstest.OCSPAnswer{ThisUpdate: now.Add(time.Hour)}), 0, "in the future"},
		{"expired", answer(mtlstest.OCSPAnswer{ThisUpdate: now.Add(-2 * time.Hour), NextUpdate: now.Add(-time.Hour)}), 0, "expired"},
		{"no nextUpdate, past its TTL", answer(mtlstest.OCSPAnswer{ThisUpdate: now.Add(-time.Hour), NoNextUpdate: true}), 0, "expired"},
		{"nextUpdate before thisUpdate", answer(mtlstest.OCSPAnswer{NextUpdate: now.Add(-time.Hour)}), 0, "precedes thisUpdate"},
		{"error response", ocsp.TryLaterErrorResponse, 0, "try later"},
		{"garbage", []byte("not OCSP"), 0, "asn1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := Verify(tt.der, leaf.Certificate, issuer.Certificate, now, skew)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.status, resp.Status)
		})
	}
}
