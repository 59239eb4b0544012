package mtlstest_test

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ocsp"
)

func TestNewCRL(t *testing.T) {
	for name, kt := range map[string]mtlstest.KeyType{"ECDSA": mtlstest.ECDSAP256, "RSA": mtlstest.RSA2048, "Ed25519": mtlstest.Ed25519} {
		t.Run(name, func(t *testing.T) {
			ca := mtlstest.NewRootCA("CRL CA "+name, mtlstest.WithKeyType(kt))
			this := time.Now().Add(-time.Hour).Truncate(time.Second)
			der := ca.NewCRL(mtlstest.CRL{
				ThisUpdate:     this,
				NextUpdate:     this.Add(48 * time.Hour),
				Number:         big.NewInt(42),
				Revoked:        []*big.Int{big.NewInt(5), new(big.Int).Lsh(big.NewInt(1), 130)},
				RevokedSerials: [][]byte{{0x80, 1}, {0, 0, 7}},
			})
			rl, err := x509.ParseRevocationList(der)
			require.NoError(t, err)
			require.NoError(t, rl.CheckSignatureFrom(ca.Certificate))
			assert.Equal(t, this.UTC(), rl.ThisUpdate.UTC())
			assert.Equal(t, this.Add(48*time.Hour).UTC(), rl.NextUpdate.UTC())
			assert.Equal(t, int64(42), rl.Number.Int64())
			var serials []string
			for _, e := range rl.RevokedCertificateEntries {
				serials = append(serials, e.SerialNumber.Text(16))
			}
			assert.Equal(t, []string{"5", "400000000000000000000000000000000", "8001", "7"}, serials)
			assert.Equal(t, ca.Certificate.SubjectKeyId, rl.AuthorityKeyId)

			entries := ca.NewCRL(mtlstest.CRL{ThisUpdate: this, Revoked: []*big.Int{big.NewInt(1)}, Entries: []x509.RevocationListEntry{
				{SerialNumber: big.NewInt(2), RevocationTime: this.Add(-time.Hour), ReasonCode: 1},
				{SerialNumber: big.NewInt(3)},
			}})
			rl, err = x509.ParseRevocationList(entries)
			require.NoError(t, err)
			require.Len(t, rl.RevokedCertificateEntries, 3)
			for i, want := range []struct {
				at     time.Time
				reason int
			}{{this, 0}, {this.Add(-time.Hour), 1}, {this, 0}} {
				e := rl.RevokedCertificateEntries[i]
				assert.Equal(t, int64(i+1), e.SerialNumber.Int64())
				assert.True(t, want.at.Equal(e.RevocationTime), "entry %d revoked at %v", i, e.RevocationTime)
				assert.Equal(t, want.reason, e.ReasonCode)
			}
			block, rest := pem.Decode(mtlstest.CRLPEM(entries))
			require.NotNil(t, block)
			assert.Empty(t, rest)
			assert.Equal(t, "X509 CRL", block.Type)
			assert.Equal(t, entries, block.Bytes)

			bad := ca.NewCRL(mtlstest.CRL{SignWith: mtlstest.NewRootCA("Other").Key})
			rl, err = x509.ParseRevocationList(bad)
			require.NoError(t, err)
			assert.Error(t, rl.CheckSignatureFrom(ca.Certificate))
		})
	}
}

func TestOCSPResponder(t *testing.T) {
	root := mtlstest.NewRootCA("OCSP Root")
	ca := root.NewIntermediate("OCSP Issuing")
	r := mtlstest.NewOCSPResponder(ca)
	defer r.Close()
	assert.True(t, strings.HasPrefix(r.URL, "http://127.0.0.1:"), r.URL)
	good := ca.NewClient("good")
	revoked := ca.NewClient("revoked")
	unknown := ca.NewClient("unknown")
	r.Revoke(revoked.Certificate.SerialNumber)
	r.SetStatus(unknown.Certificate.SerialNumber, ocsp.Unknown)
	signer := ca.NewOCSPSigner("Delegated")

	ask := func(leaf *mtlstest.Leaf, post bool) *ocsp.Response {
		req, err := ocsp.CreateRequest(leaf.Certificate, ca.Certificate, nil)
		require.NoError(t, err)
		var res *http.Response
		if post {
			res, err = http.Post(r.URL, "application/ocsp-request", bytes.NewReader(req))
		} else {
			res, err = http.Get(r.URL + "/" + url.PathEscape(base64.StdEncoding.EncodeToString(req)))
		}
		require.NoError(t, err)
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		resp, err := ocsp.ParseResponseForCert(body, leaf.Certificate, ca.Certificate)
		require.NoError(t, err)
		return resp
	}
	assert.Equal(t, ocsp.Good, ask(good, false).Status)
	assert.Equal(t, ocsp.Revoked, ask(revoked, true).Status)
	assert.Equal(t, ocsp.Unknown, ask(unknown, false).Status)
	r.SetSigner(signer)
	r.SetValidity(time.Minute)
	resp := ask(good, true)
	require.NotNil(t, resp.Certificate)
	assert.Equal(t, signer.Certificate.Raw, resp.Certificate.Raw)
	assert.Equal(t, time.Minute, resp.NextUpdate.Sub(resp.ThisUpdate))
	assert.Equal(t, 4, r.Requests())
	assert.Equal(t, 2, r.RequestsFor(good.Certificate.SerialNumber))
	assert.Equal(t, 1, r.RequestsFor(revoked.Certificate.SerialNumber))

	minted := ca.NewOCSPResponse(good.Certificate, mtlstest.OCSPAnswer{Status: ocsp.Revoked, NoNextUpdate: true})
	parsed, err := ocsp.ParseResponseForCert(minted, good.Certificate, ca.Certificate)
	require.NoError(t, err)
	assert.Equal(t, ocsp.Revoked, parsed.Status)
	assert.True(t, parsed.NextUpdate.IsZero())
}
