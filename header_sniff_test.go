package mtls

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/certgate/mtls/internal/certheader"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFormatMismatch: a proxy's value in another format than the configured one is refused as
// malformed, with a detail (for the log, never the client) that names the format it looks like.
func TestFormatMismatch(t *testing.T) {
	const (
		urlPEM    = `the value of X-Ssl-Client-Cert looks like URL-escaped PEM, as nginx's $ssl_client_escaped_cert and AWS ALB send it (format "nginx", "aws-alb" or "url-pem")`
		base64DER = `the value of X-Ssl-Client-Cert looks like base64 DER, as HAProxy's %[ssl_c_der,base64] and Caddy send it (format "haproxy", "caddy", "traefik" or "base64-der")`
		pemLook   = `the value of X-Ssl-Client-Cert looks like PEM text, as nginx's $ssl_client_cert and Apache's SSL_CLIENT_CERT are (format "nginx", "apache" or "pem")`
	)
	for _, n := range HeaderFormatNames() {
		require.NotEmpty(t, presetEncodings[n], "%s: the encodings every preset reads are known", n)
	}
	p := newPKI(t)
	tests := []struct {
		name    string
		proxy   string // a capture's proxy, or "" for value
		capture string
		value   string
		format  string
		want    string // "": the detail is the format's name alone
	}{
		{name: "nginx escaped to haproxy", proxy: "nginx", capture: "leaf", format: "haproxy", want: urlPEM},
		{name: "nginx escaped to caddy", proxy: "nginx", capture: "leaf", format: "caddy", want: urlPEM},
		{name: "nginx escaped to rfc9440", proxy: "nginx", capture: "leaf", format: "rfc9440", want: urlPEM},
		{name: "nginx escaped to pem", proxy: "nginx", capture: "leaf", format: "pem", want: urlPEM},
		{name: "haproxy to nginx", proxy: "haproxy", capture: "leaf", format: "nginx", want: base64DER},
		{name: "haproxy to apache", proxy: "haproxy", capture: "leaf", format: "apache", want: base64DER},
		{name: "caddy to aws-alb", proxy: "caddy", capture: "leaf", format: "aws-alb", want: base64DER},
		{name: "haproxy to envoy-xfcc", proxy: "haproxy", capture: "leaf", format: "envoy-xfcc", want: base64DER},
		{name: "apache to haproxy", proxy: "apache", capture: "leaf", format: "haproxy", want: pemLook},
		{name: "rfc9440 to haproxy", value: ":" + b64(p.alice.Certificate) + ":", format: "haproxy",
			want: `looks like an RFC 9440 byte sequence (format "rfc9440"), but the configured format is "haproxy"`},
		{name: "xfcc to nginx", value: `Hash=abc;Cert="` + envoyEscape(pemText(p.alice.Certificate)) + `"`, format: "nginx",
			want: `looks like Envoy's X-Forwarded-Client-Cert (format "envoy-xfcc"), but the configured format is "nginx"`},
		{name: "broken base64 to haproxy", value: "MIIEMTCCAxmgAwIB!!", format: "haproxy"},
		{name: "garbage to nginx", value: "SPOOFED", format: "nginx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(Config{RootCAs: readPEMFile(t, "root-ca.crt"), Now: func() time.Time { return captureNow },
				Header: &HeaderConfig{Format: MustHeaderFormat(tt.format), Names: []string{"X-SSL-Client-Cert"},
					TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
			require.NoError(t, err)
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = captureRemote
			if tt.proxy != "" {
				r, err = captureRequest(t, tt.proxy, tt.capture)
				require.NoError(t, err)
			} else {
				r.Header.Set("X-SSL-Client-Cert", tt.value)
			}
			_, err = m.Authenticate(r)
			require.ErrorIs(t, err, ErrMalformedHeader)
			var e *Error
			require.ErrorAs(t, err, &e)
			if tt.want == "" {
				assert.Equal(t, tt.format, e.Detail)
				return
			}
			assert.Contains(t, e.Detail, tt.want)
			assert.True(t, strings.HasSuffix(e.Detail, `, but the configured format is "`+tt.format+`"`), e.Detail)
			w := httptest.NewRecorder()
			m.Handler(echoIdentity).ServeHTTP(w, r)
			assert.Equal(t, http.StatusBadRequest, w.Code)
			assert.NotContains(t, w.Body.String(), "looks like", "the client gets the reason code only")
		})
	}
}

