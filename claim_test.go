package mtls

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

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
		proxy, ok := m.trustedProxy(r)
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
