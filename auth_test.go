package mtls

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// authFixture is a middleware in header mode (haproxy format, proxies in 10.0.0.0/8) with a
// policy, a deny list and a Basic-auth credential check, and the certificates its rows present.
type authFixture struct {
	*headerFixture
	revoked, expired, denied, tricky *mtlstest.Leaf
	now                              time.Time // the middleware's clock
	checks                           int       // calls of the credential check
	logs                             bytes.Buffer
}

const authUser, authPassword = "svc", "s3cret"

func newAuthFixture(t *testing.T) *authFixture {
	f := &authFixture{headerFixture: newHeaderFixture(t), now: time.Now()}
	f.revoked = f.p.issuing.NewClient("revoked")
	f.expired = f.p.issuing.NewClient("expired", mtlstest.WithValidity(f.now.Add(-48*time.Hour), f.now.Add(-24*time.Hour)))
	f.denied = f.p.issuing.NewClient("denied")
	f.tricky = f.p.issuing.NewClient("tricky")
	return f
}

func (f *authFixture) middleware(t *testing.T, optional bool) *Middleware {
	t.Helper()
	f.logs.Reset()
	m, err := New(Config{
		RootCAs:       f.p.root.Pool(),
		Intermediates: f.p.issuing.Pool(),
		Optional:      optional,
		Now:           func() time.Time { return f.now },
		Header:        &HeaderConfig{Format: MustHeaderFormat("haproxy"), TrustedProxies: []netip.Prefix{f.trusts}},
		Revocation:    &RevocationConfig{DenyList: NewDenyList(DenyCertificate(sha256.Sum256(f.revoked.Certificate.Raw)))},
		Policy: PolicyFunc(func(id *Identity) error {
			switch id.Leaf.Subject.CommonName {
			case "denied":
				return errors.New("denied by the test policy")
			case "tricky": // a policy reason that wraps another sentinel is still a policy's refusal
				return fmt.Errorf("tricky: %w", ErrNoCertificate)
			}
			return nil
		}),
		Logger: slog.New(slog.NewTextHandler(&f.logs, nil)),
	})
	require.NoError(t, err)
	return m
}

// check accepts Basic authentication as svc / s3cret.
func (f *authFixture) check(r *http.Request) (string, error) {
	f.checks++
	user, pass, ok := r.BasicAuth()
	if !ok {
		return "", errors.New("no basic credentials")
	}
	if subtle.ConstantTimeCompare([]byte(user+":"+pass), []byte(authUser+":"+authPassword)) != 1 {
		return "", errors.New("wrong password for " + user)
	}
	return user, nil
}

// authSeen records what the next handler (or the check) saw.
type authSeen struct {
	called    bool
	id        *Identity
	principal string
	header    http.Header
}

func (s *authSeen) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.called = true
		s.id, _ = FromContext(r.Context())
		s.principal, _ = CredentialsFromContext(r.Context())
		s.header = r.Header.Clone()
	})
}

// routers mounts each composition on the routes /either, /fallback and /both, with net/http's
// ServeMux and with chi.
func routers(m *Middleware, check CredentialCheck, h http.Handler) map[string]http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/either", m.Either(check)(h))
	mux.Handle("/fallback", m.Either(check, DangerouslyFallBackOnInvalidCertificate())(h))
	mux.Handle("/both", m.Both(check)(h))
	r := chi.NewRouter()
	r.With(m.Either(check)).Get("/either", h.ServeHTTP)
	r.With(m.Either(check, DangerouslyFallBackOnInvalidCertificate())).Get("/fallback", h.ServeHTTP)
	r.Group(func(r chi.Router) {
		r.Use(m.Both(check))
		r.Get("/both", h.ServeHTTP)
	})
	return map[string]http.Handler{"ServeMux": mux, "chi": r}
}

