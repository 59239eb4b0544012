package mtlstest_test

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewRequest(t *testing.T) {
	root := mtlstest.NewRootCA("Root")
	issuing := root.NewIntermediate("Issuing")
	alice := issuing.NewClient("alice")
	m, err := mtls.New(mtls.Config{RootCAs: root.Pool()})
	require.NoError(t, err)

	for _, target := range []string{"https://api.example.test/", "https://api.example.test:8443/x", "/", "https://127.0.0.1:8443/", "https://[2001:db8::1]/"} {
		t.Run(target, func(t *testing.T) {
			r := mtlstest.NewRequest(http.MethodGet, target, alice.Chain()...)
			id, err := m.Authenticate(r)
			require.NoError(t, err)
			assert.Equal(t, mtls.SourceTLS, id.Source)
			assert.Equal(t, alice.VerifiedChain(), id.Chain)
		})
	}
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "/"))
	require.ErrorIs(t, err, mtls.ErrNoCertificate)
}

// TestProxyEveryFormat: a request from a Proxy is read back by the middleware in every preset
// format; the intermediates travel in the formats that carry them.
func TestProxyEveryFormat(t *testing.T) {
	root := mtlstest.NewRootCA("Root")
	issuing := root.NewIntermediate("Issuing")
	alice := issuing.NewClient("alice")
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	leafOnly := map[string]bool{"aws-alb-verify": true, "nginx": true, "wso2": true, "caddy": true, "azure-app-service": true, "cloudflare": true}
	for _, name := range mtls.HeaderFormatNames() {
		t.Run(name, func(t *testing.T) {
			f := mtls.MustHeaderFormat(name)
			proxy := mtlstest.Proxy{Format: f, Addr: "10.1.2.3:4000"}
			cfg := mtls.Config{RootCAs: root.Pool(), Header: &mtls.HeaderConfig{Format: f, TrustedProxies: proxies}}
			if leafOnly[name] {
				cfg.Intermediates = issuing.Pool()
			}
			m, err := mtls.New(cfg)
			require.NoError(t, err)
			id, err := m.Authenticate(proxy.NewRequest(http.MethodGet, "/", alice.Chain()...))
			require.NoError(t, err)
			assert.Equal(t, mtls.SourceHeader, id.Source)
			assert.Equal(t, name, id.Format)
			assert.Equal(t, netip.MustParseAddr("10.1.2.3"), id.Proxy)
			assert.Equal(t, alice.SHA256(), id.SHA256)
			assert.Equal(t, alice.VerifiedChain(), id.Chain)

			_, err = m.Authenticate(proxy.NewRequest(http.MethodGet, "/"))
			require.ErrorIs(t, err, mtls.ErrNoCertificate)
		})
	}
}

func TestProxyNames(t *testing.T) {
	alice := mtlstest.NewRootCA("Root").NewClient("alice")
	r := mtlstest.Proxy{Format: mtls.MustHeaderFormat("haproxy"), Names: []string{"X-Cert"}}.NewRequest(http.MethodGet, "/", alice.Certificate)
	assert.Equal(t, "192.0.2.1:1234", r.RemoteAddr)
	assert.NotEmpty(t, r.Header.Get("X-Cert"))
	assert.Empty(t, r.Header.Get("X-SSL-Client-Cert"))
	assert.Nil(t, r.TLS)
}

type hexFormat struct{}

func (hexFormat) Name() string          { return "hex-der" }
func (hexFormat) HeaderNames() []string { return []string{"X-Hex-Cert"} }

func TestProxyRefusesWhatItCannotWrite(t *testing.T) {
	alice := mtlstest.NewRootCA("Root").NewClient("alice")
	assert.Panics(t, func() { mtlstest.Proxy{}.NewRequest(http.MethodGet, "/", alice.Certificate) })
	assert.Panics(t, func() { mtlstest.Proxy{Format: hexFormat{}}.NewRequest(http.MethodGet, "/", alice.Certificate) })
}
