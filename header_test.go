package mtls

import (
	"bufio"
	"bytes"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/mtls/internal/certheader/proxyenc"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Encoders written independently of the package's own, the way each proxy encodes.
var (
	pemText     = proxyenc.PEM
	nginxEscape = proxyenc.NginxEscape
	envoyEscape = proxyenc.EnvoyEscape
	flatPEM     = proxyenc.FlatPEM
	b64         = proxyenc.B64
	ders        = proxyenc.DERs
)

// --- the real captures ---

const (
	captureClientSHA256 = "8db667b1f6243512ce1ee075a0c7a7123602dcb519e452244839a416e54099e7"
	captureRemote       = "127.0.0.1:50000"
)

var captureNow = time.Date(2027, 6, 1, 12, 0, 0, 0, time.UTC)

func readPEMFile(t testing.TB, name string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "captures", "pki", name))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(b))
	return pool
}

// captureRequest parses a captured raw request as net/http would.
func captureRequest(t testing.TB, proxy, name string) (*http.Request, error) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "captures", proxy, name+".request.raw"))
	require.NoError(t, err)
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return nil, err
	}
	r.RemoteAddr = captureRemote
	return r, nil
}

func TestHeaderCaptures(t *testing.T) {
	const (
		client    = "client"
		untrusted = "untrusted"
		none      = "none"
		unparsed  = "unparsed"
	)
	type capture struct{ name, want string }
	suites := []struct {
		name          string
		proxy, format string
		names         []string
		intermediates bool
		cases         []capture
	}{
		{name: "nginx escaped", proxy: "nginx", format: "nginx", intermediates: true, cases: []capture{
			{"leaf", client}, {"chain", client}, {"chain-with-root", client}, {"spoof-with-cert", client},
			{"optional-leaf", client}, {"optional-chain", client}, {"noca-leaf", client},
			{"noca-rogue", untrusted}, {"optional-nocert-spoof", none}, {"leaf-rawcert", unparsed}}},
		{name: "nginx legacy folded", proxy: "nginx", format: "nginx", names: []string{"X-SSL-Client-Cert-Legacy"}, intermediates: true, cases: []capture{
			{"leaf", client}, {"chain", client}, {"chain-with-root", client}, {"spoof-with-cert", client}}},
		{name: "haproxy", proxy: "haproxy", format: "haproxy", intermediates: true, cases: []capture{
			{"leaf", client}, {"chain", client}, {"chain-with-root", client}, {"spoof-with-cert", client},
			{"optional-leaf", client}, {"optional-chain", client}, {"ignoreerr-leaf", client},
			{"ignoreerr-rogue", untrusted}, {"optional-nocert-spoof", none}, {"ignoreerr-nocert", none}}},
		{name: "haproxy chain header supplies the intermediate", proxy: "haproxy", format: "haproxy", cases: []capture{
			{"chain", client}, {"chain-with-root", client}, {"leaf", untrusted}}},
		{name: "caddy", proxy: "caddy", format: "caddy", intermediates: true, cases: []capture{
			{"leaf", client}, {"chain", client}, {"chain-with-root", client}, {"spoof-with-cert", client},
			{"optional-leaf", client}, {"optional-chain", client}, {"request-rogue", untrusted},
			{"optional-nocert-spoof", none}, {"request-nocert-spoof", none}}},
		{name: "caddy second header", proxy: "caddy", format: "base64-der", names: []string{"X-Client-Cert-Der-B64"}, intermediates: true, cases: []capture{
			{"leaf", client}, {"spoof-with-cert", client}}},
		{name: "apache", proxy: "apache", format: "apache", intermediates: true, cases: []capture{
			{"leaf", client}, {"chain", client}, {"chain-with-root", client}, {"spoof-with-cert", client},
			{"optional-leaf", client}, {"optional-chain", client}, {"noca-rogue", untrusted},
			{"noca-nocert", none}, {"optional-nocert-spoof", none}}},
		{name: "apache chain headers supply the intermediate", proxy: "apache", format: "apache", cases: []capture{
			{"chain", client}, {"chain-with-root", client}, {"leaf", untrusted}}},
		{name: "apache escaped", proxy: "apache", format: "apache", names: []string{"X-SSL-Client-Cert-Escaped"}, intermediates: true, cases: []capture{
			{"leaf", client}, {"chain", client}, {"optional-leaf", client}}},
	}
	for _, s := range suites {
		t.Run(s.name, func(t *testing.T) {
			cfg := Config{
				RootCAs: readPEMFile(t, "root-ca.crt"),
				Now:     func() time.Time { return captureNow },
				Header: &HeaderConfig{
					Format:         MustHeaderFormat(s.format),
					Names:          s.names,
					TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
				},
			}
			if s.intermediates {
				cfg.Intermediates = readPEMFile(t, "intermediate-ca.crt")
			}
			m, err := New(cfg)
			require.NoError(t, err)
			for _, c := range s.cases {
				t.Run(c.name, func(t *testing.T) {
					r, err := captureRequest(t, s.proxy, c.name)
					if c.want == unparsed {
						require.Error(t, err, "net/http refuses this request")
						return
					}
					require.NoError(t, err)
					id, err := m.Authenticate(r)
					switch c.want {
					case client:
						require.NoError(t, err)
						assert.Equal(t, SourceHeader, id.Source)
						assert.Equal(t, s.format, id.Format)
						assert.Equal(t, netip.MustParseAddr("127.0.0.1"), id.Proxy)
						assert.Equal(t, captureClientSHA256, id.SHA256)
						assert.Equal(t, "client-01", id.Leaf.Subject.CommonName)
						assert.Equal(t, "spiffe://example.test/ns/demo/sa/client-01", id.SPIFFEID)
					case untrusted:
						require.ErrorIs(t, err, ErrUntrusted)
					case none:
						require.ErrorIs(t, err, ErrNoCertificate)
					}
				})
			}
		})
	}
}

