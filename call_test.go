package mtls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// take returns the events recorded since the last take.
func (e *events) take() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.evs
	e.evs = nil
	return out
}

// tlsCall is a gRPC call on a TLS connection to api.example.test on which the client presented
// chain (none: no certificate).
func tlsCall(chain ...*x509.Certificate) *Call {
	return &Call{
		Context:       context.Background(),
		TLS:           &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, ServerName: "api.example.test", PeerCertificates: chain},
		Peer:          netip.MustParseAddr("192.0.2.1"),
		Authority:     "api.example.test:443",
		Transport:     "grpc",
		Method:        "/billing.v1.Invoices/List",
		LowerCaseKeys: true,
	}
}

// TestDecide runs calls of every kind through Decide: each returns the refusal a net/http
// handler would make, and reports exactly one event, with the call's transport and method.
func TestDecide(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	expired := p.issuing.NewClient("old", mtlstest.WithValidity(now.Add(-48*time.Hour), now.Add(-time.Hour)))
	stranger := p.other.NewClient("stranger")
	proxyHeaders := func(lower bool) map[string][]string {
		cert, chain := "X-Ssl-Client-Cert", "X-Ssl-Client-Chain"
		if lower {
			cert, chain = "x-ssl-client-cert", "x-ssl-client-chain"
		}
		return map[string][]string{cert: {b64(p.alice.Certificate)}, chain: {b64(p.issuing.Certificate)}}
	}
	onlyBob := Must(RequireSubject(Attributes{"cn": {"bob"}}))
	tests := []struct {
		name    string
		header  bool // header mode, proxies in 10.0.0.0/8
		call    func() *Call
		want    error  // nil: accepted
		reason  string // of the refusal
		subject string // of the accepted identity
		source  Source
		rule    string
	}{
		{name: "direct TLS, valid", call: func() *Call { return tlsCall(p.alice.Chain()...) }, subject: "alice", source: SourceTLS},
		{name: "direct TLS, no certificate", call: func() *Call { return tlsCall() }, want: ErrNoCertificate, reason: ReasonCertificateRequired},
		{name: "no TLS", call: func() *Call { c := tlsCall(); c.TLS = nil; return c }, want: ErrNoCertificate, reason: ReasonCertificateRequired},
		{name: "untrusted", call: func() *Call { return tlsCall(stranger.Chain()...) }, want: ErrUntrusted, reason: ReasonCertificateUntrusted},
		{name: "expired", call: func() *Call { return tlsCall(expired.Chain()...) }, want: ErrExpired, reason: ReasonCertificateExpired},
		{name: "authority of another server", call: func() *Call {
			c := tlsCall(p.alice.Chain()...)
			c.Authority = "admin.example.test"
			return c
		}, want: ErrMisdirected, reason: ReasonMisdirected},
		{name: "no authority, a server name in the handshake", call: func() *Call {
			c := tlsCall(p.alice.Chain()...)
			c.Authority = ""
			return c
		}, want: ErrMisdirected, reason: ReasonMisdirected},
		{name: "host field of another authority", call: func() *Call {
			c := tlsCall(p.alice.Chain()...)
			c.Fields = map[string][]string{"host": {"admin.example.test"}}
			return c
		}, want: ErrMisdirected, reason: ReasonMisdirected},
		{name: "no server name, authority an address", call: func() *Call {
			c := tlsCall(p.alice.Chain()...)
			c.TLS.ServerName, c.Authority = "", "127.0.0.1:8443"
			return c
		}, subject: "alice", source: SourceTLS},
		{name: "per-call policy denies", call: func() *Call {
			c := tlsCall(p.alice.Chain()...)
			c.Policy = onlyBob
			return c
		}, want: ErrDenied, reason: ReasonPolicyDenied, rule: `subject {"cn":["bob"]}`},
		{name: "per-call policy allows", call: func() *Call {
			c := tlsCall(p.alice.Chain()...)
			c.Policy = PolicyFunc(func(*Identity) error { return nil })
			return c
		}, subject: "alice", source: SourceTLS},

		{name: "header: trusted proxy, lower-case metadata", header: true, call: func() *Call {
			c := tlsCall()
			c.Peer, c.Fields = netip.MustParseAddr("10.0.0.1"), proxyHeaders(true)
			return c
		}, subject: "alice", source: SourceHeader},
		{name: "header: trusted proxy, canonical keys", header: true, call: func() *Call {
			c := tlsCall()
			c.Peer, c.Fields, c.LowerCaseKeys = netip.MustParseAddr("10.0.0.1"), proxyHeaders(false), false
			return c
		}, subject: "alice", source: SourceHeader},
		{name: "header: trusted proxy, IPv4-mapped peer", header: true, call: func() *Call {
			c := tlsCall()
			c.Peer, c.Fields = netip.MustParseAddr("::ffff:10.0.0.1"), proxyHeaders(true)
			return c
		}, subject: "alice", source: SourceHeader},
		{name: "header: trusted proxy, lower-case keys not declared", header: true, call: func() *Call {
			c := tlsCall()
			c.Peer, c.Fields, c.LowerCaseKeys = netip.MustParseAddr("10.0.0.1"), proxyHeaders(true), false
			return c
		}, want: ErrMalformedHeader, reason: ReasonMalformedHeader},
		{name: "header: trusted proxy, another spelling", header: true, call: func() *Call {
			c := tlsCall()
			c.Peer = netip.MustParseAddr("10.0.0.1")
			c.Fields = map[string][]string{"x_ssl_client_cert": {b64(p.alice.Certificate)}}
			return c
		}, want: ErrMalformedHeader, reason: ReasonMalformedHeader},
		{name: "header: trusted proxy, no certificate", header: true, call: func() *Call {
			c := tlsCall()
			c.Peer = netip.MustParseAddr("10.0.0.1")
			return c
		}, want: ErrNoCertificate, reason: ReasonCertificateRequired},
		{name: "header: untrusted peer, fields ignored", header: true, call: func() *Call {
			c := tlsCall(stranger.Chain()...)
			c.Fields = proxyHeaders(true)
			return c
		}, want: ErrUntrusted, reason: ReasonCertificateUntrusted},
		{name: "header: untrusted peer with its own certificate", header: true, call: func() *Call {
			c := tlsCall(p.alice.Chain()...)
			c.Fields = proxyHeaders(true)
			return c
		}, subject: "alice", source: SourceTLS},
		{name: "header: no peer is never a trusted proxy", header: true, call: func() *Call {
			c := tlsCall()
			c.Peer, c.Fields = netip.Addr{}, proxyHeaders(true)
			return c
		}, want: ErrNoCertificate, reason: ReasonCertificateRequired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var evs events
			cfg := Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), OnDecision: evs.record, Logger: discardLogger()}
			if tt.header {
				cfg.Header = &HeaderConfig{Format: MustHeaderFormat("haproxy"), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
			}
			m, err := New(cfg)
			require.NoError(t, err)
			c := tt.call()
			fields := c.Fields
			id, err := m.Decide(c)
			got := evs.take()
			require.Len(t, got, 1, "one event per call")
			ev := got[0]
			assert.Equal(t, "grpc", ev.Transport)
			assert.Equal(t, c.Method, ev.Method)
			assert.Equal(t, fields, c.Fields, "the call is not modified")
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				assert.Nil(t, id)
				var e *Error
				require.ErrorAs(t, err, &e)
				_, reason := StatusAndReason(err)
				assert.Equal(t, tt.reason, reason)
				assert.Equal(t, Refused, ev.Result)
				assert.Equal(t, tt.reason, ev.Reason)
				assert.Equal(t, err, ev.Err)
				if tt.rule != "" {
					assert.Equal(t, stepPolicy, ev.Step)
					assert.Contains(t, ev.Rule, tt.rule)
				}
				return
			}
			require.NoError(t, err)
			require.NotNil(t, id)
			assert.Equal(t, tt.subject, id.Leaf.Subject.CommonName)
			assert.Equal(t, tt.source, id.Source)
			assert.Equal(t, Accepted, ev.Result)
			if tt.source == SourceHeader {
				assert.Equal(t, netip.MustParseAddr("10.0.0.1"), id.Proxy)
			}
		})
	}
}

