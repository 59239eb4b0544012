package mtls

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// companionsOf returns the companion headers of a format, or nil.
func companionsOf(f Format) []string {
	if c, ok := f.(interface{ CompanionHeaders() []string }); ok {
		return c.CompanionHeaders()
	}
	return nil
}

// TestPresetCompanionHeaders: every preset names its companions, canonical, apart from its
// certificate headers, in a slice of the caller's own.
func TestPresetCompanionHeaders(t *testing.T) {
	// What the proxies' documentation (and the captured requests) show beside the certificate.
	want := map[string][]string{
		"nginx":          {"X-Ssl-Client-Verify", "X-Ssl-Client-S-Dn", "X-Ssl-Client-I-Dn", "X-Ssl-Client-Serial", "X-Ssl-Client-Fingerprint", "X-Ssl-Client-V-Start", "X-Ssl-Client-V-End", "X-Ssl-Client-V-Remain"},
		"haproxy":        {"X-Ssl-Client-Verify", "X-Ssl-Client-Used", "X-Ssl-Client-S-Dn", "X-Ssl-Client-Sha1", "X-Ssl-Client-Notbefore", "X-Ssl-Client-Notafter", "X-Ssl-Client-Err", "X-Ssl-Client-Ca-Err"},
		"apache":         {"X-Ssl-Client-Verify", "X-Ssl-Client-M-Serial", "X-Ssl-Client-V-Start", "X-Ssl-Client-V-End"},
		"caddy":          {"X-Ssl-Client-Verify", "X-Ssl-Client-Fingerprint"},
		"aws-alb":        {"X-Amzn-Mtls-Clientcert-Leaf", "X-Amzn-Mtls-Clientcert-Subject", "X-Amzn-Mtls-Clientcert-Issuer", "X-Amzn-Mtls-Clientcert-Serial-Number", "X-Amzn-Mtls-Clientcert-Validity"},
		"aws-alb-verify": {"X-Amzn-Mtls-Clientcert", "X-Amzn-Mtls-Clientcert-Subject", "X-Amzn-Mtls-Clientcert-Issuer", "X-Amzn-Mtls-Clientcert-Serial-Number", "X-Amzn-Mtls-Clientcert-Validity"},
		"traefik":        {"X-Forwarded-Tls-Client-Cert-Info"},
		"cloudflare":     {"Cf-Client-Cert-Sha256", "Cf-Cert-Verified", "Cf-Cert-Revoked", "Cf-Cert-Presented", "Cf-Cert-Subject-Dn", "Client-Cert", "Client-Cert-Chain"},
		"rfc9440":        {"X-Client-Cert-Present", "X-Client-Cert-Chain-Verified", "X-Client-Cert-Error", "Cloudfront-Viewer-Cert-Present", "Cf-Cert-Verified"},
		"pem":            {"X-Client-Cert-Present", "X-Client-Cert-Chain-Verified", "X-Client-Cert-Fingerprint"},
	}
	for _, name := range HeaderFormatNames() {
		t.Run(name, func(t *testing.T) {
			f := MustHeaderFormat(name)
			c, ok := f.(interface{ CompanionHeaders() []string })
			require.True(t, ok, "every preset names its companions")
			got := c.CompanionHeaders()
			for _, n := range got {
				assert.Equal(t, http.CanonicalHeaderKey(n), n, "canonical")
				assert.NotContains(t, f.HeaderNames(), n, "a certificate header is not its own companion")
			}
			assert.Len(t, got, len(slices.Compact(slices.Sorted(slices.Values(got)))), "no name twice")
			for _, n := range want[name] {
				assert.Contains(t, got, n)
			}
			if len(got) > 0 {
				got[0] = "Changed"
				assert.NotEqual(t, "Changed", c.CompanionHeaders()[0], "a fresh slice on each call")
			}
		})
	}
}

