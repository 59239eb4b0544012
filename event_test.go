package mtls

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// events records the events of a middleware.
type events struct {
	mu  sync.Mutex
	evs []Event
}

func (e *events) record(_ context.Context, ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

func (e *events) only(t *testing.T) Event {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	require.Len(t, e.evs, 1, "one event per decision")
	return e.evs[0]
}

// serve runs r through m's handler and returns the status.
func serve(m *Middleware, r *http.Request) int {
	w := httptest.NewRecorder()
	m.Handler(echoIdentity).ServeHTTP(w, r)
	return w.Code
}

// TestEventPerReason: every decision yields one event, with the fields of its kind, for each
// reason code and each kind of acceptance.
func TestEventPerReason(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	expired := p.issuing.NewClient("expired", mtlstest.WithValidity(now.Add(-10*24*time.Hour), now.Add(-3*24*time.Hour)))
	future := p.issuing.NewClient("future", mtlstest.WithValidity(now.Add(time.Hour), now.Add(30*24*time.Hour)))
	server := p.issuing.NewClient("server", mtlstest.WithExtKeyUsage(x509.ExtKeyUsageServerAuth))
	stranger := p.other.NewClient("stranger")
	revoked := p.issuing.NewClient("revoked")
	soon := p.issuing.NewClient("soon", mtlstest.WithValidity(now.Add(-time.Hour), now.Add(5*24*time.Hour)))
	bob := p.issuing.NewClient("bob")
	onlyAlice, err := RequireSubject(Attributes{"CN": {"alice"}})
	require.NoError(t, err)

	base := func() Config {
		return Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), Now: func() time.Time { return now }}
	}
	misdirected := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...)
	misdirected.Host = "other.example.test"
	proxied := httptest.NewRequest(http.MethodGet, "/", nil)
	proxied.RemoteAddr = "10.0.0.9:1234"
	proxied.Header.Set("X-SSL-Client-Cert", "not base64 !")

	tests := []struct {
		name   string
		cfg    func(*Config)
		req    *http.Request
		want   Event // the fields compared; Leaf is compared by subject
		leafCN string
	}{
		{"accepted", nil, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...),
			Event{Result: Accepted, Source: SourceTLS}, "alice"},
		{"accepted, expiring soon", nil, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", soon.Chain()...),
			Event{Result: Accepted, Source: SourceTLS, ExpiresSoon: true}, "soon"},
		{"accepted degraded: shadow would deny", func(c *Config) { c.ShadowPolicy = onlyAlice }, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", bob.Chain()...),
			Event{Result: AcceptedDegraded, Source: SourceTLS}, "bob"},
		{"accepted degraded: fail open", func(c *Config) {
			c.RootCAs = nil
			c.PinnedSHA256 = nil
			c.RootCAFiles = nil
			pool := x509.NewCertPool()
			pool.AddCert(p.issuing.Certificate)
			c.RootCAs = pool
			c.Intermediates = nil
			c.Revocation = &RevocationConfig{OCSP: &OCSPConfig{}, DangerouslyFailOpen: true}
		}, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()[:1]...),
			Event{Result: AcceptedDegraded, Source: SourceTLS}, "alice"},
		{ReasonCertificateRequired, nil, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/"),
			Event{Result: Refused, Status: 401, Reason: ReasonCertificateRequired, Step: "claim", Source: SourceTLS}, ""},
		{ReasonCertificateUntrusted, nil, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", stranger.Chain()...),
			Event{Result: Refused, Status: 401, Reason: ReasonCertificateUntrusted, Step: "verify", Source: SourceTLS}, "stranger"},
		{ReasonCertificateExpired, nil, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", expired.Chain()...),
			Event{Result: Refused, Status: 401, Reason: ReasonCertificateExpired, Step: "verify", Source: SourceTLS}, "expired"},
		{ReasonCertificateNotYet, nil, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", future.Chain()...),
			Event{Result: Refused, Status: 401, Reason: ReasonCertificateNotYet, Step: "verify", Source: SourceTLS}, "future"},
		{ReasonCertificateUsage, nil, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", server.Chain()...),
			Event{Result: Refused, Status: 401, Reason: ReasonCertificateUsage, Step: "verify", Source: SourceTLS}, "server"},
		{ReasonCertificateRevoked, func(c *Config) {
			c.Revocation = &RevocationConfig{DenyList: NewDenyList(DenyCertificate(sha256.Sum256(revoked.Certificate.Raw)))}
		}, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", revoked.Chain()...),
			Event{Result: Refused, Status: 401, Reason: ReasonCertificateRevoked, Step: "revocation", Source: SourceTLS}, "revoked"},
		{ReasonRevocationUnavailable, func(c *Config) {
			pool := x509.NewCertPool()
			pool.AddCert(p.issuing.Certificate)
			c.RootCAs, c.Intermediates = pool, nil
			c.Revocation = &RevocationConfig{OCSP: &OCSPConfig{}}
		}, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()[:1]...),
			Event{Result: Refused, Status: 503, Reason: ReasonRevocationUnavailable, Step: "revocation", Source: SourceTLS}, "alice"},
		{ReasonMalformedHeader, func(c *Config) {
			c.Header = &HeaderConfig{Format: MustHeaderFormat("haproxy"), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
		}, proxied,
			Event{Result: Refused, Status: 400, Reason: ReasonMalformedHeader, Step: "parse", Source: SourceHeader, Format: "haproxy",
				Proxy: netip.MustParseAddr("10.0.0.9")}, ""},
		{ReasonPolicyDenied, func(c *Config) { c.Policy = onlyAlice }, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", bob.Chain()...),
			Event{Result: Refused, Status: 403, Reason: ReasonPolicyDenied, Step: "policy", Source: SourceTLS}, "bob"},
		{ReasonMisdirected, nil, misdirected,
			Event{Result: Refused, Status: 421, Reason: ReasonMisdirected, Step: "claim", Source: SourceTLS}, ""},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec events
			cfg := base()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			cfg.OnDecision = rec.record
			m, err := New(cfg)
			require.NoError(t, err)
			status := serve(m, tt.req)
			ev := rec.only(t)
			seen[ev.Reason] = true

			assert.Equal(t, tt.want.Result, ev.Result)
			assert.Equal(t, tt.want.Status, ev.Status)
			if ev.Result != Refused {
				assert.Equal(t, http.StatusOK, status)
			} else {
				assert.Equal(t, ev.Status, status)
				require.Error(t, ev.Err)
				assert.Equal(t, tt.want.Reason, ev.Reason)
			}
			assert.Equal(t, tt.want.Step, ev.Step)
			assert.Equal(t, tt.want.Source, ev.Source)
			assert.Equal(t, tt.want.Format, ev.Format)
			assert.Equal(t, tt.want.Proxy, ev.Proxy)
			assert.Equal(t, tt.want.ExpiresSoon, ev.ExpiresSoon)
			assert.GreaterOrEqual(t, ev.Duration, time.Duration(0))
			if tt.leafCN == "" {
				assert.Nil(t, ev.Leaf)
				assert.Empty(t, ev.SHA256)
				return
			}
			require.NotNil(t, ev.Leaf)
			assert.Equal(t, tt.leafCN, ev.Leaf.Subject.CommonName)
			assert.Equal(t, ev.Leaf.Subject.String(), ev.Subject())
			assert.Equal(t, ev.Leaf.Issuer.String(), ev.Issuer())
			assert.Equal(t, FormatSerial(ev.Leaf.SerialNumber), ev.Serial())
			assert.Equal(t, Fingerprint(ev.Leaf), ev.SHA256)
			assert.Equal(t, ev.Leaf.NotAfter, ev.NotAfter)
			switch tt.want.Result {
			case AcceptedDegraded:
				assert.True(t, ev.Revocation.Degraded() || ev.ShadowErr != nil)
			case Refused:
				if tt.want.Reason == ReasonPolicyDenied {
					assert.Contains(t, ev.Rule, "alice")
				}
			}
		})
	}
	for _, reason := range []string{ReasonCertificateRequired, ReasonCertificateUntrusted, ReasonCertificateExpired,
		ReasonCertificateNotYet, ReasonCertificateUsage, ReasonCertificateRevoked, ReasonRevocationUnavailable,
		ReasonMalformedHeader, ReasonPolicyDenied, ReasonMisdirected} {
		assert.True(t, seen[reason], "no event row for %s", reason)
	}
}

