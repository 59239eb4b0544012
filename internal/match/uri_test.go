package match

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAppendURIMatchesString(t *testing.T) {
	for _, raw := range []string{
		"spiffe://acme.test/ns/prod/sa/alice", "https://h:8443/p?q=1&r", "https://h/p?", "urn:acme:x",
		"https://[2001:db8::1]:443/x", "https://h/a%20b", "https://u@h/", "https://h/#f", "https://h", "mailto:a@b",
		"https://h/a;b=c,d@e$f+g", "https://h/~x_y-z.z",
	} {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		var buf [512]byte
		if b, ok := appendURI(buf[:0], u); ok {
			assert.Equal(t, u.String(), string(b), raw)
		}
	}
}

func TestURISet(t *testing.T) {
	var set URISet
	for _, p := range []string{"https://api.example.com/v1", "spiffe://acme.test/ns/prod/*"} {
		require.NoError(t, set.Add(p))
	}
	tests := []struct {
		name string
		uris []string
		want Verdict
	}{
		{"exact", []string{"https://api.example.com/v1"}, Yes},
		{"prefix", []string{"spiffe://acme.test/ns/prod/sa/alice"}, Yes},
		{"second SAN", []string{"urn:x", "https://api.example.com/v1"}, Yes},
		{"other", []string{"https://api.example.com/v2"}, No},
		{"none", nil, No},
		{"dot segment, as written under a prefix", []string{"spiffe://acme.test/ns/prod/../admin"}, Undecided},
		{"dot segment elsewhere", []string{"spiffe://acme.test/ns/x/../y"}, No},
		{"dot segment naming a listed prefix", []string{"spiffe://acme.test/ns/x/../prod/sa"}, Undecided},
		{"upper-case host", []string{"https://API.example.com/v1"}, Undecided},
		{"user info", []string{"https://u@api.example.com/v1"}, Undecided},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var us []*url.URL
			for _, raw := range tc.uris {
				u, err := url.Parse(raw)
				require.NoError(t, err)
				us = append(us, u)
			}
			assert.Equal(t, tc.want, set.Match(us))
		})
	}
}

func TestParseURIPattern(t *testing.T) {
	tests := []struct {
		pattern, base string
		prefix        bool
		err           string
	}{
		{"https://h/p", "https://h/p", false, ""},
		{"https://h/p/*", "https://h/p/", true, ""},
		{"urn:acme:*", "urn:acme:", true, ""},
		{"https://api.example*", "", false, "'*' must follow the '/' after the host"},
		{"https://h/*/x", "", false, "'*' is only allowed at the end"},
		{"urn:*", "", false, "'*' must follow at least one character after the scheme"},
		{"/relative", "", false, "not an absolute URI"},
		{"HTTPS://h/", "", false, "not in canonical form"},
		{"https://h/a b", "", false, "not a printable ASCII URI"},
	}
	for _, tc := range tests {
		t.Run(tc.pattern, func(t *testing.T) {
			base, prefix, err := ParseURIPattern(tc.pattern)
			if tc.err != "" {
				assert.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.base, base)
			assert.Equal(t, tc.prefix, prefix)
		})
	}
}
