package mtls

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHandler(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name       string
		optional   bool
		chain      []*x509.Certificate
		noTLS      bool
		wantStatus int
		wantBody   string
		wantReason string
	}{
		{name: "trusted", chain: p.alice.Chain(), wantStatus: 200, wantBody: "alice"},
		{name: "no certificate", wantStatus: 401, wantReason: ReasonCertificateRequired},
		{name: "plain HTTP", noTLS: true, wantStatus: 401, wantReason: ReasonCertificateRequired},
		{name: "untrusted", chain: p.other.NewClient("mallory").Chain(), wantStatus: 401, wantReason: ReasonCertificateUntrusted},
		{name: "optional without certificate", optional: true, wantStatus: 200, wantBody: "anonymous"},
		{name: "optional with trusted certificate", optional: true, chain: p.alice.Chain(), wantStatus: 200, wantBody: "alice"},
		{name: "optional with untrusted certificate", optional: true, chain: p.other.NewClient("mallory").Chain(),
			wantStatus: 401, wantReason: ReasonCertificateUntrusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(Config{RootCAs: p.root.Pool(), Optional: tt.optional})
			require.NoError(t, err)
			r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", tt.chain...)
			if tt.noTLS {
				r.TLS = nil
			}
			w := httptest.NewRecorder()
			m.Handler(echoIdentity).ServeHTTP(w, r)
			res := w.Result()
			require.Equal(t, tt.wantStatus, res.StatusCode)
			if tt.wantReason != "" {
				assert.Equal(t, tt.wantReason, decodeProblem(t, res).Reason)
				return
			}
			assert.Equal(t, tt.wantBody, w.Body.String())
		})
	}
}

func TestErrorHandlerAndLogger(t *testing.T) {
	p := newPKI(t)
	var logs bytes.Buffer
	var got error
	m, err := New(Config{
		RootCAs: p.root.Pool(),
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			got = err
			status, reason := StatusAndReason(err)
			http.Error(w, reason, status)
		},
	})
	require.NoError(t, err)
	w := httptest.NewRecorder()
	m.Handler(echoIdentity).ServeHTTP(w, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.issuing.NewClient("late",
		mtlstest.WithValidity(time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))).Chain()...))

	assert.Equal(t, http.StatusUnauthorized, w.Code)
	assert.Equal(t, ReasonCertificateExpired+"\n", w.Body.String())
	require.ErrorIs(t, got, ErrExpired)
	assert.Contains(t, logs.String(), "reason=certificate_expired")
	assert.Contains(t, logs.String(), "expired at ")
	assert.Contains(t, logs.String(), `subject="CN=late"`)
}

func TestDefaultErrorBodyIsCoarse(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	w := httptest.NewRecorder()
	m.Handler(echoIdentity).ServeHTTP(w, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.other.NewClient("mallory").Chain()...))
	body := w.Body.String()
	assert.JSONEq(t, `{"type":"about:blank","title":"Unauthorized","status":401,"reason":"certificate_untrusted"}`, body)
	for _, secret := range []string{"mallory", "Other Root CA", "x509", "authority"} {
		assert.NotContains(t, body, secret)
	}
	assert.Equal(t, "no-store", w.Header().Get("Cache-Control"))
}

func TestStatusAndReason(t *testing.T) {
	tests := []struct {
		err    error
		status int
		reason string
	}{
		{newError(ErrNoCertificate, "", nil), 401, ReasonCertificateRequired},
		{newError(ErrUntrusted, "", x509.UnknownAuthorityError{}), 401, ReasonCertificateUntrusted},
		{newError(ErrExpired, "", nil), 401, ReasonCertificateExpired},
		{newError(ErrNotYetValid, "", nil), 401, ReasonCertificateNotYet},
		{newError(ErrWrongUsage, "", nil), 401, ReasonCertificateUsage},
		{newError(ErrRevoked, "", nil), 401, ReasonCertificateRevoked},
		{newError(ErrRevocationUnavailable, "", nil), 503, ReasonRevocationUnavailable},
		{newError(ErrMalformedHeader, "", nil), 400, ReasonMalformedHeader},
		{newError(ErrDenied, "", nil), 403, ReasonPolicyDenied},
		{ErrDenied, 403, ReasonPolicyDenied},
		{errors.New("something else"), 401, ReasonCertificateUntrusted},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			status, reason := StatusAndReason(tt.err)
			assert.Equal(t, tt.status, status)
			assert.Equal(t, tt.reason, reason)
		})
	}
}

