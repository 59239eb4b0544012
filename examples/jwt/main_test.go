package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func x5tS256(l *mtlstest.Leaf) string {
	sum := sha256.Sum256(l.Certificate.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestBoundTokens(t *testing.T) {
	clientCA := mtlstest.NewRootCA("Client CA")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	m, h, err := Handler(clientCA, &key.PublicKey)
	require.NoError(t, err)
	srv := serve(m, h)
	t.Cleanup(srv.Close)

	alice, mallory := clientCA.NewClient("alice"), clientCA.NewClient("mallory")
	now := time.Now()
	issue := func(k *ecdsa.PrivateKey, x5t string, at time.Time) string {
		tok, err := Issue(k, "alice", x5t, at)
		require.NoError(t, err)
		return tok
	}
	bound := issue(key, x5tS256(alice), now)

	tests := []struct {
		name   string
		cert   *mtlstest.Leaf
		token  string
		status int
		body   string
	}{
		{"bound to the client's certificate", alice, bound, 200, "hello alice (certificate alice)"},
		{"bound to another certificate: a stolen token", mallory, bound, 401, "credentials_required"},
		{"no certificate", nil, bound, 401, "certificate_required"},
		{"unbound token", alice, issue(key, "", now), 401, "credentials_required"},
		{"binding in the standard alphabet", alice, issue(key, base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{0xfb, 0xff}, 16)), now), 401, "credentials_required"},
		{"signed by another key", alice, issue(otherKey, x5tS256(alice), now), 401, "credentials_required"},
		{"expired", alice, issue(key, x5tS256(alice), now.Add(-time.Hour)), 401, "credentials_required"},
		{"no token", alice, "", 401, "credentials_required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body, err := call(srv, tt.cert, tt.token)
			require.NoError(t, err)
			assert.Equal(t, tt.status, res.StatusCode)
			assert.Contains(t, body, tt.body)
			if tt.body == "credentials_required" {
				assert.Equal(t, `Bearer error="invalid_token"`, res.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(&out))
	for _, want := range []string{
		"alice, her bound token         200 hello alice (certificate alice)",
		`mallory, alice's stolen token  401 {"type":"about:blank","title":"Unauthorized","status":401,"reason":"credentials_required"}`,
		`no certificate, alice's token  401 {"type":"about:blank","title":"Unauthorized","status":401,"reason":"certificate_required"}`,
		`alice, an unbound token        401 {"type":"about:blank","title":"Unauthorized","status":401,"reason":"credentials_required"}`,
	} {
		assert.Contains(t, out.String(), want)
	}
}
