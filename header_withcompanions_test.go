package mtls

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"testing"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWithCompanions: the names are added to the format's own companions, canonical and once,
// and the format otherwise stays what it is.
func TestWithCompanions(t *testing.T) {
	rfc9440 := MustHeaderFormat("rfc9440")
	own := companionsOf(rfc9440)
	tests := []struct {
		name    string
		format  Format
		added   []string
		want    []string // after the format's own companions
		encoder bool
	}{
		{name: "names added, canonical", format: rfc9440, added: []string{"x-client-verify", "X-Client-S-Dn"}, want: []string{"X-Client-Verify", "X-Client-S-Dn"}, encoder: true},
		{name: "a name twice, in other spellings", format: rfc9440, added: []string{"X-Client-Verify", "x_client_verify", "X.Client.Verify"}, want: []string{"X-Client-Verify"}, encoder: true},
		{name: "own companions and certificate headers left out", format: rfc9440, added: []string{"Cf-Cert-Verified", "client_cert", "X-Client-Verify"}, want: []string{"X-Client-Verify"}, encoder: true},
		{name: "nested", format: WithCompanions(rfc9440, "X-Client-Verify"), added: []string{"X-Client-S-Dn", "X-Client-Verify"}, want: []string{"X-Client-Verify", "X-Client-S-Dn"}, encoder: true},
		{name: "nothing added", format: rfc9440, encoder: true},
		{name: "a format without companions of its own", format: MustHeaderFormat("envoy-xfcc"), added: []string{"X-Client-Verify"}, want: []string{"X-Client-Verify"}, encoder: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := WithCompanions(tt.format, tt.added...)
			base := baseFormat(tt.format)
			assert.Equal(t, base.Name(), f.Name())
			assert.Equal(t, base.HeaderNames(), f.HeaderNames())
			assert.Same(t, base, baseFormat(f), "one wrapper, around the format itself")
			_, isEncoder := f.(Encoder)
			assert.Equal(t, tt.encoder, isEncoder)
			got := companionsOf(f)
			wantAll := append(companionsOf(base), tt.want...)
			assert.Equal(t, wantAll, got)
			got[0] = "Changed"
			assert.NotEqual(t, "Changed", companionsOf(f)[0], "a fresh slice on each call")
		})
	}
	t.Run("nil format", func(t *testing.T) {
		assert.Nil(t, WithCompanions(nil, "X-Client-Verify"))
	})
	t.Run("the format's own companions unchanged", func(t *testing.T) {
		_ = WithCompanions(rfc9440, "X-Client-Verify")
		assert.Equal(t, own, companionsOf(rfc9440))
	})
	t.Run("a format that cannot encode stays one", func(t *testing.T) {
		f := WithCompanions(MustHeaderFormat("nginx"), "X-Client-Verify")
		_, isEncoder := f.(Encoder)
		assert.False(t, isEncoder)
		require.ErrorContains(t, forwardHeader(http.Header{}, nil, f), `"nginx" cannot be written`)
	})
}

// TestForwardDeletesAddedCompanions: a Go gateway deletes the companions the service behind it
// configures, when both use the format WithCompanions made: a client's forged X-Client-Verify
// does not travel beside the real identity.
func TestForwardDeletesAddedCompanions(t *testing.T) {
	p := newPKI(t)
	format := WithCompanions(MustHeaderFormat("rfc9440"), "X-Client-Verify", "X-Client-S-Dn")

	backendMW, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), Header: &HeaderConfig{
		Format: format, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}})
	require.NoError(t, err)
	backend := httptest.NewServer(backendMW.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := FromContext(r.Context())
		_ = json.NewEncoder(w).Encode(map[string]any{"cn": id.Leaf.Subject.CommonName, "source": id.Source, "format": id.Format, "header": r.Header})
	})))
	t.Cleanup(backend.Close)
	target, err := url.Parse(backend.URL)
	require.NoError(t, err)
	gatewayMW, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool()})
	require.NoError(t, err)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		id, _ := FromContext(pr.In.Context())
		if err := Forward(pr.Out, id, format); err != nil {
			panic(err)
		}
	}}
	gateway, serverCA := tlsServer(t, gatewayMW, rp)

	for _, tt := range []struct {
		name   string
		forged map[string]string
	}{
		{"canonical", map[string]string{"X-Client-Verify": "SUCCESS", "X-Client-S-Dn": "CN=admin"}},
		{"other spellings", map[string]string{"x_client_verify": "SUCCESS", "X.Client.S.Dn": "CN=admin"}},
		{"beside the format's own", map[string]string{"X-Client-Verify": "SUCCESS", "X-Client-Cert-Chain-Verified": "true", "Client-Cert": ":AAAA:"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, gateway.URL, nil)
			require.NoError(t, err)
			for k, v := range tt.forged {
				req.Header[k] = []string{v}
			}
			res, err := clientFor(serverCA, p.alice).Do(req)
			require.NoError(t, err)
			defer res.Body.Close()
			require.Equal(t, http.StatusOK, res.StatusCode)
			var got struct {
				CN, Source, Format string
				Header             http.Header
			}
			require.NoError(t, json.NewDecoder(res.Body).Decode(&got))
			assert.Equal(t, "alice", got.CN)
			assert.Equal(t, "header", got.Source)
			assert.Equal(t, "rfc9440", got.Format)
			for k := range tt.forged {
				if k != "Client-Cert" {
					assert.Empty(t, got.Header.Values(k), "%s reached the service", k)
				}
			}
			for k := range got.Header {
				assert.NotContains(t, []string{"X-Client-Verify", "X-Client-S-Dn", "X-Client-Cert-Chain-Verified"}, http.CanonicalHeaderKey(k))
			}
		})
	}
}