var errDenyAll = errorString("not today")

type errorString string

func (e errorString) Error() string { return string(e) }

// TestDecideOptional: in optional mode a call without a certificate is accepted without an
// identity, unless it has a policy of its own, which needs one.
func TestDecideOptional(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{Logger: discardLogger(), RootCAs: p.root.Pool(), Optional: true})
	require.NoError(t, err)
	id, err := m.Decide(tlsCall())
	require.NoError(t, err)
	assert.Nil(t, id)
	c := tlsCall()
	c.Policy = PolicyFunc(func(*Identity) error { return nil })
	_, err = m.Decide(c)
	require.ErrorIs(t, err, ErrNoCertificate)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, stepClaim, e.Step)
}

// TestStripCertificateFields: a client's certificate fields, under any spelling, are removed
// for the handler unless the identity came from them; the fields given are never modified.
func TestStripCertificateFields(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{Logger: discardLogger(), RootCAs: p.root.Pool(), Header: &HeaderConfig{Format: MustHeaderFormat("haproxy"),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, CompanionHeaders: []string{"X-Client-Verify"}}})
	require.NoError(t, err)
	forged := func() map[string][]string {
		return map[string][]string{"x-ssl-client-cert": {"forged"}, "x_ssl_client_chain": {"forged"}, "X-SSL-CLIENT-CERT": {"forged"},
			"x-client-verify": {"SUCCESS"}, "x-request-id": {"42"}, ":authority": {"api.example.test"}}
	}
	for _, tt := range []struct {
		name  string
		id    *Identity
		strip bool
	}{
		{"identity from the TLS connection", &Identity{Source: SourceTLS}, true},
		{"no identity (optional mode)", nil, true},
		{"identity from the fields", &Identity{Source: SourceHeader}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := forged()
			got, stripped := m.StripCertificateFields(f, tt.id)
			assert.Equal(t, tt.strip, stripped)
			assert.Equal(t, forged(), f, "the fields given are not modified")
			if !tt.strip {
				assert.Equal(t, f, got)
				return
			}
			assert.Equal(t, map[string][]string{"x-request-id": {"42"}, ":authority": {"api.example.test"}}, got)
		})
	}
	t.Run("nothing to remove: the same map", func(t *testing.T) {
		f := map[string][]string{"x-request-id": {"42"}}
		got, stripped := m.StripCertificateFields(f, nil)
		assert.False(t, stripped)
		got["probe"] = nil
		assert.Contains(t, f, "probe", "f itself, not a copy")
	})
	t.Run("no header mode", func(t *testing.T) {
		plain, err := New(Config{Logger: discardLogger(), RootCAs: p.root.Pool()})
		require.NoError(t, err)
		f := forged()
		got, stripped := plain.StripCertificateFields(f, nil)
		assert.False(t, stripped)
		assert.Equal(t, f, got)
		assert.False(t, plain.HeaderMode())
		assert.True(t, m.HeaderMode())
	})
}

