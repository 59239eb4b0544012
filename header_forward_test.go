package mtls

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"testing"

	"github.com/certgate/mtls/internal/certheader"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// forwardHeader runs Forward on a request with header h.
func forwardHeader(h http.Header, id *Identity, format Format, more ...Format) error {
	return Forward(&http.Request{Header: h}, id, format, more...)
}

func TestForwardWritesDecodableHeaders(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	require.NoError(t, err)
	require.Len(t, id.Chain, 3)

	for _, name := range []string{"rfc9440", "envoy-xfcc"} {
		t.Run(name, func(t *testing.T) {
			f := MustHeaderFormat(name)
			h := http.Header{}
			for _, n := range f.HeaderNames() {
				h.Add(n, "SPOOFED")
				h.Add(n, "SPOOFED again")
			}
			require.NoError(t, forwardHeader(h, id, f))
			values := make([]string, len(f.HeaderNames()))
			for i, n := range f.HeaderNames() {
				require.LessOrEqual(t, len(h.Values(n)), 1, "incoming copies removed")
				values[i] = h.Get(n)
			}
			got, err := f.Decode(values)
			require.NoError(t, err)
			assert.Equal(t, ders(p.alice.Certificate, p.issuing.Certificate), got, "leaf and intermediate, no anchor")
		})
	}
	t.Run("no identity only removes", func(t *testing.T) {
		h := http.Header{"Client-Cert": {":AAAA:"}, "X-Forwarded-Client-Cert": {"Cert=x"}}
		require.NoError(t, forwardHeader(h, nil, MustHeaderFormat("rfc9440"), MustHeaderFormat("envoy-xfcc")))
		assert.Empty(t, h)
	})
	t.Run("non-canonical copies removed", func(t *testing.T) {
		h := http.Header{"client-cert": {":c3Bvb2Y=:"}, "CLIENT-CERT-CHAIN": {":c3Bvb2Y=:"}, "x-forwarded-client-cert": {"Cert=x"}}
		require.NoError(t, forwardHeader(h, id, MustHeaderFormat("rfc9440"), MustHeaderFormat("envoy-xfcc")))
		for k := range h {
			assert.Contains(t, []string{"Client-Cert", "Client-Cert-Chain", "X-Forwarded-Client-Cert"}, k)
		}
		assert.Len(t, h, 3)
		assert.NotEqual(t, ":c3Bvb2Y=:", h.Get("Client-Cert"))
	})
	t.Run("underscore spellings removed", func(t *testing.T) {
		// CGI-style consumers behind the proxy would read Client_Cert as Client-Cert.
		h := http.Header{"Client_Cert": {":c3Bvb2Y=:"}, "CLIENT_CERT-chain": {":c3Bvb2Y=:"}, "X_Forwarded_Client_Cert": {"Cert=x"}}
		require.NoError(t, forwardHeader(h, nil, MustHeaderFormat("rfc9440"), MustHeaderFormat("envoy-xfcc")))
		assert.Empty(t, h)
	})
	t.Run("punctuation spellings removed", func(t *testing.T) {
		// PHP reads Client.Cert as Client_Cert, and CGI mappings any byte but a letter or digit.
		h := http.Header{"Client.Cert": {":c3Bvb2Y=:"}, "Client~Cert!Chain": {":c3Bvb2Y=:"}, "X.Forwarded.Client.Cert": {"Cert=x"}}
		require.NoError(t, forwardHeader(h, nil, MustHeaderFormat("rfc9440"), MustHeaderFormat("envoy-xfcc")))
		assert.Empty(t, h)
	})
	t.Run("nil format refused", func(t *testing.T) {
		h := http.Header{"Client-Cert": {":c3Bvb2Y=:"}}
		require.Error(t, forwardHeader(h, id, nil))
		require.Error(t, forwardHeader(h, id, MustHeaderFormat("rfc9440"), nil))
	})
	t.Run("format that cannot be written", func(t *testing.T) {
		h := http.Header{"X-Ssl-Client-Cert": {"x"}}
		err := forwardHeader(h, id, MustHeaderFormat("nginx"))
		require.Error(t, err)
		assert.Equal(t, "x", h.Get("X-Ssl-Client-Cert"), "nothing is changed on error")
	})
	t.Run("xfcc subject with quotes and commas", func(t *testing.T) {
		odd := p.issuing.NewClient(`Team "Blue", Inc.`, mtlstest.WithURIs("spiffe://example.test/a;b=c"))
		oid, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", odd.Chain()...))
		require.NoError(t, err)
		h := http.Header{}
		require.NoError(t, forwardHeader(h, oid, MustHeaderFormat("envoy-xfcc")))
		elems, err := certheader.ParseXFCC(h.Get("X-Forwarded-Client-Cert"))
		require.NoError(t, err)
		require.Len(t, elems, 1)
		got := map[string]string{}
		for _, kv := range elems[0] {
			got[kv.Key] = kv.Value
		}
		assert.Equal(t, odd.Certificate.Subject.String(), got["subject"])
		assert.Equal(t, "spiffe://example.test/a;b=c", got["uri"])
	})
}

// TestForwardGateway runs a Go gateway (TLS, the middleware, httputil.ReverseProxy with Forward)
// in front of a service in header mode: the part nginx plays, played by Go.
func TestForwardGateway(t *testing.T) {
	p := newPKI(t)
	rfc9440 := MustHeaderFormat("rfc9440")

	backendMW, err := New(Config{RootCAs: p.root.Pool(), Header: &HeaderConfig{
		Format:         rfc9440,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}})
	require.NoError(t, err)
	backend := httptest.NewServer(backendMW.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := FromContext(r.Context())
		_ = json.NewEncoder(w).Encode(map[string]string{
			"cn": id.Leaf.Subject.CommonName, "source": string(id.Source), "format": id.Format, "proxy": id.Proxy.String(),
		})
	})))
	defer backend.Close()
	target, err := url.Parse(backend.URL)
	require.NoError(t, err)

	gatewayMW, err := New(Config{RootCAs: p.root.Pool(), Optional: true})
	require.NoError(t, err)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		id, _ := FromContext(pr.In.Context())
		require.NoError(t, Forward(pr.Out, id, rfc9440))
	}}
	gateway, serverCA := tlsServer(t, gatewayMW, rp)

	t.Run("verified client", func(t *testing.T) {
		res, err := clientFor(serverCA, p.alice).Get(gateway.URL)
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		var got map[string]string
		require.NoError(t, json.NewDecoder(res.Body).Decode(&got))
		assert.Equal(t, map[string]string{"cn": "alice", "source": "header", "format": "rfc9440", "proxy": "127.0.0.1"}, got)
	})
	t.Run("client without certificate injects Client-Cert", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodGet, gateway.URL, nil)
		require.NoError(t, err)
		req.Header.Set("Client-Cert", ":"+b64(p.alice.Certificate)+":")
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverCA.Pool()}}}
		res, err := client.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, res.StatusCode)
		assert.Equal(t, ReasonCertificateRequired, decodeProblem(t, res).Reason)
	})
}
