package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ekuExtension is an extended key usage extension listing oids, however crypto/x509 would write
// it (an empty list too, which it never writes).
func ekuExtension(t *testing.T, oids ...asn1.ObjectIdentifier) mtlstest.Option {
	der, err := asn1.Marshal(append([]asn1.ObjectIdentifier{}, oids...))
	require.NoError(t, err)
	return mtlstest.WithExtension(pkix.Extension{Id: oidExtKeyUsage, Value: der})
}

// keyUsageExtension is a key usage extension holding ku (bits as crypto/x509 numbers them; none
// at all too, which crypto/x509 never writes).
func keyUsageExtension(t *testing.T, ku x509.KeyUsage) mtlstest.Option {
	bits := asn1.BitString{Bytes: make([]byte, 2)}
	for i := range 9 {
		if ku&(1<<i) != 0 {
			bits.Bytes[i/8] |= 0x80 >> (i % 8)
			bits.BitLength = i + 1
		}
	}
	bits.Bytes = bits.Bytes[:(bits.BitLength+7)/8]
	der, err := asn1.Marshal(bits)
	require.NoError(t, err)
	return mtlstest.WithExtension(pkix.Extension{Id: oidKeyUsage, Critical: true, Value: der})
}

// netscapeCertType is a Netscape certificate type extension whose DER value is der.
func netscapeCertType(der ...byte) mtlstest.Option {
	return mtlstest.WithExtension(pkix.Extension{Id: oidNetscapeCertType, Value: der})
}

// Netscape certificate types, as a DER BIT STRING.
var (
	nsSSLClient = []byte{0x03, 0x02, 0x07, 0x80}
	nsSSLServer = []byte{0x03, 0x02, 0x06, 0x40}
	nsBoth      = []byte{0x03, 0x02, 0x06, 0xc0}
)

