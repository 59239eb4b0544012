package mtls

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testClock is a clock for Config.Now that tests move by hand; safe to read from servers'
// goroutines.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// eventLog records the events of a middleware.
type eventLog struct {
	mu  sync.Mutex
	evs []Event
}

func (l *eventLog) record(_ context.Context, ev Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, ev)
}

func (l *eventLog) last(t *testing.T) Event {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	require.NotEmpty(t, l.evs)
	return l.evs[len(l.evs)-1]
}

// serveThrottled runs r through h and returns the status, the reason code of a refusal and the
// Retry-After header.
func serveThrottled(t *testing.T, h http.Handler, r *http.Request) (status int, reason, retry string) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := w.Result()
	if res.StatusCode != http.StatusOK {
		reason = decodeProblem(t, res).Reason
	}
	return res.StatusCode, reason, res.Header.Get("Retry-After")
}

// TestRefusalThrottleCertificate: after Limit refusals of one certificate within Window, the
// next requests with it are 429 too_many_refusals with a Retry-After, refused at the claim
// without being screened, looked up or verified (the verification cache is off, so every
// refusal before verified again; in header mode the format's decodings are counted); once the
// window has passed, the certificate is judged again, and counted afresh.
func TestRefusalThrottleCertificate(t *testing.T) {
	p := newPKI(t)
	clock := newTestClock()
	now := clock.now()
	stranger := p.other.NewClient("stranger")
	expired := p.issuing.NewClient("expired", mtlstest.WithValidity(now.Add(-10*24*time.Hour), now.Add(-3*24*time.Hour)))
	future := p.issuing.NewClient("future", mtlstest.WithValidity(now.Add(time.Hour), now.Add(30*24*time.Hour)))
	server := p.issuing.NewClient("server", mtlstest.WithExtKeyUsage(x509.ExtKeyUsageServerAuth))
	revoked := p.issuing.NewClient("revoked")
	lan := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	proxy := mtlstest.Proxy{Format: MustHeaderFormat("haproxy"), Addr: "10.0.0.1:4000"}
	tls := func(l *mtlstest.Leaf) func() *http.Request {
		return func() *http.Request {
			return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", l.Chain()...)
		}
	}
	tests := []struct {
		name   string
		header bool
		cfg    func(*Config)
		req    func() *http.Request
		reason string
		step   string
	}{
		{name: "untrusted", req: tls(stranger), reason: ReasonCertificateUntrusted, step: stepVerify},
		{name: "expired", req: tls(expired), reason: ReasonCertificateExpired, step: stepVerify},
		{name: "not yet valid", req: tls(future), reason: ReasonCertificateNotYet, step: stepVerify},
		{name: "wrong usage", req: tls(server), reason: ReasonCertificateUsage, step: stepVerify},
		{name: "revoked", req: tls(revoked), reason: ReasonCertificateRevoked, step: stepRevocation,
			cfg: func(c *Config) {
				c.Revocation = &RevocationConfig{DenyList: NewDenyList(DenyCertificate(sha256.Sum256(revoked.Certificate.Raw)))}
			}},
		{name: "forwarded untrusted", header: true, reason: ReasonCertificateUntrusted, step: stepVerify,
			req: func() *http.Request { return proxy.NewRequest(http.MethodGet, "/", stranger.Chain()...) }},
		{name: "forwarded malformed", header: true, reason: ReasonMalformedHeader, step: stepParse,
			req: func() *http.Request {
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				r.RemoteAddr = "10.0.0.1:4000"
				r.Header.Set("X-SSL-Client-Cert", "not base64 !")
				return r
			}},
	}
	const limit = 3
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var evs eventLog
			cfg := Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), Now: clock.now, CacheSize: -1,
				OnDecision: evs.record, Logger: slog.New(slog.DiscardHandler),
				RefusalThrottle: &RefusalThrottleConfig{Limit: limit, Window: time.Minute}}
			format := &countingFormat{Format: MustHeaderFormat("haproxy")}
			if tt.header {
				cfg.Header = &HeaderConfig{Format: format, TrustedProxies: lan}
			}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			m, err := New(cfg)
			require.NoError(t, err)
			h := m.Handler(echoIdentity)
			judged := func(round string) {
				for i := range limit {
					_, reason, retry := serveThrottled(t, h, tt.req())
					require.Equal(t, tt.reason, reason, "%s: refusal %d", round, i+1)
					assert.Empty(t, retry)
					ev := evs.last(t)
					assert.Equal(t, Refused, ev.Result)
					assert.Equal(t, tt.step, ev.Step, "refusal %d is judged", i+1)
				}
			}
			judged("first window")
			decodes := format.decodes
			status, reason, retry := serveThrottled(t, h, tt.req())
			assert.Equal(t, http.StatusTooManyRequests, status)
			assert.Equal(t, ReasonTooManyRefusals, reason)
			assert.Equal(t, "60", retry)
			ev := evs.last(t)
			assert.Equal(t, Throttled, ev.Result)
			assert.Equal(t, ReasonTooManyRefusals, ev.Reason)
			assert.Equal(t, http.StatusTooManyRequests, ev.Status)
			assert.Equal(t, stepClaim, ev.Step, "refused before the screen and the verification")
			assert.ErrorIs(t, ev.Err, ErrTooManyRefusals)
			assert.Contains(t, ev.Err.Error(), "refused 3 times within 1m0s")
			assert.Contains(t, ev.Err.Error(), "Config.RefusalThrottle")
			if !tt.header {
				assert.Equal(t, tt.req().TLS.PeerCertificates[0].Subject.CommonName, ev.Leaf.Subject.CommonName)
				assert.Contains(t, ev.Err.Error(), ev.SHA256[:16], "the detail names the fingerprint")
			}

			clock.advance(59*time.Second + 500*time.Millisecond)
			for range 5 { // throttled requests do not count: the window ends all the same
				status, _, retry = serveThrottled(t, h, tt.req())
				assert.Equal(t, http.StatusTooManyRequests, status)
				assert.Equal(t, "1", retry, "whole seconds, rounded up")
			}
			assert.Equal(t, decodes, format.decodes, "a throttled request is not decoded")

			clock.advance(500 * time.Millisecond)
			judged("second window")
			status, _, _ = serveThrottled(t, h, tt.req())
			assert.Equal(t, http.StatusTooManyRequests, status, "counted afresh")

			// Another client is not slowed.
			if tt.header {
				status, _, _ = serveThrottled(t, h, proxy.NewRequest(http.MethodGet, "/", p.alice.Chain()...))
			} else {
				status, _, _ = serveThrottled(t, h, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
			}
			assert.Equal(t, http.StatusOK, status)
		})
	}
}

