package mtls

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// urlSecrets are the secrets withURLSecrets puts in a URL.
var urlSecrets = []string{"u5ername", "pa55word", "s3cretsig", "t0kenvalue", "b4rekey", "fr4gment"}

// withURLSecrets returns base (http://host:port) and path with user information, a query and a
// fragment carrying secrets.
func withURLSecrets(base, path string) string {
	return strings.Replace(base, "://", "://u5ername:pa55word@", 1) + path +
		"?sig=s3cretsig&token=t0kenvalue&b4rekey#fr4gment"
}

// requireNoURLSecret fails if any text holds one of urlSecrets.
func requireNoURLSecret(t *testing.T, texts map[string]string) {
	t.Helper()
	for where, text := range texts {
		for _, s := range urlSecrets {
			assert.NotContains(t, text, s, "%s: %s", where, text)
		}
	}
}

func TestReportedURL(t *testing.T) {
	tests := []struct{ name, raw, want string }{
		{"plain", "http://crl.example.test/a.crl", "http://crl.example.test/a.crl"},
		{"user information", "https://user:pw@crl.example.test/a.crl", "https://crl.example.test/a.crl"},
		{"query values", "https://h.test/a.crl?sig=abc&se=2026&x", "https://h.test/a.crl?sig=REDACTED&se=REDACTED&REDACTED"},
		{"empty value", "https://h.test/?token=", "https://h.test/?token=REDACTED"},
		{"fragment", "https://h.test/p#secret", "https://h.test/p"},
		{"invalid", "http://h.test:bad/?sig=abc", "(an invalid URL)"},
		{"opaque", "http:secret", "http:REDACTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, reportedURL(tt.raw))
		})
	}
}