// --- trust, spoofing and the handler ---

type headerFixture struct {
	p      *pki
	leaf   string // haproxy-style value of alice's leaf
	chain  string // haproxy-style value of alice's intermediate
	trusts netip.Prefix
	proxy  mtlstest.Proxy // haproxy at an address in trusts
}

func newHeaderFixture(t testing.TB) *headerFixture {
	p := newPKI(t)
	return &headerFixture{
		p:      p,
		leaf:   b64(p.alice.Certificate),
		chain:  b64(p.issuing.Certificate),
		trusts: netip.MustParsePrefix("10.0.0.0/8"),
		proxy:  mtlstest.Proxy{Format: MustHeaderFormat("haproxy"), Addr: "10.0.0.1:1"},
	}
}

func (f *headerFixture) middleware(t testing.TB, optional bool, mod func(*HeaderConfig)) *Middleware {
	t.Helper()
	hc := &HeaderConfig{Format: MustHeaderFormat("haproxy"), TrustedProxies: []netip.Prefix{f.trusts}}
	if mod != nil {
		mod(hc)
	}
	m, err := New(Config{RootCAs: f.p.root.Pool(), Intermediates: f.p.issuing.Pool(), Optional: optional, Header: hc})
	require.NoError(t, err)
	return m
}

// seen records what the next handler saw.
type seen struct {
	called bool
	id     *Identity
	header http.Header
}

func (s *seen) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.called = true
		s.id, _ = FromContext(r.Context())
		s.header = r.Header.Clone()
	})
}

