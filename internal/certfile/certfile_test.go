package certfile

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func selfSigned(t testing.TB) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return der
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(path, []byte("12345"), 0o600))
	data, err := Read(path, 5)
	require.NoError(t, err)
	assert.Equal(t, "12345", string(data))
	_, err = Read(path, 4)
	require.ErrorContains(t, err, "larger than 4 bytes")
	_, err = Read(filepath.Join(dir, "missing"), 5)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = Read(dir, 5)
	require.ErrorContains(t, err, "not a regular file")
}

func TestCertificates(t *testing.T) {
	der := selfSigned(t)
	block := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	key := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}))
	for _, tt := range []struct {
		name, data string
		n          int
		err        string
	}{
		{name: "one", data: block, n: 1},
		{name: "two with comments", data: "# a\n" + block + "subject=x\n" + block, n: 2},
		{name: "empty", data: "", err: "no PEM certificate"},
		{name: "another type", data: block + key, err: `"PRIVATE KEY", want CERTIFICATE`},
		{name: "does not parse", data: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30}})), err: "certificate 1"},
		{name: "truncated block", data: block + block[:len(block)-30], err: "undecodable PEM block after certificate 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			certs, err := Certificates([]byte(tt.data))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Len(t, certs, tt.n)
		})
	}
}

func TestDER(t *testing.T) {
	der := []byte{0x30, 0x03, 0x02, 0x01, 0x01}
	got, err := DER(der, "X509 CRL")
	require.NoError(t, err)
	assert.Equal(t, der, got)
	pemData := "junk\n" + string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
	got, err = DER([]byte(" \n"+strings.TrimPrefix(pemData, "junk\n")), "X509 CRL")
	require.NoError(t, err)
	assert.Equal(t, der, got)
	_, err = DER([]byte(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}))), "X509 CRL")
	require.ErrorContains(t, err, "no X509 CRL PEM block")
}

func FuzzCertificates(f *testing.F) {
	f.Add([]byte(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: selfSigned(f)})))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n"))
	f.Add([]byte("# comment\n-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := Certificates(data)
		if (err == nil) == (len(certs) == 0) {
			t.Fatalf("certs=%d err=%v", len(certs), err)
		}
		for _, c := range certs {
			if _, err := x509.ParseCertificate(c.Raw); err != nil {
				t.Fatalf("returned a certificate that does not parse: %v", err)
			}
		}
		_, _ = DER(data, "X509 CRL")
	})
}