// TestEventPrincipalAndRevocationSource: an accepted event names the principal, and the source
// and age of the revocation answer it relied on.
func TestEventPrincipalAndRevocationSource(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	responder := mtlstest.NewOCSPResponder(p.issuing)
	t.Cleanup(responder.Close)
	leaf := p.issuing.NewClient("carol", mtlstest.WithOCSPServer(responder.URL))
	var rec events
	m, err := New(Config{
		RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(),
		Now:        func() time.Time { return now },
		Principals: StaticPrincipal("svc-carol"),
		Revocation: &RevocationConfig{OCSP: &OCSPConfig{}},
		OnDecision: rec.record,
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, serve(m, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...)))
	ev := rec.only(t)
	assert.Equal(t, Accepted, ev.Result)
	assert.Equal(t, "svc-carol", ev.Principal)
	assert.Equal(t, "OCSP", ev.RevocationSource)
	assert.Positive(t, ev.RevocationAge, "the responder's thisUpdate lies before now")
}

// TestEventRequire: a refusal of a per-route policy is a decision of its own.
func TestEventRequire(t *testing.T) {
	p := newPKI(t)
	var rec events
	m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool()})
	require.NoError(t, err)
	routeM, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), OnDecision: rec.record})
	require.NoError(t, err)
	onlyBob, err := RequireSubject(Attributes{"CN": {"bob"}})
	require.NoError(t, err)
	w := httptest.NewRecorder()
	m.Handler(routeM.Require(onlyBob)(echoIdentity)).ServeHTTP(w, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	assert.Equal(t, http.StatusForbidden, w.Code)
	ev := rec.only(t)
	assert.Equal(t, Refused, ev.Result)
	assert.Equal(t, ReasonPolicyDenied, ev.Reason)
	assert.Equal(t, SourceTLS, ev.Source)
	assert.Equal(t, "alice", ev.Leaf.Subject.CommonName)
	assert.Contains(t, ev.Rule, "bob")
}