func TestCompositions(t *testing.T) {
	f := newAuthFixture(t)
	const proxy, stranger = "10.1.2.3:4000", "192.0.2.1:4000"
	good := [2]string{authUser, authPassword}
	stolen := good // an attacker's copy: the same value, the rows say who sends it
	wrong := [2]string{authUser, "guess"}
	forged := [][2]string{{"X-SSL-Client-Cert", f.leaf}, {"X-SSL-Client-Chain", f.chain}}
	tests := []struct {
		name      string
		route     string
		optional  bool
		remote    string // default a stranger: a direct client
		tls       []*x509.Certificate
		headers   [][2]string
		basic     *[2]string
		status    int
		reason    string
		cert      string // common name of the identity the handler sees
		principal string // the principal the handler sees
		checked   bool   // the credential check ran
		logged    string // a log record's message
	}{
		// certificate OR credentials
		{name: "valid certificate, no credentials", route: "/either", tls: f.p.alice.Chain(), status: 200, cert: "alice"},
		{name: "valid certificate and someone's credentials: the certificate decides, unchecked", route: "/either", tls: f.p.alice.Chain(), basic: &wrong, status: 200, cert: "alice"},
		{name: "no certificate, good credentials", route: "/either", basic: &good, status: 200, principal: authUser, checked: true},
		{name: "no certificate, wrong credentials", route: "/either", basic: &wrong, status: 401, reason: ReasonCredentialsRequired, checked: true, logged: "wrong password for svc"},
		{name: "no certificate, no credentials", route: "/either", status: 401, reason: ReasonCredentialsRequired, checked: true},
		{name: "no certificate, optional mode: the credentials still decide", route: "/either", optional: true, status: 401, reason: ReasonCredentialsRequired, checked: true},
		{name: "untrusted certificate and stolen credentials refused", route: "/either", tls: mtlstest.NewSelfSigned("mallory").Chain(), basic: &stolen, status: 401, reason: ReasonCertificateUntrusted},
		{name: "revoked certificate and stolen credentials refused", route: "/either", tls: f.revoked.Chain(), basic: &stolen, status: 401, reason: ReasonCertificateRevoked},
		{name: "expired certificate and good credentials refused", route: "/either", tls: f.expired.Chain(), basic: &good, status: 401, reason: ReasonCertificateExpired},
		{name: "policy-denied certificate and good credentials refused", route: "/either", tls: f.denied.Chain(), basic: &good, status: 403, reason: ReasonPolicyDenied},
		{name: "forged header from a stranger, good credentials: header removed", route: "/either", headers: forged, basic: &good, status: 200, principal: authUser, checked: true},
		{name: "forged header from a stranger, no credentials", route: "/either", headers: forged, status: 401, reason: ReasonCredentialsRequired, checked: true},
		{name: "trusted proxy forwards a certificate", route: "/either", remote: proxy, headers: forged, basic: &wrong, status: 200, cert: "alice"},
		{name: "trusted proxy forwards none, good credentials", route: "/either", remote: proxy, headers: [][2]string{{"X-SSL-Client-Cert", ""}}, basic: &good, status: 200, principal: authUser, checked: true},
		{name: "trusted proxy forwards garbage, good credentials", route: "/either", remote: proxy, headers: [][2]string{{"X-SSL-Client-Cert", "SPOOFED"}}, basic: &good, status: 400, reason: ReasonMalformedHeader},
		{name: "misdirected request with good credentials", route: "/either", tls: f.p.alice.Chain(), basic: &good, status: 421, reason: ReasonMisdirected},

		// ... falling back on an invalid certificate
		{name: "fallback: untrusted certificate, good credentials", route: "/fallback", tls: mtlstest.NewSelfSigned("mallory").Chain(), basic: &good, status: 200, principal: authUser, checked: true, logged: "certificate refused, the credentials decide"},
		{name: "fallback: revoked certificate, wrong credentials", route: "/fallback", tls: f.revoked.Chain(), basic: &wrong, status: 401, reason: ReasonCredentialsRequired, checked: true, logged: "certificate revoked"},
		{name: "fallback: trusted proxy forwards garbage, good credentials: header removed", route: "/fallback", remote: proxy, headers: [][2]string{{"X-SSL-Client-Cert", "SPOOFED"}}, basic: &good, status: 200, principal: authUser, checked: true},
		{name: "fallback: policy-denied certificate is no invalid one", route: "/fallback", tls: f.denied.Chain(), basic: &good, status: 403, reason: ReasonPolicyDenied},
		{name: "fallback: a policy reason wrapping ErrNoCertificate is still a denial", route: "/fallback", tls: f.tricky.Chain(), basic: &good, status: 403, reason: ReasonPolicyDenied},
		{name: "either: a policy reason wrapping ErrNoCertificate is still a denial", route: "/either", tls: f.tricky.Chain(), basic: &good, status: 403, reason: ReasonPolicyDenied},
		{name: "fallback: valid certificate still decides", route: "/fallback", tls: f.p.alice.Chain(), basic: &wrong, status: 200, cert: "alice"},

		// certificate AND credentials
		{name: "both: valid certificate, good credentials", route: "/both", tls: f.p.alice.Chain(), basic: &good, status: 200, cert: "alice", principal: authUser, checked: true},
		{name: "both: stolen certificate, wrong password", route: "/both", tls: f.p.alice.Chain(), basic: &wrong, status: 401, reason: ReasonCredentialsRequired, checked: true, logged: "CN=alice"},
		{name: "both: valid certificate, no credentials", route: "/both", tls: f.p.alice.Chain(), status: 401, reason: ReasonCredentialsRequired, checked: true},
		{name: "both: no certificate, stolen password: unchecked", route: "/both", basic: &stolen, status: 401, reason: ReasonCertificateRequired},
		{name: "both: no certificate in optional mode", route: "/both", optional: true, basic: &good, status: 401, reason: ReasonCertificateRequired},
		{name: "both: untrusted certificate, stolen password: unchecked", route: "/both", tls: mtlstest.NewSelfSigned("mallory").Chain(), basic: &stolen, status: 401, reason: ReasonCertificateUntrusted},
		{name: "both: revoked certificate, stolen password: unchecked", route: "/both", tls: f.revoked.Chain(), basic: &stolen, status: 401, reason: ReasonCertificateRevoked},
		{name: "both: forged header from a stranger, stolen password", route: "/both", headers: forged, basic: &stolen, status: 401, reason: ReasonCertificateRequired},
		{name: "both: valid certificate beside a forged header: header removed", route: "/both", tls: f.p.alice.Chain(), headers: [][2]string{{"X-SSL-Client-Cert", "SPOOFED"}}, basic: &good, status: 200, cert: "alice", principal: authUser, checked: true},
		{name: "both: trusted proxy forwards a certificate", route: "/both", remote: proxy, headers: forged, basic: &good, status: 200, cert: "alice", principal: authUser, checked: true},
	}
	for _, tt := range tests {
		for _, router := range []string{"ServeMux", "chi"} {
			t.Run(router+"/"+tt.name, func(t *testing.T) {
				m := f.middleware(t, tt.optional)
				var s, atCheck authSeen
				check := func(r *http.Request) (string, error) {
					atCheck.handler().ServeHTTP(nil, r)
					return f.check(r)
				}
				f.checks = 0
				h := routers(m, check, s.handler())[router]

				r := httptest.NewRequest(http.MethodGet, "https://api.example.test"+tt.route, nil)
				r.RemoteAddr = stranger
				if tt.remote != "" {
					r.RemoteAddr = tt.remote
				}
				if tt.tls != nil {
					sni := "api.example.test"
					if tt.reason == ReasonMisdirected {
						sni = "other.example.test"
					}
					r.TLS = &tls.ConnectionState{PeerCertificates: tt.tls, ServerName: sni}
				}
				for _, kv := range tt.headers {
					r.Header.Add(kv[0], kv[1])
				}
				if tt.basic != nil {
					r.SetBasicAuth(tt.basic[0], tt.basic[1])
				}
				before := r.Header.Clone()
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)

				require.Equal(t, tt.status, w.Code, w.Body.String())
				assert.Equal(t, before, r.Header, "the caller's request is never modified")
				assert.Equal(t, tt.checked, f.checks == 1, "credential check ran")
				assert.LessOrEqual(t, f.checks, 1)
				if tt.logged != "" {
					assert.Contains(t, f.logs.String(), tt.logged)
				}
				if tt.reason != "" {
					assert.JSONEq(t, fmt.Sprintf(`{"type":"about:blank","title":%q,"status":%d,"reason":%q}`, http.StatusText(tt.status), tt.status, tt.reason), w.Body.String())
					assert.False(t, s.called)
					return
				}
				require.True(t, s.called)
				if tt.cert == "" {
					assert.Nil(t, s.id, "no certificate identity")
				} else {
					require.NotNil(t, s.id)
					assert.Equal(t, tt.cert, s.id.Leaf.Subject.CommonName)
				}
				assert.Equal(t, tt.principal, s.principal)
				fromProxy := tt.cert != "" && s.id.Source == SourceHeader
				for _, seen := range []*authSeen{&s, &atCheck} {
					if !seen.called || fromProxy {
						continue
					}
					for k := range seen.header {
						assert.False(t, strings.HasPrefix(strings.ToLower(k), "x-ssl-client-"), "header %q left", k)
					}
				}
				if tt.checked && tt.cert != "" {
					require.NotNil(t, atCheck.id, "Both's check sees the identity")
					assert.Equal(t, tt.cert, atCheck.id.Leaf.Subject.CommonName)
				}
			})
		}
	}
}

