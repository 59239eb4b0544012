package mtls

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// opensslCA is an `openssl ca` database around a CA minted by mtlstest: certificates are
// registered and revoked with `openssl ca`, CRLs come from `openssl ca -gencrl`, and OCSP answers
// from `openssl ocsp -index`, served over HTTP on 127.0.0.1.
type opensslCA struct {
	bin, dir, cnf string
	ca            *mtlstest.CA
	mu            sync.Mutex // openssl ca and ocsp share index.txt
}

func newOpenSSLCA(t *testing.T, bin string, ca *mtlstest.CA) *opensslCA {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"ca.pem":    string(ca.CertPEM()),
		"ca.key":    string(ca.KeyPEM()),
		"index.txt": "",
		"crlnumber": "1000\n",
		"serial":    "01\n",
		"ca.cnf": fmt.Sprintf(`[ ca ]
default_ca = testca
[ testca ]
dir = %s
database = $dir/index.txt
certificate = $dir/ca.pem
private_key = $dir/ca.key
# Required: a CRL without a cRLNumber (RFC 5280 5.2.3) is refused (see the subtest without it).
crlnumber = $dir/crlnumber
serial = $dir/serial
new_certs_dir = $dir
default_md = sha256
default_crl_days = 7
unique_subject = no
policy = policy_any
[ policy_any ]
commonName = supplied
`, dir),
	}
	for name, content := range files {
		mtlstest.WriteFile(dir, name, []byte(content))
	}
	return &opensslCA{bin: bin, dir: dir, cnf: filepath.Join(dir, "ca.cnf"), ca: ca}
}

func (o *opensslCA) run(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o.mu.Lock()
	defer o.mu.Unlock()
	out, err := exec.CommandContext(ctx, o.bin, args...).CombinedOutput()
	require.NoError(t, err, "openssl %s: %s", strings.Join(args, " "), out)
}

func (o *opensslCA) certFile(l *mtlstest.Leaf) string {
	return mtlstest.WriteFile(o.dir, fmt.Sprintf("%x.pem", l.Certificate.SerialNumber), l.CertPEM())
}

// register records l as valid in the index.
func (o *opensslCA) register(t *testing.T, l *mtlstest.Leaf) {
	o.run(t, "ca", "-batch", "-config", o.cnf, "-valid", o.certFile(l))
}

// revoke records l as revoked in the index.
func (o *opensslCA) revoke(t *testing.T, l *mtlstest.Leaf) {
	o.run(t, "ca", "-batch", "-config", o.cnf, "-revoke", o.certFile(l), "-crl_reason", "keyCompromise")
}

// gencrl returns a PEM CRL from `openssl ca -gencrl`.
func (o *opensslCA) gencrl(t *testing.T) []byte {
	out := filepath.Join(o.dir, "crl.pem")
	o.run(t, "ca", "-batch", "-config", o.cnf, "-gencrl", "-out", out)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	return data
}