// TestWithCompanionsInHeaderConfig: in HeaderConfig.Format the added names join the family, and
// the format reads as it does alone: a list header split over lines, the hops of XFCCBy.
func TestWithCompanionsInHeaderConfig(t *testing.T) {
	f := newHeaderFixture(t)
	lan := []netip.Prefix{f.trusts}
	rfc9440 := WithCompanions(MustHeaderFormat("rfc9440"), "X-Client-Verify")
	m, err := New(Config{RootCAs: f.p.root.Pool(), Optional: true, Header: &HeaderConfig{Format: rfc9440, TrustedProxies: lan}})
	require.NoError(t, err)
	proxy := mtlstest.Proxy{Format: rfc9440, Addr: "10.0.0.1:1"}
	leaf, chain := ":"+f.leaf+":", ":"+f.chain+":"

	tests := []struct {
		name    string
		remote  string
		headers [][2]string
		status  int
		source  Source // "": no identity
		kept    string // a header the handler sees
	}{
		{name: "untrusted peer, added companion removed", remote: "192.0.2.1:1", headers: [][2]string{{"X-Client-Verify", "SUCCESS"}, {"x.client.verify", "SUCCESS"}}, status: 200},
		{name: "trusted proxy, added companion passes", remote: proxy.Addr, headers: [][2]string{{"Client-Cert", leaf}, {"Client-Cert-Chain", chain}, {"X-Client-Verify", "SUCCESS"}}, status: 200, source: SourceHeader, kept: "X-Client-Verify"},
		{name: "trusted proxy, added companion spelled otherwise", remote: proxy.Addr, headers: [][2]string{{"Client-Cert", leaf}, {"X_Client_Verify", "SUCCESS"}}, status: 400},
		{name: "trusted proxy, chain list split over two lines", remote: proxy.Addr, headers: [][2]string{{"Client-Cert", leaf}, {"Client-Cert-Chain", chain}, {"Client-Cert-Chain", ":" + b64(f.p.root.Certificate) + ":"}}, status: 200, source: SourceHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			for _, kv := range tt.headers {
				r.Header[kv[0]] = append(r.Header[kv[0]], kv[1])
			}
			var s seen
			w := httptest.NewRecorder()
			m.Handler(s.handler()).ServeHTTP(w, r)
			require.Equal(t, tt.status, w.Code, w.Body.String())
			if tt.status != 200 {
				return
			}
			if tt.source == "" {
				assert.Nil(t, s.id)
			} else {
				require.NotNil(t, s.id)
				assert.Equal(t, tt.source, s.id.Source)
			}
			if tt.kept != "" {
				assert.Equal(t, []string{"SUCCESS"}, s.header[tt.kept])
			}
			for k := range s.header {
				if k != tt.kept {
					assert.NotEqual(t, "X-Client-Verify", http.CanonicalHeaderKey(k), "%s reached the handler", k)
				}
			}
		})
	}

	t.Run("XFCCBy with envoy-xfcc", func(t *testing.T) {
		_, err := New(Config{RootCAs: f.p.root.Pool(), Header: &HeaderConfig{TrustedProxies: lan,
			Format: WithCompanions(MustHeaderFormat("envoy-xfcc"), "X-Client-Verify"), XFCCBy: []string{"spiffe://example.test/backend"}}})
		require.NoError(t, err)
	})
	t.Run("XFCCBy with another format", func(t *testing.T) {
		_, err := New(Config{RootCAs: f.p.root.Pool(), Header: &HeaderConfig{TrustedProxies: lan,
			Format: WithCompanions(MustHeaderFormat("nginx"), "X-Client-Verify"), XFCCBy: []string{"spiffe://example.test/backend"}}})
		var ce *ConfigError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "Header.XFCCBy", ce.Field)
	})
	t.Run("invalid name", func(t *testing.T) {
		_, err := New(Config{RootCAs: f.p.root.Pool(), Header: &HeaderConfig{TrustedProxies: lan,
			Format: WithCompanions(MustHeaderFormat("nginx"), "X-Client: Verify")}})
		var ce *ConfigError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "Header.Format", ce.Field)
	})
}