// TestEventLogLevels: a refusal is logged at Info, an acceptance at Debug, so that a logger at
// its default level shows refusals only.
func TestEventLogLevels(t *testing.T) {
	p := newPKI(t)
	var buf bytes.Buffer
	m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(),
		Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
	serve(m, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	serve(m, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.other.NewClient("stranger").Chain()...))
	var records []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		records = append(records, rec)
	}
	require.Len(t, records, 2)
	assert.Equal(t, "DEBUG", records[0]["level"])
	assert.Equal(t, "accepted", records[0]["result"])
	assert.Equal(t, p.alice.SHA256(), records[0]["sha256"])
	assert.Equal(t, "INFO", records[1]["level"])
	assert.Equal(t, "refused", records[1]["result"])
	assert.Equal(t, ReasonCertificateUntrusted, records[1]["reason"])
	assert.Equal(t, "verify", records[1]["step"])
	assert.Contains(t, records[1]["error"], "if it is a root, it is not one this service trusts")
}

// TestExpiryWarning: a certificate that expires within the threshold is logged at Warn once a
// day, by the injected clock, however many requests it makes.
func TestExpiryWarning(t *testing.T) {
	p := newPKI(t)
	start := time.Now()
	now := start
	leaf := p.issuing.NewClient("renew-me", mtlstest.WithValidity(start.Add(-time.Hour), start.Add(10*24*time.Hour)))
	var buf bytes.Buffer
	m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), Now: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	require.NoError(t, err)
	warnings := func() int { return strings.Count(buf.String(), "client certificate expires soon") }

	for range 3 {
		require.Equal(t, http.StatusOK, serve(m, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...)))
	}
	assert.Equal(t, 1, warnings(), "once for three requests")
	assert.Contains(t, buf.String(), "renew-me")
	now = start.Add(23 * time.Hour)
	serve(m, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...))
	assert.Equal(t, 1, warnings(), "not again within the day")
	now = start.Add(25 * time.Hour)
	serve(m, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...))
	assert.Equal(t, 2, warnings(), "again the next day")
	serve(m, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	assert.Equal(t, 2, warnings(), "a certificate far from its expiry is not warned about")

	id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...))
	require.NoError(t, err)
	assert.True(t, id.ExpiresSoon)
	id, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	require.NoError(t, err)
	assert.False(t, id.ExpiresSoon)

	off, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), ExpiryWarning: -1})
	require.NoError(t, err)
	id, err = off.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...))
	require.NoError(t, err)
	assert.False(t, id.ExpiresSoon, "a negative threshold turns the warning off")
}

