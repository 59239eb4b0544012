package match

import (
	"errors"
	"net"
	"net/netip"
	"strings"

	"github.com/certgate/mtls/internal/netprefix"
)

// ParsePrefix parses an IP address or prefix ("10.1.2.3", "2001:db8::/32"); an address is the
// prefix of its full length. A prefix must have no bits set after its length. An IPv4-mapped
// address or prefix is returned in its IPv4 form (a mapped prefix must be at least /96).
func ParsePrefix(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, errors.New("not an IP prefix")
		}
		if p.Masked() != p {
			return p, errors.New("bits set after the prefix length (write " + p.Masked().String() + ")")
		}
		if p.Addr().Is4In6() && p.Bits() < 96 {
			return p, errors.New("an IPv4-mapped prefix must be at least /96")
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return p, errors.New("not an IP address")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	return netprefix.Unmap(p), nil
}

// IPSet is a set of addresses and prefixes (see ParsePrefix). The zero value is empty.
type IPSet struct{ prefixes []netip.Prefix }

// Add parses an address or prefix and adds it; norm is its normalised form (an address alone
// for a single address).
func (s *IPSet) Add(addrOrPrefix string) (norm string, err error) {
	p, err := ParsePrefix(addrOrPrefix)
	if err != nil {
		return "", err
	}
	s.prefixes = append(s.prefixes, p)
	if p.IsSingleIP() {
		return p.Addr().String(), nil
	}
	return p.String(), nil
}

func (s *IPSet) contains(a netip.Addr) bool {
	for _, p := range s.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Match is Yes when one of ips, compared as the certificate encodes it (never unmapped), is in
// the set, Undecided when an IPv6 one is not but the IPv4 address it embeds is (see Embedded4),
// and No otherwise.
func (s *IPSet) Match(ips []net.IP) Verdict {
	v := No
	for _, ip := range ips {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			continue
		}
		if s.contains(a) {
			return Yes
		}
		if e, ok := Embedded4(a); ok && s.contains(e) {
			v = Undecided
		}
	}
	return v
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
	v4Compat  = netip.MustParsePrefix("::/96")
)

// Embedded4 returns the IPv4 address an IPv6 address stands for: IPv4-mapped (::ffff:a.b.c.d),
// NAT64 (64:ff9b::a.b.c.d, RFC 6052), 6to4 (2002:AABB:CCDD::/48, RFC 3056) or IPv4-compatible
// (::a.b.c.d, deprecated).
func Embedded4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case a.Is4In6(), nat64.Contains(a), v4Compat.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}
