// Package netprefix normalises the IP prefixes and addresses that configuration gives.
package netprefix

import "net/netip"

// Unmap returns the IPv4 prefix that an IPv4-mapped IPv6 prefix of at least 96 bits stands for
// (::ffff:10.0.0.0/104 is 10.0.0.0/8, ::ffff:10.1.2.3/128 is 10.1.2.3/32); any other prefix is
// returned unchanged, including a mapped one shorter than /96, which covers more than mapped
// addresses. It is meant for what the operator writes, never for data read from a certificate:
// crypto/x509 checks a 16-byte IP SAN against IPv6 name constraints only, so a matcher that
// unmapped it would judge it by IPv4 rules no CA constraint applied to.
func Unmap(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}