// TestRecentKeysBounded: the memory of reported keys stays bounded under a flood.
func TestRecentKeysBounded(t *testing.T) {
	var x recentKeys
	now := time.Now()
	for i := range 3 * maxRecentKeys {
		require.True(t, x.due(string(rune(i))+"-fingerprint", now, time.Hour))
	}
	assert.LessOrEqual(t, len(x.last), maxRecentKeys)
	assert.True(t, x.due("again", now, time.Hour))
	assert.False(t, x.due("again", now.Add(59*time.Minute), time.Hour))
	assert.True(t, x.due("again", now.Add(61*time.Minute), time.Hour))
}

// TestRefusalExplained: the detail of a refusal names the likely fix, for the operator only.
func TestRefusalExplained(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	m, err := New(Config{RootCAs: p.root.Pool(), Now: func() time.Time { return now }}) // no intermediates configured
	require.NoError(t, err)
	foreignRoot := mtlstest.NewRootCA("Partner Root")
	foreign := foreignRoot.NewIntermediate("Partner Issuing").NewClient("partner")
	expired := p.issuing.NewClient("old", mtlstest.WithValidity(now.Add(-30*24*time.Hour), now.Add(-3*24*time.Hour)))
	tests := []struct {
		name  string
		chain []*x509.Certificate
		want  string
	}{
		{"leaf alone, intermediate not configured", p.alice.Chain()[:1], `the client sent its certificate alone, and no configured CA is named "CN=Test Issuing CA", its issuer`},
		{"chain ending at another root", append(foreign.Chain(), foreignRoot.Certificate), `ends at "CN=Partner Root", which is not a configured root`},
		{"self-signed leaf", mtlstest.NewSelfSigned("partner").Chain(), `the client sent a self-signed certificate, "CN=partner", which no configured CA issued: to trust this certificate alone, pin its SHA-256 fingerprint in PinnedSHA256`},
		{"chain ending below another root", foreign.Chain(), `ends at "CN=Partner Issuing", issued by "CN=Partner Root"`},
		{"no clientAuth", p.issuing.NewClient("srv", mtlstest.WithExtKeyUsage(x509.ExtKeyUsageServerAuth)).Chain(), "lacks the clientAuth extended key usage (it has serverAuth)"},
		{"expired", expired.Chain(), "3 days ago: the client must renew it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", tt.chain...))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			w := httptest.NewRecorder()
			m.Handler(echoIdentity).ServeHTTP(w, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", tt.chain...))
			assert.NotContains(t, w.Body.String(), tt.want[:10], "the client sees the reason code only")
		})
	}
}