// TestRevocationURLSecretsAreRedacted: the user information, query values and fragment of CRL
// URLs, OCSP responders and the URLs taken from certificates show nowhere: not in the log, the
// decision's event, the error, CRLStatus or ReloadStatus, whether the source fails with a status,
// cannot be reached (the HTTP client's *url.Error names the URL) or answers.
func TestRevocationURLSecretsAreRedacted(t *testing.T) {
	p := newRevPKI()
	down := newRevResponder(t, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	})
	closed := httptest.NewServer(http.NotFoundHandler())
	unreachable := closed.URL
	closed.Close()
	alice := p.issuing.NewClient("alice")
	revoking := newRevCRLServer(t, p.issuing.NewCRL(mtlstest.CRL{Revoked: []*big.Int{alice.Certificate.SerialNumber}}))
	dp := func(base string) *mtlstest.Leaf {
		return p.issuing.NewClient("dp", mtlstest.WithSerial(alice.Certificate.SerialNumber),
			mtlstest.WithCRLDistributionPoints(withURLSecrets(base, "/dp.crl")))
	}
	aia := func(base string) *mtlstest.Leaf {
		return p.issuing.NewClient("aia", mtlstest.WithOCSPServer(withURLSecrets(base, "/ocsp")))
	}
	crlURL := func(base string) *RevocationConfig {
		return &RevocationConfig{CRL: &CRLConfig{URLs: []string{withURLSecrets(base, "/issuing.crl")}}}
	}
	responder := func(base string) *RevocationConfig {
		return &RevocationConfig{OCSP: &OCSPConfig{Responder: withURLSecrets(base, "/ocsp")}}
	}
	useDP := &RevocationConfig{CRL: &CRLConfig{DistributionPoints: true}}
	useAIA := &RevocationConfig{OCSP: &OCSPConfig{}}
	tests := []struct {
		name string
		rc   *RevocationConfig
		leaf *mtlstest.Leaf
		want error
	}{
		{"CRL URL failing", crlURL(down.srv.URL), alice, ErrRevocationUnavailable},
		{"CRL URL unreachable", crlURL(unreachable), alice, ErrRevocationUnavailable},
		{"CRL URL revoking", crlURL(revoking.srv.URL), alice, ErrRevoked},
		{"OCSP responder failing", responder(down.srv.URL), alice, ErrRevocationUnavailable},
		{"OCSP responder unreachable", responder(unreachable), alice, ErrRevocationUnavailable},
		{"distribution point failing", useDP, dp(down.srv.URL), ErrRevocationUnavailable},
		{"distribution point unreachable", useDP, dp(unreachable), ErrRevocationUnavailable},
		{"distribution point revoking", useDP, dp(revoking.srv.URL), ErrRevoked},
		{"AIA responder failing", useAIA, aia(down.srv.URL), ErrRevocationUnavailable},
		{"AIA responder unreachable", useAIA, aia(unreachable), ErrRevocationUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			var mu sync.Mutex
			var events []Event
			rc := *tt.rc
			m, err := New(Config{RootCAs: p.root.Pool(), Now: p.clock.Now, Revocation: &rc,
				Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				OnDecision: func(_ context.Context, ev Event) {
					mu.Lock()
					events = append(events, ev)
					mu.Unlock()
				}})
			require.NoError(t, err)
			t.Cleanup(func() { _ = m.Close() })
			if m.revoc.crl != nil {
				for _, src := range m.revoc.crl.configured {
					awaitLoad(src) // the first download has failed, or loaded, and been logged
				}
			}
			rec := httptest.NewRecorder()
			m.Handler(http.NotFoundHandler()).ServeHTTP(rec,
				mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", tt.leaf.Chain()...))
			_, err = revAuthn(m, tt.leaf)
			requireRevRefused(t, err, tt.want)

			mu.Lock()
			require.Len(t, events, 1)
			ev := events[0]
			mu.Unlock()
			require.ErrorIs(t, ev.Err, tt.want)
			var e *Error
			require.ErrorAs(t, ev.Err, &e)
			texts := map[string]string{
				"log": logs.String(), "event": fmt.Sprintf("%+v", ev), "error": err.Error(),
				"detail": e.Detail, "response": rec.Body.String(),
			}
			if e.Err != nil {
				texts["cause"] = e.Err.Error()
			}
			for i, st := range m.CRLStatus() {
				texts[fmt.Sprint("CRLStatus ", i)] = fmt.Sprintf("%+v", st)
				if st.Err != nil {
					texts[fmt.Sprint("CRLStatus error ", i)] = st.Err.Error()
				}
			}
			js, err := json.Marshal(m.ReloadStatus())
			require.NoError(t, err)
			texts["ReloadStatus"] = string(js)
			requireNoURLSecret(t, texts)
			if tt.want == ErrRevoked {
				assert.Contains(t, e.Detail, "?sig=REDACTED&token=REDACTED&REDACTED says serial",
					"the source is named, its query keys kept")
			}
		})
	}
}

// TestRevocationURLSecretsInConfigErrors: a URL New refuses is named without its secrets.
func TestRevocationURLSecretsInConfigErrors(t *testing.T) {
	p := newRevPKI()
	tests := []struct {
		name  string
		rc    *RevocationConfig
		field string
	}{
		{"CRL URL not http", &RevocationConfig{CRL: &CRLConfig{URLs: []string{withURLSecrets("ftp://h.test", "/a.crl")}}}, "Revocation.CRL.URLs[0]"},
		{"CRL URL invalid", &RevocationConfig{CRL: &CRLConfig{URLs: []string{withURLSecrets("http://h.test:bad", "/a.crl")}}}, "Revocation.CRL.URLs[0]"},
		{"responder not http", &RevocationConfig{OCSP: &OCSPConfig{Responder: withURLSecrets("ldap://h.test", "/")}}, "Revocation.OCSP.Responder"},
		{"responder invalid", &RevocationConfig{OCSP: &OCSPConfig{Responder: withURLSecrets("http://h.test:bad", "/")}}, "Revocation.OCSP.Responder"},
		{"deny list URL not https", &RevocationConfig{DenyListURL: withURLSecrets("http://h.test", "/deny.txt")}, "Revocation.DenyListURL"},
		{"deny list URL invalid", &RevocationConfig{DenyListURL: withURLSecrets("https://h.test:bad", "/deny.txt")}, "Revocation.DenyListURL"},
		// A password holding "/", "?" or "#" ends the authority early: the parser's error
		// quotes the password as the port.
		{"CRL URL password with a slash", &RevocationConfig{CRL: &CRLConfig{URLs: []string{"http://h.test/a.crl", "https://crl:pa55word/x@h.test/a.crl"}}}, "Revocation.CRL.URLs[1]"},
		{"CRL URL password with a question mark", &RevocationConfig{CRL: &CRLConfig{URLs: []string{"https://crl:pa55word?x@h.test/a.crl"}}}, "Revocation.CRL.URLs[0]"},
		{"CRL URL password with a hash", &RevocationConfig{CRL: &CRLConfig{URLs: []string{"https://crl:pa55word#x@h.test/a.crl"}}}, "Revocation.CRL.URLs[0]"},
		{"responder password with a slash", &RevocationConfig{OCSP: &OCSPConfig{Responder: "https://ocsp:pa55word/x@h.test/"}}, "Revocation.OCSP.Responder"},
		{"deny list URL password with a slash", &RevocationConfig{DenyListURL: "https://list:pa55word/x@h.test/deny.txt"}, "Revocation.DenyListURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{RootCAs: p.root.Pool(), Now: p.clock.Now, Revocation: tt.rc})
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.field, ce.Field)
			requireNoURLSecret(t, map[string]string{"error": err.Error()})
			if strings.Contains(tt.name, "invalid") || strings.Contains(tt.name, "password") {
				assert.Equal(t, "an invalid URL", ce.Err.Error(), "a fixed text, never the parser's")
			}
		})
	}
}