// TestRefusalThrottleNoCertificate: on a direct connection without a certificate, refusals are
// counted by the connection's peer address (ConnContext's when recorded), not by an address a
// middleware could have taken from a header; another address is not slowed; a request that is
// let through without a certificate (Optional, the credentials of Either) is never slowed.
func TestRefusalThrottleNoCertificate(t *testing.T) {
	p := newPKI(t)
	clock := newTestClock()
	req := func(remote string, peer net.Addr) *http.Request {
		r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/")
		r.RemoteAddr = remote
		if peer != nil {
			r = r.WithContext(context.WithValue(r.Context(), peerKey{}, peer))
		}
		return r
	}
	newM := func(t *testing.T, optional bool) *Middleware {
		m, err := New(Config{RootCAs: p.root.Pool(), Now: clock.now, Optional: optional, Logger: slog.New(slog.DiscardHandler),
			RefusalThrottle: &RefusalThrottleConfig{Limit: 2}})
		require.NoError(t, err)
		return m
	}

	t.Run("by peer address", func(t *testing.T) {
		h := newM(t, false).Handler(echoIdentity)
		for range 2 {
			status, reason, _ := serveThrottled(t, h, req("192.0.2.1:1234", nil))
			require.Equal(t, http.StatusUnauthorized, status)
			require.Equal(t, ReasonCertificateRequired, reason)
		}
		status, reason, retry := serveThrottled(t, h, req("192.0.2.1:999", nil))
		assert.Equal(t, http.StatusTooManyRequests, status, "the address, whatever the port")
		assert.Equal(t, ReasonTooManyRefusals, reason)
		assert.Equal(t, "60", retry)
		status, _, _ = serveThrottled(t, h, req("192.0.2.2:1234", nil))
		assert.Equal(t, http.StatusUnauthorized, status, "another address")
		status, _, _ = serveThrottled(t, h, req("[::ffff:192.0.2.1]:1234", nil))
		assert.Equal(t, http.StatusTooManyRequests, status, "the same address, mapped")
		status, _, _ = serveThrottled(t, h, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
		assert.Equal(t, http.StatusOK, status, "a certificate from the same address is judged by itself")
	})
	t.Run("ConnContext's peer, not RemoteAddr", func(t *testing.T) {
		h := newM(t, false).Handler(echoIdentity)
		peer := &net.TCPAddr{IP: net.ParseIP("198.51.100.7"), Port: 4000}
		for i := range 3 {
			// A middleware set RemoteAddr from a client's X-Forwarded-For, a new one each time.
			status, _, _ := serveThrottled(t, h, req(fmt.Sprintf("203.0.113.%d:1", i), peer))
			if i < 2 {
				require.Equal(t, http.StatusUnauthorized, status)
			} else {
				assert.Equal(t, http.StatusTooManyRequests, status)
			}
		}
		status, _, _ := serveThrottled(t, h, req("198.51.100.8:1", nil))
		assert.Equal(t, http.StatusUnauthorized, status)
	})
	t.Run("a bare RemoteAddr is not counted", func(t *testing.T) {
		h := newM(t, false).Handler(echoIdentity)
		for range 5 {
			status, _, _ := serveThrottled(t, h, req("192.0.2.1", nil)) // a rewrite from a client's header
			require.Equal(t, http.StatusUnauthorized, status)
		}
	})
	t.Run("optional and credentials are never slowed", func(t *testing.T) {
		m := newM(t, false)
		for range 3 {
			serveThrottled(t, m.Handler(echoIdentity), req("192.0.2.1:1234", nil))
		}
		status, _, _ := serveThrottled(t, m.Handler(echoIdentity), req("192.0.2.1:1234", nil))
		require.Equal(t, http.StatusTooManyRequests, status)
		either := m.Either(func(*http.Request) (string, error) { return "svc", nil })(echoIdentity)
		for range 5 {
			status, _, _ = serveThrottled(t, either, req("192.0.2.1:1234", nil))
			assert.Equal(t, http.StatusOK, status, "the credentials decide a request without a certificate")
		}
		refusing := m.Either(func(*http.Request) (string, error) { return "", errors.New("no key") })(echoIdentity)
		for range 5 {
			_, reason, _ := serveThrottled(t, refusing, req("192.0.2.9:1234", nil))
			assert.Equal(t, ReasonCredentialsRequired, reason, "credential refusals are not counted")
		}
		opt := newM(t, true).Handler(echoIdentity)
		for range 5 {
			status, _, _ = serveThrottled(t, opt, req("192.0.2.1:1234", nil))
			assert.Equal(t, http.StatusOK, status)
		}
	})
}

// TestRefusalThrottleHeaderMode: from a trusted proxy, refusals are counted by the forwarded
// certificate header values, never by the proxy's address: many refused clients behind the proxy
// slow each of them, not a legitimate client behind the same proxy; the proxy forwarding no
// certificate is not counted at all, and neither is a peer within TrustedProxies that presents
// none on its connection.
func TestRefusalThrottleHeaderMode(t *testing.T) {
	p := newPKI(t)
	clock := newTestClock()
	format := MustHeaderFormat("haproxy")
	m, err := New(Config{RootCAs: p.root.Pool(), Now: clock.now, Logger: slog.New(slog.DiscardHandler),
		Header:          &HeaderConfig{Format: format, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		RefusalThrottle: &RefusalThrottleConfig{Limit: 2}})
	require.NoError(t, err)
	h := m.Handler(echoIdentity)
	proxy := mtlstest.Proxy{Format: format, Addr: "10.0.0.1:4000"}
	strangers := make([]*mtlstest.Leaf, 10)
	for i := range strangers {
		strangers[i] = p.other.NewClient(fmt.Sprintf("stranger-%d", i))
	}
	for round := range 3 {
		for i, s := range strangers {
			status, _, _ := serveThrottled(t, h, proxy.NewRequest(http.MethodGet, "/", s.Chain()...))
			if round < 2 {
				require.Equal(t, http.StatusUnauthorized, status, "stranger %d, round %d", i, round)
			} else {
				assert.Equal(t, http.StatusTooManyRequests, status, "stranger %d, by its certificate", i)
			}
		}
	}
	for range 5 {
		_, reason, _ := serveThrottled(t, h, proxy.NewRequest(http.MethodGet, "/")) // the proxy forwards no certificate
		require.Equal(t, ReasonCertificateRequired, reason, "no certificate forwarded: not counted")
		direct := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/")
		direct.RemoteAddr = "10.0.0.1:4000"
		direct.Header.Del("X-SSL-Client-Cert")
		_, reason, _ = serveThrottled(t, h, direct)
		require.Equal(t, ReasonCertificateRequired, reason, "a trusted proxy's address is not counted")
	}
	status, body := 0, ""
	for range 3 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, proxy.NewRequest(http.MethodGet, "/", p.alice.Chain()...))
		status, body = w.Code, w.Body.String()
		require.Equal(t, http.StatusOK, status, "a legitimate client behind the same proxy")
		require.Equal(t, "alice", body)
	}
	assert.Equal(t, len(strangers), m.state.Load().refusals.len(), "one key per refused certificate, none for the proxy or alice")
}