// TestNoExtKeyUsage: a leaf without the extended key usage extension is refused by default,
// with a detail naming Config.DangerouslyAllowNoExtKeyUsage, and accepted with it; a leaf whose
// extension does not list clientAuth (anyExtendedKeyUsage alone included), a CA, and a leaf below
// an intermediate whose usages exclude clientAuth are refused either way. Every way in agrees: a
// request on its TLS connection, a proxy's header, a real handshake with the decision in the
// request, RejectAtHandshake, and a verifying ClientAuth of the base configuration.
func TestNoExtKeyUsage(t *testing.T) {
	p := newPKI(t)
	serverIssuing := p.root.NewIntermediate("Server Issuing CA", mtlstest.WithExtKeyUsage(x509.ExtKeyUsageServerAuth))
	clientIssuing := p.root.NewIntermediate("Client Issuing CA", mtlstest.WithExtKeyUsage(x509.ExtKeyUsageClientAuth))
	none := mtlstest.WithExtKeyUsage()
	pinnedNoEKU := mtlstest.NewSelfSigned("partner", none)

	const (
		ok        = ""
		noEKU     = "has no extended key usage extension, and clientAuth must be listed: have the CA issue it for client authentication"
		option    = "Config.DangerouslyAllowNoExtKeyUsage"
		lacks     = "lacks the clientAuth extended key usage"
		anyEKU    = "anyExtendedKeyUsage does not stand for it"
		isCA      = "is a CA certificate"
		chainDeny = "a CA certificate whose extended key usages do not include clientAuth"
		notClient = "has no extended key usage, which Config.DangerouslyAllowNoExtKeyUsage accepts, but "
	)
	tests := []struct {
		name          string
		leaf          *mtlstest.Leaf
		pinned        bool
		byDefault     string // ok, or what the refusal's detail says
		withOption    string
		refusedAlways bool // refused with the option too (withOption is then its detail)
	}{
		{name: "clientAuth", leaf: p.alice, byDefault: ok, withOption: ok},
		{name: "no extension", leaf: p.issuing.NewClient("legacy", none), byDefault: noEKU, withOption: ok},
		{name: "no extension, intermediate for clients", leaf: clientIssuing.NewClient("legacy", none), byDefault: noEKU, withOption: ok},
		{name: "no extension, pinned", leaf: pinnedNoEKU, pinned: true, byDefault: noEKU, withOption: ok},
		{name: "serverAuth only", leaf: p.issuing.NewClient("web", mtlstest.WithExtKeyUsage(x509.ExtKeyUsageServerAuth)),
			byDefault: lacks + " (it has serverAuth)", withOption: lacks, refusedAlways: true},
		{name: "anyExtendedKeyUsage only", leaf: p.issuing.NewClient("any", mtlstest.WithExtKeyUsage(x509.ExtKeyUsageAny)),
			byDefault: anyEKU, withOption: anyEKU, refusedAlways: true},
		{name: "anyExtendedKeyUsage and clientAuth", leaf: p.issuing.NewClient("both", mtlstest.WithExtKeyUsage(x509.ExtKeyUsageAny, x509.ExtKeyUsageClientAuth)),
			byDefault: ok, withOption: ok},
		{name: "empty extension", leaf: p.issuing.NewClient("empty", none, ekuExtension(t)),
			byDefault: "(its extended key usage extension lists none)", withOption: lacks, refusedAlways: true},
		{name: "unknown usage only", leaf: p.issuing.NewClient("odd", none, ekuExtension(t, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1})),
			byDefault: "(it has 1.3.6.1.4.1.99999.1)", withOption: lacks, refusedAlways: true},
		{name: "CA without extension", leaf: p.issuing.NewClient("ca", none, mtlstest.WithCA()),
			byDefault: isCA, withOption: isCA, refusedAlways: true},
		{name: "no extension, intermediate for servers", leaf: serverIssuing.NewClient("legacy", none),
			byDefault: noEKU, withOption: chainDeny, refusedAlways: true},
		// With the option, a leaf without the extension must be one OpenSSL's sslclient purpose
		// (nginx) accepts too: key usage and Netscape certificate type, when present, allow it.
		{name: "no extension, key usage keyAgreement", leaf: p.issuing.NewClient("legacy", none, keyUsageExtension(t, x509.KeyUsageKeyAgreement)),
			byDefault: noEKU, withOption: ok},
		{name: "no extension, key usage without digitalSignature or keyAgreement",
			leaf:      p.issuing.NewClient("legacy", none, keyUsageExtension(t, x509.KeyUsageKeyEncipherment|x509.KeyUsageDataEncipherment)),
			byDefault: noEKU, withOption: notClient + "its key usage allows neither digitalSignature nor keyAgreement (it has keyEncipherment, dataEncipherment)",
			refusedAlways: true},
		{name: "no extension, empty key usage", leaf: p.issuing.NewClient("legacy", none, keyUsageExtension(t, 0)),
			byDefault: noEKU, withOption: "(its key usage extension lists none)", refusedAlways: true},
		{name: "no extension, Netscape SSL client", leaf: p.issuing.NewClient("legacy", none, netscapeCertType(nsSSLClient...)),
			byDefault: noEKU, withOption: ok},
		{name: "no extension, Netscape SSL client and server", leaf: p.issuing.NewClient("legacy", none, netscapeCertType(nsBoth...)),
			byDefault: noEKU, withOption: ok},
		{name: "no extension, Netscape SSL server only", leaf: p.issuing.NewClient("web", none, netscapeCertType(nsSSLServer...)),
			byDefault: noEKU, withOption: notClient + "its Netscape certificate type (2.16.840.1.113730.1.1) does not include SSL client (it has sslServer)",
			refusedAlways: true},
		{name: "no extension, Netscape type malformed", leaf: p.issuing.NewClient("odd", none, netscapeCertType(0x04, 0x01, 0x80)),
			byDefault: noEKU, withOption: "Netscape certificate type extension (2.16.840.1.113730.1.1) does not parse", refusedAlways: true},
	}
	serverCA := mtlstest.NewRootCA("Server CA")
	serverCert := serverCA.NewServer("127.0.0.1").TLSCertificate()
	for _, allow := range []bool{false, true} {
		for _, tt := range tests {
			want, refused := tt.byDefault, tt.byDefault != ok
			if allow {
				want, refused = tt.withOption, tt.refusedAlways
			}
			name := tt.name
			if allow {
				name += "/allowed"
			}
			cfg := func() Config {
				c := Config{RootCAs: p.root.Pool(), DangerouslyAllowNoExtKeyUsage: allow}
				if tt.pinned {
					c.PinnedSHA256 = []string{tt.leaf.SHA256()}
				}
				return c
			}
			t.Run(name+"/request", func(t *testing.T) {
				m, err := New(cfg())
				require.NoError(t, err)
				id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", tt.leaf.Chain()...))
				if !refused {
					require.NoError(t, err)
					assert.Equal(t, tt.leaf.Certificate.Raw, id.Leaf.Raw)
					return
				}
				require.ErrorIs(t, err, ErrWrongUsage)
				assert.Contains(t, err.Error(), want)
				if want == noEKU {
					assert.Contains(t, err.Error(), option, "the detail names the option")
				}
				if allow {
					assert.NotContains(t, err.Error(), "has no extended key usage extension")
				}
			})
			t.Run(name+"/header", func(t *testing.T) {
				c := cfg()
				c.Header = &HeaderConfig{Format: MustHeaderFormat("haproxy"), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
				m, err := New(c)
				require.NoError(t, err)
				proxy := mtlstest.Proxy{Format: c.Header.Format, Addr: "10.0.0.1:1"}
				id, err := m.Authenticate(proxy.NewRequest(http.MethodGet, "/", tt.leaf.Chain()...))
				if !refused {
					require.NoError(t, err)
					assert.Equal(t, SourceHeader, id.Source)
					return
				}
				require.ErrorIs(t, err, ErrWrongUsage)
				assert.Contains(t, err.Error(), want)
			})
			t.Run(name+"/TLS", func(t *testing.T) {
				m, err := New(cfg())
				require.NoError(t, err)
				srv, serverCA := tlsServer(t, m, echoIdentity)
				res, err := clientFor(serverCA, tt.leaf).Get(srv.URL)
				require.NoError(t, err)
				defer res.Body.Close()
				if !refused {
					assert.Equal(t, http.StatusOK, res.StatusCode)
					return
				}
				assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
				assert.Equal(t, ReasonCertificateUsage, decodeProblem(t, res).Reason)
			})
			// Refused in the handshake: with RejectAtHandshake, and under a base ClientAuth that
			// verifies (which a pinned leaf cannot pass).
			handshakes := []struct {
				name   string
				config func(m *Middleware) *tls.Config
			}{
				{"RejectAtHandshake", func(m *Middleware) *tls.Config {
					return m.TLSConfig(&tls.Config{Certificates: []tls.Certificate{serverCert}}, RejectAtHandshake())
				}},
				{"verifying base", func(m *Middleware) *tls.Config {
					return m.TLSConfig(&tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: p.root.Pool()})
				}},
			}
			for _, hs := range handshakes {
				if tt.pinned && hs.name == "verifying base" {
					continue
				}
				t.Run(name+"/"+hs.name, func(t *testing.T) {
					var rec events
					c := cfg()
					c.OnDecision = rec.record
					m, err := New(c)
					require.NoError(t, err)
					srv := newHandshakeServer(t, m, hs.config(m))
					cert := tt.leaf.TLSCertificate()
					status, body, err := srv.call(t, serverCA, "127.0.0.1", &cert, 0)
					if !refused {
						require.NoError(t, err)
						assert.Equal(t, http.StatusOK, status, body)
						return
					}
					require.Error(t, err, "refused at the handshake")
					evs := rec.handshakes()
					require.Len(t, evs, 1)
					assert.Equal(t, ReasonCertificateUsage, evs[0].Reason)
					assert.True(t, strings.HasPrefix(evs[0].Err.Error(), "mtls: "))
					assert.Contains(t, evs[0].Err.Error(), want)
				})
			}
		}
	}
}