// BenchmarkHandlerEvents is the cache-hit path of BenchmarkHandler with an OnDecision hook, and
// with a logger whose level leaves acceptances out: what watching decisions costs.
func BenchmarkHandlerEvents(b *testing.B) {
	p := newPKI(b)
	for _, bc := range []struct {
		name string
		cfg  func(*Config)
	}{
		{"hook", func(c *Config) { c.OnDecision = func(context.Context, Event) {} }},
		{"logger-info", func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil)) }},
		{"hook-require", func(c *Config) { c.OnDecision = func(context.Context, Event) {} }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := Config{RootCAs: p.root.Pool()}
			bc.cfg(&cfg)
			m, err := New(cfg)
			require.NoError(b, err)
			h := m.Handler(noop)
			if strings.HasSuffix(bc.name, "-require") { // the acceptance waits for the route's policy
				h = m.Handler(m.Require(Must(RequireSubject(Attributes{"cn": {"alice"}})))(noop))
			}
			r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...)
			w := &discardWriter{h: http.Header{}}
			h.ServeHTTP(w, r)
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}

// TestEventCredentials: a refusal by the credential check of Either is an event too.
func TestEventCredentials(t *testing.T) {
	p := newPKI(t)
	var rec events
	m, err := New(Config{RootCAs: p.root.Pool(), OnDecision: rec.record})
	require.NoError(t, err)
	deny := func(*http.Request) (string, error) { return "", errors.New("bad password") }
	w := httptest.NewRecorder()
	m.Either(deny)(echoIdentity).ServeHTTP(w, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/"))
	assert.Equal(t, http.StatusUnauthorized, w.Code)
	ev := rec.only(t)
	assert.Equal(t, Refused, ev.Result)
	assert.Equal(t, ReasonCredentialsRequired, ev.Reason)
	assert.Equal(t, "credentials", ev.Step)
	assert.NotContains(t, w.Body.String(), "bad password")
}

// TestEventCompositions: Either and Both report one event per request, after the credentials
// have had their say, with the outcome the client got.
func TestEventCompositions(t *testing.T) {
	p := newPKI(t)
	good := func(*http.Request) (string, error) { return "svc", nil }
	bad := func(*http.Request) (string, error) { return "", errors.New("wrong password") }
	mallory := mtlstest.NewSelfSigned("mallory").Chain()
	tests := []struct {
		name        string
		h           func(m *Middleware) http.Handler
		chain       []*x509.Certificate
		result      Result
		reason      string
		credentials string
		certErr     bool
	}{
		{"Either, no certificate, good credentials", func(m *Middleware) http.Handler { return m.Either(good)(noop) }, nil, Accepted, "", "svc", false},
		{"Either, no certificate, bad credentials", func(m *Middleware) http.Handler { return m.Either(bad)(noop) }, nil, Refused, ReasonCredentialsRequired, "", false},
		{"Either, good certificate", func(m *Middleware) http.Handler { return m.Either(bad)(noop) }, p.alice.Chain(), Accepted, "", "", false},
		{"Either, bad certificate", func(m *Middleware) http.Handler { return m.Either(good)(noop) }, mallory, Refused, ReasonCertificateUntrusted, "", false},
		{"fallback, bad certificate, good credentials", func(m *Middleware) http.Handler {
			return m.Either(good, DangerouslyFallBackOnInvalidCertificate())(noop)
		}, mallory, AcceptedDegraded, "", "svc", true},
		{"fallback, bad certificate, bad credentials", func(m *Middleware) http.Handler {
			return m.Either(bad, DangerouslyFallBackOnInvalidCertificate())(noop)
		}, mallory, Refused, ReasonCredentialsRequired, "", true},
		{"Both, good certificate, bad credentials", func(m *Middleware) http.Handler { return m.Both(bad)(noop) }, p.alice.Chain(), Refused, ReasonCredentialsRequired, "", false},
		{"Both, good certificate, good credentials", func(m *Middleware) http.Handler { return m.Both(good)(noop) }, p.alice.Chain(), Accepted, "", "svc", false},
		{"Both, no certificate", func(m *Middleware) http.Handler { return m.Both(good)(noop) }, nil, Refused, ReasonCertificateRequired, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec events
			m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), OnDecision: rec.record})
			require.NoError(t, err)
			w := httptest.NewRecorder()
			tt.h(m).ServeHTTP(w, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", tt.chain...))
			ev := rec.only(t)
			assert.Equal(t, tt.result, ev.Result)
			assert.Equal(t, tt.reason, ev.Reason)
			assert.Equal(t, tt.credentials, ev.Credentials)
			assert.Equal(t, tt.certErr, ev.CertificateErr != nil)
			if tt.result == Refused {
				assert.Equal(t, ev.Status, w.Code)
			} else {
				assert.Equal(t, http.StatusOK, w.Code)
			}
		})
	}
}