// TestRefusalThrottleNotCounted: refusals that are not the certificate's own fault never slow
// it: revocation unavailable (the responder's), a policy's or a principal mapping's refusal (the
// route's), a misdirected request; and another certificate's refusals slow no one else.
func TestRefusalThrottleNotCounted(t *testing.T) {
	p := newPKI(t)
	clock := newTestClock()
	bob := p.issuing.NewClient("bob")
	onlyAlice := must(RequireSubject(Attributes{"CN": {"alice"}}))
	issuingOnly := x509.NewCertPool()
	issuingOnly.AddCert(p.issuing.Certificate)
	tests := []struct {
		name   string
		cfg    func(*Config)
		req    func() *http.Request
		reason string
	}{
		{"revocation unavailable", func(c *Config) {
			c.RootCAs, c.Intermediates = issuingOnly, nil
			c.Revocation = &RevocationConfig{OCSP: &OCSPConfig{}}
		}, func() *http.Request {
			return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()[:1]...)
		}, ReasonRevocationUnavailable},
		{"policy denied", func(c *Config) { c.Policy = onlyAlice }, func() *http.Request {
			return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", bob.Chain()...)
		}, ReasonPolicyDenied},
		{"principal refused", func(c *Config) {
			c.Principals = PrincipalResolverFunc(func(*Identity) (string, error) { return "", errors.New("unknown") })
		}, func() *http.Request {
			return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", bob.Chain()...)
		}, ReasonPolicyDenied},
		{"misdirected", nil, func() *http.Request {
			r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", bob.Chain()...)
			r.Host = "other.example.test"
			return r
		}, ReasonMisdirected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), Now: clock.now, CacheSize: -1,
				Logger: slog.New(slog.DiscardHandler), RefusalThrottle: &RefusalThrottleConfig{Limit: 2}}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			m, err := New(cfg)
			require.NoError(t, err)
			for i := range 6 {
				_, reason, _ := serveThrottled(t, m.Handler(echoIdentity), tt.req())
				require.Equal(t, tt.reason, reason, "request %d", i+1)
			}
			assert.Zero(t, m.state.Load().refusals.len())
		})
	}
	t.Run("a policy on another route", func(t *testing.T) {
		m, err := New(Config{RootCAs: p.root.Pool(), Now: clock.now, Logger: slog.New(slog.DiscardHandler),
			RefusalThrottle: &RefusalThrottleConfig{Limit: 2}})
		require.NoError(t, err)
		strict, open := m.Handler(m.Require(onlyAlice)(echoIdentity)), m.Handler(echoIdentity)
		for range 5 {
			_, reason, _ := serveThrottled(t, strict, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", bob.Chain()...))
			require.Equal(t, ReasonPolicyDenied, reason)
		}
		status, _, _ := serveThrottled(t, open, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", bob.Chain()...))
		assert.Equal(t, http.StatusOK, status)
	})
}

// TestRefusalThrottleReload: a reload that swaps the trust (by Reload, or by polling) judges
// every client afresh; a failed reload keeps the count.
func TestRefusalThrottleReload(t *testing.T) {
	p := newPKI(t)
	clock := newTestClock()
	dir := t.TempDir()
	roots := filepath.Join(dir, "roots.pem")
	require.NoError(t, os.WriteFile(roots, p.root.CertPEM(), 0o600))
	stranger := p.other.NewClient("stranger")
	req := func() *http.Request {
		return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", stranger.Chain()...)
	}
	for _, tt := range []struct {
		name   string
		reload func(m *Middleware) error
	}{
		{"Reload", (*Middleware).Reload},
		{"ReloadInterval", func(m *Middleware) error {
			if !m.poll() {
				return errors.New("nothing changed")
			}
			return m.ReloadStatus().Files.err()
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(roots, p.root.CertPEM(), 0o600))
			m, err := New(Config{RootCAFiles: []string{roots}, Intermediates: p.issuing.Pool(), Now: clock.now,
				ReloadInterval: time.Hour, Logger: slog.New(slog.DiscardHandler), RefusalThrottle: &RefusalThrottleConfig{Limit: 2}})
			require.NoError(t, err)
			t.Cleanup(func() { _ = m.Close() })
			h := m.Handler(echoIdentity)
			for range 2 {
				serveThrottled(t, h, req())
			}
			status, _, _ := serveThrottled(t, h, req())
			require.Equal(t, http.StatusTooManyRequests, status)

			require.NoError(t, os.WriteFile(roots, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o600))
			require.Error(t, tt.reload(m))
			status, _, _ = serveThrottled(t, h, req())
			assert.Equal(t, http.StatusTooManyRequests, status, "a failed reload keeps the count")

			require.NoError(t, os.WriteFile(roots, append(p.root.CertPEM(), p.other.CertPEM()...), 0o600))
			require.NoError(t, tt.reload(m))
			status, _, _ = serveThrottled(t, h, req())
			assert.Equal(t, http.StatusOK, status, "judged afresh under the new trust")
		})
	}
}