// TestHeaderCompanionsStripped: the headers a proxy sets beside the certificate (the verification
// result, subject, serial, fingerprint) are removed, under any spelling, from the requests of any
// peer that is not a trusted proxy; a handler that follows the proxy's documentation and reads
// them cannot be fooled by a client going around the proxy.
func TestHeaderCompanionsStripped(t *testing.T) {
	f := newHeaderFixture(t)
	for _, format := range HeaderFormatNames() {
		t.Run(format, func(t *testing.T) {
			fm := MustHeaderFormat(format)
			family := append(fm.HeaderNames(), companionsOf(fm)...)
			family = append(family, "X-Client-Verify") // added by the configuration
			m := f.middleware(t, true, func(hc *HeaderConfig) {
				hc.Format = fm
				hc.CompanionHeaders = []string{"x-client-verify"}
			})
			for _, tt := range []struct {
				name string
				tls  bool
			}{{"untrusted peer without certificate", false}, {"untrusted peer with TLS certificate", true}} {
				t.Run(tt.name, func(t *testing.T) {
					r := httptest.NewRequest(http.MethodGet, "/", nil)
					if tt.tls {
						r = mtlstest.NewRequest(http.MethodGet, "/", f.p.alice.Chain()...)
					}
					r.RemoteAddr = "192.0.2.1:1"
					for i, n := range family {
						switch i % 3 { // every spelling a consumer may read as the header
						case 0:
							r.Header[n] = []string{"SUCCESS"}
						case 1:
							r.Header[strings.ToLower(n)] = []string{"SUCCESS"}
						case 2:
							r.Header[strings.ReplaceAll(n, "-", "_")] = []string{"SUCCESS"}
						}
					}
					r.Header.Set("X-Request-Id", "kept")
					var s seen
					m.Handler(s.handler()).ServeHTTP(httptest.NewRecorder(), r)
					require.True(t, s.called)
					assert.Equal(t, http.Header{"X-Request-Id": {"kept"}}, s.header)
					assert.Len(t, r.Header, len(family)+1, "the caller's request is not modified")
				})
			}
		})
	}
}

// TestHeaderCompanionsFromCaptures replays what nginx, HAProxy, Apache and Caddy really sent
// (the client also sent X-SSL-Client-Verify: SUCCESS of its own): from the proxy, its companions
// pass as it set them; the same bytes from any other peer reach the handler without them.
func TestHeaderCompanionsFromCaptures(t *testing.T) {
	for _, tt := range []struct {
		proxy, format string
		companions    []string // set by the proxy in the capture, in the preset's family
		extra         []string // set by the capture's configuration under names of its own
	}{
		{"nginx", "nginx", []string{"X-Ssl-Client-Verify", "X-Ssl-Client-S-Dn", "X-Ssl-Client-I-Dn", "X-Ssl-Client-Serial",
			"X-Ssl-Client-Fingerprint", "X-Ssl-Client-V-Start", "X-Ssl-Client-V-End", "X-Ssl-Client-V-Remain"},
			[]string{"X-SSL-Client-Cert-Legacy", "X-SSL-Client-S-DN-Legacy"}},
		{"haproxy", "haproxy", []string{"X-Ssl-Client-Verify", "X-Ssl-Client-Used", "X-Ssl-Client-S-Dn", "X-Ssl-Client-I-Dn",
			"X-Ssl-Client-Serial", "X-Ssl-Client-Sha1", "X-Ssl-Client-Notbefore", "X-Ssl-Client-Notafter"},
			[]string{"X-SSL-Client-S-DN-2253"}},
		{"apache", "apache", []string{"X-Ssl-Client-Verify", "X-Ssl-Client-S-Dn", "X-Ssl-Client-I-Dn", "X-Ssl-Client-M-Serial",
			"X-Ssl-Client-V-Start", "X-Ssl-Client-V-End"},
			[]string{"X-SSL-Client-Cert-Escaped", "X-SSL-Client-SAN-DNS-0"}},
		{"caddy", "caddy", []string{"X-Ssl-Client-Verify"}, // not set by this Caddy: the client's own
			[]string{"X-Client-Fingerprint", "X-Client-Subject", "X-Client-Serial"}},
	} {
		t.Run(tt.proxy, func(t *testing.T) {
			m, err := New(Config{
				RootCAs:       readPEMFile(t, "root-ca.crt"),
				Intermediates: readPEMFile(t, "intermediate-ca.crt"),
				Now:           func() time.Time { return captureNow },
				Optional:      true,
				Header: &HeaderConfig{
					Format:           MustHeaderFormat(tt.format),
					TrustedProxies:   []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
					CompanionHeaders: tt.extra,
				},
			})
			require.NoError(t, err)
			t.Run("from the proxy", func(t *testing.T) {
				r, err := captureRequest(t, tt.proxy, "spoof-with-cert")
				require.NoError(t, err)
				var s seen
				m.Handler(s.handler()).ServeHTTP(httptest.NewRecorder(), r)
				require.True(t, s.called)
				require.NotNil(t, s.id)
				assert.Equal(t, SourceHeader, s.id.Source)
				for _, n := range append(tt.companions, tt.extra...) {
					assert.Equal(t, r.Header.Values(n), s.header.Values(n), "%s passes as the proxy set it", n)
					assert.NotEmpty(t, s.header.Values(n), n)
				}
			})
			t.Run("from another peer", func(t *testing.T) {
				r, err := captureRequest(t, tt.proxy, "spoof-with-cert")
				require.NoError(t, err)
				r.RemoteAddr = "192.0.2.1:50000"
				var s seen
				m.Handler(s.handler()).ServeHTTP(httptest.NewRecorder(), r)
				require.True(t, s.called)
				assert.Nil(t, s.id)
				for _, n := range append(append(tt.companions, tt.extra...), "X-Ssl-Client-Cert") {
					assert.NotContains(t, s.header, http.CanonicalHeaderKey(n))
				}
				assert.Equal(t, r.Header.Get("X-Unset-Cert"), s.header.Get("X-Unset-Cert"), "headers of no family pass")
			})
		})
	}
}