// TestShadowOncePerRequest: a refusal after the pipeline (Require, a credential check) does not
// judge the shadow policy again.
func TestShadowOncePerRequest(t *testing.T) {
	p := newPKI(t)
	var calls int
	m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(),
		ShadowPolicy: PolicyFunc(func(*Identity) error { return errors.New("shadow says no") }),
		OnShadow:     func(*http.Request, ShadowResult) { calls++ }})
	require.NoError(t, err)
	deny := PolicyFunc(func(*Identity) error { return errors.New("route says no") })
	w := httptest.NewRecorder()
	m.Handler(m.Require(deny)(noop)).ServeHTTP(w, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.Equal(t, 1, calls, "Require")
	calls = 0
	bad := func(*http.Request) (string, error) { return "", errors.New("bad") }
	m.Both(bad)(noop).ServeHTTP(httptest.NewRecorder(), mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	assert.Equal(t, 1, calls, "Both")
}

// TestRefusalLogBounded: a client cannot make each refused request write much log: names are
// clipped, usages listed up to eight, and a repeated refusal of one certificate within the minute
// is logged at Debug. An untrusted certificate never raises the expiry warning.
func TestRefusalLogBounded(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	var buf bytes.Buffer
	m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), Now: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	require.NoError(t, err)
	ekus := make([]asn1.ObjectIdentifier, 1000)
	for i := range ekus {
		ekus[i] = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, i}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: strings.Repeat("A", 1500)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour), UnknownExtKeyUsage: ekus}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	big, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	require.Greater(t, len(big.Raw), 12<<10)

	for range 10 {
		assert.Equal(t, http.StatusUnauthorized, serve(m, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", big)))
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 1, "one Info record for ten refusals of one certificate")
	assert.Less(t, len(lines[0]), 2048)
	assert.Contains(t, lines[0], "and 992 more")
	assert.NotContains(t, buf.String(), "expires soon", "an untrusted certificate raises no expiry warning")
	now = now.Add(2 * time.Minute)
	serve(m, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", big))
	assert.Len(t, strings.Split(strings.TrimSpace(buf.String()), "\n"), 2, "logged again once the minute is over")
}

// TestStatusAndReasonOrder: an error wrapping several sentinels maps to one class, every time.
func TestStatusAndReasonOrder(t *testing.T) {
	err := fmt.Errorf("%w and %w", ErrDenied, ErrRevoked)
	for range 20 {
		status, reason := StatusAndReason(err)
		require.Equal(t, http.StatusUnauthorized, status)
		require.Equal(t, ReasonCertificateRevoked, reason)
	}
	assert.Len(t, classOrder, len(classes), "every class has its place in the order")
}

// TestEventOncePerRequestWithRoutes: a request makes one decision, one event, with its final
// outcome, however many route policies of the middleware judge it after its handler: the
// refusal of a Require takes the place of the handler's acceptance, reported before the
// refusal is written; an acceptance is reported once the request has passed them all.
func TestEventOncePerRequestWithRoutes(t *testing.T) {
	p := newPKI(t)
	onlyAlice := must(RequireSubject(Attributes{"CN": {"alice"}}))
	onlyBob := must(RequireSubject(Attributes{"CN": {"bob"}}))
	good := func(*http.Request) (string, error) { return "svc", nil }
	tests := []struct {
		name      string
		chain     func(m *Middleware) http.Handler
		anonymous bool // the request presents no certificate
		status    int
		result    Result
		step      string
		rule      string
	}{
		{"Handler alone", func(m *Middleware) http.Handler { return m.Handler(echoIdentity) }, false, http.StatusOK, Accepted, "", ""},
		{"Handler alone, a Require on another route", func(m *Middleware) http.Handler {
			_ = m.Require(onlyBob)
			return m.Handler(echoIdentity)
		}, false, http.StatusOK, Accepted, "", ""},
		{"Handler and Require accepting", func(m *Middleware) http.Handler { return m.Handler(m.Require(onlyAlice)(echoIdentity)) }, false, http.StatusOK, Accepted, "", ""},
		{"Handler and Require refusing", func(m *Middleware) http.Handler { return m.Handler(m.Require(onlyBob)(echoIdentity)) }, false, http.StatusForbidden, Refused, stepPolicy, "bob"},
		{"Handler, a Require accepting, a router, a Require refusing", func(m *Middleware) http.Handler {
			mux := http.NewServeMux()
			mux.Handle("/", m.Require(onlyBob)(echoIdentity))
			return m.Handler(m.Require(onlyAlice)(mux))
		}, false, http.StatusForbidden, Refused, stepPolicy, "bob"},
		{"Handler and Shadow refusing", func(m *Middleware) http.Handler { return m.Handler(m.Shadow(onlyBob)(echoIdentity)) }, false, http.StatusOK, AcceptedDegraded, "", ""},
		{"Either by certificate, Require refusing", func(m *Middleware) http.Handler { return m.Either(good)(m.Require(onlyBob)(echoIdentity)) }, false, http.StatusForbidden, Refused, stepPolicy, "bob"},
		{"Either by credentials, Require refusing", func(m *Middleware) http.Handler { return m.Either(good)(m.Require(onlyAlice)(echoIdentity)) }, true, http.StatusUnauthorized, Refused, stepClaim, ""},
		{"Both, Require accepting", func(m *Middleware) http.Handler { return m.Both(good)(m.Require(onlyAlice)(echoIdentity)) }, false, http.StatusOK, Accepted, "", ""},
		{"Both, Require refusing", func(m *Middleware) http.Handler { return m.Both(good)(m.Require(onlyBob)(echoIdentity)) }, false, http.StatusForbidden, Refused, stepPolicy, "bob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rec events
			var order []string
			m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(),
				OnDecision: func(ctx context.Context, ev Event) { order = append(order, "event"); rec.record(ctx, ev) },
				ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
					order = append(order, "refusal written")
					WriteError(w, r, err)
				}})
			require.NoError(t, err)
			r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...)
			if tc.anonymous {
				r = mtlstest.NewRequest(http.MethodGet, "https://api.example.test/")
			}
			w := httptest.NewRecorder()
			tc.chain(m).ServeHTTP(w, r)
			assert.Equal(t, tc.status, w.Code)
			ev := rec.only(t)
			assert.Equal(t, tc.result, ev.Result)
			assert.Equal(t, tc.step, ev.Step)
			if tc.rule != "" {
				assert.Contains(t, ev.Rule, tc.rule)
			}
			if tc.result == Refused {
				assert.Equal(t, []string{"event", "refusal written"}, order)
			}
			if !tc.anonymous {
				assert.Equal(t, "alice", ev.Leaf.Subject.CommonName)
				assert.Equal(t, SourceTLS, ev.Source)
			}
			if strings.HasPrefix(tc.name, "Either by credentials") || strings.HasPrefix(tc.name, "Both") {
				assert.Equal(t, "svc", ev.Credentials)
			}
			if tc.result == AcceptedDegraded {
				assert.ErrorContains(t, ev.ShadowErr, "bob")
			}
		})
	}
}