func TestCredentialCheckEdges(t *testing.T) {
	f := newAuthFixture(t)
	m := f.middleware(t, false)
	serve := func(h http.Handler) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		return w
	}
	var s authSeen

	t.Run("empty principal refused", func(t *testing.T) {
		w := serve(m.Either(func(*http.Request) (string, error) { return "", nil })(s.handler()))
		assert.Equal(t, http.StatusUnauthorized, w.Code)
		assert.Contains(t, w.Body.String(), ReasonCredentialsRequired)
		assert.False(t, s.called)
	})
	t.Run("the check's reason stays in the logs", func(t *testing.T) {
		w := serve(m.Either(func(*http.Request) (string, error) { return "", errors.New("user bob is locked") })(s.handler()))
		assert.NotContains(t, w.Body.String(), "bob")
		assert.Contains(t, f.logs.String(), "user bob is locked")
	})
	t.Run("errors.Is reaches the sentinel and the check's error", func(t *testing.T) {
		cause := errors.New("expired token")
		var got error
		m, err := New(Config{RootCAs: f.p.root.Pool(), ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			got = err
			if errors.Is(err, ErrCredentials) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
			}
			WriteError(w, r, err)
		}})
		require.NoError(t, err)
		w := serve(m.Either(func(*http.Request) (string, error) { return "", cause })(s.handler()))
		require.ErrorIs(t, got, ErrCredentials)
		require.ErrorIs(t, got, cause)
		assert.Equal(t, `Bearer realm="api"`, w.Header().Get("WWW-Authenticate"))
		status, reason := StatusAndReason(got)
		assert.Equal(t, http.StatusUnauthorized, status)
		assert.Equal(t, ReasonCredentialsRequired, reason)
	})
	t.Run("Require below Either refuses credential logins", func(t *testing.T) {
		ok := func(*http.Request) (string, error) { return "svc", nil }
		w := serve(m.Either(ok)(m.Require(PolicyFunc(func(*Identity) error { return nil }))(s.handler())))
		assert.Equal(t, http.StatusUnauthorized, w.Code)
		assert.Contains(t, w.Body.String(), ReasonCertificateRequired)
	})
	t.Run("nil check panics", func(t *testing.T) {
		assert.Panics(t, func() { m.Either(nil) })
		assert.Panics(t, func() { m.Both(nil) })
	})
	t.Run("no principal outside Either and Both", func(t *testing.T) {
		_, ok := CredentialsFromContext(context.Background())
		assert.False(t, ok)
	})
}

