package main

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"net/http"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWhoamiPolicy(t *testing.T) {
	f := newFixture(t)
	policy := f.write("policy.json", []byte(`{"all": [
		{"issuer": {"cn": ["Client Issuing CA"]}},
		{"subject": {"ou": ["payments"]}}
	]}`))
	addr := start(t, "-tls-cert", f.serverCert, "-tls-key", f.serverKey, "-client-ca", f.clientCAFile, "-policy", policy)

	payments := f.issuing.NewClient("alice", mtlstest.WithSubject(pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"payments"}}))
	res, body := get(t, f, "https://"+addr+"/", payments, false)
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Contains(t, string(body), `"authenticated": true`)
	assert.NotContains(t, string(body), `"principal"`, "no principal mapping is configured")

	res, body = get(t, f, "https://"+addr+"/", f.issuing.NewClient("bob"), false)
	assert.Equal(t, http.StatusForbidden, res.StatusCode)
	assert.Contains(t, string(body), `"reason":"policy_denied"`)
	assert.NotContains(t, string(body), "payments", "the client never learns the rule")
}

func TestWhoamiInvalidPolicy(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"unknown key", `{"any": [{"cn": ["alice"]}]}`, `$.any[0]: unknown key "cn"`},
		{"empty list", `{"dns": []}`, "$.dns: empty list"},
		{"not JSON", `{"dns": [`, "incomplete JSON document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := f.write("bad.json", []byte(tt.doc))
			var stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			code := run(ctx, []string{"-listen", "127.0.0.1:0", "-tls-cert", f.serverCert, "-tls-key", f.serverKey,
				"-client-ca", f.clientCAFile, "-policy", path}, &stderr, nil)
			assert.NotEqual(t, 0, code)
			assert.Contains(t, stderr.String(), tt.want)
			assert.NotContains(t, stderr.String(), "whoami listening", "nothing is served")
		})
	}
	t.Run("missing file", func(t *testing.T) {
		var stderr bytes.Buffer
		code := run(context.Background(), []string{"-listen", "127.0.0.1:0", "-tls-cert", f.serverCert, "-tls-key", f.serverKey,
			"-client-ca", f.clientCAFile, "-policy", "/nonexistent/policy.json"}, &stderr, nil)
		assert.NotEqual(t, 0, code)
		assert.Contains(t, stderr.String(), "no such file")
	})
}