// err is the last failure of a source, as an error.
func (s SourceStatus) err() error {
	if s.LastError != "" {
		return errors.New(s.LastError)
	}
	return nil
}

// fakeLeafClaim is a TLS claim of a leaf of the given DER-looking bytes: the key is the SHA-256
// of the bytes, nothing parses them.
func fakeLeafClaim(der []byte) *claim {
	return &claim{source: SourceTLS, certs: []*x509.Certificate{{Raw: der}}}
}

// TestRefusalThrottleFlood: 100,000 distinct refused certificates (recorded through the claim
// path, gate and count, without HTTP requests: each a distinct DER-looking byte string) keep the
// table at MaxTracked keys at most and its memory bounded, and a repeat offender at its limit
// is still slowed after the flood, as in a table much smaller than the flood.
func TestRefusalThrottleFlood(t *testing.T) {
	for _, tt := range []struct {
		name       string
		maxTracked int
	}{{"default", 0}, {"small", 64}} {
		t.Run(tt.name, func(t *testing.T) {
			clock := newTestClock()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			cfg := compileRefusals(&problems{}, &RefusalThrottleConfig{MaxTracked: tt.maxTracked})
			tb := cfg.newTable()
			m, st := &Middleware{}, &state{refusals: tb}
			offender := fakeLeafClaim(bytes.Repeat([]byte{0x30}, 600))
			refused := newError(ErrUntrusted, "", nil)
			for range cfg.limit {
				var ck claimKey
				require.NoError(t, m.slowed(st, offender, &ck, clock.now()))
				m.countRefusal(st, offender, &ck, refused, clock.now())
			}
			der := bytes.Repeat([]byte{0x30, 0x82}, 300)
			const flood = 100_000
			for i := range flood {
				binary.BigEndian.PutUint64(der[16:], uint64(i))
				c := fakeLeafClaim(der)
				var ck claimKey
				if err := m.slowed(st, c, &ck, clock.now()); err == nil {
					m.countRefusal(st, c, &ck, refused, clock.now())
				}
				if i%10_000 == 0 {
					clock.advance(time.Second) // within the window
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			n := tb.len()
			assert.LessOrEqual(t, n, cfg.maxTracked)
			assert.Greater(t, n, cfg.maxTracked/2, "the table is used")
			grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			t.Logf("%d keys tracked of %d refused certificates; heap grew %d bytes (%d a key)", n, flood, grown, grown/int64(max(n, 1)))
			assert.Less(t, grown, int64(16<<20), "bounded memory")
			var ck claimKey
			err := m.slowed(st, offender, &ck, clock.now())
			require.ErrorIs(t, err, ErrTooManyRefusals, "the repeat offender is still slowed")
			runtime.KeepAlive(tb)
		})
	}
}

// TestRefusalThrottleOverTLS: over a real TLS connection, the throttled refusal is a 429 with
// Retry-After on the wire.
func TestRefusalThrottleOverTLS(t *testing.T) {
	p := newPKI(t)
	clock := newTestClock()
	m, err := New(Config{RootCAs: p.root.Pool(), Now: clock.now, Logger: slog.New(slog.DiscardHandler),
		RefusalThrottle: &RefusalThrottleConfig{Limit: 2, Window: 90 * time.Second}})
	require.NoError(t, err)
	srv, serverCA := tlsServer(t, m, echoIdentity)
	client := clientFor(serverCA, p.other.NewClient("stranger"))
	get := func() *http.Response {
		res, err := client.Get(srv.URL)
		require.NoError(t, err)
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	for range 2 {
		res := get()
		require.Equal(t, http.StatusUnauthorized, res.StatusCode)
		_, _ = io.Copy(io.Discard, res.Body)
	}
	res := get()
	assert.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	assert.Equal(t, "90", res.Header.Get("Retry-After"))
	assert.Equal(t, ReasonTooManyRefusals, decodeProblem(t, res).Reason)
	ok := get()
	assert.Equal(t, http.StatusTooManyRequests, ok.StatusCode)
	alice := clientFor(serverCA, p.alice)
	res2, err := alice.Get(srv.URL)
	require.NoError(t, err)
	defer res2.Body.Close()
	assert.Equal(t, http.StatusOK, res2.StatusCode)
}

// TestRefusalThrottleConfig: defaults, and a negative field is a ConfigError naming it.
func TestRefusalThrottleConfig(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	assert.Nil(t, m.state.Load().refusals, "off by default")

	m, err = New(Config{RootCAs: p.root.Pool(), RefusalThrottle: &RefusalThrottleConfig{}})
	require.NoError(t, err)
	assert.Equal(t, refusalConfig{limit: 20, window: time.Minute, maxTracked: 65536}, *m.refusalCfg)
	tb := m.state.Load().refusals
	assert.Len(t, tb.shards, 32)
	assert.Equal(t, 65536, tb.per*len(tb.shards))

	for _, field := range []string{"Limit", "Window", "MaxTracked"} {
		t.Run(field, func(t *testing.T) {
			cfg := &RefusalThrottleConfig{}
			switch field {
			case "Limit":
				cfg.Limit = -1
			case "Window":
				cfg.Window = -time.Second
			case "MaxTracked":
				cfg.MaxTracked = -1
			}
			_, err := New(Config{RootCAs: p.root.Pool(), RefusalThrottle: cfg})
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, "RefusalThrottle."+field, ce.Field)
		})
	}
}

// TestRetryAfterTooManyRefusals: WriteError sends an error's RetryAfter in whole seconds, rounded
// up, at least one, and a 429 always has one; StatusAndReason knows ErrTooManyRefusals.
func TestRetryAfterTooManyRefusals(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{{0, "1"}, {-time.Second, "1"}, {time.Nanosecond, "1"}, {time.Second, "1"}, {time.Second + time.Millisecond, "2"}, {time.Minute, "60"}} {
		t.Run(tt.d.String(), func(t *testing.T) {
			e := newError(ErrTooManyRefusals, "", nil)
			e.RetryAfter = tt.d
			w := httptest.NewRecorder()
			WriteError(w, nil, fmt.Errorf("wrapped: %w", e))
			assert.Equal(t, tt.want, w.Header().Get("Retry-After"))
			assert.Equal(t, http.StatusTooManyRequests, w.Code)
		})
	}
	status, reason := StatusAndReason(ErrTooManyRefusals)
	assert.Equal(t, http.StatusTooManyRequests, status)
	assert.Equal(t, ReasonTooManyRefusals, reason)
}

// TestRefusalCounted: which refusals count, decided with errors.Is; one that also wraps a kind
// that does not count is not counted.
func TestRefusalCounted(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{newError(ErrNoCertificate, "", nil), true},
		{newError(ErrUntrusted, "", nil), true},
		{newError(ErrExpired, "", nil), true},
		{newError(ErrNotYetValid, "", nil), true},
		{newError(ErrWrongUsage, "", nil), true},
		{newError(ErrRevoked, "", nil), true},
		{newError(ErrMalformedHeader, "", nil), true},
		{newError(ErrRevocationUnavailable, "", nil), false},
		{newError(ErrRevocationUnavailable, "", ErrUntrusted), false},
		{newError(ErrDenied, "", nil), false},
		{newError(ErrMisdirected, "", nil), false},
		{newError(ErrCredentials, "", nil), false},
		{newError(ErrTooManyRefusals, "", nil), false},
		{newError(ErrRateLimited, "", ErrRevoked), false},
		{nil, false},
	} {
		name := "nil"
		if tt.err != nil {
			name = tt.err.Error()
		}
		t.Run(name, func(t *testing.T) { assert.Equal(t, tt.want, counted(tt.err)) })
	}
}

// BenchmarkHandlerRefusalThrottle is BenchmarkHandler (an accepted, cached chain) with the
// slowing of refused clients off, on, and on while another certificate is slowed (hot), over TLS
// and from a proxy; then the refusal of a slowed certificate (429) beside its cached refusal
// (slowing off), and with proxies trusted by their certificate, the cache off.
func BenchmarkHandlerRefusalThrottle(b *testing.B) {
	p := newPKI(b)
	stranger := p.other.NewClient("stranger")
	lan := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	proxy := mtlstest.Proxy{Format: MustHeaderFormat("haproxy"), Addr: "10.0.0.1:4000"}
	revoked := p.issuing.NewClient("revoked") // verified, then refused: the cost of a whole check
	proxyPolicy := func(c *Config) {
		c.CacheSize = -1
		c.Header = &HeaderConfig{Format: MustHeaderFormat("haproxy"), ProxyPolicy: must(RequireSubject(Attributes{"CN": {"proxy"}}))}
		c.Revocation = &RevocationConfig{DenyList: NewDenyList(DenyCertificate(sha256.Sum256(revoked.Certificate.Raw)))}
	}
	for _, bc := range []struct {
		name     string
		header   bool
		throttle bool
		slowed   bool // another certificate is slowed
		client   *mtlstest.Leaf
		cfg      func(*Config)
	}{
		{name: "tls/off", client: p.alice},
		{name: "tls/on", throttle: true, client: p.alice},
		{name: "tls/on, one slowed", throttle: true, slowed: true, client: p.alice},
		{name: "header/off", header: true, client: p.alice},
		{name: "header/on", header: true, throttle: true, client: p.alice},
		{name: "header/on, one slowed", header: true, throttle: true, slowed: true, client: p.alice},
		{name: "tls/refused, cached", client: stranger},
		{name: "tls/429", throttle: true, client: stranger},
		{name: "header/refused, cached", header: true, client: stranger},
		{name: "header/429", header: true, throttle: true, client: stranger},
		{name: "proxy policy/refused, no cache", client: revoked, cfg: proxyPolicy},
		{name: "proxy policy/429, no cache", throttle: true, client: revoked, cfg: proxyPolicy},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), Logger: slog.New(slog.DiscardHandler)}
			if bc.throttle {
				cfg.RefusalThrottle = &RefusalThrottleConfig{Limit: 1, Window: time.Hour}
			}
			if bc.header {
				cfg.Header = &HeaderConfig{Format: MustHeaderFormat("haproxy"), TrustedProxies: lan}
			}
			if bc.cfg != nil {
				bc.cfg(&cfg)
			}
			m, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			h := m.Handler(noop)
			w := &discardWriter{h: http.Header{}}
			req := func(l *mtlstest.Leaf) *http.Request {
				if bc.header {
					return proxy.NewRequest(http.MethodGet, "/", l.Chain()...)
				}
				return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", l.Chain()...)
			}
			if bc.slowed {
				h.ServeHTTP(w, req(stranger))
			}
			r := req(bc.client)
			h.ServeHTTP(w, r) // warm the cache, or reach the limit
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}