// TestEitherOverTLS runs certificate-or-password over real handshakes.
func TestEitherOverTLS(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool()})
	require.NoError(t, err)
	check := func(r *http.Request) (string, error) {
		if user, pass, ok := r.BasicAuth(); ok && user == authUser && pass == authPassword {
			return user, nil
		}
		return "", errors.New("bad credentials")
	}
	serverCA := mtlstest.NewRootCA("Server CA")
	srv := httptest.NewUnstartedServer(m.Either(check)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := FromContext(r.Context()); ok {
			_, _ = io.WriteString(w, "certificate "+id.Leaf.Subject.CommonName)
			return
		}
		principal, _ := CredentialsFromContext(r.Context())
		_, _ = io.WriteString(w, "password "+principal)
	})))
	srv.TLS = m.TLSConfig(&tls.Config{Certificates: []tls.Certificate{serverCA.NewServer("127.0.0.1").TLSCertificate()}})
	srv.StartTLS()
	t.Cleanup(srv.Close)

	for _, tt := range []struct {
		name   string
		leaf   *mtlstest.Leaf
		basic  bool
		status int
		body   string
	}{
		{"certificate", p.alice, false, 200, "certificate alice"},
		{"password", nil, true, 200, "password svc"},
		{"neither", nil, false, 401, ReasonCredentialsRequired},
		{"untrusted certificate and password", mtlstest.NewSelfSigned("mallory"), true, 401, ReasonCertificateUntrusted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
			require.NoError(t, err)
			if tt.basic {
				req.SetBasicAuth(authUser, authPassword)
			}
			res, err := clientFor(serverCA, tt.leaf).Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(res.Body)
			_ = res.Body.Close()
			assert.Equal(t, tt.status, res.StatusCode)
			assert.Contains(t, string(body), tt.body)
		})
	}
}