// TestDecideBinName: with lower-case keys, a certificate header name ending in -bin (whose
// values grpc-go decodes from base64) refuses a trusted proxy's calls; net/http reads it.
func TestDecideBinName(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{Logger: discardLogger(), RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), Header: &HeaderConfig{Format: MustHeaderFormat("caddy"),
		Names: []string{"X-Client-Cert-Bin"}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}})
	require.NoError(t, err)
	c := tlsCall()
	c.Peer, c.Fields = netip.MustParseAddr("10.0.0.1"), map[string][]string{"x-client-cert-bin": {b64(p.alice.Certificate)}}
	_, err = m.Decide(c)
	require.ErrorIs(t, err, ErrMalformedHeader)
	assert.ErrorContains(t, err, "X-Client-Cert-Bin ends in -bin")

	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.0.0.1:4000"
	r.Header.Set("X-Client-Cert-Bin", b64(p.alice.Certificate))
	id, err := m.Authenticate(r)
	require.NoError(t, err)
	assert.Equal(t, "alice", id.Leaf.Subject.CommonName)
}

// TestDecideProxyPolicy: a proxy trusted by the certificate it presented on Call.TLS.
func TestDecideProxyPolicy(t *testing.T) {
	p := newPKI(t)
	proxy := p.issuing.NewClient("front-proxy")
	m, err := New(Config{Logger: discardLogger(), RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), Header: &HeaderConfig{Format: MustHeaderFormat("haproxy"),
		ProxyPolicy: Must(RequireSubject(Attributes{"cn": {"front-proxy"}}))}})
	require.NoError(t, err)
	fields := map[string][]string{"x-ssl-client-cert": {b64(p.alice.Certificate)}}
	c := tlsCall(proxy.Chain()...)
	c.Fields = fields
	id, err := m.Decide(c)
	require.NoError(t, err)
	assert.Equal(t, SourceHeader, id.Source)
	assert.Equal(t, "alice", id.Leaf.Subject.CommonName)

	c = tlsCall(p.alice.Chain()...) // admitted by the trust, not by the policy: its own identity
	c.Fields = map[string][]string{"x-ssl-client-cert": {b64(proxy.Certificate)}}
	id, err = m.Decide(c)
	require.NoError(t, err)
	assert.Equal(t, SourceTLS, id.Source)
	assert.Equal(t, "alice", id.Leaf.Subject.CommonName)
}

