package mtls

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/certgate/mtls/internal/certheader/proxyenc"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The By values of the XFCC tests: this service's sidecar, and the gateway before it.
const (
	xfccBackend = "spiffe://example.test/ns/prod/sa/backend"
	xfccGateway = "spiffe://example.test/ns/edge/sa/gateway"
)

// xfccRequest is a request from the trusted proxy of newHeaderFixture carrying xfcc.
func xfccRequest(xfcc string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	r.Header.Set("X-Forwarded-Client-Cert", xfcc)
	return r
}

func xfccMiddleware(t *testing.T, f *headerFixture, by ...string) *Middleware {
	return f.middleware(t, false, func(hc *HeaderConfig) {
		hc.Format = MustHeaderFormat("envoy-xfcc")
		hc.XFCCBy = by
	})
}

// TestHeaderXFCCHops: a header appended to by a gateway (which saw an external client) and then
// by this service's sidecar (which saw alice), as Envoy's APPEND_FORWARD writes it,
// authenticates alice with XFCCBy and keeps the gateway's element as its word; without XFCCBy
// it stays refused as ambiguous.
func TestHeaderXFCCHops(t *testing.T) {
	f := newHeaderFixture(t)
	external := f.p.other.NewClient("external", mtlstest.WithURIs("spiffe://partner.test/app"), mtlstest.WithDNS("app.partner.test"))
	gateway := proxyenc.EnvoyElement([]string{xfccGateway}, proxyenc.EnvoyDetails{Subject: true, URI: true, DNS: true}, external.Certificate)
	sidecar := proxyenc.EnvoyElement([]string{xfccBackend}, proxyenc.EnvoyDetails{Cert: true, Subject: true, URI: true, DNS: true}, f.p.alice.Certificate)
	value := gateway + "," + sidecar
	sum := sha256.Sum256(external.Certificate.Raw)
	want := []XFCCElement{{By: []string{xfccGateway}, Hash: hex.EncodeToString(sum[:]), Subject: "CN=external",
		URI: []string{"spiffe://partner.test/app"}, DNS: []string{"app.partner.test"}}}

	t.Run("with XFCCBy", func(t *testing.T) {
		m := xfccMiddleware(t, f, xfccBackend)
		for range 2 { // the second from the cache
			id, err := m.Authenticate(xfccRequest(value))
			require.NoError(t, err)
			assert.Equal(t, "alice", id.Leaf.Subject.CommonName)
			assert.Equal(t, want, id.ForwardedBy())
		}
		id, err := m.Authenticate(xfccRequest(value))
		require.NoError(t, err)
		hops := id.ForwardedBy()
		hops[0].By[0], hops[0].Hash = "spiffe://changed", "changed"
		assert.Equal(t, want, id.ForwardedBy(), "a copy")
	})
	t.Run("one hop has no earlier element", func(t *testing.T) {
		id, err := xfccMiddleware(t, f, xfccBackend).Authenticate(xfccRequest(sidecar))
		require.NoError(t, err)
		assert.Equal(t, "alice", id.Leaf.Subject.CommonName)
		assert.Nil(t, id.ForwardedBy())
	})
	t.Run("without XFCCBy", func(t *testing.T) {
		m := f.middleware(t, false, func(hc *HeaderConfig) { hc.Format = MustHeaderFormat("envoy-xfcc") })
		_, err := m.Authenticate(xfccRequest(value))
		require.ErrorIs(t, err, ErrMalformedHeader)
		assert.ErrorContains(t, err, "makes its boundary ambiguous")
		id, err := m.Authenticate(xfccRequest(sidecar))
		require.NoError(t, err, "one element by a sidecar that replaces the header: as before")
		assert.Nil(t, id.ForwardedBy())
	})
	t.Run("the sidecar's By is not configured", func(t *testing.T) {
		_, err := xfccMiddleware(t, f, "spiffe://example.test/ns/prod/sa/other").Authenticate(xfccRequest(value))
		require.ErrorIs(t, err, ErrMalformedHeader)
		assert.ErrorContains(t, err, "no By of this service")
	})
}