// TestHeaderCompanionSpellingFromTrustedProxy: from a trusted proxy a companion passes as the proxy
// set it; one spelled otherwise (which a CGI-style consumer reads as the same header) is refused,
// as a certificate header would be.
func TestHeaderCompanionSpellingFromTrustedProxy(t *testing.T) {
	f := newHeaderFixture(t)
	m := f.middleware(t, false, func(hc *HeaderConfig) { hc.CompanionHeaders = []string{"X-Client-Verify"} })
	for _, tt := range []struct {
		name   string
		key    string
		status int
	}{
		{"preset companion, canonical", "X-Ssl-Client-Verify", http.StatusOK},
		{"preset companion, underscores", "X_SSL_Client_Verify", http.StatusBadRequest},
		{"configured companion, canonical", "X-Client-Verify", http.StatusOK},
		{"configured companion, underscores", "X_Client_Verify", http.StatusBadRequest},
		{"configured companion, lower case", "x-client-verify", http.StatusBadRequest},
		{"preset companion, dots", "X.Ssl.Client.Verify", http.StatusBadRequest},
		{"configured companion, tildes", "X~Client~Verify", http.StatusBadRequest},
		{"configured companion, a dot and a plus", "X.Client+Verify", http.StatusBadRequest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := f.proxy.NewRequest(http.MethodGet, "/", f.p.alice.Certificate)
			r.Header[tt.key] = []string{"SUCCESS"}
			var s seen
			w := httptest.NewRecorder()
			m.Handler(s.handler()).ServeHTTP(w, r)
			require.Equal(t, tt.status, w.Code, w.Body.String())
			if tt.status == http.StatusOK {
				assert.Equal(t, []string{"SUCCESS"}, s.header[tt.key])
				return
			}
			assert.Contains(t, w.Body.String(), `"reason":"`+ReasonMalformedHeader+`"`)
		})
	}
}

// companionFormat is a custom format that names a companion of its own.
type companionFormat struct{ customFormat }

func (companionFormat) CompanionHeaders() []string { return []string{"X-Hex-Cert-Verify"} }

func TestHeaderCustomFormatCompanions(t *testing.T) {
	f := newHeaderFixture(t)
	m := f.middleware(t, true, func(hc *HeaderConfig) { hc.Format = companionFormat{} })
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "192.0.2.1:1"
	r.Header.Set("X-Hex-Cert-Verify", "SUCCESS")
	var s seen
	m.Handler(s.handler()).ServeHTTP(httptest.NewRecorder(), r)
	require.True(t, s.called)
	assert.Empty(t, s.header)
}

func TestHeaderCompanionConfigErrors(t *testing.T) {
	p := newPKI(t)
	lan := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	many := make([]string, 65)
	for i := range many {
		many[i] = "X-Companion-" + strings.Repeat("a", i+1)
	}
	for _, tt := range []struct {
		name       string
		companions []string
		want       string
	}{
		{"invalid name", []string{"X Verify"}, "Header.CompanionHeaders: invalid header name"},
		{"given twice", []string{"X-Verify", "x_verify"}, "Header.CompanionHeaders: header name \"x_verify\" given twice"},
		{"too many", many, "Header.CompanionHeaders: 65 names, at most 64"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{RootCAs: p.root.Pool(), Header: &HeaderConfig{
				Format: MustHeaderFormat("nginx"), TrustedProxies: lan, CompanionHeaders: tt.companions}})
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, "Header.CompanionHeaders", ce.Field)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

// TestForwardDeletesCompanions: Forward deletes the companions of its formats too, so that the
// next hop cannot read a client's own Cf-Cert-Verified or X-Client-Cert-Chain-Verified.
func TestForwardDeletesCompanions(t *testing.T) {
	h := http.Header{
		"Cf-Cert-Verified":              {"true"},
		"x-client-cert-chain-verified":  {"true"},
		"Cloudfront_Viewer_Cert_Sha256": {"00"},
		"X-Request-Id":                  {"kept"},
	}
	require.NoError(t, forwardHeader(h, nil, MustHeaderFormat("rfc9440")))
	assert.Equal(t, http.Header{"X-Request-Id": {"kept"}}, h)
}
