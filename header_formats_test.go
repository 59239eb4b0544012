package mtls

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The codecs are tested in internal/certheader; here, that each preset is wired to its codec
// and headers, and that a codec's error is reported as ErrMalformedHeader.

func TestHeaderFormatLookup(t *testing.T) {
	names := HeaderFormatNames()
	for _, want := range []string{"rfc9440", "aws-alb", "aws-alb-verify", "nginx", "envoy-xfcc", "traefik", "haproxy",
		"apache", "caddy", "azure-app-service", "cloudflare", "wso2", "pem", "url-pem", "base64-der"} {
		assert.Contains(t, names, want)
	}
	for _, n := range names {
		f, err := HeaderFormat(n)
		require.NoError(t, err)
		assert.Equal(t, n, f.Name())
		for _, h := range f.HeaderNames() {
			assert.Equal(t, http.CanonicalHeaderKey(h), h, "%s: header names are canonical", n)
		}
	}
	_, err := HeaderFormat("nope")
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "mtls: "))
	assert.Panics(t, func() { MustHeaderFormat("nope") })
}

func TestHeaderFormatsDecode(t *testing.T) {
	p := newPKI(t)
	leaf, inter := p.alice.Certificate, p.issuing.Certificate
	tests := []struct {
		format string
		good   []string // decodes to leaf, then inter when the format reads a chain header
		chain  bool
	}{
		{"rfc9440", []string{":" + b64(leaf) + ":", ":" + b64(inter) + ":"}, true},
		{"aws-alb", []string{nginxEscape(pemText(leaf, inter))}, true},
		{"aws-alb-verify", []string{nginxEscape(pemText(leaf))}, false},
		{"nginx", []string{nginxEscape(pemText(leaf))}, false},
		{"envoy-xfcc", []string{`Chain="` + envoyEscape(pemText(leaf, inter)) + `"`}, true},
		{"traefik", []string{b64(leaf) + "," + b64(inter)}, true},
		{"haproxy", []string{b64(leaf), b64(inter)}, true},
		{"apache", []string{flatPEM(leaf), flatPEM(inter)}, true},
		{"caddy", []string{b64(leaf)}, false},
		{"azure-app-service", []string{b64(leaf)}, false},
		{"cloudflare", []string{b64(leaf)}, false},
		{"wso2", []string{flatPEM(leaf, inter)}, true},
		{"pem", []string{flatPEM(leaf), flatPEM(inter)}, true},
		{"url-pem", []string{nginxEscape(pemText(leaf)), nginxEscape(pemText(inter))}, true},
		{"base64-der", []string{b64(leaf), b64(inter)}, true},
	}
	require.Len(t, tests, len(HeaderFormatNames()), "every preset is tested")
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			f := MustHeaderFormat(tt.format)
			values := make([]string, len(f.HeaderNames()))
			copy(values, tt.good)
			got, err := f.Decode(values)
			require.NoError(t, err)
			want := ders(leaf)
			if tt.chain {
				want = ders(leaf, inter)
			}
			assert.Equal(t, want, got)

			got, err = f.Decode([]string{"SPOOFED"})
			assert.Nil(t, got)
			require.ErrorIs(t, err, ErrMalformedHeader)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, ErrMalformedHeader, e.Kind)
			assert.Equal(t, tt.format, e.Detail)
			require.Error(t, e.Err, "the codec's error is the cause")
			assert.False(t, errors.Is(e.Err, ErrMalformedHeader))
			assert.Equal(t, "mtls: malformed certificate header: "+tt.format+": "+e.Err.Error(), err.Error())
		})
	}
}

func TestHeaderFormatsEncodeEmpty(t *testing.T) {
	for _, name := range []string{"rfc9440", "envoy-xfcc"} {
		t.Run(name, func(t *testing.T) {
			e, ok := MustHeaderFormat(name).(Encoder)
			require.True(t, ok)
			_, err := e.Encode(nil)
			require.Error(t, err)
		})
	}
}

func TestHeaderCanonicalNames(t *testing.T) {
	tests := []struct {
		name  string
		names []string
		want  []string
		err   string
	}{
		{"canonical", []string{"x-client-cert", "X-CLIENT-CERT-CHAIN"}, []string{"X-Client-Cert", "X-Client-Cert-Chain"}, ""},
		{"underscores kept", []string{"X_SSL_Client_Cert"}, []string{"X_ssl_client_cert"}, ""},
		{"empty", []string{""}, nil, "invalid header name"},
		{"space", []string{"X Cert"}, nil, "invalid header name"},
		{"colon", []string{"X-Cert:"}, nil, "invalid header name"},
		{"twice in another case", []string{"x-cert", "X-Cert"}, nil, "given twice"},
		{"twice with an underscore", []string{"X-Client-Cert", "x_client_cert"}, nil, "given twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := canonicalNames(tt.names)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