// TestDecideThrottled: the throttling tiers refuse through Decide with 429 and RetryAfter, one
// Throttled event per call.
func TestDecideThrottled(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	var evs events
	m, err := New(Config{Logger: discardLogger(), RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), Now: func() time.Time { return now }, OnDecision: evs.record,
		Throttle: &ThrottleConfig{Tiers: map[string]Tier{"slow": {Rate: 0.5, Burst: 1}}, Default: "slow"}})
	require.NoError(t, err)
	_, err = m.Decide(tlsCall(p.alice.Chain()...))
	require.NoError(t, err)
	_, err = m.Decide(tlsCall(p.alice.Chain()...))
	require.ErrorIs(t, err, ErrRateLimited)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, 2*time.Second, e.RetryAfter)
	status, reason := StatusAndReason(err)
	assert.Equal(t, http.StatusTooManyRequests, status)
	assert.Equal(t, ReasonRateLimited, reason)
	got := evs.take()
	require.Len(t, got, 2)
	assert.Equal(t, Accepted, got[0].Result)
	assert.Equal(t, Throttled, got[1].Result)
	assert.Equal(t, "slow", got[1].Tier)
	assert.Equal(t, "/billing.v1.Invoices/List", got[1].Method)
}

// TestDecideRefusalSlowing: a certificate refused Limit times, and a peer without a
// certificate refused Limit times, are answered too_many_refusals with RetryAfter; a call
// without a peer address is never slowed by address.
func TestDecideRefusalSlowing(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	m, err := New(Config{RootCAs: p.root.Pool(), Now: func() time.Time { return now }, Logger: discardLogger(),
		RefusalThrottle: &RefusalThrottleConfig{Limit: 2, Window: time.Minute}})
	require.NoError(t, err)
	stranger := p.other.NewClient("stranger")
	for _, tt := range []struct {
		name string
		call func() *Call
		slow bool
	}{
		{"refused certificate", func() *Call { return tlsCall(stranger.Chain()...) }, true},
		{"no certificate, by peer address", func() *Call { c := tlsCall(); c.Peer = netip.MustParseAddr("192.0.2.9"); return c }, true},
		{"no certificate, no peer", func() *Call { c := tlsCall(); c.Peer = netip.Addr{}; return c }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for range 2 {
				_, err := m.Decide(tt.call())
				require.Error(t, err)
				require.NotErrorIs(t, err, ErrTooManyRefusals)
			}
			_, err := m.Decide(tt.call())
			if !tt.slow {
				require.NotErrorIs(t, err, ErrTooManyRefusals)
				return
			}
			require.ErrorIs(t, err, ErrTooManyRefusals)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, time.Minute, e.RetryAfter)
			_, reason := StatusAndReason(err)
			assert.Equal(t, ReasonTooManyRefusals, reason)
		})
	}
}

