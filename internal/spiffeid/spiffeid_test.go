package spiffeid

import (
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{"workload", "spiffe://example.org/ns/prod/sa/alice", true},
		{"trust domain only", "spiffe://example.org", true},
		{"every allowed character", "spiffe://a-b_c.9/A-z_0.9/..x/x..", true},
		{"longest trust domain", "spiffe://" + strings.Repeat("a", 255), true},
		{"longest id", "spiffe://td/" + strings.Repeat("a", 2048-len("spiffe://td/")), true},

		{"empty", "", false},
		{"other scheme", "https://example.org/x", false},
		{"upper-case scheme", "SPIFFE://example.org/x", false},
		{"no authority", "spiffe:example.org/x", false},
		{"empty trust domain", "spiffe:///x", false},
		{"upper-case trust domain", "spiffe://Example.org/x", false},
		{"trust domain too long", "spiffe://" + strings.Repeat("a", 256), false},
		{"id too long", "spiffe://td/" + strings.Repeat("a", 2048-len("spiffe://td/")+1), false},
		{"port", "spiffe://example.org:443/x", false},
		{"user info", "spiffe://eve@example.org/x", false},
		{"trailing slash", "spiffe://example.org/", false},
		{"trailing slash after a segment", "spiffe://example.org/x/", false},
		{"empty segment", "spiffe://example.org/a//b", false},
		{"dot segment", "spiffe://example.org/a/./b", false},
		{"dot-dot segment", "spiffe://td/a/../b", false},
		{"final dot-dot", "spiffe://td/a/..", false},
		{"percent-encoding", "spiffe://example.org/%61", false},
		{"query", "spiffe://example.org/x?y", false},
		{"fragment", "spiffe://example.org/x#y", false},
		{"space", "spiffe://example.org/a b", false},
		{"non-ASCII", "spiffe://example.org/\u0430lice", false},
		{"wildcard", "spiffe://example.org/*", false},
		{"IPv6 literal", "spiffe://[::1]/x", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.id)
			if tc.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}

// FuzzValidate: a valid ID is a URI that net/url reads and writes back unchanged, with nothing
// but a scheme, a host and a clean path.
func FuzzValidate(f *testing.F) {
	f.Add("spiffe://example.org") // more seeds in testdata/fuzz/FuzzValidate
	f.Fuzz(func(t *testing.T, s string) {
		if Validate(s) != nil {
			return
		}
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("valid %q does not parse: %v", s, err)
		}
		if u.String() != s || u.Scheme != "spiffe" || u.User != nil || u.Port() != "" || u.RawQuery != "" ||
			u.Fragment != "" || u.RawPath != "" || u.Opaque != "" {
			t.Fatalf("valid %q parses as %#v", s, u)
		}
		if u.Path != "" && path.Clean(u.Path) != u.Path {
			t.Fatalf("valid %q has an unclean path", s)
		}
	})
}
