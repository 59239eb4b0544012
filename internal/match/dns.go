package match

import (
	"bytes"
	"errors"
	"strings"
)

// ParseDNSPattern checks a DNS name pattern, an exact name or "*." followed by a name of at least
// two labels, and returns it lowercased. Internationalised names must be in their "xn--" form.
func ParseDNSPattern(s string) (norm string, wildcard bool, err error) {
	n := asciiLower(s)
	for i := 0; i < len(n); i++ {
		if n[i] >= 0x80 {
			return "", false, errors.New("not an ASCII DNS name (write internationalised names in their xn-- form)")
		}
	}
	if rest, ok := strings.CutPrefix(n, "*."); ok {
		if err := CheckHostname(rest); err != nil {
			return "", false, err
		}
		if !strings.Contains(rest, ".") {
			return "", false, errors.New("a wildcard must be followed by at least two labels")
		}
		return n, true, nil
	}
	if err := CheckHostname(n); err != nil {
		return "", false, err
	}
	return n, false, nil
}

// CheckHostname accepts a lowercase DNS name: labels of letters, digits, '-' and '_', 1 to 63
// bytes each, 253 bytes in all, no trailing dot.
func CheckHostname(n string) error {
	if len(n) == 0 || len(n) > 253 {
		return errors.New("not a DNS name")
	}
	for label := range strings.SplitSeq(n, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("empty or overlong label")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if c == '*' {
				return errors.New("'*' is only allowed as the whole left-most label")
			}
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return errors.New("invalid character in a DNS name")
			}
		}
	}
	return nil
}

// DNSSet is a set of DNS name patterns (see ParseDNSPattern). The zero value is empty.
type DNSSet struct {
	exact   map[string]struct{}
	wild    map[string]struct{} // the names after "*."
	parents map[string]struct{} // the exact names without their first label, which a wildcard SAN covers
}

// Add parses pattern and adds it; norm is its normalised form.
func (s *DNSSet) Add(pattern string) (norm string, err error) {
	norm, wildcard, err := ParseDNSPattern(pattern)
	if err != nil {
		return "", err
	}
	if s.exact == nil {
		s.exact, s.wild, s.parents = map[string]struct{}{}, map[string]struct{}{}, map[string]struct{}{}
	}
	if wildcard {
		s.wild[norm[2:]] = struct{}{}
		return norm, nil
	}
	s.exact[norm] = struct{}{}
	if i := strings.IndexByte(norm, '.'); i > 0 {
		s.parents[norm[i+1:]] = struct{}{}
	}
	return norm, nil
}

// Match is Yes when one of names matches a pattern, ASCII case-insensitively (a wildcard pattern
// stands for exactly one left-most label; a wildcard name matches nothing), Undecided when one
// names a listed one all the same (with a trailing dot, or as a wildcard covering a pattern: "*."
// or a '*' inside the left-most label, as in "a*.example.com", which some TLS stacks match), and
// No otherwise. It costs a few map look-ups per name, whatever the number of patterns, and does
// not allocate.
func (s *DNSSet) Match(names []string) Verdict { return judge(names, s.match, s.equivalent) }

// lower writes n in lower case into buf; ok is false for a name that is not ASCII or is too long.
func lower(buf *[253]byte, n string) (b []byte, ok bool) {
	if len(n) == 0 || len(n) > len(buf) {
		return nil, false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c >= 0x80 {
			return nil, false
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(n)], true
}

func (s *DNSSet) match(n string) bool {
	var buf [253]byte
	b, ok := lower(&buf, n)
	if !ok {
		return false
	}
	if _, ok := s.exact[string(b)]; ok {
		return true
	}
	if len(s.wild) > 0 {
		if i := bytes.IndexByte(b, '.'); i > 0 && bytes.IndexByte(b[:i], '*') < 0 {
			if _, ok := s.wild[string(b[i+1:])]; ok {
				return true
			}
		}
	}
	return false
}

// equivalent reports whether a name that does not match names a listed one all the same: with a
// trailing dot, or as a wildcard SAN (a '*' in its left-most label) covering a pattern.
func (s *DNSSet) equivalent(n string) bool {
	if t, ok := strings.CutSuffix(n, "."); ok && t != "" && !strings.HasSuffix(t, ".") {
		if s.match(t) {
			return true
		}
		n = t
	}
	var buf [253]byte
	b, ok := lower(&buf, n)
	if !ok {
		return false
	}
	i := bytes.IndexByte(b, '.')
	if i <= 0 || bytes.IndexByte(b[:i], '*') < 0 {
		return false
	}
	_, wild := s.wild[string(b[i+1:])]
	_, parent := s.parents[string(b[i+1:])]
	return wild || parent
}