// TestDecideShadow: the shadow policy's outcome of a call goes to Call.OnShadow, never to
// Config.OnShadow (which takes a request); the event carries its refusal.
func TestDecideShadow(t *testing.T) {
	p := newPKI(t)
	var evs events
	var httpShadow int
	m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), OnDecision: evs.record, Logger: discardLogger(),
		ShadowPolicy: PolicyFunc(func(*Identity) error { return errDenyAll }),
		OnShadow:     func(*http.Request, ShadowResult) { httpShadow++ }})
	require.NoError(t, err)
	var got []ShadowResult
	c := tlsCall(p.alice.Chain()...)
	c.OnShadow = func(_ context.Context, res ShadowResult) { got = append(got, res) }
	id, err := m.Decide(c)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Same(t, id, got[0].Identity)
	assert.False(t, got[0].WouldAllow())
	assert.Zero(t, httpShadow)
	ev := evs.take()
	require.Len(t, ev, 1)
	assert.Equal(t, AcceptedDegraded, ev[0].Result)
	assert.ErrorIs(t, ev[0].ShadowErr, errDenyAll)
}

// TestCallPolicyReloads: a policy file prepared with CallPolicy follows Reload, and runs on
// Config.Now.
func TestCallPolicyReloads(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "admins.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"subject": {"cn": ["bob"]}}`), 0o600))
	m, err := New(Config{Logger: discardLogger(), RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	policy := m.CallPolicy(Must(LoadPolicyFile(file)))
	c := tlsCall(p.alice.Chain()...)
	c.Policy = policy
	_, err = m.Decide(c)
	require.ErrorIs(t, err, ErrDenied)

	require.NoError(t, os.WriteFile(file, []byte(`{"subject": {"cn": ["alice", "bob"]}}`), 0o600))
	require.NoError(t, m.Reload())
	_, err = m.Decide(c)
	require.NoError(t, err)
	assert.NoError(t, policy.Check(&Identity{Leaf: p.alice.Certificate}), "CallPolicy's policy judges as loaded now")
	assert.Panics(t, func() { m.CallPolicy(nil) })

	t.Run("on Config.Now", func(t *testing.T) {
		later := time.Now().Add(24 * 365 * 10 * time.Hour)
		clocked, err := New(Config{Logger: discardLogger(), RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), Now: func() time.Time { return later },
			DangerouslyAllowHostMismatch: true})
		require.NoError(t, err)
		minValidity := Must(ParsePolicy([]byte(`{"min_validity": "1h"}`)))
		id := &Identity{Leaf: p.alice.Certificate}
		require.NoError(t, minValidity.Check(id), "on the wall clock")
		assert.Error(t, clocked.CallPolicy(minValidity).Check(id), "on Config.Now, ten years on")
	})
}

// TestDecideAsHandler: the event and refusal of a call are those of the net/http handler for
// the same request, but for the transport and method.
func TestDecideAsHandler(t *testing.T) {
	p := newPKI(t)
	stranger := p.other.NewClient("stranger")
	proxy := mtlstest.Proxy{Format: MustHeaderFormat("haproxy"), Addr: "10.0.0.1:4000"}
	for _, tt := range []struct {
		name string
		req  func() *http.Request
	}{
		{"valid", func() *http.Request {
			return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...)
		}},
		{"no certificate", func() *http.Request { return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/") }},
		{"untrusted", func() *http.Request {
			return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", stranger.Chain()...)
		}},
		{"misdirected", func() *http.Request {
			r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...)
			r.Host = "admin.example.test"
			return r
		}},
		{"trusted proxy", func() *http.Request { return proxy.NewRequest(http.MethodGet, "/", p.alice.Chain()...) }},
		{"trusted proxy, header twice", func() *http.Request {
			r := proxy.NewRequest(http.MethodGet, "/", p.alice.Chain()...)
			r.Header.Add("X-Ssl-Client-Cert", "again")
			return r
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var evs events
			m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), OnDecision: evs.record, Logger: discardLogger(),
				Header: &HeaderConfig{Format: MustHeaderFormat("haproxy"), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}})
			require.NoError(t, err)
			r := tt.req()
			m.Handler(noop).ServeHTTP(httptest.NewRecorder(), r)
			ap := netip.MustParseAddrPort(r.RemoteAddr)
			c := &Call{Context: r.Context(), TLS: r.TLS, Peer: ap.Addr(), Authority: r.Host, Fields: r.Header, Transport: "grpc", Method: "/x.Y/Z"}
			_, err = m.Decide(c)
			got := evs.take()
			require.Len(t, got, 2)
			viaHTTP, viaCall := got[0], got[1]
			assert.Equal(t, "grpc", viaCall.Transport)
			assert.Equal(t, "/x.Y/Z", viaCall.Method)
			assert.Empty(t, viaHTTP.Transport)
			assert.Empty(t, viaHTTP.Method)
			viaCall.Transport, viaCall.Method, viaCall.Duration, viaHTTP.Duration = "", "", 0, 0
			if viaHTTP.Err != nil {
				require.Error(t, err)
				assert.Equal(t, viaHTTP.Err.Error(), viaCall.Err.Error())
				viaHTTP.Err, viaCall.Err = nil, nil
			}
			assert.Equal(t, viaHTTP, viaCall)
		})
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// BenchmarkDecide is the cache-hit path through Decide, with a call built from a TLS state: the
// pipeline without net/http's request copy and context.
func BenchmarkDecide(b *testing.B) {
	p := newPKI(b)
	m, err := New(Config{RootCAs: p.root.Pool()})
	if err != nil {
		b.Fatal(err)
	}
	state := &tls.ConnectionState{Version: tls.VersionTLS13, HandshakeComplete: true, ServerName: "api.example.test", PeerCertificates: p.alice.Chain()}
	ctx := context.Background()
	decide := func() {
		c := Call{Context: ctx, TLS: state, Authority: "api.example.test", Transport: "grpc", Method: "/billing.v1.Invoices/List"}
		if _, err := m.Decide(&c); err != nil {
			b.Fatal(err)
		}
	}
	decide() // warm the cache
	b.ReportAllocs()
	for b.Loop() {
		decide()
	}
}