func TestContext(t *testing.T) {
	_, ok := FromContext(context.Background())
	assert.False(t, ok)
	_, ok = FromContext(NewContext(context.Background(), nil))
	assert.False(t, ok, "a nil identity is no identity")
	id := &Identity{SHA256: "x"}
	got, ok := FromContext(NewContext(context.Background(), id))
	require.True(t, ok)
	assert.Same(t, id, got)
}

func TestEndToEndTLS(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	srv, serverCA := tlsServer(t, m, echoIdentity)

	expired := p.issuing.NewClient("late", mtlstest.WithValidity(time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)))
	tests := []struct {
		name       string
		leaf       *mtlstest.Leaf
		wantStatus int
		wantBody   string
		wantReason string
	}{
		{"trusted", p.alice, 200, "alice", ""},
		{"no certificate", nil, 401, "", ReasonCertificateRequired},
		{"untrusted CA", p.other.NewClient("mallory"), 401, "", ReasonCertificateUntrusted},
		{"expired", expired, 401, "", ReasonCertificateExpired},
		{"RSA key", p.issuing.NewClient("rsa", mtlstest.WithKeyType(mtlstest.RSA2048)), 200, "rsa", ""},
		{"Ed25519 key", p.issuing.NewClient("ed", mtlstest.WithKeyType(mtlstest.Ed25519)), 200, "ed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := clientFor(serverCA, tt.leaf).Get(srv.URL)
			require.NoError(t, err)
			defer res.Body.Close()
			require.Equal(t, tt.wantStatus, res.StatusCode)
			if tt.wantReason != "" {
				assert.Equal(t, tt.wantReason, decodeProblem(t, res).Reason)
				return
			}
			body, _ := io.ReadAll(res.Body)
			assert.Equal(t, tt.wantBody, string(body))
		})
	}
}

func TestEndToEndRejectAtHandshake(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	srv, serverCA := tlsServer(t, m, echoIdentity, RejectAtHandshake())

	res, err := clientFor(serverCA, p.alice).Get(srv.URL)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, 200, res.StatusCode)

	for name, leaf := range map[string]*mtlstest.Leaf{"untrusted": p.other.NewClient("mallory"), "none": nil} {
		t.Run(name, func(t *testing.T) {
			_, err := clientFor(serverCA, leaf).Get(srv.URL)
			require.Error(t, err, "the handshake must fail")
		})
	}
}

func TestManyRequestsOnOneConnectionVerifyOnce(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	srv, serverCA := tlsServer(t, m, echoIdentity)
	client := clientFor(serverCA, p.alice)

	var first *Identity
	for i := range 50 {
		res, err := client.Get(srv.URL)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		require.Equal(t, 200, res.StatusCode, "request %d", i)
	}
	st := m.state.Load()
	assert.Equal(t, 1, st.cache.len())
	first, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	require.NoError(t, err)
	second, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	require.NoError(t, err)
	assert.Same(t, first, second, "a cache hit returns the identity verified before")
}