// TestDenyListURLSecretsInFetchErrors: a deny list URL that cannot be reached is named without
// its secrets, in New's error and ReloadStatus.
func TestDenyListURLSecretsInFetchErrors(t *testing.T) {
	p := newRevPKI()
	d := newDenyServer(t)
	var logs bytes.Buffer
	m, err := New(Config{RootCAs: p.root.Pool(), Now: p.clock.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Revocation: &RevocationConfig{DenyListURL: withURLSecrets(d.URL, "/deny.txt"), HTTPClient: d.Client()}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	d.Close() // unreachable from now on: the HTTP client's *url.Error names the URL
	err = m.refreshDenyList(context.Background())
	require.Error(t, err)
	assert.NotContains(t, err.Error(), `Get "`, "no *url.Error text")
	js, jerr := json.Marshal(m.ReloadStatus())
	require.NoError(t, jerr)
	st := m.ReloadStatus().DenyListURL
	require.NotNil(t, st)
	assert.Equal(t, []string{d.URL + "/deny.txt?sig=REDACTED&token=REDACTED&REDACTED"}, st.Sources)
	requireNoURLSecret(t, map[string]string{"error": err.Error(), "ReloadStatus": string(js), "log": logs.String()})
}

// TestOCSPResponderWithQueryIsAskedByPOST: the GET form appends the request to the URL, which
// would land in the query's last value; a responder URL with a query is asked by POST, the URL
// whole.
func TestOCSPResponderWithQueryIsAskedByPOST(t *testing.T) {
	p := newRevPKI()
	leaf := p.issuing.NewClient("alice")
	der := p.issuing.NewOCSPResponse(leaf.Certificate, mtlstest.OCSPAnswer{})
	var mu sync.Mutex
	var got []string
	rf := newRevResponder(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.RequestURI())
		mu.Unlock()
		_, _ = w.Write(der)
	})
	m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: rf.srv.URL + "/ocsp?token=t0kenvalue"}})
	_, err := revAuthn(m, leaf)
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"POST /ocsp?token=t0kenvalue"}, got)
}