// TestDecideAllocs: a cached hit through Decide allocates nothing.
func TestDecideAllocs(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool()})
	require.NoError(t, err)
	c := tlsCall(p.alice.Chain()...)
	_, err = m.Decide(c)
	require.NoError(t, err)
	assert.Zero(t, testing.AllocsPerRun(100, func() { _, _ = m.Decide(c) }))
}

// TestDecideClipsMethod: the transport and method of a call, which a client may choose (a gRPC
// server with an UnknownServiceHandler decides any :path), reach the event clipped to 256 bytes.
func TestDecideClipsMethod(t *testing.T) {
	p := newPKI(t)
	var evs events
	m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), OnDecision: evs.record, Logger: discardLogger()})
	require.NoError(t, err)
	long := "/x.Y/" + strings.Repeat("m", 1<<20)
	tests := []struct {
		name, transport, method   string
		wantTransport, wantMethod string
	}{
		{name: "short", transport: "grpc", method: "/a.B/C", wantTransport: "grpc", wantMethod: "/a.B/C"},
		{name: "at the bound", transport: "grpc", method: long[:256], wantTransport: "grpc", wantMethod: long[:256]},
		{name: "long method", transport: "grpc", method: long, wantTransport: "grpc", wantMethod: long[:256] + "..."},
		{name: "long transport", transport: strings.Repeat("t", 1000), method: "/a.B/C", wantTransport: strings.Repeat("t", 256) + "...", wantMethod: "/a.B/C"},
		{name: "cut at a rune", transport: "grpc", method: "/x.Y/" + strings.Repeat("é", 200), wantTransport: "grpc", wantMethod: "/x.Y/" + strings.Repeat("é", 125) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tlsCall(p.alice.Chain()...)
			c.Transport, c.Method = tt.transport, tt.method
			_, err := m.Decide(c)
			require.NoError(t, err)
			got := evs.take()
			require.Len(t, got, 1)
			ev := got[0]
			assert.Equal(t, tt.wantTransport, ev.Transport)
			assert.Equal(t, tt.wantMethod, ev.Method)
			assert.Equal(t, tt.method, c.Method, "the call is not modified")
		})
	}
}
