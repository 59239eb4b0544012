package mtls

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestConnContextJudgesTheConnection: with ConnContext, a middleware in front that copies a
// client's X-Forwarded-For "ip:port" into RemoteAddr cannot make the client a trusted proxy.
func TestConnContextJudgesTheConnection(t *testing.T) {
	f := newHeaderFixture(t)
	m := f.middleware(t, false, nil) // trusts 10.0.0.0/8
	// As gorilla's handlers.ProxyHeaders does: believe X-Forwarded-For.
	believeXFF := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
				r.RemoteAddr = xff
			}
			next.ServeHTTP(w, r)
		})
	}
	for _, tt := range []struct {
		name        string
		connContext bool
		want        int
	}{
		{"without ConnContext the forged address is believed", false, http.StatusOK},
		{"with ConnContext the connection decides", true, http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(believeXFF(m.Handler(echoIdentity)))
			if tt.connContext {
				srv.Config.ConnContext = ConnContext
			}
			srv.Start()
			defer srv.Close()
			req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
			require.NoError(t, err)
			req.Header.Set("X-Forwarded-For", "10.0.0.1:1")
			req.Header.Set("X-SSL-Client-Cert", f.leaf) // alice's certificate is public
			res, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			res.Body.Close()
			assert.Equal(t, tt.want, res.StatusCode)
		})
	}
	t.Run("a trusted proxy's connection is trusted", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "192.0.2.1:1" // rewritten by some middleware
		r = r.WithContext(ConnContext(r.Context(), fakeConn{addr: &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 4000}}))
		proxy, ok := m.trustedProxy(m.state.Load(), r)
		assert.True(t, ok)
		assert.Equal(t, netip.MustParseAddr("10.1.2.3"), proxy)
	})
}

type fakeConn struct {
	net.Conn
	addr net.Addr
}

func (c fakeConn) RemoteAddr() net.Addr { return c.addr }

// TestStripDefaultNamesWithCustomNames: with Names replacing the format's header names, the
// format's own headers are removed from other peers' requests too.
func TestStripDefaultNamesWithCustomNames(t *testing.T) {
	f := newHeaderFixture(t)
	m := f.middleware(t, true, func(hc *HeaderConfig) { hc.Names = []string{"X-Client-Cert"} })
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "192.0.2.1:1"
	r.Header.Set("X-SSL-Client-Cert", f.leaf)
	r.Header.Set("X-Client-Cert", f.leaf)
	var s seen
	m.Handler(s.handler()).ServeHTTP(httptest.NewRecorder(), r)
	require.True(t, s.called)
	assert.Empty(t, s.header)
}