func TestHeaderSpoofingMatrix(t *testing.T) {
	f := newHeaderFixture(t)
	big := strings.Repeat("A", DefaultHeaderMaxBytes+4)
	tests := []struct {
		name     string
		format   string // default haproxy
		remote   string
		optional bool
		tls      []*x509.Certificate
		headers  [][2]string
		status   int
		reason   string
		wantID   Source
		stripped bool
	}{
		{name: "trusted proxy, leaf", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", f.leaf}}, status: 200, wantID: SourceHeader},
		{name: "trusted proxy, leaf and chain", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", f.leaf}, {"X-SSL-Client-Chain", f.chain}}, status: 200, wantID: SourceHeader},
		{name: "trusted proxy over IPv4-mapped IPv6", remote: "[::ffff:10.1.2.3]:4000", headers: [][2]string{{"X-SSL-Client-Cert", f.leaf}, {"X-SSL-Client-Chain", f.chain}}, status: 200, wantID: SourceHeader},
		{name: "untrusted peer, header only, required", remote: "192.0.2.1:4000", headers: [][2]string{{"X-SSL-Client-Cert", f.leaf}, {"X-SSL-Client-Chain", f.chain}}, status: 401, reason: ReasonCertificateRequired},
		{name: "untrusted peer, header only, optional", remote: "192.0.2.1:4000", optional: true, headers: [][2]string{{"X-SSL-Client-Cert", f.leaf}, {"X-SSL-Client-Chain", f.chain}}, status: 200, stripped: true},
		{name: "untrusted peer with TLS cert, header ignored", remote: "192.0.2.1:4000", tls: f.p.alice.Chain(), headers: [][2]string{{"X-SSL-Client-Cert", "SPOOFED"}}, status: 200, wantID: SourceTLS, stripped: true},
		{name: "unparsable remote address", remote: "somewhere", headers: [][2]string{{"X-SSL-Client-Cert", f.leaf}}, status: 401, reason: ReasonCertificateRequired},
		{name: "bare address, as real-IP middlewares write it", remote: "10.1.2.3", headers: [][2]string{{"X-SSL-Client-Cert", f.leaf}}, status: 401, reason: ReasonCertificateRequired},
		{name: "bare IPv6 address", remote: "::ffff:10.1.2.3", headers: [][2]string{{"X-SSL-Client-Cert", f.leaf}}, status: 401, reason: ReasonCertificateRequired},
		{name: "duplicate header lines", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", f.leaf}, {"X-SSL-Client-Cert", f.leaf}}, status: 400, reason: ReasonMalformedHeader},
		{name: "duplicate chain lines", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", f.leaf}, {"X-SSL-Client-Chain", f.chain}, {"X-SSL-Client-Chain", f.chain}}, status: 400, reason: ReasonMalformedHeader},
		{name: "rfc9440 chain list split over two lines", format: "rfc9440", remote: "10.1.2.3:4000", headers: [][2]string{{"Client-Cert", ":" + f.leaf + ":"}, {"Client-Cert-Chain", ":" + f.chain + ":"}, {"Client-Cert-Chain", ":" + b64(f.p.root.Certificate) + ":"}}, status: 200, wantID: SourceHeader},
		{name: "rfc9440 leaf on two lines", format: "rfc9440", remote: "10.1.2.3:4000", headers: [][2]string{{"Client-Cert", ":" + f.leaf + ":"}, {"Client-Cert", ":" + f.leaf + ":"}}, status: 400, reason: ReasonMalformedHeader},
		{name: "rfc9440 split chain over the limit", format: "rfc9440", remote: "10.1.2.3:4000", headers: [][2]string{{"Client-Cert", ":" + f.leaf + ":"}, {"Client-Cert-Chain", ":" + big + ":"}, {"Client-Cert-Chain", ":" + f.chain + ":"}}, status: 400, reason: ReasonMalformedHeader},
		{name: "oversized", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", big}}, status: 400, reason: ReasonMalformedHeader},
		{name: "empty from trusted proxy", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", ""}}, status: 401, reason: ReasonCertificateRequired},
		{name: "empty from trusted proxy, optional", remote: "10.1.2.3:4000", optional: true, headers: [][2]string{{"X-SSL-Client-Cert", ""}}, status: 200, stripped: true},
		{name: "absent from trusted proxy with its own TLS cert", remote: "10.1.2.3:4000", tls: f.p.alice.Chain(), status: 401, reason: ReasonCertificateRequired},
		{name: "garbage", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", "SPOOFED"}}, status: 400, reason: ReasonMalformedHeader},
		{name: "trailing garbage", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", f.leaf + "AAAA"}}, status: 400, reason: ReasonMalformedHeader},
		{name: "chain only", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Chain", f.chain}}, status: 400, reason: ReasonMalformedHeader},
		{name: "untrusted certificate from trusted proxy", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", b64(mtlstest.NewSelfSigned("rogue").Certificate)}}, status: 401, reason: ReasonCertificateUntrusted},
		{name: "apache (null)", format: "apache", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", "(null)"}, {"X-SSL-Client-Chain-0", "(null)"}}, status: 401, reason: ReasonCertificateRequired},
		{name: "apache (null), optional", format: "apache", optional: true, remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", "(null)"}}, status: 200, stripped: true},
		{name: "caddy placeholder", format: "caddy", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", "{http.request.tls.client.certificate_der_base64}"}}, status: 401, reason: ReasonCertificateRequired},
		{name: "caddy placeholder, optional", format: "caddy", optional: true, remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", "{http.request.tls.client.certificate_der_base64}"}}, status: 200, stripped: true},
		{name: "apache chain only", format: "apache", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", "(null)"}, {"X-SSL-Client-Chain-0", flatPEM(f.p.issuing.Certificate)}}, status: 400, reason: ReasonMalformedHeader},
		{name: "rfc9440 chain only", format: "rfc9440", remote: "10.1.2.3:4000", headers: [][2]string{{"Client-Cert-Chain", ":" + f.chain + ":"}}, status: 400, reason: ReasonMalformedHeader},
		{name: "CA certificate as chain leaf", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", f.chain}}, status: 401, reason: ReasonCertificateUsage},
		// CGI, FastCGI and WSGI consumers read X_SSL_Client_Cert as X-SSL-Client-Cert.
		{name: "untrusted peer, underscore spelling, optional", remote: "192.0.2.1:4000", optional: true, headers: [][2]string{{"X_SSL_Client_Cert", f.leaf}, {"x_ssl_client-chain", f.chain}}, status: 200, stripped: true},
		{name: "untrusted peer with TLS cert, underscore spelling", remote: "192.0.2.1:4000", tls: f.p.alice.Chain(), headers: [][2]string{{"X_SSL_CLIENT_CERT", "SPOOFED"}}, status: 200, wantID: SourceTLS, stripped: true},
		{name: "trusted proxy, underscore spelling beside the header", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", f.leaf}, {"X_SSL_Client_Cert", f.leaf}}, status: 400, reason: ReasonMalformedHeader},
		{name: "trusted proxy, underscore spelling alone", remote: "10.1.2.3:4000", headers: [][2]string{{"X_SSL_Client_Cert", f.leaf}}, status: 400, reason: ReasonMalformedHeader},
		{name: "trusted proxy, underscore spelling of the chain", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", f.leaf}, {"X-SSL-Client_Chain", f.chain}}, status: 400, reason: ReasonMalformedHeader},
		// PHP reads X.SSL.Client.Cert as X_SSL_Client_Cert, and CGI mappings take any byte but a
		// letter or digit for '_'.
		{name: "untrusted peer, punctuation spellings, optional", remote: "192.0.2.1:4000", optional: true, headers: [][2]string{{"X.Ssl.Client.Cert", f.leaf}, {"X~Ssl~Client~Chain", f.chain}, {"X-Ssl-Client!Verify", "SUCCESS"}}, status: 200, stripped: true},
		{name: "untrusted peer with TLS cert, dot spelling", remote: "192.0.2.1:4000", tls: f.p.alice.Chain(), headers: [][2]string{{"X.SSL.Client.Cert", "SPOOFED"}, {"X-Ssl-Client-S.Dn", "CN=admin"}}, status: 200, wantID: SourceTLS, stripped: true},
		{name: "trusted proxy, dot spelling alone", remote: "10.1.2.3:4000", headers: [][2]string{{"X.Ssl.Client.Cert", f.leaf}}, status: 400, reason: ReasonMalformedHeader},
		{name: "trusted proxy, tilde spelling beside the header", remote: "10.1.2.3:4000", headers: [][2]string{{"X-SSL-Client-Cert", f.leaf}, {"X~Ssl~Client~Cert", f.leaf}}, status: 400, reason: ReasonMalformedHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := f.middleware(t, tt.optional, func(hc *HeaderConfig) {
				if tt.format != "" {
					hc.Format = MustHeaderFormat(tt.format)
				}
			})
			var s seen
			h := m.Handler(s.handler())
			r := httptest.NewRequest(http.MethodGet, "http://api.example.test/", nil)
			if tt.tls != nil {
				r = mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", tt.tls...)
			}
			r.RemoteAddr = tt.remote
			for _, kv := range tt.headers {
				r.Header.Add(kv[0], kv[1])
			}
			before := r.Header.Clone()
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			require.Equal(t, tt.status, w.Code, w.Body.String())
			assert.Equal(t, before, r.Header, "the caller's request is never modified")
			if tt.reason != "" {
				assert.Contains(t, w.Body.String(), `"reason":"`+tt.reason+`"`)
				assert.False(t, s.called)
				return
			}
			require.True(t, s.called)
			if tt.wantID == "" {
				assert.Nil(t, s.id)
			} else {
				require.NotNil(t, s.id)
				assert.Equal(t, tt.wantID, s.id.Source)
				assert.Equal(t, "alice", s.id.Leaf.Subject.CommonName)
			}
			if tt.stripped {
				for k := range s.header {
					norm := strings.Map(func(c rune) rune { // as a CGI mapping reads it
						if 'a' <= c && c <= 'z' || '0' <= c && c <= '9' {
							return c
						}
						return '-'
					}, strings.ToLower(k))
					assert.False(t, strings.HasPrefix(norm, "x-ssl-client-"), "header %q left for the next handler", k)
				}
			}
		})
	}
}

func TestHeaderIdentity(t *testing.T) {
	f := newHeaderFixture(t)
	m := f.middleware(t, false, nil)
	r := mtlstest.Proxy{Format: MustHeaderFormat("haproxy"), Addr: "10.9.8.7:1234"}.NewRequest(http.MethodGet, "/", f.p.alice.Certificate)
	id, err := m.Authenticate(r)
	require.NoError(t, err)
	assert.Equal(t, SourceHeader, id.Source)
	assert.Equal(t, "haproxy", id.Format)
	assert.Equal(t, netip.MustParseAddr("10.9.8.7"), id.Proxy)
	assert.Equal(t, f.p.alice.SHA256(), id.SHA256)
	assert.Equal(t, "spiffe://example.test/ns/prod/sa/alice", id.SPIFFEID)
	require.Len(t, id.Chain, 3, "leaf, intermediate, root")
}

func TestHeaderProxyByCertificate(t *testing.T) {
	f := newHeaderFixture(t)
	proxyLeaf := f.p.issuing.NewClient("front-proxy", mtlstest.WithURIs("spiffe://example.test/front-proxy"))
	isProxy := PolicyFunc(func(id *Identity) error {
		if id.SPIFFEID != "spiffe://example.test/front-proxy" {
			return ErrDenied
		}
		return nil
	})
	tests := []struct {
		name     string
		prefixes []netip.Prefix
		remote   string
		peer     []*x509.Certificate
		status   int
		source   Source
		cn       string
	}{
		{"proxy certificate", nil, "192.0.2.1:1", proxyLeaf.Chain(), 200, SourceHeader, "alice"},
		{"client certificate refused by the proxy policy: TLS wins", nil, "192.0.2.1:1", f.p.alice.Chain(), 200, SourceTLS, "alice"},
		{"no TLS certificate", nil, "192.0.2.1:1", nil, 401, "", ""},
		{"unverifiable proxy certificate", nil, "192.0.2.1:1", []*x509.Certificate{mtlstest.NewSelfSigned("front-proxy", mtlstest.WithURIs("spiffe://example.test/front-proxy")).Certificate}, 401, "", ""},
		{"both: proxy certificate and address", []netip.Prefix{f.trusts}, "10.0.0.1:1", proxyLeaf.Chain(), 200, SourceHeader, "alice"},
		{"both: proxy certificate from outside the prefixes", []netip.Prefix{f.trusts}, "192.0.2.1:1", proxyLeaf.Chain(), 200, SourceTLS, "front-proxy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := f.middleware(t, false, func(hc *HeaderConfig) {
				hc.TrustedProxies = tt.prefixes
				hc.ProxyPolicy = isProxy
			})
			var s seen
			r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", tt.peer...)
			if tt.peer == nil {
				r.TLS = nil
			}
			r.RemoteAddr = tt.remote
			r.Header.Set("X-SSL-Client-Cert", f.leaf)
			w := httptest.NewRecorder()
			m.Handler(s.handler()).ServeHTTP(w, r)
			require.Equal(t, tt.status, w.Code)
			if tt.status == 200 {
				assert.Equal(t, tt.source, s.id.Source)
				assert.Equal(t, tt.cn, s.id.Leaf.Subject.CommonName)
			}
		})
	}
}

func TestHeaderRevokedProxyCertificate(t *testing.T) {
	f := newHeaderFixture(t)
	proxyLeaf := f.p.issuing.NewClient("front-proxy", mtlstest.WithURIs("spiffe://example.test/front-proxy"))
	deny := NewDenyList()
	m, err := New(Config{RootCAs: f.p.root.Pool(), Intermediates: f.p.issuing.Pool(),
		Revocation: &RevocationConfig{DenyList: deny},
		Header: &HeaderConfig{Format: MustHeaderFormat("haproxy"), ProxyPolicy: PolicyFunc(func(id *Identity) error {
			if id.SPIFFEID != "spiffe://example.test/front-proxy" {
				return ErrDenied
			}
			return nil
		})}})
	require.NoError(t, err)
	r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", proxyLeaf.Chain()...)
	r.Header.Set("X-SSL-Client-Cert", f.leaf)
	id, err := m.Authenticate(r)
	require.NoError(t, err)
	assert.Equal(t, SourceHeader, id.Source)

	deny.Set(DenyCertificate(sha256.Sum256(proxyLeaf.Certificate.Raw)))
	_, err = m.Authenticate(r)
	require.ErrorIs(t, err, ErrRevoked, "a revoked proxy is no proxy: its own certificate is judged, and refused")
}

func TestHeaderDangerouslyTrustProxyVerification(t *testing.T) {
	f := newHeaderFixture(t)
	rogue := mtlstest.NewSelfSigned("rogue")
	now := time.Now()
	expired := mtlstest.NewSelfSigned("old", mtlstest.WithValidity(now.Add(-48*time.Hour), now.Add(-time.Hour)))
	serverOnly := f.p.issuing.NewServer("server.example.test")
	tests := []struct {
		name    string
		trust   bool
		leaf    *x509.Certificate
		wantErr error
	}{
		{"verified by default", false, rogue.Certificate, ErrUntrusted},
		{"proxy verdict trusted", true, rogue.Certificate, nil},
		{"expiry still checked", true, expired.Certificate, ErrExpired},
		{"usage still checked", true, serverOnly.Certificate, ErrWrongUsage},
		{"CA still refused", true, f.p.issuing.Certificate, ErrWrongUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := f.middleware(t, false, func(hc *HeaderConfig) { hc.DangerouslyTrustProxyVerification = tt.trust })
			id, err := m.Authenticate(f.proxy.NewRequest(http.MethodGet, "/", tt.leaf))
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.leaf.Raw, id.Leaf.Raw)
		})
	}
	t.Run("forwarded intermediates are not kept", func(t *testing.T) {
		m := f.middleware(t, false, func(hc *HeaderConfig) { hc.DangerouslyTrustProxyVerification = true })
		id, err := m.Authenticate(f.proxy.NewRequest(http.MethodGet, "/", rogue.Certificate, f.p.issuing.Certificate))
		require.NoError(t, err)
		require.Len(t, id.Chain, 1, "an unverified intermediate must not reach issuer rules")
	})
}

func TestHeaderConfigErrors(t *testing.T) {
	p := newPKI(t)
	nginx := MustHeaderFormat("nginx")
	lan := netip.MustParsePrefix("10.0.0.0/8")
	tests := []struct {
		name string
		hc   HeaderConfig
		want []string
	}{
		{"no trusted proxy", HeaderConfig{Format: nginx}, []string{"without a trusted proxy"}},
		{"no format", HeaderConfig{TrustedProxies: []netip.Prefix{lan}}, []string{"Header.Format: is nil"}},
		{"everyone v4", HeaderConfig{Format: nginx, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}, []string{"every peer"}},
		{"everyone v6", HeaderConfig{Format: nginx, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::/0")}}, []string{"every peer"}},
		{"everyone v4-mapped", HeaderConfig{Format: nginx, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::ffff:0.0.0.0/96")}}, []string{"every peer"}},
		{"invalid prefix", HeaderConfig{Format: nginx, TrustedProxies: []netip.Prefix{{}}}, []string{"invalid prefix"}},
		{"negative size", HeaderConfig{Format: nginx, TrustedProxies: []netip.Prefix{lan}, MaxBytes: -1}, []string{"negative"}},
		{"too many names", HeaderConfig{Format: nginx, TrustedProxies: []netip.Prefix{lan}, Names: []string{"A", "B"}}, []string{"at most 1"}},
		{"bad name", HeaderConfig{Format: MustHeaderFormat("pem"), TrustedProxies: []netip.Prefix{lan}, Names: []string{"X Cert"}}, []string{"invalid header name"}},
		{"same name twice", HeaderConfig{Format: MustHeaderFormat("pem"), TrustedProxies: []netip.Prefix{lan}, Names: []string{"x-cert", "X-Cert"}}, []string{"twice"}},
		{"every problem at once", HeaderConfig{}, []string{"Header.Format: is nil", "without a trusted proxy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hc := tt.hc
			_, err := New(Config{RootCAs: p.root.Pool(), Header: &hc})
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	t.Run("v4-mapped prefix is unmapped", func(t *testing.T) {
		m, err := New(Config{RootCAs: p.root.Pool(), Header: &HeaderConfig{Format: nginx,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}}})
		require.NoError(t, err)
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "10.1.1.1:80"
		_, ok := m.trustedProxy(m.state.Load(), r)
		assert.True(t, ok)
	})
}

// customFormat shows that users can plug in their own format.
type customFormat struct{}

func (customFormat) Name() string          { return "hex-der" }
func (customFormat) HeaderNames() []string { return []string{"X-Hex-Cert"} }
func (customFormat) Decode(v []string) ([][]byte, error) {
	if v[0] == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(v[0])
	return [][]byte{b}, err // an error that does not wrap ErrMalformedHeader
}

func TestHeaderCustomFormat(t *testing.T) {
	f := newHeaderFixture(t)
	m := f.middleware(t, false, func(hc *HeaderConfig) { hc.Format = customFormat{} })
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	r.Header.Set("X-Hex-Cert", hex.EncodeToString(f.p.alice.Certificate.Raw))
	id, err := m.Authenticate(r)
	require.NoError(t, err)
	assert.Equal(t, "hex-der", id.Format)

	r.Header.Set("X-Hex-Cert", "zz")
	_, err = m.Authenticate(r)
	require.ErrorIs(t, err, ErrMalformedHeader, "a custom format's error is reported as malformed")
}

func TestHeaderCache(t *testing.T) {
	f := newHeaderFixture(t)
	m := f.middleware(t, false, nil)
	req := func(remote string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-SSL-Client-Cert", f.leaf)
		return r
	}
	a, err := m.Authenticate(req("10.0.0.1:1"))
	require.NoError(t, err)
	b, err := m.Authenticate(req("10.0.0.2:1"))
	require.NoError(t, err)
	assert.NotSame(t, a, b, "a request from another proxy gets its own copy")
	assert.Same(t, a.Leaf, b.Leaf, "the verification was reused")
	assert.Equal(t, netip.MustParseAddr("10.0.0.1"), a.Proxy)
	assert.Equal(t, netip.MustParseAddr("10.0.0.2"), b.Proxy)
	assert.Equal(t, 1, m.state.Load().cache.len())
	again, err := m.Authenticate(req("10.0.0.1:2"))
	require.NoError(t, err)
	assert.Same(t, a, again, "the proxy that filled the entry shares the cached identity")
	assert.Equal(t, netip.MustParseAddr("10.0.0.1"), a.Proxy, "a copy for another proxy left it alone")

	// The malformed outcome is cached as well, and never mistaken for the good one.
	bad := req("10.0.0.1:1")
	bad.Header.Set("X-SSL-Client-Cert", f.leaf[:len(f.leaf)-4])
	_, err = m.Authenticate(bad)
	require.ErrorIs(t, err, ErrMalformedHeader)
	_, err = m.Authenticate(bad)
	require.ErrorIs(t, err, ErrMalformedHeader)
	assert.Equal(t, 2, m.state.Load().cache.len())
}

// TestHeaderHotPathAllocations holds the cached header-mode request to the budget of 3.
func TestHeaderHotPathAllocations(t *testing.T) {
	f := newHeaderFixture(t)
	m := f.middleware(t, false, nil)
	h := m.Handler(noop)
	r := f.proxy.NewRequest(http.MethodGet, "/", f.p.alice.Chain()...)
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, r)
	id, err := m.Authenticate(r)
	require.NoError(t, err)
	require.Equal(t, SourceHeader, id.Source)
	if allocs := testing.AllocsPerRun(200, func() { h.ServeHTTP(w, r) }); allocs > 2 {
		t.Fatalf("cached header-mode request allocates %v times, budget is 2", allocs)
	}
}

// TestHeaderXFCCUnquotedSANInjection: Envoy writes URI and DNS values as they are, unquoted and
// unescaped even when they hold ",", ";" or a leading quote, so a client whose certificate
// carries a crafted SAN can append what looks like a further element after the one the proxy
// wrote. It must not be read as the last one.
func TestHeaderXFCCUnquotedSANInjection(t *testing.T) {
	f := newHeaderFixture(t)
	victim := envoyEscape(pemText(f.p.alice.Certificate))
	for _, tt := range []struct{ name, key, san string }{
		{"URI", "URI", "https://mallory.example.test/x,Cert=" + victim},
		{"DNS", "DNS", "mallory.example.test,Cert=" + victim},
		{"empty DNS before the comma", "DNS", ",Cert=" + victim},
		{"DNS led by a quote", "DNS", `"mallory",Cert=` + victim},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opt := mtlstest.WithDNS(tt.san)
			if tt.key == "URI" {
				opt = mtlstest.WithURIs(tt.san)
			}
			mallory := f.p.issuing.NewClient("mallory", opt)
			sum := sha256.Sum256(mallory.Certificate.Raw)
			// What Envoy writes for mallory (SANITIZE_SET with Cert and the SANs).
			xfcc := "Hash=" + hex.EncodeToString(sum[:]) + `;Cert="` + envoyEscape(pemText(mallory.Certificate)) +
				`";Subject="CN=mallory";` + tt.key + "=" + tt.san
			m := f.middleware(t, false, func(hc *HeaderConfig) { hc.Format = MustHeaderFormat("envoy-xfcc") })
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = "10.0.0.1:1"
			r.Header.Set("X-Forwarded-Client-Cert", xfcc)
			id, err := m.Authenticate(r)
			if err == nil {
				assert.NotEqual(t, "alice", id.Leaf.Subject.CommonName, "mallory authenticated as alice")
			}
			require.ErrorIs(t, err, ErrMalformedHeader)
		})
	}
}

// TestHeaderStripNonCanonicalKeys: a request built by code (an adapter, a test, another
// middleware) may hold the certificate header under a non-canonical key, which a reverse proxy
// would still send on. Every spelling is removed from a request whose identity is not the header.
func TestHeaderStripNonCanonicalKeys(t *testing.T) {
	f := newHeaderFixture(t)
	m := f.middleware(t, true, nil)
	for _, tt := range []struct {
		name   string
		remote string
		tls    []*x509.Certificate
		source Source
	}{
		{"untrusted peer with TLS certificate", "192.0.2.1:1", f.p.alice.Chain(), SourceTLS},
		{"untrusted peer without certificate", "192.0.2.1:1", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.tls != nil {
				r = mtlstest.NewRequest(http.MethodGet, "/", tt.tls...)
			}
			r.RemoteAddr = tt.remote
			r.Header["x-ssl-client-cert"] = []string{f.leaf}
			r.Header["X-SSL-CLIENT-CHAIN"] = []string{f.chain}
			var s seen
			w := httptest.NewRecorder()
			m.Handler(s.handler()).ServeHTTP(w, r)
			require.Equal(t, http.StatusOK, w.Code)
			if tt.source != "" {
				require.NotNil(t, s.id)
				assert.Equal(t, tt.source, s.id.Source)
			}
			for k := range s.header {
				assert.False(t, strings.HasPrefix(strings.ToLower(k), "x-ssl-client-"), "header %q left for the next handler", k)
			}
			assert.Contains(t, r.Header, "x-ssl-client-cert", "the caller's request is not modified")
		})
	}
}

// TestHeaderScreensBeforeParsing: forwarded certificates beyond a bound are refused before
// x509 parses them, and the refusal takes no room in the cache.
func TestHeaderScreensBeforeParsing(t *testing.T) {
	f := newHeaderFixture(t)
	throwaway := ecKey(t, elliptic.P256())
	issuer := f.p.issuing.Certificate.Subject.CommonName
	packed := mint(t, "mallory", issuer, false, throwaway.Public(), throwaway, withExtensions(100))
	m := f.middleware(t, false, func(hc *HeaderConfig) { hc.Format = MustHeaderFormat("rfc9440") })
	many := make([]string, 0, defaultMaxChainDepth+presentedSurplus+1) // one more than allowed, with the leaf
	for range cap(many) {
		many = append(many, ":"+b64(f.p.issuing.Certificate)+":")
	}
	for name, tt := range map[string]struct{ leaf, chain, want string }{
		"extension-packed": {":" + b64(packed) + ":", "", "forwarded certificate 1: 102 extensions"},
		"too many":         {":" + f.leaf + ":", strings.Join(many, ", "), "10 certificates forwarded"},
	} {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = "10.1.2.3:4000"
			r.Header.Set("Client-Cert", tt.leaf)
			if tt.chain != "" {
				r.Header.Set("Client-Cert-Chain", tt.chain)
			}
			_, err := m.Authenticate(r)
			require.ErrorIs(t, err, ErrUntrusted)
			assert.ErrorContains(t, err, tt.want)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Nil(t, e.Leaf, "nothing was parsed")
			assert.Zero(t, m.state.Load().cache.len())
		})
	}
}
