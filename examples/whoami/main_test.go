package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for the server's concurrent log writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fixture holds the files of a test PKI on disk, as a user would have them.
type fixture struct {
	dir                     string
	serverCA, clientCA      *mtlstest.CA
	issuing                 *mtlstest.CA
	serverCert, serverKey   string
	clientCAFile, interFile string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), serverCA: mtlstest.NewRootCA("Server CA"), clientCA: mtlstest.NewRootCA("Client Root CA")}
	f.issuing = f.clientCA.NewIntermediate("Client Issuing CA")
	srv := f.serverCA.NewServer("127.0.0.1")
	f.serverCert = f.write("server.pem", srv.ChainPEM())
	f.serverKey = f.write("server-key.pem", srv.KeyPEM())
	f.clientCAFile = f.write("client-ca.pem", f.clientCA.CertPEM())
	f.interFile = f.write("intermediates.pem", f.issuing.CertPEM())
	return f
}

func (f *fixture) write(name string, data []byte) string {
	path := filepath.Join(f.dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		panic(err)
	}
	return path
}

// start runs whoami with args and returns its address; it stops with the test.
func start(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan int, 1)
	var stderr syncBuffer
	go func() {
		done <- run(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), &stderr, func(a string) { addrc <- a })
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("whoami did not stop")
		}
	})
	select {
	case addr := <-addrc:
		return addr
	case code := <-done:
		t.Fatalf("whoami exited with %d: %s", code, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("whoami did not start")
	}
	return ""
}

func get(t *testing.T, f *fixture, url string, cert *mtlstest.Leaf, leafOnly bool) (*http.Response, []byte) {
	t.Helper()
	cfg := &tls.Config{RootCAs: f.serverCA.Pool()}
	if cert != nil {
		tc := cert.TLSCertificate()
		if leafOnly {
			tc.Certificate = tc.Certificate[:1]
		}
		cfg.Certificates = []tls.Certificate{tc}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	res, err := client.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res, body
}

func TestWhoamiIdentity(t *testing.T) {
	f := newFixture(t)
	addr := start(t, "-tls-cert", f.serverCert, "-tls-key", f.serverKey, "-client-ca", f.clientCAFile)
	alice := f.issuing.NewClient("alice", mtlstest.WithDNS("alice.example.test"),
		mtlstest.WithEmails("alice@example.test"), mtlstest.WithURIs("spiffe://example.test/alice"),
		mtlstest.WithIPs("192.0.2.7"))

	res, body := get(t, f, "https://"+addr+"/any/path?x=1", alice, false)
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
	assert.Contains(t, string(body), "{\n  \"authenticated\": true,\n", "two-space indentation")

	var got map[string]any
	require.NoError(t, json.Unmarshal(body, &got))
	leaf := alice.Certificate
	assert.Equal(t, true, got["authenticated"])
	assert.Equal(t, "tls", got["source"])
	assert.Equal(t, leaf.Subject.String(), got["subject"])
	assert.Equal(t, leaf.Issuer.String(), got["issuer"])
	assert.Equal(t, leaf.SerialNumber.Text(16), got["serial"], "hex digits, as openssl x509 -serial prints them")
	assert.Len(t, got["sha256"], 64)
	assert.Len(t, got["x5t#S256"], 43)
	assert.Equal(t, []any{"alice.example.test"}, got["dns"])
	assert.Equal(t, []any{"alice@example.test"}, got["emails"])
	assert.Equal(t, []any{"spiffe://example.test/alice"}, got["uris"])
	assert.Equal(t, []any{"192.0.2.7"}, got["ips"])
	assert.Equal(t, leaf.NotAfter.UTC().Format(time.RFC3339), got["not_after"])

	bare := f.issuing.NewClient("bare")
	res, body = get(t, f, "https://"+addr+"/", bare, false)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.NoError(t, json.Unmarshal(body, &got))
	assert.Equal(t, []any{}, got["dns"], "empty lists are [] not null")
	assert.Equal(t, []any{}, got["ips"])
}

func TestWhoamiRefusals(t *testing.T) {
	f := newFixture(t)
	addr := start(t, "-tls-cert", f.serverCert, "-tls-key", f.serverKey, "-client-ca", f.clientCAFile)
	alice := f.issuing.NewClient("alice")
	tests := []struct {
		name     string
		cert     *mtlstest.Leaf
		leafOnly bool
		reason   string
	}{
		{"no certificate", nil, false, "certificate_required"},
		{"untrusted", mtlstest.NewRootCA("Other CA").NewClient("mallory"), false, "certificate_untrusted"},
		{"leaf without its intermediate", alice, true, "certificate_untrusted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := get(t, f, "https://"+addr+"/", tt.cert, tt.leafOnly)
			assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
			assert.Equal(t, "application/problem+json", res.Header.Get("Content-Type"))
			assert.Contains(t, string(body), `"reason":"`+tt.reason+`"`)
		})
	}
}

func TestWhoamiIntermediatesAndOptional(t *testing.T) {
	f := newFixture(t)
	addr := start(t, "-tls-cert", f.serverCert, "-tls-key", f.serverKey, "-client-ca", f.clientCAFile,
		"-intermediates", f.interFile, "-optional")

	res, body := get(t, f, "https://"+addr+"/", nil, false)
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.JSONEq(t, `{"authenticated": false}`, string(body))

	res, body = get(t, f, "https://"+addr+"/", f.issuing.NewClient("alice"), true)
	require.Equal(t, http.StatusOK, res.StatusCode, "the configured intermediate completes a leaf-only chain")
	assert.Contains(t, string(body), `"authenticated": true`)

	res, _ = get(t, f, "https://"+addr+"/", mtlstest.NewRootCA("Other CA").NewClient("mallory"), false)
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "optional mode still refuses a bad certificate")
}