// TestHostMustMatchSNI: a certificate accepted on a connection to one server name does not reach
// another host's routes on the same listener.
func TestHostMustMatchSNI(t *testing.T) {
	p := newPKI(t)
	strict, err := New(Config{RootCAs: p.root.Pool(), Optional: true})
	require.NoError(t, err)
	lenient, err := New(Config{RootCAs: p.root.Pool(), DangerouslyAllowHostMismatch: true})
	require.NoError(t, err)
	tests := []struct {
		name      string
		m         *Middleware
		sni       string
		host      string
		hostField []string // host header fields beside the authority, as HTTP/2 leaves them in r.Header
		noCert    bool
		status    int
	}{
		{name: "same name", m: strict, sni: "api.example.test", host: "api.example.test", status: 200},
		{name: "same name, other case and a port", m: strict, sni: "api.example.test", host: "API.Example.Test:8443", status: 200},
		{name: "same name, trailing dot", m: strict, sni: "api.example.test", host: "api.example.test.", status: 200},
		{name: "other name", m: strict, sni: "api.example.test", host: "admin.example.test", status: 421},
		{name: "other name with a port", m: strict, sni: "api.example.test", host: "admin.example.test:443", status: 421},
		{name: "no SNI, IPv4 host", m: strict, host: "127.0.0.1:8443", status: 200},
		{name: "no SNI, IPv6 host", m: strict, host: "[::1]:8443", status: 200},
		{name: "no SNI, named host", m: strict, host: "admin.example.test", status: 421},
		{name: "SNI, address host", m: strict, sni: "api.example.test", host: "127.0.0.1", status: 421},
		{name: "other name without a client certificate", m: strict, sni: "api.example.test", host: "admin.example.test", noCert: true, status: 200},
		{name: "other name, allowed dangerously", m: lenient, sni: "api.example.test", host: "admin.example.test", status: 200},
		// Only ASCII letters fold: strings.EqualFold would take U+017F for "s" and U+212A for "k".
		{name: "long s in the server name", m: strict, sni: "\u017fecure.example.test", host: "secure.example.test", status: 421},
		{name: "long s in the Host", m: strict, sni: "secure.example.test", host: "\u017fecure.example.test", status: 421},
		{name: "Kelvin sign in the server name", m: strict, sni: "\u212aey.example.test", host: "key.example.test", status: 421},
		{name: "Kelvin sign in the Host, with a port", m: strict, sni: "key.example.test", host: "\u212aey.example.test:443", status: 421},
		{name: "the same non-ASCII name twice", m: strict, sni: "\u017fecure.example.test", host: "\u017fecure.example.test", status: 421},
		{name: "U-label Host for an A-label server name", m: strict, sni: "xn--bcher-kva.example.test", host: "b\u00fccher.example.test", status: 421},
		{name: "A-label in both, other case", m: strict, sni: "xn--bcher-kva.example.test", host: "XN--BCHER-KVA.example.test", status: 200},
		{name: "no SNI, non-ASCII zone", m: strict, host: "[fe80::1%\u017f]:8443", status: 421},
		{name: "non-ASCII port", m: strict, sni: "api.example.test", host: "api.example.test:\u0664\u0664\u0663", status: 421},
		// A port must be digits: a router that splits at another colon would read another name.
		{name: "port that is a name", m: strict, sni: "api.example.test", host: "api.example.test:admin.example.test", status: 421},
		{name: "two ports", m: strict, sni: "api.example.test", host: "api.example.test:443:443", status: 421},
		{name: "port with a letter", m: strict, sni: "api.example.test", host: "api.example.test:443a", status: 421},
		{name: "empty port", m: strict, sni: "api.example.test", host: "api.example.test:", status: 200},
		{name: "no SNI, IPv4 host, port that is a name", m: strict, host: "127.0.0.1:admin.example.test", status: 421},
		{name: "no SNI, IPv6 host, port that is a name", m: strict, host: "[::1]:admin", status: 421},
		{name: "no SNI, IPv6 host without a port", m: strict, host: "[::1]", status: 200},
		{name: "no SNI, IPv6 host with a zone", m: strict, host: "[fe80::1%25eth0]:443", status: 200},
		{name: "no SNI, IPv6 host without brackets", m: strict, host: "::1", status: 421},
		{name: "no SNI, text after the bracket", m: strict, host: "[::1]admin", status: 421},
		{name: "no SNI, unclosed bracket", m: strict, host: "[::1:443", status: 421},
		{name: "server name with a colon, as Host", m: strict, sni: "api.example.test:admin", host: "api.example.test:admin", status: 421},
		// HTTP/2: a host field beside :authority must name the same (RFC 9113, 8.3.1).
		{name: "host field as the authority", m: strict, sni: "api.example.test", host: "api.example.test", hostField: []string{"api.example.test"}, status: 200},
		{name: "host field as the authority, other case", m: strict, sni: "api.example.test", host: "api.example.test", hostField: []string{"API.example.test"}, status: 200},
		{name: "host field naming another server", m: strict, sni: "api.example.test", host: "api.example.test", hostField: []string{"admin.example.test"}, status: 421},
		{name: "host field with another port", m: strict, sni: "api.example.test", host: "api.example.test", hostField: []string{"api.example.test:8443"}, status: 421},
		{name: "two host fields, the second another server", m: strict, sni: "api.example.test", host: "api.example.test", hostField: []string{"api.example.test", "admin.example.test"}, status: 421},
		{name: "empty host field", m: strict, sni: "api.example.test", host: "api.example.test", hostField: []string{""}, status: 421},
		{name: "no SNI, host field naming a server", m: strict, host: "127.0.0.1", hostField: []string{"admin.example.test"}, status: 421},
		{name: "host field naming another server, without a client certificate", m: strict, sni: "api.example.test", host: "api.example.test", hostField: []string{"admin.example.test"}, noCert: true, status: 200},
		{name: "host field naming another server, allowed dangerously", m: lenient, sni: "api.example.test", host: "api.example.test", hostField: []string{"admin.example.test"}, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Host = tt.host
			if tt.hostField != nil {
				r.Header["Host"] = tt.hostField
			}
			r.TLS = &tls.ConnectionState{ServerName: tt.sni}
			if !tt.noCert {
				r.TLS.PeerCertificates = p.alice.Chain()
			}
			w := httptest.NewRecorder()
			tt.m.Handler(echoIdentity).ServeHTTP(w, r)
			require.Equal(t, tt.status, w.Code)
			if tt.status == http.StatusMisdirectedRequest {
				assert.Contains(t, w.Body.String(), `"reason":"`+ReasonMisdirected+`"`)
				assert.NotContains(t, w.Body.String(), "admin", "the detail is not sent")
			}
		})
	}
}