// TestNoExtKeyUsageProxyVerification: with HeaderConfig.DangerouslyTrustProxyVerification, the
// leaf's own usage is still checked, the option included.
func TestNoExtKeyUsageProxyVerification(t *testing.T) {
	f := newHeaderFixture(t)
	leaf := mtlstest.NewSelfSigned("legacy", mtlstest.WithExtKeyUsage())
	for _, allow := range []bool{false, true} {
		m, err := New(Config{RootCAs: f.p.root.Pool(), DangerouslyAllowNoExtKeyUsage: allow,
			Header: &HeaderConfig{Format: MustHeaderFormat("haproxy"), TrustedProxies: []netip.Prefix{f.trusts}, DangerouslyTrustProxyVerification: true}})
		require.NoError(t, err)
		_, err = m.Authenticate(f.proxy.NewRequest(http.MethodGet, "/", leaf.Certificate))
		if allow {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, ErrWrongUsage)
		}
	}
}

// TestNoExtKeyUsageAsOpenSSL: with Config.DangerouslyAllowNoExtKeyUsage, a leaf without the
// extended key usage extension is accepted exactly when `openssl verify -purpose sslclient` (what
// nginx checks) accepts it, whatever its key usage and Netscape certificate type.
func TestNoExtKeyUsageAsOpenSSL(t *testing.T) {
	openssl := requireBinary(t, "openssl")
	p := newPKI(t)
	none := mtlstest.WithExtKeyUsage()
	tests := []struct {
		name string
		opts []mtlstest.Option
	}{
		{"no key usage", []mtlstest.Option{none}},
		{"digitalSignature", []mtlstest.Option{none, keyUsageExtension(t, x509.KeyUsageDigitalSignature)}},
		{"keyAgreement", []mtlstest.Option{none, keyUsageExtension(t, x509.KeyUsageKeyAgreement)}},
		{"keyEncipherment", []mtlstest.Option{none, keyUsageExtension(t, x509.KeyUsageKeyEncipherment)}},
		{"contentCommitment", []mtlstest.Option{none, keyUsageExtension(t, x509.KeyUsageContentCommitment)}},
		{"empty key usage", []mtlstest.Option{none, keyUsageExtension(t, 0)}},
		{"Netscape SSL client", []mtlstest.Option{none, netscapeCertType(nsSSLClient...)}},
		{"Netscape SSL server", []mtlstest.Option{none, netscapeCertType(nsSSLServer...)}},
		{"Netscape both", []mtlstest.Option{none, netscapeCertType(nsBoth...)}},
		{"Netscape SSL client, keyEncipherment", []mtlstest.Option{none, netscapeCertType(nsSSLClient...), keyUsageExtension(t, x509.KeyUsageKeyEncipherment)}},
		{"Netscape SSL server, digitalSignature", []mtlstest.Option{none, netscapeCertType(nsSSLServer...), keyUsageExtension(t, x509.KeyUsageDigitalSignature)}},
	}
	dir := t.TempDir()
	rootFile := mtlstest.WriteFile(dir, "root.pem", p.root.CertPEM())
	chainFile := mtlstest.WriteFile(dir, "issuing.pem", mtlstest.EncodePEM(p.issuing.Certificate))
	m, err := New(Config{RootCAs: p.root.Pool(), DangerouslyAllowNoExtKeyUsage: true})
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := p.issuing.NewClient("legacy", tt.opts...)
			leafFile := mtlstest.WriteFile(dir, "leaf.pem", leaf.CertPEM())
			out, oerr := exec.Command(openssl, "verify", "-purpose", "sslclient", "-CAfile", rootFile, "-untrusted", chainFile, leafFile).CombinedOutput()
			_, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...))
			assert.Equal(t, oerr == nil, err == nil, "openssl: %s; mtls: %v", out, err)
			if err != nil {
				assert.ErrorIs(t, err, ErrWrongUsage)
			}
		})
	}
}
