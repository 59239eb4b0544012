package mtls

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// trailerRecorder is a handler that reads the body to its end and records the trailers it then
// finds, as a backend that merges trailers into the header would read them.
type trailerRecorder struct {
	mu       sync.Mutex
	trailers http.Header
	header   http.Header
	body     string
}

func (t *trailerRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.body, t.trailers, t.header = string(b), r.Trailer.Clone(), r.Header.Clone()
}

func (t *trailerRecorder) seen() (string, http.Header, http.Header) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.body, t.trailers, t.header
}

// postChunked sends a chunked POST with the given head lines and trailer lines over its own
// connection to addr, as written, and returns the response status.
func postChunked(t *testing.T, addr string, head, trailers []string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	req := "POST / HTTP/1.1\r\nHost: api.example.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
	for _, h := range head {
		req += h + "\r\n"
	}
	req += "\r\n5\r\nhello\r\n0\r\n"
	for _, h := range trailers {
		req += h + "\r\n"
	}
	req += "\r\n"
	_, err = io.WriteString(c, req)
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	res.Body.Close()
	return res.StatusCode
}

// noFamily asserts that no key of h names a header of the haproxy family.
func noFamily(t *testing.T, h http.Header) {
	t.Helper()
	for k := range h {
		norm := strings.ReplaceAll(strings.ToLower(k), "_", "-")
		assert.False(t, strings.HasPrefix(norm, "x-ssl-client-"), "trailer %q reached the handler", k)
	}
}

var forgedTrailerCases = []struct {
	name     string
	head     []string
	trailers []string
}{
	{"declared", []string{"Trailer: X-SSL-Client-Cert, X-Checksum"}, []string{"X-SSL-Client-Cert: FORGED", "X-Checksum: 42"}},
	{"declared with underscores", []string{"Trailer: X_SSL_Client_Cert, X-Checksum"}, []string{"X_SSL_Client_Cert: FORGED", "X-Checksum: 42"}},
	{"declared companion", []string{"Trailer: x-ssl-client-verify, X-Checksum"}, []string{"x-ssl-client-verify: SUCCESS", "X-Checksum: 42"}},
	{"undeclared", nil, []string{"X-SSL-Client-Cert: FORGED", "X-SSL-Client-Verify: SUCCESS"}},
	{"undeclared beside a declared one", []string{"Trailer: X-Checksum"}, []string{"X-Checksum: 42", "X-SSL-Client-Cert: FORGED"}},
}

// TestHeaderTrailersNeverCarryFamily: a client that sends a certificate header, or a companion,
// as a trailer after a chunked body does not get it to the next handler, whatever the peer and
// the spelling; the other trailers it declared arrive.
func TestHeaderTrailersNeverCarryFamily(t *testing.T) {
	f := newHeaderFixture(t)
	for _, peer := range []struct {
		name    string
		trusts  string
		header  bool // the request carries the proxy's certificate header
		wantSrc Source
	}{
		{"untrusted peer", "10.0.0.0/8", false, ""},
		{"trusted proxy", "127.0.0.0/8", true, SourceHeader},
	} {
		t.Run(peer.name, func(t *testing.T) {
			m := f.middleware(t, true, func(hc *HeaderConfig) {
				hc.TrustedProxies = []netip.Prefix{netip.MustParsePrefix(peer.trusts)}
			})
			var rec trailerRecorder
			var src Source
			srv := httptest.NewServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if id, ok := FromContext(r.Context()); ok {
					src = id.Source
				}
				rec.ServeHTTP(w, r)
			})))
			defer srv.Close()
			for _, tt := range forgedTrailerCases {
				t.Run(tt.name, func(t *testing.T) {
					src = ""
					head := tt.head
					if peer.header {
						head = append([]string{"X-SSL-Client-Cert: " + f.leaf}, head...)
					}
					require.Equal(t, http.StatusOK, postChunked(t, srv.Listener.Addr().String(), head, tt.trailers))
					body, trailers, _ := rec.seen()
					assert.Equal(t, "hello", body)
					assert.Equal(t, peer.wantSrc, src)
					noFamily(t, trailers)
					if strings.Contains(strings.Join(tt.head, ","), "X-Checksum") {
						assert.Equal(t, "42", trailers.Get("X-Checksum"), "a declared trailer of no family arrives")
					}
				})
			}
		})
	}
}

// TestHeaderTrailersThroughReverseProxy: a reverse proxy behind the middleware that forwards
// request trailers (its Rewrite shares the incoming Trailer map, the way to forward them) does not
// forward a client's certificate header sent as a trailer.
func TestHeaderTrailersThroughReverseProxy(t *testing.T) {
	f := newHeaderFixture(t)
	var rec trailerRecorder
	backend := httptest.NewServer(&rec)
	defer backend.Close()
	target, err := url.Parse(backend.URL)
	require.NoError(t, err)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Trailer = pr.In.Trailer
	}}
	m := f.middleware(t, true, nil) // 127.0.0.1 is not a trusted proxy
	gateway := httptest.NewServer(m.Handler(rp))
	defer gateway.Close()
	for _, tt := range forgedTrailerCases {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, http.StatusOK, postChunked(t, gateway.Listener.Addr().String(), tt.head, tt.trailers))
			body, trailers, header := rec.seen()
			assert.Equal(t, "hello", body)
			noFamily(t, trailers)
			noFamily(t, header)
			if strings.Contains(strings.Join(tt.head, ","), "X-Checksum") {
				assert.Equal(t, "42", trailers.Get("X-Checksum"), "a declared trailer of no family is forwarded")
			}
		})
	}
}

