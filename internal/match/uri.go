package match

import (
	"bytes"
	"errors"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// ParseURIPattern checks a URI pattern: an absolute URI in the form net/url writes it, or such a
// prefix followed by '*', which is allowed only at the end and, in a URI with an authority, only
// after the '/' that ends the host. base is the pattern without its '*'.
func ParseURIPattern(s string) (base string, prefix bool, err error) {
	if !printableASCII(s) {
		return "", false, errors.New("not a printable ASCII URI")
	}
	base = s
	if star := strings.IndexByte(s, '*'); star >= 0 {
		if star != len(s)-1 {
			return "", false, errors.New("'*' is only allowed at the end")
		}
		base, prefix = s[:star], true
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", false, errors.New("not a URI")
	}
	if u.Scheme == "" {
		return "", false, errors.New("not an absolute URI")
	}
	if u.String() != base {
		return "", false, errors.New("not in canonical form (" + strconv.Quote(u.String()) + ")")
	}
	if prefix {
		if rest, ok := strings.CutPrefix(base, u.Scheme+"://"); ok {
			if slash := strings.IndexByte(rest, '/'); slash <= 0 {
				return "", false, errors.New("'*' must follow the '/' after the host")
			}
		} else if len(base) <= len(u.Scheme)+1 {
			return "", false, errors.New("'*' must follow at least one character after the scheme")
		}
	}
	return base, prefix, nil
}

// URISet is a set of URI patterns (see ParseURIPattern). The zero value is empty.
type URISet struct {
	exact    map[string]struct{}
	prefixes [][]byte
}

// Add parses pattern and adds it.
func (s *URISet) Add(pattern string) error {
	base, prefix, err := ParseURIPattern(pattern)
	if err != nil {
		return err
	}
	s.add(base, prefix)
	return nil
}

func (s *URISet) add(base string, prefix bool) {
	if prefix {
		s.prefixes = append(s.prefixes, []byte(base))
		return
	}
	if s.exact == nil {
		s.exact = map[string]struct{}{}
	}
	s.exact[base] = struct{}{}
}

// Match is Yes when one of uris is a listed URI or starts with a listed prefix (a URI whose path
// holds a "." or ".." segment never matches a prefix), Undecided when one would once normalised
// (escapes, dot and empty segments, host case and trailing dot, user info and fragment removed),
// and No otherwise.
func (s *URISet) Match(uris []*url.URL) Verdict { return judge(uris, s.match, s.equivalent) }

func (s *URISet) match(u *url.URL) bool {
	if u == nil {
		return false
	}
	var buf [512]byte
	b, ok := appendURI(buf[:0], u)
	if !ok {
		b = append(buf[:0], u.String()...) // rare forms: user info, fragments, escapes
	}
	if _, ok := s.exact[string(b)]; ok {
		return true
	}
	if len(s.prefixes) == 0 || hasDotSegment(u.Path) {
		return false
	}
	for _, p := range s.prefixes {
		if bytes.HasPrefix(b, p) {
			return true
		}
	}
	return false
}

func isASCIIUpper(r rune) bool { return r >= 'A' && r <= 'Z' }

// equivalent reports whether a URI that does not match is written in a form the matcher does not
// judge (user info, a fragment, escapes net/url would not write, dot segments, empty segments, an
// upper-case host or one with a trailing dot) and either starts with a listed prefix as written or
// matches once normalised. Canonical URIs return at once; the others may allocate.
func (s *URISet) equivalent(u *url.URL) bool {
	if u == nil || u.Opaque != "" {
		return false
	}
	host := u.Hostname()
	if u.User == nil && u.RawPath == "" && u.Fragment == "" && u.RawFragment == "" &&
		!strings.HasSuffix(host, ".") && strings.IndexFunc(host, isASCIIUpper) < 0 &&
		!hasDotSegment(u.Path) && !strings.Contains(u.Path, "//") {
		return false
	}
	matches := func(str string) bool {
		if _, ok := s.exact[str]; ok {
			return true
		}
		for _, p := range s.prefixes {
			if strings.HasPrefix(str, string(p)) {
				return true
			}
		}
		return false
	}
	if matches(u.String()) {
		return true
	}
	n := *u
	n.User, n.Fragment, n.RawFragment, n.RawPath = nil, "", "", ""
	host = asciiLower(strings.TrimSuffix(host, "."))
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := u.Port(); port != "" {
		host += ":" + port
	}
	n.Host = host
	if p := u.Path; p != "" {
		c := path.Clean(p)
		if c != "/" && (strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")) {
			c += "/"
		}
		n.Path = c
	}
	return matches(n.String())
}

// appendURI appends u as (*url.URL).String writes it, without allocating, for the common forms
// that need no escaping. ok is false for the others.
func appendURI(b []byte, u *url.URL) ([]byte, bool) {
	if u.Scheme == "" || u.User != nil || u.RawPath != "" || u.Fragment != "" || u.RawFragment != "" {
		return b, false
	}
	b = append(b, u.Scheme...)
	b = append(b, ':')
	if u.Opaque != "" {
		b = append(b, u.Opaque...)
	} else {
		if u.Host == "" || (u.Path != "" && u.Path[0] != '/') ||
			!safeURIPart(u.Host, true) || !safeURIPart(u.Path, false) {
			return b, false
		}
		b = append(b, "//"...)
		b = append(b, u.Host...)
		b = append(b, u.Path...)
	}
	if u.ForceQuery || u.RawQuery != "" {
		b = append(b, '?')
		b = append(b, u.RawQuery...)
	}
	return b, true
}

// safeURIPart reports whether net/url writes s unchanged in a host or a path.
func safeURIPart(s string, host bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == ':':
		case host && (c == '[' || c == ']'):
		case !host && (c == '/' || c == '$' || c == '&' || c == '+' || c == ',' || c == ';' || c == '=' || c == '@'):
		default:
			return false
		}
	}
	return true
}

// hasDotSegment reports whether the path p holds a "." or ".." segment.
func hasDotSegment(p string) bool {
	for start := 0; start <= len(p); {
		end := strings.IndexByte(p[start:], '/')
		if end < 0 {
			end = len(p)
		} else {
			end += start
		}
		if seg := p[start:end]; seg == "." || seg == ".." {
			return true
		}
		start = end + 1
	}
	return false
}
