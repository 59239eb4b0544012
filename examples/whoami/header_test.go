package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWhoamiHeaderMode runs whoami behind a "proxy" on 127.0.0.1 (the test itself) in header mode:
// plain HTTP, the certificate in the header, "source" is "header".
func TestWhoamiHeaderMode(t *testing.T) {
	f := newFixture(t)
	alice := f.issuing.NewClient("alice")
	b64 := func(der []byte) string { return base64.StdEncoding.EncodeToString(der) }
	tests := []struct {
		name    string
		args    []string
		headers map[string]string
		status  int
		source  string
	}{
		{"haproxy preset", []string{"-header", "haproxy", "-trusted-proxies", "127.0.0.1/32"},
			map[string]string{"X-SSL-Client-Cert": b64(alice.Certificate.Raw), "X-SSL-Client-Chain": b64(f.issuing.Certificate.Raw)}, 200, "header"},
		{"renamed header", []string{"-header", "base64-der", "-header-name", "X-Client-Der", "-trusted-proxies", "10.0.0.0/8, 127.0.0.1", "-intermediates", f.interFile},
			map[string]string{"X-Client-Der": b64(alice.Certificate.Raw)}, 200, "header"},
		{"untrusted proxy", []string{"-header", "haproxy", "-trusted-proxies", "10.0.0.0/8"},
			map[string]string{"X-SSL-Client-Cert": b64(alice.Certificate.Raw), "X-SSL-Client-Chain": b64(f.issuing.Certificate.Raw)}, 401, ""},
		{"garbage from the trusted proxy", []string{"-header", "haproxy", "-trusted-proxies", "127.0.0.1/32"},
			map[string]string{"X-SSL-Client-Cert": "SPOOFED"}, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := start(t, append([]string{"-client-ca", f.clientCAFile}, tt.args...)...)
			req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
			require.NoError(t, err)
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
			require.NoError(t, err)
			defer res.Body.Close()
			body, err := io.ReadAll(res.Body)
			require.NoError(t, err)
			require.Equal(t, tt.status, res.StatusCode, "%s", body)
			if tt.source != "" {
				var got map[string]any
				require.NoError(t, json.Unmarshal(body, &got))
				assert.Equal(t, tt.source, got["source"])
				assert.Equal(t, true, got["authenticated"])
				assert.Contains(t, got["subject"], "alice")
				assert.Equal(t, "127.0.0.1", got["proxy"])
				assert.Contains(t, []any{"haproxy", "base64-der"}, got["format"])
			}
		})
	}
}

func TestWhoamiHeaderFlagErrors(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown format", []string{"-header", "nope", "-trusted-proxies", "127.0.0.1/32"}, "unknown header format"},
		{"no trusted proxies", []string{"-header", "nginx"}, "-header needs -trusted-proxies"},
		{"bad prefix", []string{"-header", "nginx", "-trusted-proxies", "10.0.0.0/33"}, "not a CIDR prefix"},
		{"proxies without header", []string{"-trusted-proxies", "127.0.0.1/32", "-tls-cert", f.serverCert, "-tls-key", f.serverKey}, "need -header"},
		{"everyone trusted", []string{"-header", "nginx", "-trusted-proxies", "0.0.0.0/0"}, "every peer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr strings.Builder
			code := run(t.Context(), append([]string{"-listen", "127.0.0.1:0", "-client-ca", f.clientCAFile}, tt.args...), &stderr, nil)
			assert.NotZero(t, code)
			assert.Contains(t, stderr.String(), tt.want)
		})
	}
}