// TestFormatMismatchCustomFormat: a format of the caller's own, whatever its name, gets no
// guess: what it reads is not known.
func TestFormatMismatchCustomFormat(t *testing.T) {
	custom := haproxyOfOurOwn{Format: MustHeaderFormat("haproxy")}
	assert.Empty(t, formatMismatch(custom, []string{"X-Ssl-Client-Cert"}, []string{"-----BEGIN%20CERTIFICATE-----%0AMIIE"}))
	assert.NotEmpty(t, formatMismatch(WithCompanions(MustHeaderFormat("haproxy"), "X-Client-Verify"),
		[]string{"X-Ssl-Client-Cert"}, []string{"-----BEGIN%20CERTIFICATE-----%0AMIIE"}), "a preset with companions is the preset")
}

// haproxyOfOurOwn is a Format of its own, named "haproxy", that decodes as the one it holds.
type haproxyOfOurOwn struct{ Format }

// TestSniff: what certheader.Sniff tells apart, by the first bytes of a value only.
func TestSniff(t *testing.T) {
	p := newPKI(t)
	leaf := p.alice.Certificate
	tests := []struct {
		name  string
		value string
		want  certheader.Encoding
	}{
		{"PEM", pemText(leaf), certheader.EncPEMText},
		{"PEM folded", flatPEM(leaf), certheader.EncPEMText},
		{"PEM after spaces", "  \t" + pemText(leaf), certheader.EncPEMText},
		{"URL-escaped PEM", nginxEscape(pemText(leaf)), certheader.EncURLPEM},
		{"URL-escaped PEM, dashes escaped", "%2D%2D%2D%2D%2DBEGIN%20CERTIFICATE%2D%2D%2D%2D%2D%0AMIIE", certheader.EncURLPEM},
		{"URL-escaped PEM, escape cut at the bound", "%2D%2D%2D%2D%2DBEGIN%20CERTIFICATE%2D%2D%2D%2D%2D" + strings.Repeat("A", 13) + "%2", certheader.EncURLPEM},
		{"base64 DER", b64(leaf), certheader.EncBase64DER},
		{"base64 DER list", b64(leaf) + "," + b64(p.issuing.Certificate), certheader.EncBase64DER},
		{"base64 DER, short", "MIIEMTCCAxmgAw==", certheader.EncBase64DER},
		{"RFC 9440", ":" + b64(leaf) + ":", certheader.EncSFBinary},
		{"XFCC", `By=spiffe://x;Hash=ab;Cert="x"`, certheader.EncXFCC},
		{"XFCC, lower case key", `hash=ab`, certheader.EncXFCC},
		{"empty", "", certheader.EncUnknown},
		{"apache null", "(null)", certheader.EncUnknown},
		{"caddy placeholder", "{http.request.tls.client.certificate_der_base64}", certheader.EncUnknown},
		{"too short for base64 DER", "MIIE", certheader.EncUnknown},
		{"plus for space", "-----BEGIN+CERTIFICATE-----", certheader.EncUnknown},
		{"bad escape", "%ZZ", certheader.EncUnknown},
		{"words", "MIGHT BE ANYTHING", certheader.EncUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, certheader.Sniff(tt.value))
			if len(tt.value) >= certheader.SniffPrefix {
				assert.Equal(t, tt.want, certheader.Sniff(tt.value+strings.Repeat("%", 1<<20)), "only a prefix is read")
			}
		})
	}
}

// FuzzFormatMismatch: the guess never panics, reads a bounded prefix, and never claims that a
// preset does not read what it reads.
func FuzzFormatMismatch(f *testing.F) {
	names := HeaderFormatNames()
	f.Fuzz(func(t *testing.T, value string) {
		enc := certheader.Sniff(value)
		if enc != certheader.Sniff(value[:min(len(value), certheader.SniffPrefix)]) {
			t.Fatalf("Sniff read past its prefix: %q", value)
		}
		for _, n := range names {
			format := MustHeaderFormat(n)
			got := formatMismatch(format, format.HeaderNames(), []string{value})
			if got == "" {
				continue
			}
			if enc == certheader.EncUnknown || !strings.HasPrefix(got, "the value of ") ||
				!strings.HasSuffix(got, `, but the configured format is "`+n+`"`) {
				t.Fatalf("%s: %q: %s", n, value, got)
			}
			for _, reads := range presetEncodings[n] {
				if reads == enc {
					t.Fatalf("%s reads %v, yet: %s", n, enc, got)
				}
			}
		}
	})
}