// ocspServer answers OCSP requests (GET and POST) by running `openssl ocsp -index` on each, signed
// by signer (nil: the CA itself).
func (o *opensslCA) ocspServer(t *testing.T, signer *mtlstest.Leaf) (*httptest.Server, *atomic.Int64) {
	rsigner, rkey := filepath.Join(o.dir, "ca.pem"), filepath.Join(o.dir, "ca.key")
	if signer != nil {
		rsigner = mtlstest.WriteFile(o.dir, "signer.pem", signer.CertPEM())
		rkey = mtlstest.WriteFile(o.dir, "signer.key", signer.KeyPEM())
	}
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req []byte
		var err error
		switch r.Method {
		case http.MethodPost:
			req, err = io.ReadAll(io.LimitReader(r.Body, 1<<16))
		case http.MethodGet:
			req, err = decodeOCSPGet(r)
		}
		if err != nil || len(req) == 0 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		id := calls.Add(1)
		reqFile := filepath.Join(o.dir, fmt.Sprintf("req%d.der", id))
		respFile := filepath.Join(o.dir, fmt.Sprintf("resp%d.der", id))
		if err := os.WriteFile(reqFile, req, 0o600); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
		defer cancel()
		o.mu.Lock()
		out, err := exec.CommandContext(ctx, o.bin, "ocsp", "-index", filepath.Join(o.dir, "index.txt"),
			"-CA", filepath.Join(o.dir, "ca.pem"), "-rsigner", rsigner, "-rkey", rkey,
			"-reqin", reqFile, "-respout", respFile, "-nmin", "60").CombinedOutput()
		o.mu.Unlock()
		if err != nil {
			http.Error(w, string(out), http.StatusInternalServerError)
			return
		}
		resp, err := os.ReadFile(respFile)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/ocsp-response")
		_, _ = w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func decodeOCSPGet(r *http.Request) ([]byte, error) {
	p := strings.TrimPrefix(r.URL.EscapedPath(), "/")
	unescaped, err := url.PathUnescape(p)
	if err != nil {
		return nil, err
	}
	return base64.StdEncoding.DecodeString(unescaped)
}

func TestOpenSSLIntegration(t *testing.T) {
	bin := requireBinary(t, "openssl")
	root := mtlstest.NewRootCA("OpenSSL Root CA")
	issuing := root.NewIntermediate("OpenSSL Issuing CA")
	osca := newOpenSSLCA(t, bin, issuing)

	t.Run("OCSP", func(t *testing.T) {
		srv, calls := osca.ocspServer(t, nil)
		good := issuing.NewClient("good", mtlstest.WithOCSPServer(srv.URL))
		revoked := issuing.NewClient("revoked", mtlstest.WithOCSPServer(srv.URL))
		unregistered := issuing.NewClient("unregistered", mtlstest.WithOCSPServer(srv.URL))
		osca.register(t, good)
		osca.register(t, revoked)
		osca.revoke(t, revoked)
		m, err := New(Config{RootCAs: root.Pool(), Revocation: &RevocationConfig{OCSP: &OCSPConfig{}, Timeout: 20 * time.Second}})
		require.NoError(t, err)

		id, err := revAuthn(m, good)
		require.NoError(t, err)
		assert.False(t, id.Revocation.Degraded())
		_, err = revAuthn(m, revoked)
		requireRevRefused(t, err, ErrRevoked)
		_, err = revAuthn(m, unregistered)
		requireRevRefused(t, err, ErrRevocationUnavailable)
		// Cached: no new query.
		before := calls.Load()
		_, err = revAuthn(m, good)
		require.NoError(t, err)
		assert.Equal(t, before, calls.Load())
	})

	t.Run("OCSP by a delegated responder", func(t *testing.T) {
		signer := issuing.NewOCSPSigner("OpenSSL OCSP Responder")
		srv, _ := osca.ocspServer(t, signer)
		good := issuing.NewClient("delegated-good")
		osca.register(t, good)
		m, err := New(Config{RootCAs: root.Pool(), Revocation: &RevocationConfig{OCSP: &OCSPConfig{Responder: srv.URL}, Timeout: 20 * time.Second}})
		require.NoError(t, err)
		_, err = revAuthn(m, good)
		require.NoError(t, err)

		noEKU := issuing.NewClient("not a responder") // clientAuth only
		srv2, _ := osca.ocspServer(t, noEKU)
		m2, err := New(Config{RootCAs: root.Pool(), Revocation: &RevocationConfig{OCSP: &OCSPConfig{Responder: srv2.URL}, Timeout: 20 * time.Second}})
		require.NoError(t, err)
		_, err = revAuthn(m2, good)
		requireRevRefused(t, err, ErrRevocationUnavailable)
	})

	t.Run("CRL from openssl ca -gencrl without crlnumber", func(t *testing.T) {
		// Without crlnumber, openssl ca makes a version 1 CRL without extensions: refused, and
		// the refusal says what to set.
		bare := newOpenSSLCA(t, bin, issuing)
		cnf, err := os.ReadFile(bare.cnf)
		require.NoError(t, err)
		require.Contains(t, string(cnf), "\ncrlnumber = ")
		mtlstest.WriteFile(bare.dir, "ca.cnf", []byte(strings.Replace(string(cnf), "\ncrlnumber = ", "\n# crlnumber = ", 1)))
		file := mtlstest.WriteFile(t.TempDir(), "nonumber.crl", bare.gencrl(t))
		_, err = New(Config{RootCAs: root.Pool(), Revocation: &RevocationConfig{CRL: &CRLConfig{Files: []string{file}}}})
		var ce *ConfigError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "Revocation.CRL.Files[0]", ce.Field)
		assert.ErrorContains(t, err, "no cRLNumber (RFC 5280 5.2.3): with openssl ca, set crlnumber in the CA section")
	})

	t.Run("CRL from openssl ca -gencrl", func(t *testing.T) {
		good := issuing.NewClient("crl-good")
		revoked := issuing.NewClient("crl-revoked", mtlstest.WithSerial(new(big.Int).Lsh(big.NewInt(0xabcdef), 100)))
		osca.register(t, good)
		osca.revoke(t, revoked)
		crl := osca.gencrl(t)
		var served sync.Map
		served.Store("crl", crl)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			v, _ := served.Load("crl")
			_, _ = w.Write(v.([]byte))
		}))
		t.Cleanup(srv.Close)
		file := mtlstest.WriteFile(t.TempDir(), "openssl.crl", crl)
		dpLeaf := issuing.NewClient("crl-dp", mtlstest.WithCRLDistributionPoints(srv.URL+"/issuing.crl"))
		osca.revoke(t, dpLeaf)
		served.Store("crl", osca.gencrl(t))

		for name, cfg := range map[string]*CRLConfig{
			"file": {Files: []string{file}},
			"URL":  {URLs: []string{srv.URL + "/issuing.crl"}},
		} {
			t.Run(name, func(t *testing.T) {
				m, err := New(Config{RootCAs: root.Pool(), Revocation: &RevocationConfig{CRL: cfg}})
				require.NoError(t, err)
				_, err = revAuthn(m, good)
				require.NoError(t, err)
				_, err = revAuthn(m, revoked)
				requireRevRefused(t, err, ErrRevoked)
			})
		}
		t.Run("distribution point", func(t *testing.T) {
			m, err := New(Config{RootCAs: root.Pool(), Revocation: &RevocationConfig{CRL: &CRLConfig{DistributionPoints: true}}})
			require.NoError(t, err)
			_, err = revAuthn(m, dpLeaf)
			requireRevRefused(t, err, ErrRevoked)
		})
		t.Run("matches x509.ParseRevocationList", func(t *testing.T) {
			block, _ := pem.Decode(crl)
			require.NotNil(t, block)
			rl, err := x509.ParseRevocationList(block.Bytes)
			require.NoError(t, err)
			c, err := parseCRLData(crl)
			require.NoError(t, err)
			require.NoError(t, c.verifyWith(issuing.Certificate))
			assert.Equal(t, len(rl.RevokedCertificateEntries), c.Serials.Len())
			for _, e := range rl.RevokedCertificateEntries {
				assert.True(t, c.Serials.Revoked(e.SerialNumber))
			}
			assert.Equal(t, 0, rl.Number.Cmp(c.Number))
		})
	})
}