// TestRefusalThrottleKeyIsTheLeaf: from a trusted proxy, refusals are counted by the leaf the
// header values decode to, not by the values as they were written: an earlier XFCC element that
// the client varies, another chain beside the same leaf, or the same certificate presented on a
// direct connection is one key, slowed once it is at its limit.
func TestRefusalThrottleKeyIsTheLeaf(t *testing.T) {
	p := newPKI(t)
	lan := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	stranger := p.other.NewClient("stranger")
	direct := func() *http.Request {
		return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", stranger.Chain()...)
	}
	xfcc := mtlstest.Proxy{Format: MustHeaderFormat("envoy-xfcc"), Addr: "10.0.0.1:4000"}
	haproxy := mtlstest.Proxy{Format: MustHeaderFormat("haproxy"), Addr: "10.0.0.1:4000"}
	extras := []*x509.Certificate{p.issuing.Certificate, p.other.Certificate, p.root.Certificate, p.alice.Certificate}
	tests := []struct {
		name   string
		format string
		limit  int
		req    func(i int) *http.Request
		want   []int
	}{
		{name: "an earlier XFCC element varying", format: "envoy-xfcc", limit: 2, req: func(i int) *http.Request {
			r := xfcc.NewRequest(http.MethodGet, "/", stranger.Chain()...)
			r.Header.Set("X-Forwarded-Client-Cert", fmt.Sprintf("Hash=%064x,", i)+r.Header.Get("X-Forwarded-Client-Cert"))
			return r
		}, want: []int{401, 401, 429, 429, 429, 429, 429, 429, 429, 429}},
		{name: "another chain each time", format: "haproxy", limit: 1, req: func(i int) *http.Request {
			return haproxy.NewRequest(http.MethodGet, "/", stranger.Certificate, extras[i])
		}, want: []int{401, 429, 429, 429}},
		{name: "on the connection, then from the proxy", format: "haproxy", limit: 2, req: func(i int) *http.Request {
			if i%2 == 0 {
				return direct()
			}
			return haproxy.NewRequest(http.MethodGet, "/", stranger.Chain()...)
		}, want: []int{401, 401, 429, 429}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var evs eventLog
			m, err := New(Config{RootCAs: p.root.Pool(), Now: newTestClock().now, OnDecision: evs.record, Logger: slog.New(slog.DiscardHandler),
				Header:          &HeaderConfig{Format: MustHeaderFormat(tt.format), TrustedProxies: lan},
				RefusalThrottle: &RefusalThrottleConfig{Limit: tt.limit}})
			require.NoError(t, err)
			h := m.Handler(echoIdentity)
			for i, want := range tt.want {
				status, _, _ := serveThrottled(t, h, tt.req(i))
				require.Equal(t, want, status, "request %d", i+1)
				if want == http.StatusTooManyRequests {
					assert.Equal(t, stepClaim, evs.last(t).Step, "request %d is not verified", i+1)
				}
			}
			assert.Equal(t, 1, m.state.Load().refusals.len(), "one key: the leaf's")
		})
	}
}

