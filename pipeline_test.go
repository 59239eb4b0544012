package mtls

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHostMustMatchSNI: a certificate accepted on a connection to one server name does not reach
// another host's routes on the same listener.
func TestHostMustMatchSNI(t *testing.T) {
	p := newPKI(t)
	strict, err := New(Config{RootCAs: p.root.Pool(), Optional: true})
	require.NoError(t, err)
	lenient, err := New(Config{RootCAs: p.root.Pool(), DangerouslyAllowHostMismatch: true})
	require.NoError(t, err)
	tests := []struct {
		name   string
		m      *Middleware
		sni    string
		host   string
		noCert bool
		status int
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Host = tt.host
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
	client := clientFor(serverCA, p.alice)
	client.Transport.(*http.Transport).TLSClientConfig.ServerName = "api.example.test"

	for host, want := range map[string]int{"api.example.test": 200, "admin.example.test": 421, "": 421} {
		req, err := http.NewRequest(http.MethodGet, srv.URL, nil) // to 127.0.0.1
		require.NoError(t, err)
		if host != "" {
			req.Host = host
		}
		res, err := client.Do(req)
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		assert.Equal(t, want, res.StatusCode, "Host %q: %s", host, body)
	}
}