// TestForwardTrailers: Forward deletes the formats' headers from the trailers as well, those
// declared and those that arrive with the client's body into a shared Trailer map, so that a Go
// gateway does not forward them; the backend here believes whatever arrives.
func TestForwardTrailers(t *testing.T) {
	p := newPKI(t)
	rfc9440 := MustHeaderFormat("rfc9440")
	var rec trailerRecorder
	backend := httptest.NewServer(&rec)
	defer backend.Close()
	target, err := url.Parse(backend.URL)
	require.NoError(t, err)
	gatewayMW, err := New(Config{RootCAs: p.root.Pool(), Optional: true}) // not in header mode
	require.NoError(t, err)
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Trailer = pr.In.Trailer
		id, _ := FromContext(pr.In.Context())
		if err := Forward(pr.Out, id, rfc9440); err != nil {
			panic(err)
		}
	}}
	gateway := httptest.NewServer(gatewayMW.Handler(rp))
	defer gateway.Close()
	forged := ":" + b64(p.alice.Certificate) + ":"
	for _, tt := range []struct {
		name     string
		head     []string
		trailers []string
	}{
		{"declared", []string{"Trailer: Client-Cert, X-Checksum"}, []string{"Client-Cert: " + forged, "X-Checksum: 42"}},
		{"declared with underscores", []string{"Trailer: client_cert, X-Checksum"}, []string{"client_cert: " + forged, "X-Checksum: 42"}},
		{"declared companion", []string{"Trailer: X-Client-Cert-Chain-Verified, X-Checksum"}, []string{"X-Client-Cert-Chain-Verified: true", "X-Checksum: 42"}},
		{"undeclared into a shared map", []string{"Trailer: X-Checksum"}, []string{"X-Checksum: 42", "Client-Cert: " + forged}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, http.StatusOK, postChunked(t, gateway.Listener.Addr().String(), tt.head, tt.trailers))
			body, trailers, _ := rec.seen()
			assert.Equal(t, "hello", body)
			for k := range trailers {
				norm := strings.ReplaceAll(strings.ToLower(k), "_", "-")
				assert.False(t, norm == "client-cert" || strings.HasPrefix(norm, "x-client-cert"), "trailer %q forwarded", k)
			}
			assert.Equal(t, "42", trailers.Get("X-Checksum"), "the other trailers are forwarded")
		})
	}
	t.Run("declared keys removed before the body is read", func(t *testing.T) {
		out := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x"))
		out.Trailer = http.Header{"Client-Cert": nil, "client_cert_chain": nil, "X-Checksum": nil}
		require.NoError(t, Forward(out, nil, rfc9440))
		assert.Equal(t, http.Header{"X-Checksum": nil}, out.Trailer)
		out.Trailer["Client-Cert"] = []string{forged} // arrives with the body
		_, err := io.ReadAll(out.Body)
		require.NoError(t, err)
		assert.Equal(t, http.Header{"X-Checksum": nil}, out.Trailer)
	})
}

// TestHeaderTrailersOwnMap: the request the next handler sees has a Trailer map of its own: what
// the server later puts in the caller's map reaches it only for the declared keys of no family.
func TestHeaderTrailersOwnMap(t *testing.T) {
	f := newHeaderFixture(t)
	m := f.middleware(t, true, nil)
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("hello"))
	r.RemoteAddr = "192.0.2.1:1"
	r.Trailer = http.Header{"X-Ssl-Client-Cert": nil, "X-Checksum": nil}
	var trailers http.Header
	var before http.Header
	m.Handler(http.HandlerFunc(func(w http.ResponseWriter, got *http.Request) {
		before = got.Trailer.Clone()
		// What a server does as the body ends: it fills the map of the request it read.
		r.Trailer["X-Ssl-Client-Cert"] = []string{"FORGED"}
		r.Trailer["X-Checksum"] = []string{"42"}
		_, _ = io.Copy(io.Discard, got.Body)
		trailers = got.Trailer
	})).ServeHTTP(httptest.NewRecorder(), r)
	assert.Equal(t, http.Header{"X-Checksum": nil}, before)
	assert.Equal(t, http.Header{"X-Checksum": {"42"}}, trailers)
	assert.Equal(t, []string{"FORGED"}, r.Trailer["X-Ssl-Client-Cert"], "the caller's map is not changed")
}

// TestHeaderTrailersHTTP2: the same over HTTP/2, where trailers travel in a HEADERS frame after
// the body and net/http keeps the declared ones.
func TestHeaderTrailersHTTP2(t *testing.T) {
	f := newHeaderFixture(t)
	m := f.middleware(t, true, nil) // 127.0.0.1 is not a trusted proxy
	var rec trailerRecorder
	var proto string
	srv := httptest.NewUnstartedServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto = r.Proto
		rec.ServeHTTP(w, r)
	})))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	req, err := http.NewRequest(http.MethodPost, srv.URL, io.NopCloser(strings.NewReader("hello")))
	require.NoError(t, err)
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Ssl-Client-Cert": {"FORGED"}, "X_ssl_client_verify": {"SUCCESS"}, "X-Checksum": {"42"}}
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	body, trailers, _ := rec.seen()
	require.Equal(t, "HTTP/2.0", proto)
	assert.Equal(t, "hello", body)
	noFamily(t, trailers)
	assert.Equal(t, "42", trailers.Get("X-Checksum"))
}