// TestRefusalThrottleProxyPolicy: with proxies trusted by their certificate (ProxyPolicy), a
// direct client whose certificate is slowed is answered 429 without its chain being verified to
// find out whether it is a proxy's: once its cached refusal has expired, the 429 leaves no
// outcome in the cache.
func TestRefusalThrottleProxyPolicy(t *testing.T) {
	p := newPKI(t)
	clock := newTestClock()
	m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), Now: clock.now, Logger: slog.New(slog.DiscardHandler),
		Header: &HeaderConfig{Format: MustHeaderFormat("haproxy"),
			ProxyPolicy: must(RequireSubject(Attributes{"CN": {"proxy"}}))},
		RefusalThrottle: &RefusalThrottleConfig{Limit: 2, Window: time.Hour}})
	require.NoError(t, err)
	h := m.Handler(echoIdentity)
	stranger := p.other.NewClient("stranger")
	req := func() *http.Request {
		return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", stranger.Chain()...)
	}
	for range 2 {
		status, _, _ := serveThrottled(t, h, req())
		require.Equal(t, http.StatusUnauthorized, status)
	}
	clock.advance(2 * negativeTTL) // the cached refusal is gone; the window is not
	status, reason, _ := serveThrottled(t, h, req())
	require.Equal(t, http.StatusTooManyRequests, status)
	require.Equal(t, ReasonTooManyRefusals, reason)
	_, e := m.state.Load().cache.lookupChain(stranger.Chain(), clock.now())
	assert.Nil(t, e, "the slowed chain was not verified as a proxy's")

	proxy := p.issuing.NewClient("proxy")
	r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", proxy.Chain()...)
	r.Header.Set("X-SSL-Client-Cert", mtlstest.Proxy{Format: MustHeaderFormat("haproxy")}.NewRequest(http.MethodGet, "/", p.alice.Chain()...).Header.Get("X-SSL-Client-Cert"))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	assert.Equal(t, "alice", w.Body.String(), "a proxy is still trusted while a client is slowed")
}