// TestEndToEndCurl drives the middleware with the real curl binary as the client.
func TestEndToEndCurl(t *testing.T) {
	curl := requireBinary(t, "curl")
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	srv, serverCA := tlsServer(t, m, echoIdentity)

	dir := t.TempDir()
	serverCAFile := mtlstest.WriteFile(dir, "server-ca.pem", serverCA.CertPEM())
	rogue := p.other.NewClient("mallory")
	expired := p.issuing.NewClient("late", mtlstest.WithValidity(time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)))
	rsa := p.issuing.NewClient("bob", mtlstest.WithKeyType(mtlstest.RSA2048))

	tests := []struct {
		name       string
		leaf       *mtlstest.Leaf
		wantStatus string
		wantBody   string
	}{
		{"trusted ECDSA with chain", p.alice, "200", "alice"},
		{"trusted RSA with chain", rsa, "200", "bob"},
		{"no certificate", nil, "401", `"reason":"certificate_required"`},
		{"untrusted", rogue, "401", `"reason":"certificate_untrusted"`},
		{"expired", expired, "401", `"reason":"certificate_expired"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"--silent", "--show-error", "--max-time", "10", "--cacert", serverCAFile,
				"--write-out", "\n%{http_code}"}
			if tt.leaf != nil {
				cn := tt.leaf.Certificate.Subject.CommonName
				args = append(args, "--cert", mtlstest.WriteFile(dir, cn+".pem", tt.leaf.ChainPEM()), "--key", mtlstest.WriteFile(dir, cn+"-key.pem", tt.leaf.KeyPEM()))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, curl, append(args, srv.URL)...).CombinedOutput()
			require.NoError(t, err, string(out))
			text := strings.TrimSpace(string(out))
			cut := strings.LastIndex(text, "\n")
			body, status := text[:cut+1], text[cut+1:]
			assert.Equal(t, tt.wantStatus, status)
			assert.Contains(t, body, tt.wantBody)
		})
	}
}

func TestAuthenticateReportsNothing(t *testing.T) {
	p := newPKI(t)
	var logs bytes.Buffer
	shadowCalls := 0
	m, err := New(Config{
		RootCAs:      p.root.Pool(),
		Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
		ShadowPolicy: PolicyFunc(func(*Identity) error { return errors.New("would deny") }),
		OnShadow:     func(*http.Request, ShadowResult) { shadowCalls++ },
	})
	require.NoError(t, err)

	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	require.NoError(t, err)
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.other.NewClient("mallory").Chain()...))
	require.ErrorIs(t, err, ErrUntrusted)
	assert.Zero(t, shadowCalls)
	assert.Empty(t, logs.String())

	m.Handler(echoIdentity).ServeHTTP(httptest.NewRecorder(), mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	assert.Equal(t, 1, shadowCalls, "serving through Handler reports the shadow outcome")
	assert.Contains(t, logs.String(), "shadow policy would deny")
}

// TestPerRouteTrust: two middlewares with different trust on one listener. The TLS layer only
// requests certificates, so each route decides with its own trust; RejectAtHandshake would
// apply one middleware's trust to every connection.
func TestPerRouteTrust(t *testing.T) {
	p := newPKI(t)
	partners, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	staff, err := New(Config{RootCAs: p.other.Pool()})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/partners/", partners.Handler(echoIdentity))
	mux.Handle("/staff/", staff.Handler(echoIdentity))
	bob := p.other.NewClient("bob")

	get := func(srv *httptest.Server, ca *mtlstest.CA, leaf *mtlstest.Leaf, path string) (int, error) {
		res, err := clientFor(ca, leaf).Get(srv.URL + path)
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}
	serverCA := mtlstest.NewRootCA("Server CA")
	serve := func(opts ...TLSOption) *httptest.Server {
		srv := httptest.NewUnstartedServer(mux)
		// Either middleware's TLSConfig: it only requests the certificate.
		srv.TLS = partners.TLSConfig(&tls.Config{Certificates: []tls.Certificate{serverCA.NewServer("127.0.0.1").TLSCertificate()}}, opts...)
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv
	}
	srv := serve()
	for _, tt := range []struct {
		leaf *mtlstest.Leaf
		path string
		want int
	}{
		{p.alice, "/partners/", 200}, {p.alice, "/staff/", 401},
		{bob, "/partners/", 401}, {bob, "/staff/", 200},
	} {
		got, err := get(srv, serverCA, tt.leaf, tt.path)
		require.NoError(t, err)
		assert.Equal(t, tt.want, got, "%s on %s", tt.leaf.Certificate.Subject.CommonName, tt.path)
	}

	_, err = get(serve(RejectAtHandshake()), serverCA, bob, "/staff/")
	require.Error(t, err, "RejectAtHandshake applies the partners' trust to the staff route too")
}