// TestHeaderXFCCHopsHostile: what a client can write before the sidecar's element, or in a SAN
// that the sidecar writes unquoted, never authenticates as another client: it is refused as
// malformed, with 400 header_malformed and nothing of the reason in the body.
func TestHeaderXFCCHopsHostile(t *testing.T) {
	f := newHeaderFixture(t)
	details := proxyenc.EnvoyDetails{Cert: true, Subject: true, URI: true, DNS: true}
	alice := pemText(f.p.alice.Certificate)
	aliceSum := sha256.Sum256(f.p.alice.Certificate.Raw)
	// Alice's element as the sidecar would write it: what mallory, who knows alice's
	// certificate, writes to pass for her.
	forged := "By=" + xfccBackend + ";Hash=" + hex.EncodeToString(aliceSum[:]) + `;Cert="` + envoyEscape(alice) + `"`
	mallory := f.p.issuing.NewClient("mallory")
	sidecar := func(c *mtlstest.Leaf) string {
		return proxyenc.EnvoyElement([]string{xfccBackend}, details, c.Certificate)
	}
	withSAN := func(san string) string {
		sum := sha256.Sum256(mallory.Certificate.Raw)
		return "By=" + xfccBackend + ";Hash=" + hex.EncodeToString(sum[:]) + `;Cert="` + envoyEscape(pemText(mallory.Certificate)) +
			`";Subject="CN=mallory";URI=` + san
	}
	tests := []struct{ name, value string }{
		{"a client's element claiming our By", forged + "," + sidecar(mallory)},
		{"our By twice", forged + "," + forged},
		{"a client's element claiming our By after the gateway's", "By=" + xfccGateway + ";Hash=" + strings.Repeat("0", 64) + "," + forged + "," + sidecar(mallory)},
		{"a SAN with ',' appending alice's element", withSAN("spiffe://m/x," + forged)},
		{"a SAN with ',' appending alice's element without By", withSAN("spiffe://m/x,Hash=" + hex.EncodeToString(aliceSum[:]) + `;Cert="` + envoyEscape(alice) + `"`)},
		{"a SAN with ';' appending alice's certificate", withSAN(`spiffe://m/x;Cert="` + envoyEscape(alice) + `"`)},
		{"a SAN with '=' and ';' and no pair", withSAN("spiffe://m/x?a=b;c")},
		{"an open quote swallowing the sidecar's element", forged + `;URI="x,By=` + xfccBackend + ";Hash=" + strings.Repeat("0", 64) + `;URI="`},
		{"an earlier element malformed", `By=` + xfccGateway + `;URI=a;b,` + sidecar(mallory)},
		{"too many elements", strings.Repeat("By="+xfccGateway+";Hash="+strings.Repeat("0", 64)+",", 16) + sidecar(mallory)},
		{"too many bytes of names", "By=" + xfccGateway + strings.Repeat(";DNS="+strings.Repeat("a", 200), 45) + "," + sidecar(mallory)},
	}
	m := xfccMiddleware(t, f, xfccBackend)
	h := m.Handler(echoIdentity)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := m.Authenticate(xfccRequest(tt.value))
			if err == nil {
				assert.NotEqual(t, "alice", id.Leaf.Subject.CommonName, "mallory authenticated as alice")
			}
			require.ErrorIs(t, err, ErrMalformedHeader)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, xfccRequest(tt.value))
			require.Equal(t, http.StatusBadRequest, w.Code)
			assert.Contains(t, w.Body.String(), `"reason":"header_malformed"`)
			assert.NotContains(t, w.Body.String(), "XFCC")
		})
	}
	id, err := m.Authenticate(xfccRequest(sidecar(mallory)))
	require.NoError(t, err, "mallory's own element, as the sidecar writes it")
	assert.Equal(t, "mallory", id.Leaf.Subject.CommonName)
}

func TestHeaderXFCCByConfig(t *testing.T) {
	p := newPKI(t)
	for _, tt := range []struct {
		name   string
		format string
		by     []string
		fields []string
	}{
		{"not the envoy-xfcc format", "nginx", []string{xfccBackend}, []string{"Header.XFCCBy"}},
		{"not an absolute URI", "envoy-xfcc", []string{"backend"}, []string{"Header.XFCCBy[0]"}},
		{"a separator Envoy would not quote", "envoy-xfcc", []string{xfccBackend, "spiffe://a/b,c", "spiffe://a/b;c", `spiffe://a/"b"`}, []string{"Header.XFCCBy[1]", "Header.XFCCBy[2]", "Header.XFCCBy[3]"}},
		{"empty", "envoy-xfcc", []string{""}, []string{"Header.XFCCBy[0]"}},
		{"too many", "envoy-xfcc", strings.Split(strings.Repeat(xfccBackend+" ", 17), " ")[:17], []string{"Header.XFCCBy"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{RootCAs: p.root.Pool(), Header: &HeaderConfig{
				Format:         MustHeaderFormat(tt.format),
				TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
				XFCCBy:         tt.by,
			}})
			require.Error(t, err)
			assert.Equal(t, tt.fields, configFields(t, err))
			assert.ErrorContains(t, err, "mtls: "+tt.fields[0]+": ")
		})
	}
}