// TestRefusalThrottleLoggedOnce: a slowed client repeating its request costs one record at Info
// in a minute, as a refused one does, from a proxy too: the event's SHA256 is the fingerprint of
// the leaf the header decodes to, also when no certificate was parsed.
func TestRefusalThrottleLoggedOnce(t *testing.T) {
	p := newPKI(t)
	stranger := p.other.NewClient("stranger")
	want := sha256.Sum256(stranger.Certificate.Raw)
	proxy := mtlstest.Proxy{Format: MustHeaderFormat("haproxy"), Addr: "10.0.0.1:4000"}
	for _, tt := range []struct {
		name string
		req  func() *http.Request
	}{
		{"on the connection", func() *http.Request {
			return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", stranger.Chain()...)
		}},
		{"from a proxy", func() *http.Request { return proxy.NewRequest(http.MethodGet, "/", stranger.Chain()...) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			var evs eventLog
			m, err := New(Config{RootCAs: p.root.Pool(), Now: newTestClock().now, OnDecision: evs.record,
				Logger:          slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				Header:          &HeaderConfig{Format: MustHeaderFormat("haproxy"), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
				RefusalThrottle: &RefusalThrottleConfig{Limit: 2}})
			require.NoError(t, err)
			h := m.Handler(echoIdentity)
			for range 40 {
				serveThrottled(t, h, tt.req())
			}
			ev := evs.last(t)
			require.Equal(t, Throttled, ev.Result)
			assert.Equal(t, hex.EncodeToString(want[:]), ev.SHA256)
			info := 0
			for _, rec := range jsonRecords(t, logs.String()) {
				if rec["level"] == "INFO" && rec["msg"] == "mtls: request throttled" {
					info++
				}
			}
			assert.Equal(t, 1, info, "one record at Info for 38 answers 429")
		})
	}
}

// TestRefusalThrottleChurn: a flood of distinct keys through a full table (40 times its size)
// does not grow its memory: the maps of its shards are rebuilt once they deleted as many keys as
// they hold, which a Go map would otherwise keep the room of.
func TestRefusalThrottleChurn(t *testing.T) {
	clock := newTestClock()
	const maxTracked = 4096
	cfg := compileRefusals(&problems{}, &RefusalThrottleConfig{MaxTracked: maxTracked})
	tb := cfg.newTable()
	heap := func() int64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	base := heap()
	var full int64
	for i := range 40 * maxTracked {
		var ck claimKey
		ck.key.kind = refusalKeyLeaf
		binary.BigEndian.PutUint64(ck.key.sum[:], uint64(i))
		tb.record(&ck, clock.now())
		if i == 2*maxTracked {
			full = heap() - base
		}
	}
	churned := heap() - base
	t.Logf("table of %d keys: %d bytes full (%d a key), %d after a churn of 40 times its size (%d a key)",
		tb.len(), full, full/maxTracked, churned, churned/maxTracked)
	assert.Less(t, churned, full*5/4, "the memory stays where it was when the table was full")
	runtime.KeepAlive(tb)
}

// TestRefusalThrottleNoAllocWhileHot: while a key is slowed, the requests of other clients from a
// proxy allocate nothing more than when none is: their key is not computed anew each time.
func TestRefusalThrottleNoAllocWhileHot(t *testing.T) {
	p := newPKI(t)
	proxy := mtlstest.Proxy{Format: MustHeaderFormat("haproxy"), Addr: "10.0.0.1:4000"}
	allocs := func(hot bool) float64 {
		m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), Logger: slog.New(slog.DiscardHandler),
			Header:          &HeaderConfig{Format: MustHeaderFormat("haproxy"), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
			RefusalThrottle: &RefusalThrottleConfig{Limit: 1, Window: time.Hour}})
		require.NoError(t, err)
		h := m.Handler(noop)
		w := &discardWriter{h: http.Header{}}
		if hot {
			h.ServeHTTP(w, proxy.NewRequest(http.MethodGet, "/", p.other.NewClient("stranger").Chain()...))
			require.Equal(t, 1, m.state.Load().refusals.len())
		}
		r := proxy.NewRequest(http.MethodGet, "/", p.alice.Chain()...)
		h.ServeHTTP(w, r)
		return testing.AllocsPerRun(100, func() { h.ServeHTTP(w, r) })
	}
	assert.Equal(t, allocs(false), allocs(true))
}

