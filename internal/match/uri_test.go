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
		{"default port", []string{"https://api.example.com:443/v1"}, Undecided},
		{"empty port", []string{"https://api.example.com:/v1"}, Undecided},
		{"port with a leading zero", []string{"https://api.example.com:0443/v1"}, Undecided},
		{"other port", []string{"https://api.example.com:8443/v1"}, No},
		{"backslash", []string{`https://api.example.com/x/..\v1`}, Undecided},
		{"empty query", []string{"https://api.example.com/v1?"}, Undecided},
		{"escaped letter", []string{"https://api.example.com/%76%31"}, Undecided},
		{"escaped slash, read as a slash", []string{"spiffe://acme.test/ns%2Fprod/x"}, Undecided},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, set.Match(parseURIs(t, tc.uris)))
		})
	}
}

// TestURISetEquivalentSpellings: the spellings of a URI that name the same resource as a listed
// one are undecided, whichever form the pattern takes.
func TestURISetEquivalentSpellings(t *testing.T) {
	var set URISet
	for _, p := range []string{"https://x.example/", "https://[2001:db8::1]/admin", "urn:example:alice"} {
		require.NoError(t, set.Add(p))
	}
	tests := []struct {
		name string
		uris []string
		want Verdict
	}{
		{"empty path", []string{"https://x.example"}, Undecided},
		{"IPv6 host, zeros written", []string{"https://[2001:db8:0::1]/admin"}, Undecided},
		{"IPv6 host, upper case", []string{"https://[2001:DB8::1]/admin"}, Undecided},
		{"URN namespace, upper case", []string{"urn:EXAMPLE:alice"}, Undecided},
		{"URN, other name", []string{"urn:EXAMPLE:bob"}, No},
		{"IPv6, other host", []string{"https://[2001:db8::2]/admin"}, No},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, set.Match(parseURIs(t, tc.uris)))
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
		{"https://Partner.Example/p", "", false, `write "https://partner.example/p"`},
		{"https://partner.example./p", "", false, `write "https://partner.example/p"`},
		{"https://ops@partner.example/p", "", false, `write "https://partner.example/p"`},
		{"https://partner.example/a/./p", "", false, `write "https://partner.example/a/p"`},
		{"https://partner.example/a/../p", "", false, `write "https://partner.example/p"`},
		{"https://partner.example/a//p", "", false, `write "https://partner.example/a/p"`},
		{"https://partner.example/%65vil", "", false, `write "https://partner.example/evil"`},
		{"https://partner.example/a%2fb", "", false, `write "https://partner.example/a%2Fb"`},
		{"https://partner.example:443/p", "", false, `write "https://partner.example/p"`},
		{"https://partner.example:/p", "", false, `write "https://partner.example/p"`},
		{"https://partner.example:0443/p", "", false, `write "https://partner.example/p"`},
		{"https://partner.example", "", false, `write "https://partner.example/"`},
		{"https://[2001:db8:0::1]/p", "", false, `write "https://[2001:db8::1]/p"`},
		{"https://h/p?", "", false, `write "https://h/p"`},
		{"https://h/p#f", "", false, `write "https://h/p"`},
		{"urn:EXAMPLE:alice", "", false, `write "urn:example:alice"`},
		{"https://h/a/.*", "https://h/a/.", true, ""},
		{"https://partner.example:8443/p", "https://partner.example:8443/p", false, ""},
		{"https://h/a%2Fb", "https://h/a%2Fb", false, ""},
		{"https://h/a/.x*", "https://h/a/.x", true, ""},
		{"spiffe://acme.test", "spiffe://acme.test", false, ""},
		{"urn:example:ALICE", "urn:example:ALICE", false, ""},
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

// parseURIs parses the URIs a table row gives.
func parseURIs(t *testing.T, raws []string) []*url.URL {
	t.Helper()
	var us []*url.URL
	for _, raw := range raws {
		u, err := url.Parse(raw)
		require.NoError(t, err)
		us = append(us, u)
	}
	return us
}
