package netprefix

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUnmap(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"mapped prefix", "::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"mapped address", "::ffff:10.1.2.3/128", "10.1.2.3/32"},
		{"all mapped addresses", "::ffff:0.0.0.0/96", "0.0.0.0/0"},
		{"shorter than the mapped range", "::ffff:0.0.0.0/80", "::ffff:0.0.0.0/80"},
		{"IPv4", "10.0.0.0/8", "10.0.0.0/8"},
		{"IPv6", "2001:db8::/32", "2001:db8::/32"},
		{"IPv4-compatible is not mapped", "::10.0.0.0/104", "::a00:0/104"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, netip.MustParsePrefix(tc.want), Unmap(netip.MustParsePrefix(tc.in)))
		})
	}
	assert.False(t, Unmap(netip.Prefix{}).IsValid(), "the zero prefix stays invalid")
}