// TestHostMustMatchSNIOverTLS: the same over a real handshake, with a client that names one
// server in SNI and another in Host.
func TestHostMustMatchSNIOverTLS(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	serverCA := mtlstest.NewRootCA("Server CA")
	srv := httptest.NewUnstartedServer(m.Handler(echoIdentity))
	srv.TLS = m.TLSConfig(&tls.Config{Certificates: []tls.Certificate{serverCA.NewServer("api.example.test").TLSCertificate()}})
	srv.StartTLS()
	t.Cleanup(srv.Close)

	for _, tt := range []struct {
		name, sni, host string
		want            int
	}{
		{"same name", "api.example.test", "api.example.test", 200},
		{"other name", "api.example.test", "admin.example.test", 421},
		{"address as Host", "api.example.test", "", 421},
		// crypto/tls takes any bytes as the server name; Go's client sends them as given.
		{"long s in the server name", "\u017fecure.example.test", "secure.example.test", 421},
		{"Kelvin sign in the server name", "\u212aey.example.test", "key.example.test", 421},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := clientFor(serverCA, p.alice)
			cfg := client.Transport.(*http.Transport).TLSClientConfig
			cfg.ServerName = tt.sni
			if tt.sni != "api.example.test" {
				// The server's certificate names api.example.test: the client only needs to
				// send its server name, the check under test is the server's.
				cfg.InsecureSkipVerify = true
			}
			req, err := http.NewRequest(http.MethodGet, srv.URL, nil) // to 127.0.0.1
			require.NoError(t, err)
			if tt.host != "" {
				req.Host = tt.host
			}
			res, err := client.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			assert.Equal(t, tt.want, res.StatusCode, "Host %q: %s", tt.host, body)
		})
	}
}

// TestHostMismatchDetail: the detail of a 421 (for the log, not the client) says what the client
// sent, what it must send, and the option that turns the check off, with its risk.
func TestHostMismatchDetail(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	const off = "Config.DangerouslyAllowHostMismatch turns the check off, and lets a client authenticated under one virtual host's TLS settings send its requests to another's routes"
	const proxy = "a proxy in front must name in its TLS connection the server of the Host it sends"
	tests := []struct {
		name, sni, host string
		hostField       []string
		want            []string
	}{
		{name: "other name", sni: "api.example.test", host: "admin.example.test", want: []string{
			`the client connected with TLS server name (SNI) "api.example.test" but sent Host "admin.example.test": clients must send a Host that names the server they named in the handshake`,
			proxy, "proxy_ssl_name $host", off}},
		{name: "no SNI", host: "admin.example.test", want: []string{
			`the client connected without a TLS server name (SNI), by address, but sent Host "admin.example.test"`, "proxy_ssl_server_name", off}},
		{name: "port that is a name", sni: "api.example.test", host: "api.example.test:admin", want: []string{
			`Host "api.example.test:admin" is not a host name or address with a port of digits`, off}},
		{name: "not ASCII", sni: "\u017fecure.example.test", host: "secure.example.test", want: []string{"A-labels", off}},
		{name: "HTTP/2 host field", sni: "api.example.test", host: "api.example.test", hostField: []string{"admin.example.test"}, want: []string{
			`host header field "admin.example.test" names another authority than its :authority "api.example.test"`, "RFC 9113", off}},
		{name: "long Host clipped", sni: "api.example.test", host: strings.Repeat("a", 4096), want: []string{strings.Repeat("a", maxNameInDetail) + `..."`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Host = tt.host
			if tt.hostField != nil {
				r.Header["Host"] = tt.hostField
			}
			r.TLS = &tls.ConnectionState{ServerName: tt.sni, PeerCertificates: p.alice.Chain()}
			_, err := m.Authenticate(r)
			require.ErrorIs(t, err, ErrMisdirected)
			for _, want := range tt.want {
				assert.Contains(t, err.Error(), want)
			}
			assert.Less(t, len(err.Error()), 2048, "names are clipped")
			w := httptest.NewRecorder()
			m.Handler(echoIdentity).ServeHTTP(w, r)
			assert.Equal(t, http.StatusMisdirectedRequest, w.Code)
			assert.Equal(t, `{"type":"about:blank","title":"Misdirected Request","status":421,"reason":"misdirected_request"}`, strings.TrimSpace(w.Body.String()))
		})
	}
}