// TestHeaderXFCCHopsSplitByNames: behind a gateway that forwards its client's URI and DNS SANs,
// which Envoy writes unquoted, a client whose certificate's names hold separators cannot pass
// an element of its own for the gateway's: every element after the gateway's is marked
// Ambiguous, and a name is reported as the certificate holds it.
func TestHeaderXFCCHopsSplitByNames(t *testing.T) {
	f := newHeaderFixture(t)
	fake := ",By=" + xfccGateway + ";Hash=" + strings.Repeat("ab", 32) + ";URI=spiffe://trusted.partner/admin"
	sidecar := proxyenc.EnvoyElement([]string{xfccBackend}, proxyenc.EnvoyDetails{Cert: true, URI: true}, f.p.alice.Certificate)
	m := xfccMiddleware(t, f, xfccBackend)
	for _, tt := range []struct {
		name     string
		external *mtlstest.Leaf
		wantHops int
	}{
		{"a DNS name with a separator", f.p.other.NewClient("external", mtlstest.WithDNS("app.partner.test"+fake)), 2},
		{"a URI name with a separator", f.p.other.NewClient("external", mtlstest.WithURIs("spiffe://partner.test/app"+fake)), 2},
		{"a quoted DNS name", f.p.other.NewClient("external", mtlstest.WithDNS(`"spiffe://trusted.partner/admin"`)), 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gateway := proxyenc.EnvoyElement([]string{xfccGateway}, proxyenc.EnvoyDetails{Subject: true, URI: true, DNS: true}, tt.external.Certificate)
			id, err := m.Authenticate(xfccRequest(gateway + "," + sidecar))
			require.NoError(t, err)
			assert.Equal(t, "alice", id.Leaf.Subject.CommonName)
			hops := id.ForwardedBy()
			require.Len(t, hops, tt.wantHops)
			sum := sha256.Sum256(tt.external.Certificate.Raw)
			assert.Equal(t, hex.EncodeToString(sum[:]), hops[0].Hash, "the gateway's element comes first")
			assert.False(t, hops[0].Ambiguous)
			for _, h := range hops[1:] {
				assert.True(t, h.Ambiguous, "an element a name of the gateway's client wrote: %+v", h)
			}
			if tt.wantHops == 1 {
				assert.Equal(t, tt.external.Certificate.DNSNames, hops[0].DNS, "quotes included")
			}
		})
	}
}

// TestHeaderXFCCClientManyNames: the bounds of the earlier elements do not apply to the
// client's own: a client with more names than an earlier element may hold is accepted with
// XFCCBy as without it.
func TestHeaderXFCCClientManyNames(t *testing.T) {
	f := newHeaderFixture(t)
	var dns []string
	for i := range 70 {
		dns = append(dns, "h"+strings.Repeat("x", 150)+strconv.Itoa(i)+".example.test")
	}
	bob := f.p.issuing.NewClient("bob", mtlstest.WithDNS(dns...))
	sidecar := proxyenc.EnvoyElement([]string{xfccBackend}, proxyenc.EnvoyDetails{Cert: true, DNS: true}, bob.Certificate)
	gateway := proxyenc.EnvoyElement([]string{xfccGateway}, proxyenc.EnvoyDetails{Subject: true}, f.p.other.NewClient("external").Certificate)
	for _, tt := range []struct {
		name  string
		m     *Middleware
		value string
	}{
		{"without XFCCBy", f.middleware(t, false, func(hc *HeaderConfig) { hc.Format = MustHeaderFormat("envoy-xfcc") }), sidecar},
		{"with XFCCBy", xfccMiddleware(t, f, xfccBackend), sidecar},
		{"with XFCCBy, after the gateway's element", xfccMiddleware(t, f, xfccBackend), gateway + "," + sidecar},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id, err := tt.m.Authenticate(xfccRequest(tt.value))
			require.NoError(t, err)
			assert.Equal(t, "bob", id.Leaf.Subject.CommonName)
			assert.Len(t, id.DNSNames, 70)
		})
	}
}
