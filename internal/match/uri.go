package match

import (
	"bytes"
	"errors"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// ParseURIPattern checks a URI pattern: an absolute URI in canonical form (see Canonical), or
// such a prefix followed by '*', which is allowed only at the end and, in a URI with an
// authority, only after the '/' that ends the host. base is the pattern without its '*'. A pattern
// not in canonical form is refused with the form to write.
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
	// A prefix ends inside a segment: canonicalise it with a letter in place of the '*', so that
	// a final "." or an empty path is not read as a whole segment or path.
	written := base
	if prefix {
		written += "x"
	}
	u, err := url.Parse(written)
	if err != nil {
		return "", false, errors.New("not a URI")
	}
	if u.Scheme == "" {
		return "", false, errors.New("not an absolute URI")
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
	if c := Canonical(u); c != written {
		if prefix {
			c = strings.TrimSuffix(c, "x") + "*"
		}
		return "", false, errors.New("not in canonical form (write " + strconv.Quote(c) + ")")
	}
	return base, prefix, nil
}

// Canonical writes u in the canonical form of a URI (RFC 3986, section 6), as net/url writes it
// once normalised: user info and fragment removed; the host in lower case, without trailing
// dots, an IPv6 address in its RFC 5952 form; the port without leading zeros, removed when empty
// or the default of http, https, ws or wss; in the path, escapes of unreserved characters decoded
// and the others in upper case, dot segments and empty segments removed, and for those schemes
// (and ftp and file) a backslash read as '/', as WHATWG URL parsers do, and an empty path written
// "/"; an empty query removed; the namespace of a URN in lower case. The query compares as
// written.
func Canonical(u *url.URL) string {
	n := url.URL{Scheme: u.Scheme, Opaque: u.Opaque, RawQuery: u.RawQuery, OmitHost: u.OmitHost}
	if n.Opaque != "" {
		if nid, nss, ok := strings.Cut(n.Opaque, ":"); ok && n.Scheme == "urn" {
			n.Opaque = asciiLower(nid) + ":" + nss
		}
		return n.String()
	}
	special := special(n.Scheme)
	host := asciiLower(strings.TrimRight(u.Hostname(), "."))
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		host = "[" + a.String() + "]"
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port := strings.TrimLeft(u.Port(), "0"); u.Port() != "" {
		if port == "" {
			port = "0"
		}
		if port != defaultPorts[n.Scheme] {
			host += ":" + port
		}
	}
	n.Host = host
	p := u.EscapedPath()
	if written := u.RawPath; special && strings.Contains(written, `\`) { // net/url keeps the path as written
		if v, err := url.Parse("x://h" + strings.ReplaceAll(written, `\`, "/")); err == nil {
			p = v.EscapedPath()
		}
	}
	p = normaliseEscapes(p)
	if p != "" {
		c := path.Clean(p)
		if c != "/" && (strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")) {
			c += "/"
		}
		p = c
	} else if special && n.Host != "" {
		p = "/"
	}
	n.Path, _ = url.PathUnescape(p)
	n.RawPath = p
	return n.String()
}

// special reports whether WHATWG URL parsers treat scheme specially: a backslash is a '/' in its
// paths, and its empty path is "/".
func special(scheme string) bool {
	switch scheme {
	case "http", "https", "ws", "wss", "ftp", "file":
		return true
	}
	return false
}

var defaultPorts = map[string]string{"http": "80", "https": "443", "ws": "80", "wss": "443"}

// normaliseEscapes decodes the escapes of unreserved characters in the escaped path p and writes
// the others in upper case.
func normaliseEscapes(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	b := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] != '%' || i+2 >= len(p) {
			b = append(b, p[i])
			continue
		}
		v, err := strconv.ParseUint(p[i+1:i+3], 16, 8)
		if err != nil {
			b = append(b, p[i])
			continue
		}
		switch c := byte(v); {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_', c == '~':
			b = append(b, c)
		default:
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
		}
		i += 2
	}
	return string(b)
}

const upperHex = "0123456789ABCDEF"

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
// holds a "." or ".." segment never matches a prefix), Undecided when one would in canonical form
// (see Canonical; with its escaped slashes read as slashes too), and No otherwise. Patterns are in
// canonical form (see ParseURIPattern).
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

// equivalent reports whether a URI that does not match may be written in a form the matcher
// does not judge (see mayDiffer) and either starts with a listed prefix as written or matches once
// canonical (see Canonical), its escaped slashes read as slashes or not. URIs that need no
// normalisation return at once; the others may allocate.
func (s *URISet) equivalent(u *url.URL) bool {
	if u == nil || !mayDiffer(u) {
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
	if matches(u.String()) || matches(Canonical(u)) {
		return true
	}
	if u.RawPath == "" {
		return false
	}
	n := *u
	n.RawPath = ""
	return matches(Canonical(&n))
}

// mayDiffer reports whether u may differ from its canonical form, without allocating: false for
// the URIs that Canonical writes as net/url does.
func mayDiffer(u *url.URL) bool {
	if u.User != nil || u.RawPath != "" || u.Fragment != "" || u.RawFragment != "" || (u.ForceQuery && u.RawQuery == "") {
		return true
	}
	if u.Opaque != "" {
		nid, _, _ := strings.Cut(u.Opaque, ":")
		return u.Scheme == "urn" && strings.IndexFunc(nid, isASCIIUpper) >= 0
	}
	host := u.Hostname()
	if strings.HasSuffix(host, ".") || strings.IndexFunc(host, isASCIIUpper) >= 0 || strings.HasPrefix(u.Host, "[") ||
		strings.HasSuffix(u.Host, ":") || strings.Contains(host, ":") {
		return true
	}
	if port := u.Port(); port != "" && (port[0] == '0' || port == defaultPorts[u.Scheme]) {
		return true
	}
	return hasDotSegment(u.Path) || strings.Contains(u.Path, "//") ||
		special(u.Scheme) && (u.Path == "" && u.Host != "" || strings.Contains(u.Path, "\\"))
}

func isASCIIUpper(r rune) bool { return r >= 'A' && r <= 'Z' }

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
