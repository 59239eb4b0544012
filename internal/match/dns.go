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
	exact map[string]struct{}
	wild  map[string]struct{} // the names after "*."
}

// Add parses pattern and adds it; norm is its normalised form.
func (s *DNSSet) Add(pattern string) (norm string, err error) {
	norm, wildcard, err := ParseDNSPattern(pattern)
	if err != nil {
		return "", err
	}
	if s.exact == nil {
		s.exact, s.wild = map[string]struct{}{}, map[string]struct{}{}
	}
	if wildcard {
		s.wild[norm[2:]] = struct{}{}
	} else {
		s.exact[norm] = struct{}{}
	}
	return norm, nil
}

// Match is Yes when one of names matches a pattern, ASCII case-insensitively (a wildcard pattern
// stands for exactly one left-most label; a wildcard name matches nothing), Undecided when one
// names a listed one all the same (with a trailing dot, or as a wildcard covering a pattern), and
// No otherwise. It does not allocate for names that match or are plainly different.
func (s *DNSSet) Match(names []string) Verdict { return judge(names, s.match, s.equivalent) }

func (s *DNSSet) match(n string) bool {
	if len(n) == 0 || len(n) > 253 {
		return false
	}
	var buf [253]byte
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c >= 0x80 {
			return false
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	b := buf[:len(n)]
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
// trailing dot, or as a wildcard SAN covering a pattern. Only these rare forms are looked at (and
// may allocate).
func (s *DNSSet) equivalent(n string) bool {
	if t, ok := strings.CutSuffix(n, "."); ok && t != "" && !strings.HasSuffix(t, ".") {
		if s.match(t) {
			return true
		}
		n = t
	}
	rest, ok := strings.CutPrefix(n, "*.")
	if !ok {
		return false
	}
	rest = asciiLower(rest)
	if _, ok := s.wild[rest]; ok {
		return true
	}
	for e := range s.exact {
		if i := strings.IndexByte(e, '.'); i > 0 && e[i+1:] == rest {
			return true
		}
	}
	return false
}