// TestRevocationInvalidRedirectLocationIsNotReported: an HTTPClient that follows redirects fails
// on a Location that does not parse, with a message that quotes the Location whole, signature
// included. Every source reports the failure by its class only.
func TestRevocationInvalidRedirectLocationIsNotReported(t *testing.T) {
	p := newRevPKI()
	const location = "https://cdn.test/a%zz.crl?X-Amz-Signature=s3cretsig"
	redirect := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Location", location)
		w.WriteHeader(http.StatusFound)
	})
	plain := httptest.NewServer(redirect)
	t.Cleanup(plain.Close)
	tlsSrv := httptest.NewTLSServer(redirect)
	t.Cleanup(tlsSrv.Close)
	follow := &http.Client{} // follows redirects
	tests := []struct {
		name string
		rc   *RevocationConfig
		leaf *mtlstest.Leaf
	}{
		{"CRL URL", &RevocationConfig{HTTPClient: follow, CRL: &CRLConfig{URLs: []string{plain.URL + "/a.crl"}}}, p.issuing.NewClient("alice")},
		{"OCSP responder", &RevocationConfig{HTTPClient: follow, OCSP: &OCSPConfig{Responder: plain.URL + "/ocsp"}}, p.issuing.NewClient("alice")},
		{"distribution point", &RevocationConfig{HTTPClient: follow, CRL: &CRLConfig{DistributionPoints: true}},
			p.issuing.NewClient("dp", mtlstest.WithCRLDistributionPoints(plain.URL+"/dp.crl"))},
		{"AIA responder", &RevocationConfig{HTTPClient: follow, OCSP: &OCSPConfig{}},
			p.issuing.NewClient("aia", mtlstest.WithOCSPServer(plain.URL+"/ocsp"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			m, err := New(Config{RootCAs: p.root.Pool(), Now: p.clock.Now, Revocation: tt.rc,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			require.NoError(t, err)
			t.Cleanup(func() { _ = m.Close() })
			if m.revoc.crl != nil {
				for _, src := range m.revoc.crl.configured {
					awaitLoad(src)
				}
			}
			_, err = revAuthn(m, tt.leaf)
			requireRevRefused(t, err, ErrRevocationUnavailable)
			var e *Error
			require.ErrorAs(t, err, &e)
			texts := map[string]string{"log": logs.String(), "error": err.Error(), "cause": fmt.Sprint(e.Err),
				"CRLStatus": fmt.Sprintf("%+v", m.CRLStatus())}
			requireNoURLSecret(t, texts)
			assert.Contains(t, texts["log"]+texts["cause"], "invalid redirect", "the class of the failure stays")
		})
	}
	t.Run("deny list URL", func(t *testing.T) {
		_, err := New(Config{RootCAs: p.root.Pool(), Now: p.clock.Now,
			Revocation: &RevocationConfig{HTTPClient: tlsSrv.Client(), DenyListURL: tlsSrv.URL + "/deny.txt"}})
		require.Error(t, err)
		requireNoURLSecret(t, map[string]string{"error": err.Error()})
		assert.Contains(t, err.Error(), "invalid redirect")
	})
}

// TestRevocationUnparsableCertificateURLs: a distribution point or AIA responder that does not
// parse is reported by a fixed text, never the parser's error, which quotes part of it.
func TestRevocationUnparsableCertificateURLs(t *testing.T) {
	p := newRevPKI()
	const bad = "http://crl:pa55word/x@127.0.0.1/a"
	tests := []struct {
		name string
		rc   *RevocationConfig
		leaf *mtlstest.Leaf
	}{
		{"distribution point", &RevocationConfig{CRL: &CRLConfig{DistributionPoints: true}},
			p.issuing.NewClient("dp", mtlstest.WithCRLDistributionPoints(bad+".crl"))},
		{"AIA responder", &RevocationConfig{OCSP: &OCSPConfig{}},
			p.issuing.NewClient("aia", mtlstest.WithOCSPServer(bad+"/ocsp"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			m, err := New(Config{RootCAs: p.root.Pool(), Now: p.clock.Now, Revocation: tt.rc,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			require.NoError(t, err)
			t.Cleanup(func() { _ = m.Close() })
			_, err = revAuthn(m, tt.leaf)
			requireRevRefused(t, err, ErrRevocationUnavailable)
			var e *Error
			require.ErrorAs(t, err, &e)
			texts := map[string]string{"log": logs.String(), "cause": fmt.Sprint(e.Err),
				"CRLStatus": fmt.Sprintf("%+v", m.CRLStatus())}
			requireNoURLSecret(t, texts)
			assert.Contains(t, texts["cause"], "does not parse")
		})
	}
}