func TestWhoamiBadInvocations(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-nope"}, "flag provided but not defined"},
		{"missing client CA", []string{"-tls-cert", f.serverCert, "-tls-key", f.serverKey}, "-client-ca is required"},
		{"unreadable client CA", []string{"-tls-cert", f.serverCert, "-tls-key", f.serverKey, "-client-ca", "/nonexistent.pem"}, "no such file"},
		{"certificate without key", []string{"-tls-cert", f.serverCert, "-client-ca", f.clientCAFile}, "go together"},
		{"unreadable server key", []string{"-tls-cert", f.serverCert, "-tls-key", "/nonexistent-key.pem", "-client-ca", f.clientCAFile}, "no such file"},
		{"stray argument", []string{"-client-ca", f.clientCAFile, "extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			code := run(ctx, append([]string{"-listen", "127.0.0.1:0"}, tt.args...), &stderr, nil)
			assert.NotEqual(t, 0, code)
			assert.Contains(t, stderr.String(), tt.want)
		})
	}
}

func TestWhoamiPrincipalFromBindings(t *testing.T) {
	f := newFixture(t)
	alice := f.issuing.NewClient("alice-laptop-2026")
	bindings := filepath.Join(f.dir, "bindings")
	require.NoError(t, os.Mkdir(bindings, 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(bindings, "alice.pem"), alice.CertPEM(), 0o600))
	addr := start(t, "-tls-cert", f.serverCert, "-tls-key", f.serverKey, "-client-ca", f.clientCAFile,
		"-bindings", bindings)

	_, body := get(t, f, "https://"+addr+"/", alice, false)
	assert.Contains(t, string(body), `"principal": "alice"`)
	// A renewal with the same key keeps the binding.
	renewed := f.issuing.NewClient("alice-laptop-2027", mtlstest.WithKey(alice.Key))
	_, body = get(t, f, "https://"+addr+"/", renewed, false)
	assert.Contains(t, string(body), `"principal": "alice"`)
	_, body = get(t, f, "https://"+addr+"/", f.issuing.NewClient("bob"), false)
	assert.NotContains(t, string(body), `"principal"`)

	var stderr bytes.Buffer
	code := run(context.Background(), []string{"-tls-cert", f.serverCert, "-tls-key", f.serverKey,
		"-client-ca", f.clientCAFile, "-bindings", filepath.Join(f.dir, "missing")}, &stderr, nil)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr.String(), "missing")
}

func TestWhoamiPin(t *testing.T) {
	f := newFixture(t)
	partner := mtlstest.NewSelfSigned("partner-42")
	sum := sha256.Sum256(partner.Certificate.Raw)
	addr := start(t, "-tls-cert", f.serverCert, "-tls-key", f.serverKey, "-client-ca", f.clientCAFile,
		"-pin", strings.ToUpper(hex.EncodeToString(sum[:])))

	res, body := get(t, f, "https://"+addr+"/", partner, false)
	require.Equal(t, http.StatusOK, res.StatusCode, string(body))
	assert.Contains(t, string(body), `"pinned": true`)
	res, _ = get(t, f, "https://"+addr+"/", mtlstest.NewSelfSigned("stranger"), false)
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode)

	var stderr bytes.Buffer
	code := run(context.Background(), []string{"-tls-cert", f.serverCert, "-tls-key", f.serverKey,
		"-client-ca", f.clientCAFile, "-pin", "abc"}, &stderr, nil)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr.String(), "not 64 hexadecimal digits")
}

// TestWhoamiPinForms: -pin takes the fingerprint as openssl x509 -noout -fingerprint -sha256
// prints it (OpenSSL 3 and earlier), or as hex with or without colons.
func TestWhoamiPinForms(t *testing.T) {
	f := newFixture(t)
	partner := mtlstest.NewSelfSigned("partner-42")
	sum := sha256.Sum256(partner.Certificate.Raw)
	plain := hex.EncodeToString(sum[:])
	var colons []string
	for i := 0; i < len(plain); i += 2 {
		colons = append(colons, strings.ToUpper(plain[i:i+2]))
	}
	colon := strings.Join(colons, ":")
	for name, pin := range map[string]string{
		"hex":         plain,
		"colons":      colon,
		"openssl 3":   "sha256 Fingerprint=" + colon,
		"openssl 1.1": "SHA256 Fingerprint=" + colon,
	} {
		t.Run(name, func(t *testing.T) {
			addr := start(t, "-tls-cert", f.serverCert, "-tls-key", f.serverKey, "-client-ca", f.clientCAFile, "-pin", pin)
			res, body := get(t, f, "https://"+addr+"/", partner, false)
			require.Equal(t, http.StatusOK, res.StatusCode, string(body))
			assert.Contains(t, string(body), `"pinned": true`)
		})
	}
}

func TestWhoamiBadKeyFailsBeforeListening(t *testing.T) {
	f := newFixture(t)
	var stderr bytes.Buffer
	code := run(context.Background(), []string{"-listen", "127.0.0.1:0", "-tls-cert", f.serverCert,
		"-tls-key", f.clientCAFile, "-client-ca", f.clientCAFile}, &stderr, nil)
	assert.Equal(t, 1, code)
	assert.NotContains(t, stderr.String(), "listening")
}