// TestRefusalThrottleBounds: Limit, Window and MaxTracked have upper bounds, each a ConfigError
// naming the field; at the longest window, and with a clock near the end of what UnixNano holds,
// the window's end does not overflow (slowing stays on) and Retry-After stays within the window.
func TestRefusalThrottleBounds(t *testing.T) {
	p := newPKI(t)
	for _, tt := range []struct {
		field string
		cfg   RefusalThrottleConfig
	}{
		{"Limit", RefusalThrottleConfig{Limit: 1<<20 + 1}},
		{"Limit", RefusalThrottleConfig{Limit: math.MaxInt}},
		{"Window", RefusalThrottleConfig{Window: 24*time.Hour + 1}},
		{"Window", RefusalThrottleConfig{Window: math.MaxInt64}},
		{"MaxTracked", RefusalThrottleConfig{MaxTracked: 1<<24 + 1}},
	} {
		t.Run(fmt.Sprintf("%s %+v", tt.field, tt.cfg), func(t *testing.T) {
			_, err := New(Config{RootCAs: p.root.Pool(), RefusalThrottle: &tt.cfg})
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, "RefusalThrottle."+tt.field, ce.Field)
		})
	}
	_, err := New(Config{RootCAs: p.root.Pool(), RefusalThrottle: &RefusalThrottleConfig{Limit: 1 << 20, Window: 24 * time.Hour, MaxTracked: 64}})
	require.NoError(t, err, "the bounds themselves")
	stranger := p.other.NewClient("stranger")
	for _, tt := range []struct {
		name  string
		now   time.Time
		retry string
	}{
		{"now", time.Now(), "86400"},
		{"an hour before UnixNano ends", time.Unix(0, math.MaxInt64-int64(time.Hour)), "3600"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(Config{RootCAs: p.root.Pool(), Now: func() time.Time { return tt.now }, Logger: slog.New(slog.DiscardHandler),
				RefusalThrottle: &RefusalThrottleConfig{Limit: 1, Window: 24 * time.Hour}})
			require.NoError(t, err)
			h := m.Handler(echoIdentity)
			req := func() *http.Request {
				return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", stranger.Chain()...)
			}
			status, _, _ := serveThrottled(t, h, req())
			require.Equal(t, http.StatusUnauthorized, status)
			status, reason, retry := serveThrottled(t, h, req())
			assert.Equal(t, http.StatusTooManyRequests, status)
			assert.Equal(t, ReasonTooManyRefusals, reason)
			assert.Equal(t, tt.retry, retry)
		})
	}
}
