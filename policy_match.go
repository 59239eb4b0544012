package mtls

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // SHA-1 thumbprints identify certificates; they are not a signature
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/certgate/mtls/internal/netprefix"
	"github.com/certgate/mtls/internal/spiffeid"
)

// elemError is a bad value in a matcher's input. The constructors name the value; the document
// loader names its JSON path from attr and index.
type elemError struct {
	attr  string // attribute (subject, issuer) or field (extension); empty otherwise
	index int    // index in the list, -1 for the list as a whole
	value string
	msg   string
}

func (e *elemError) Error() string {
	if e.index < 0 {
		return e.msg
	}
	return strconv.Quote(e.value) + ": " + e.msg
}

func listErr(msg string) *elemError { return &elemError{index: -1, msg: msg} }

// publicErr turns a builder's error into the error of the exported constructor name.
// public is what a constructor returns: the policy its builder made, or the builder's error
// naming the constructor.
func public(name string, p Policy, e *elemError) (Policy, error) {
	if e != nil {
		return nil, publicErr(name, e)
	}
	return p, nil
}

func publicErr(name string, e *elemError) error {
	if e == nil {
		return nil
	}
	if e.attr != "" {
		return fmt.Errorf("mtls: %s: %s: %s", name, e.attr, e.Error())
	}
	return fmt.Errorf("mtls: %s: %s", name, e.Error())
}

// eachValue runs parse on every value, which must be present and non-empty, and returns the
// distinct results' document forms in order.
func eachValue(vals []string, parse func(i int, s string) (norm string, err string)) ([]string, *elemError) {
	if len(vals) == 0 {
		return nil, listErr("no values")
	}
	seen := make(map[string]bool, len(vals))
	out := make([]string, 0, len(vals))
	for i, v := range vals {
		if v == "" {
			return nil, &elemError{index: i, value: v, msg: "empty value"}
		}
		norm, msg := parse(i, v)
		if msg != "" {
			return nil, &elemError{index: i, value: v, msg: msg}
		}
		if !seen[norm] {
			seen[norm] = true
			out = append(out, norm)
		}
	}
	return out, nil
}

// ---- Distinguished names -------------------------------------------------------------------

// Attributes selects distinguished-name attributes for [RequireSubject] and [RequireIssuer]: each
// key is an attribute and its values are the accepted values. Keys are cn, o, ou, c, l, st,
// street, postal_code, serial_number, dc, uid and email (case-insensitive), or any attribute type
// as a dotted object identifier such as "2.5.4.12".
type Attributes map[string][]string

type nameAttr struct {
	name   string
	oid    asn1.ObjectIdentifier
	single bool // a name with more than one value of it matches nothing
}

var nameAttrs = []nameAttr{
	{"cn", asn1.ObjectIdentifier{2, 5, 4, 3}, true},
	{"serial_number", asn1.ObjectIdentifier{2, 5, 4, 5}, true},
	{"c", asn1.ObjectIdentifier{2, 5, 4, 6}, true},
	{"l", asn1.ObjectIdentifier{2, 5, 4, 7}, false},
	{"st", asn1.ObjectIdentifier{2, 5, 4, 8}, false},
	{"street", asn1.ObjectIdentifier{2, 5, 4, 9}, false},
	{"o", asn1.ObjectIdentifier{2, 5, 4, 10}, false},
	{"ou", asn1.ObjectIdentifier{2, 5, 4, 11}, false},
	{"postal_code", asn1.ObjectIdentifier{2, 5, 4, 17}, false},
	{"dc", asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}, false},
	{"uid", asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}, false},
	{"email", asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, false},
}

var nameAliases = map[string]string{
	"serialnumber": "serial_number", "postalcode": "postal_code", "emailaddress": "email",
	"commonname": "cn", "domaincomponent": "dc",
}

// lookupAttr resolves an attribute key to its canonical name and type.
func lookupAttr(key string) (nameAttr, string) {
	k := strings.ToLower(key)
	if a, ok := nameAliases[k]; ok {
		k = a
	}
	for _, a := range nameAttrs {
		if a.name == k {
			return a, ""
		}
	}
	oid, err := parseOID(key)
	if err != "" {
		return nameAttr{}, "unknown attribute (use cn, o, ou, c, l, st, street, postal_code, serial_number, dc, uid, email or a dotted OID)"
	}
	for _, a := range nameAttrs {
		if a.oid.Equal(oid) {
			return a, ""
		}
	}
	return nameAttr{name: oid.String(), oid: oid}, ""
}

// parseOID parses a dotted object identifier strictly: at least two arcs, the first 0, 1 or 2,
// decimal arcs without leading zeros.
func parseOID(s string) (asn1.ObjectIdentifier, string) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return nil, "not a dotted object identifier"
	}
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		if p == "" || len(p) > 9 || (len(p) > 1 && p[0] == '0') {
			return nil, "not a dotted object identifier"
		}
		for j := 0; j < len(p); j++ {
			if p[j] < '0' || p[j] > '9' {
				return nil, "not a dotted object identifier"
			}
		}
		n, _ := strconv.Atoi(p)
		oid[i] = n
	}
	if oid[0] > 2 || (oid[0] < 2 && oid[1] > 39) {
		return nil, "not a valid object identifier"
	}
	return oid, ""
}

type attrRule struct {
	oid       asn1.ObjectIdentifier
	single    bool
	values    map[string]struct{}
	folded    map[string]struct{} // the values' folded forms (see foldValue)
	maxFolded int                 // the longest folded form, in bytes
}

// foldedEqual reports whether s, folded, is the folded form of a listed value. It allocates only
// for listed values longer than 256 bytes folded.
func (r *attrRule) foldedEqual(s string) bool {
	var buf [256]byte
	f, ok := appendFolded(buf[:0], s, r.maxFolded)
	if !ok {
		return false
	}
	_, ok = r.folded[string(f)]
	return ok
}

// appendFolded appends to dst the form of s in which the differences X.500 matching ignores
// (caseIgnoreMatch after RFC 4518 string preparation) are removed, as far as they can be without
// Unicode normalisation tables:
//
//   - the characters RFC 4518 maps to nothing are dropped: soft hyphen, zero-width space, byte
//     order mark, variation selectors, the other format characters and the control characters;
//   - the other spaces (tab, line feed, no-break space, every Unicode space separator) are spaces,
//     leading and trailing spaces are dropped, and a run of spaces is one space;
//   - full-width ASCII forms (U+FF01 to U+FF5E) are their ASCII letters, digits and signs;
//   - letters are case-folded by Unicode simple case folding (each letter stands for the
//     smallest of its case variants, so that k, K and the Kelvin sign are one).
//
// ok is false, and the form incomplete, when it would be longer than limit bytes.
func appendFolded(dst []byte, s string, limit int) (_ []byte, ok bool) {
	start, space := len(dst), false
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\v' || r == '\f' || r == '\r' || r == 0x85 || unicode.In(r, unicode.Zs, unicode.Zl, unicode.Zp):
			space = len(dst) > start // leading spaces are dropped
			continue
		case unicode.In(r, unicode.Cc, unicode.Cf, unicode.Variation_Selector) ||
			r == 0x034f || r == 0x1806 || r == 0xfffc: // grapheme joiner, todo soft hyphen, object replacement
			continue
		case r >= 0xff01 && r <= 0xff5e:
			r -= 0xfee0
		}
		if space {
			dst, space = append(dst, ' '), false
		}
		dst = utf8.AppendRune(dst, foldRune(r))
		if len(dst)-start > limit {
			return dst, false
		}
	}
	return dst, true
}

// foldRune returns the smallest rune of r's simple case folding orbit (at most four runes).
func foldRune(r rune) rune {
	m := r
	for f, i := unicode.SimpleFold(r), 0; f != r && i < 8; f, i = unicode.SimpleFold(f), i+1 {
		m = min(m, f)
	}
	return m
}

// buildName compiles attribute rules for a subject or issuer matcher.
func buildName(attrs Attributes) ([]attrRule, map[string][]string, *elemError) {
	if len(attrs) == 0 {
		return nil, nil, listErr("no attributes")
	}
	var rules []attrRule
	doc := make(map[string][]string, len(attrs))
	for key, vals := range attrs {
		a, msg := lookupAttr(key)
		if msg != "" {
			return nil, nil, &elemError{attr: key, index: -1, msg: msg}
		}
		if _, dup := doc[a.name]; dup {
			return nil, nil, &elemError{attr: key, index: -1, msg: "attribute given twice (as " + a.name + ")"}
		}
		norm, e := eachValue(vals, func(_ int, s string) (string, string) {
			if !utf8.ValidString(s) {
				return "", "not valid UTF-8"
			}
			return s, ""
		})
		if e != nil {
			e.attr = key
			return nil, nil, e
		}
		r := attrRule{oid: a.oid, single: a.single, values: make(map[string]struct{}, len(norm)),
			folded: make(map[string]struct{}, len(norm))}
		for _, v := range norm {
			r.values[v] = struct{}{}
			f, _ := appendFolded(nil, v, len(v)*utf8.UTFMax)
			r.folded[string(f)] = struct{}{}
			r.maxFolded = max(r.maxFolded, len(f))
		}
		rules = append(rules, r)
		doc[a.name] = norm
	}
	return rules, doc, nil
}

// matchName reports whether names satisfies every rule. Attributes are compared one by one, as
// parsed from the certificate, never through a string rendering of the name: a CN of
// "eve,O=Admin" is one CN, not an O. A value equal to a listed one only once folded (see
// appendFolded), and a single-valued attribute held more than once, one of its values listed, are
// undecided: neither a match nor, under Not, a mismatch.
func matchName(names []pkix.AttributeTypeAndValue, rules []attrRule) verdict {
	v := yes
	for i := range rules {
		r := &rules[i]
		count, hit, near := 0, false, false
		for j := range names {
			if !names[j].Type.Equal(r.oid) {
				continue
			}
			count++
			s, ok := names[j].Value.(string)
			if !ok {
				continue
			}
			if _, ok := r.values[s]; ok {
				hit = true
			} else if !near && r.foldedEqual(s) {
				near = true
			}
		}
		switch {
		case !hit && !near:
			return no
		case !hit, r.single && count != 1:
			v = undecided
		}
	}
	return v
}

// RequireSubject allows a leaf whose subject has, for every attribute in attrs, a value among
// those listed. An attribute that may occur only once (cn, c, serial_number) matches nothing when
// the subject holds it more than once, and if one of those values is listed the subject is not a
// mismatch either: [Not] refuses it too (Not(c: RU) refuses C=RU with a second C=US). For the
// other attributes (such as several ou) one listed value suffices.
//
// A value matches only when it is byte for byte a listed one. A value that is not, but equals a
// listed one once the differences X.500 matching ignores are removed, matches nothing and is
// not a mismatch either: [Not] refuses it too (Not(ou: contractors) refuses OU=Contractors). These
// differences are letter case (Unicode simple case folding: "Contractors", "CONTRACTORS", a Kelvin
// sign for k), spaces (leading, trailing or repeated; tab, no-break, ideographic and other Unicode
// spaces), full-width forms of ASCII (U+FF01 to U+FF5E), and the characters RFC 4518 maps to
// nothing (soft hyphen, zero-width space, byte order mark, variation selectors, other format and
// control characters). Equivalences that need Unicode normalisation tables are not recognised:
// composed and decomposed accents, compatibility forms other than full-width ASCII (ligatures,
// superscripts), full case folding (ß and ss); such spellings are different values, which Not
// allows, and look-alike letters of other scripts are different values too. To keep a client out
// whatever its names are spelled, deny its key or certificate ([DenyList]).
func RequireSubject(attrs Attributes) (Policy, error) {
	p, err := buildNamePolicy("subject", attrs, subjectNames)
	return public("RequireSubject", p, err)
}

// RequireIssuer is [RequireSubject] for the issuer name of the leaf (the subject of the CA that
// signed it). A leaf accepted by its pinned fingerprint has no verified issuer and matches
// nothing: its issuer name is whatever its maker wrote. The name is that of any trusted CA: when
// CAs of several owners are trusted, prefer [RequireIssuerThumbprints].
func RequireIssuer(attrs Attributes) (Policy, error) {
	p, err := buildNamePolicy("issuer", attrs, issuerNames)
	return public("RequireIssuer", p, err)
}

func subjectNames(id *Identity) []pkix.AttributeTypeAndValue { return id.Leaf.Subject.Names }
func issuerNames(id *Identity) []pkix.AttributeTypeAndValue  { return id.Leaf.Issuer.Names }

func buildNamePolicy(key string, attrs Attributes, names func(*Identity) []pkix.AttributeTypeAndValue) (Policy, *elemError) {
	rules, doc, err := buildName(attrs)
	if err != nil {
		return nil, err
	}
	r := newRule(key, doc, nil)
	r.fn3 = func(id *Identity) verdict {
		if key == "issuer" && id.Pinned {
			return no // no verified issuer: the name is whatever the leaf's maker wrote
		}
		return matchName(names(id), rules)
	}
	return r, nil
}

// ---- DNS names -----------------------------------------------------------------------------

// RequireDNSNames allows a leaf with a DNS name SAN matching one of patterns: an exact name
// ("api.example.com"), or "*." followed by a name of at least two labels, matching exactly one
// left-most label ("*.example.com" matches "a.example.com", not "example.com" nor
// "a.b.example.com"). Names compare ASCII case-insensitively; internationalised names must be
// written in their "xn--" form; a wildcard SAN in the certificate itself matches nothing. A name
// with a trailing dot, or a wildcard SAN, that stands for a listed name is refused under [Not] as
// well.
func RequireDNSNames(patterns ...string) (Policy, error) {
	p, err := buildDNS(patterns)
	return public("RequireDNSNames", p, err)
}

func buildDNS(patterns []string) (Policy, *elemError) {
	exact, wild := map[string]struct{}{}, map[string]struct{}{}
	doc, err := eachValue(patterns, func(_ int, s string) (string, string) {
		norm, wildcard, msg := parseDNSPattern(s)
		if msg == "" {
			if wildcard {
				wild[norm[2:]] = struct{}{}
			} else {
				exact[norm] = struct{}{}
			}
		}
		return norm, msg
	})
	if err != nil {
		return nil, err
	}
	r := newRule("dns", doc, nil)
	r.fn3 = func(id *Identity) verdict {
		v := no
		for _, n := range id.Leaf.DNSNames {
			if matchDNS(n, exact, wild) {
				return yes
			}
			if v == no && dnsEquivalent(n, exact, wild) {
				v = undecided
			}
		}
		return v
	}
	return r, nil
}

// dnsEquivalent reports whether a name that does not match names a listed one all the same: with
// a trailing dot, or as a wildcard SAN covering a pattern. Such a name is undecided, so that Not
// cannot be stepped around by spelling. Only these rare forms are looked at (and may allocate).
func dnsEquivalent(n string, exact, wild map[string]struct{}) bool {
	if t, ok := strings.CutSuffix(n, "."); ok && t != "" && !strings.HasSuffix(t, ".") {
		if matchDNS(t, exact, wild) {
			return true
		}
		n = t
	}
	rest, ok := strings.CutPrefix(n, "*.")
	if !ok {
		return false
	}
	rest = asciiLower(rest)
	if _, ok := wild[rest]; ok {
		return true
	}
	for e := range exact {
		if i := strings.IndexByte(e, '.'); i > 0 && e[i+1:] == rest {
			return true
		}
	}
	return false
}

func parseDNSPattern(s string) (norm string, wildcard bool, msg string) {
	n := asciiLower(s)
	for i := 0; i < len(n); i++ {
		if n[i] >= 0x80 {
			return "", false, "not an ASCII DNS name (write internationalised names in their xn-- form)"
		}
	}
	if rest, ok := strings.CutPrefix(n, "*."); ok {
		if msg := checkHostname(rest); msg != "" {
			return "", false, msg
		}
		if !strings.Contains(rest, ".") {
			return "", false, "a wildcard must be followed by at least two labels"
		}
		return n, true, ""
	}
	if msg := checkHostname(n); msg != "" {
		return "", false, msg
	}
	return n, false, ""
}

// checkHostname accepts a lowercase DNS name: labels of letters, digits, '-' and '_', 1 to 63
// bytes each, 253 bytes in all, no trailing dot.
func checkHostname(n string) string {
	if len(n) == 0 || len(n) > 253 {
		return "not a DNS name"
	}
	for label := range strings.SplitSeq(n, ".") {
		if label == "" || len(label) > 63 {
			return "empty or overlong label"
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if c == '*' {
				return "'*' is only allowed as the whole left-most label"
			}
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "invalid character in a DNS name"
			}
		}
	}
	return ""
}

// asciiLower lowercases ASCII letters only (strings.ToLower also maps some non-ASCII letters,
// such as the Kelvin sign, onto ASCII ones).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func matchDNS(n string, exact, wild map[string]struct{}) bool {
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
	if _, ok := exact[string(b)]; ok {
		return true
	}
	if len(wild) > 0 {
		if i := bytes.IndexByte(b, '.'); i > 0 && bytes.IndexByte(b[:i], '*') < 0 {
			if _, ok := wild[string(b[i+1:])]; ok {
				return true
			}
		}
	}
	return false
}

// ---- Email addresses -----------------------------------------------------------------------

// RequireEmails allows a leaf with an email address SAN matching one of patterns: an address
// ("alice@example.com"; the local part compares exactly, the domain ASCII case-insensitively), or
// "@example.com" for any mailbox at exactly that domain.
func RequireEmails(patterns ...string) (Policy, error) {
	p, err := buildEmail(patterns)
	return public("RequireEmails", p, err)
}

type mailbox struct{ local, domain string }

func buildEmail(patterns []string) (Policy, *elemError) {
	var boxes []mailbox
	doc, err := eachValue(patterns, func(_ int, s string) (string, string) {
		for i := 0; i < len(s); i++ {
			if s[i] <= ' ' || s[i] >= 0x7f {
				return "", "not a printable ASCII email address"
			}
		}
		at := strings.LastIndexByte(s, '@')
		if at < 0 {
			return "", "not an email address (write @domain for any mailbox at a domain)"
		}
		local, domain := s[:at], asciiLower(s[at+1:])
		if strings.Contains(local, "*") {
			return "", "'*' is not a pattern here (write @domain for any mailbox at a domain)"
		}
		if msg := checkHostname(domain); msg != "" {
			return "", "domain: " + msg
		}
		boxes = append(boxes, mailbox{local, domain})
		return local + "@" + domain, ""
	})
	if err != nil {
		return nil, err
	}
	r := newRule("email", doc, nil)
	r.fn3 = func(id *Identity) verdict {
		v := no
		for _, e := range id.Leaf.EmailAddresses {
			at := strings.LastIndexByte(e, '@')
			if at <= 0 {
				continue
			}
			local, domain := e[:at], e[at+1:]
			// A domain with a trailing dot names the same domain: undecided, not a mismatch.
			dotted, hasDot := strings.CutSuffix(domain, ".")
			for _, b := range boxes {
				if b.local != "" && b.local != local {
					continue
				}
				if asciiEqualFold(domain, b.domain) {
					return yes
				}
				if hasDot && asciiEqualFold(dotted, b.domain) {
					v = undecided
				}
			}
		}
		return v
	}
	return r, nil
}

// asciiEqualFold compares s with a lowercase ASCII t, folding ASCII letters of s only.
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != t[i] {
			return false
		}
	}
	return true
}

// ---- URIs ----------------------------------------------------------------------------------

// RequireURIs allows a leaf with a URI SAN matching one of patterns: an exact URI, or a URI
// prefix followed by '*', matching any remainder ("spiffe://acme.test/ns/prod/*" matches
// "spiffe://acme.test/ns/prod/sa/alice"). A pattern must be an absolute URI in the form Go's
// net/url writes it, '*' is allowed only at the end and, in a URI with an authority, only after
// the '/' that ends the host (so that "https://api.example*" cannot match
// "https://api.example.evil"). A URI whose path holds a "." or ".." segment never matches a
// prefix. A URI that does not match but, normalised (escapes, dot and empty segments, host case
// and trailing dot, user info and fragment removed), would, is refused under [Not] as well. For
// SPIFFE IDs prefer [RequireSPIFFEIDs], which also checks the ID's syntax.
func RequireURIs(patterns ...string) (Policy, error) {
	p, err := buildURI(patterns)
	return public("RequireURIs", p, err)
}

func buildURI(patterns []string) (Policy, *elemError) {
	exact := map[string]struct{}{}
	var prefixes [][]byte
	doc, err := eachValue(patterns, func(_ int, s string) (string, string) {
		base, prefix, msg := parseURIPattern(s)
		if msg != "" {
			return "", msg
		}
		if prefix {
			prefixes = append(prefixes, []byte(base))
		} else {
			exact[base] = struct{}{}
		}
		return s, ""
	})
	if err != nil {
		return nil, err
	}
	r := newRule("uri", doc, nil)
	r.fn3 = func(id *Identity) verdict {
		v := no
		for _, u := range id.Leaf.URIs {
			if matchURI(u, exact, prefixes) {
				return yes
			}
			if v == no && uriEquivalent(u, exact, prefixes) {
				v = undecided
			}
		}
		return v
	}
	return r, nil
}

func isASCIIUpper(r rune) bool { return r >= 'A' && r <= 'Z' }

// uriEquivalent reports whether a URI that does not match is written in a form the matcher does
// not judge (user info, a fragment, escapes net/url would not write, dot segments, empty
// segments, an upper-case host or one with a trailing dot) and either starts with a listed
// prefix as written or matches once normalised. Such a URI is undecided, so that Not cannot be
// stepped around by spelling. Canonical URIs return at once; the others may allocate.
func uriEquivalent(u *url.URL, exact map[string]struct{}, prefixes [][]byte) bool {
	if u == nil || u.Opaque != "" {
		return false
	}
	host := u.Hostname()
	if u.User == nil && u.RawPath == "" && u.Fragment == "" && u.RawFragment == "" &&
		!strings.HasSuffix(host, ".") && strings.IndexFunc(host, isASCIIUpper) < 0 &&
		!hasDotSegment(u.Path) && !strings.Contains(u.Path, "//") {
		return false
	}
	matches := func(s string) bool {
		if _, ok := exact[s]; ok {
			return true
		}
		for _, p := range prefixes {
			if strings.HasPrefix(s, string(p)) {
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

func parseURIPattern(s string) (base string, prefix bool, msg string) {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return "", false, "not a printable ASCII URI"
		}
	}
	base = s
	if star := strings.IndexByte(s, '*'); star >= 0 {
		if star != len(s)-1 {
			return "", false, "'*' is only allowed at the end"
		}
		base, prefix = s[:star], true
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", false, "not a URI"
	}
	if u.Scheme == "" {
		return "", false, "not an absolute URI"
	}
	if u.String() != base {
		return "", false, "not in canonical form (" + strconv.Quote(u.String()) + ")"
	}
	if prefix {
		if rest, ok := strings.CutPrefix(base, u.Scheme+"://"); ok {
			if slash := strings.IndexByte(rest, '/'); slash <= 0 {
				return "", false, "'*' must follow the '/' after the host"
			}
		} else if len(base) <= len(u.Scheme)+1 {
			return "", false, "'*' must follow at least one character after the scheme"
		}
	}
	return base, prefix, ""
}

func matchURI(u *url.URL, exact map[string]struct{}, prefixes [][]byte) bool {
	if u == nil {
		return false
	}
	var buf [512]byte
	b, ok := appendURI(buf[:0], u)
	if !ok {
		b = append(buf[:0], u.String()...) // rare forms: user info, fragments, escapes
	}
	if _, ok := exact[string(b)]; ok {
		return true
	}
	if len(prefixes) == 0 || hasDotSegment(u.Path) {
		return false
	}
	for _, p := range prefixes {
		if bytes.HasPrefix(b, p) {
			return true
		}
	}
	return false
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

// ---- IP addresses --------------------------------------------------------------------------

// RequireIPs allows a leaf with an IP address SAN equal to one of the given addresses or inside
// one of the given prefixes ("10.1.2.3", "2001:db8::/32"). A prefix must have no bits set after
// its length. An IPv4-mapped address or prefix given here means its IPv4 form
// ("::ffff:10.0.0.0/104" is 10.0.0.0/8; a mapped prefix must be at least /96).
//
// A SAN is compared as the certificate encodes it, never unmapped: a 16-byte SAN ::ffff:10.1.2.3
// is an IPv6 address, which crypto/x509 checks against IPv6 name constraints only (a CA excluded
// from 10.0.0.0/8 can issue it). It matches the IPv6 prefixes that contain it, and no IPv4 rule;
// if an IPv4 rule holds its IPv4 form it is undecided, refused under [Not] as well.
func RequireIPs(addrsOrPrefixes ...string) (Policy, error) {
	p, err := buildIP(addrsOrPrefixes)
	return public("RequireIPs", p, err)
}

func buildIP(vals []string) (Policy, *elemError) {
	var prefixes []netip.Prefix
	doc, err := eachValue(vals, func(_ int, s string) (string, string) {
		var p netip.Prefix
		if strings.Contains(s, "/") {
			var err error
			if p, err = netip.ParsePrefix(s); err != nil {
				return "", "not an IP prefix"
			}
			if p.Masked() != p {
				return "", "bits set after the prefix length (write " + p.Masked().String() + ")"
			}
			if p.Addr().Is4In6() && p.Bits() < 96 {
				return "", "an IPv4-mapped prefix must be at least /96"
			}
		} else {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return "", "not an IP address"
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		p = netprefix.Unmap(p)
		prefixes = append(prefixes, p)
		if p.IsSingleIP() {
			return p.Addr().String(), ""
		}
		return p.String(), ""
	})
	if err != nil {
		return nil, err
	}
	contains := func(a netip.Addr) bool {
		for _, p := range prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	r := newRule("ip", doc, nil)
	r.fn3 = func(id *Identity) verdict {
		v := no
		for _, ip := range id.Leaf.IPAddresses {
			a, ok := netip.AddrFromSlice(ip)
			if !ok {
				continue
			}
			if contains(a) {
				return yes
			}
			if a.Is4In6() && contains(a.Unmap()) {
				v = undecided
			}
		}
		return v
	}
	return r, nil
}

// ---- SPIFFE IDs ----------------------------------------------------------------------------

// RequireSPIFFEIDs allows a leaf whose SPIFFE ID ([Identity.SPIFFEID]) matches one of patterns:
// an exact ID ("spiffe://acme.test/ns/prod/sa/alice"), any workload of a trust domain
// ("spiffe://acme.test/*") or any ID below a path ("spiffe://acme.test/ns/prod/*", which does not
// match "spiffe://acme.test/ns/prod" itself). Patterns and IDs must follow the SPIFFE ID syntax
// (lowercase trust domain; path segments of letters, digits, '.', '-' and '_', none empty, "." or
// ".."; no trailing '/', percent-encoding, port, user info, query or fragment). An identity whose
// URI SAN is not such an ID has an empty [Identity.SPIFFEID] and matches nothing.
func RequireSPIFFEIDs(patterns ...string) (Policy, error) {
	p, err := buildSPIFFE(patterns)
	return public("RequireSPIFFEIDs", p, err)
}

func buildSPIFFE(patterns []string) (Policy, *elemError) {
	exact := map[string]struct{}{}
	var prefixes []string
	doc, err := eachValue(patterns, func(_ int, s string) (string, string) {
		if base, ok := strings.CutSuffix(s, "/*"); ok {
			if spiffeid.Validate(base) != nil {
				return "", "not a SPIFFE ID followed by /*"
			}
			prefixes = append(prefixes, base+"/")
			return s, ""
		}
		if spiffeid.Validate(s) != nil {
			return "", "not a SPIFFE ID ('*' is only allowed as a final /* segment)"
		}
		exact[s] = struct{}{}
		return s, ""
	})
	if err != nil {
		return nil, err
	}
	bprefixes := make([][]byte, len(prefixes))
	for i, p := range prefixes {
		bprefixes[i] = []byte(p)
	}
	r := newRule("spiffe", doc, nil)
	r.fn3 = func(id *Identity) verdict {
		s := id.SPIFFEID
		if spiffeid.Validate(s) != nil {
			// Not an X509-SVID (two URI SANs, bad syntax): matches nothing, but a spiffe URI
			// naming a listed ID, as written or normalised, is undecided rather than a mismatch.
			for _, u := range id.Leaf.URIs {
				if u == nil || !strings.EqualFold(u.Scheme, "spiffe") {
					continue
				}
				if matchURI(u, exact, bprefixes) || uriEquivalent(u, exact, bprefixes) {
					return undecided
				}
			}
			return no
		}
		if _, ok := exact[s]; ok {
			return yes
		}
		for _, p := range prefixes {
			if strings.HasPrefix(s, p) {
				return yes
			}
		}
		return no
	}
	return r, nil
}

// ---- Digests -------------------------------------------------------------------------------

// parseDigest decodes a hexadecimal digest of n bytes; case, colons and spaces are ignored.
func parseDigest(s string, n int) ([]byte, string) {
	clean := strings.NewReplacer(":", "", " ", "").Replace(s)
	if len(clean) != 2*n {
		return nil, fmt.Sprintf("not %d hexadecimal digits", 2*n)
	}
	b, err := hex.DecodeString(clean)
	if err != nil {
		return nil, "not hexadecimal"
	}
	return b, ""
}

// RequireThumbprints allows a leaf whose SHA-256 fingerprint (of its DER encoding) is one of
// sha256 (hexadecimal; case, colons and spaces ignored). It costs one map look-up: the fingerprint
// is computed once per verified chain.
func RequireThumbprints(sha256 ...string) (Policy, error) {
	p, err := buildThumbprint(sha256)
	return public("RequireThumbprints", p, err)
}

func buildThumbprint(vals []string) (Policy, *elemError) {
	set := map[[32]byte]struct{}{}
	doc, err := eachValue(vals, func(_ int, s string) (string, string) {
		b, msg := parseDigest(s, 32)
		if msg != "" {
			return "", msg
		}
		set[[32]byte(b)] = struct{}{}
		return hex.EncodeToString(b), ""
	})
	if err != nil {
		return nil, err
	}
	return newRule("thumbprint", doc, func(id *Identity) bool {
		_, ok := set[id.sum]
		return ok
	}), nil
}

// RequireSHA1Thumbprints allows a leaf whose SHA-1 fingerprint is one of sha1 (hexadecimal, as
// Windows and Azure show certificates; case, colons and spaces ignored). Prefer
// [RequireThumbprints]: SHA-1 is kept for existing configurations, and is hashed on each request.
func RequireSHA1Thumbprints(sha1 ...string) (Policy, error) {
	p, err := buildSHA1(sha1)
	if err != nil {
		return nil, publicErr("RequireSHA1Thumbprints", err)
	}
	return p, nil
}

func buildSHA1(vals []string) (Policy, *elemError) {
	set := map[[20]byte]struct{}{}
	doc, err := eachValue(vals, func(_ int, s string) (string, string) {
		b, msg := parseDigest(s, 20)
		if msg != "" {
			return "", msg
		}
		set[[20]byte(b)] = struct{}{}
		return hex.EncodeToString(b), ""
	})
	if err != nil {
		return nil, err
	}
	return newRule("sha1", doc, func(id *Identity) bool {
		_, ok := set[sha1.Sum(id.Leaf.Raw)] //nolint:gosec // fingerprint, see above
		return ok
	}), nil
}

// RequireSPKIPins allows a leaf whose public key has one of the given SHA-256 pins: the digest of
// the DER SubjectPublicKeyInfo, in hexadecimal or in base64 (as Envoy's verify_certificate_spki
// and HPKP write it). A pin survives renewals that keep the key.
func RequireSPKIPins(pins ...string) (Policy, error) {
	p, err := buildSPKI(pins)
	return public("RequireSPKIPins", p, err)
}

func buildSPKI(vals []string) (Policy, *elemError) {
	set := map[[32]byte]struct{}{}
	doc, err := eachValue(vals, func(_ int, s string) (string, string) {
		b, msg := parseDigest(s, 32)
		if msg != "" {
			b = decodeBase64Digest(s)
			if b == nil {
				return "", "not a SHA-256 digest in hexadecimal or base64"
			}
		}
		set[[32]byte(b)] = struct{}{}
		return hex.EncodeToString(b), ""
	})
	if err != nil {
		return nil, err
	}
	return newRule("spki", doc, func(id *Identity) bool {
		_, ok := set[sha256.Sum256(id.Leaf.RawSubjectPublicKeyInfo)]
		return ok
	}), nil
}

func decodeBase64Digest(s string) []byte {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b
		}
	}
	return nil
}

// RequireIssuerThumbprints allows a leaf whose issuing CA certificate (the one above the leaf in
// the verified chain) has one of the given SHA-256 fingerprints. A pinned leaf has no issuer in
// its chain and matches nothing, and so does a chain whose second certificate's subject is not the
// leaf's issuer name, or a certificate accepted on a proxy's word
// ([HeaderConfig.DangerouslyTrustProxyVerification]: its chain is the leaf alone). The issuer is
// hashed on each request.
func RequireIssuerThumbprints(sha256 ...string) (Policy, error) {
	p, err := buildIssuerThumbprint(sha256)
	return public("RequireIssuerThumbprints", p, err)
}

func buildIssuerThumbprint(vals []string) (Policy, *elemError) {
	set := map[[32]byte]struct{}{}
	doc, err := eachValue(vals, func(_ int, s string) (string, string) {
		b, msg := parseDigest(s, 32)
		if msg != "" {
			return "", msg
		}
		set[[32]byte(b)] = struct{}{}
		return hex.EncodeToString(b), ""
	})
	if err != nil {
		return nil, err
	}
	r := newRule("issuer_thumbprint", doc, nil)
	r.fn3 = func(id *Identity) verdict {
		if id.Pinned {
			return no // no issuer: the leaf is trusted by itself
		}
		// A verified chain holds the leaf's issuer. A chain forwarded by a proxy whose
		// verification is trusted is not linked by signatures: without a certificate above the
		// leaf that bears its issuer name, the issuer is unknown, which Not must not allow either.
		if len(id.Chain) < 2 || id.Chain[1] == nil || !bytes.Equal(id.Chain[1].RawSubject, id.Leaf.RawIssuer) {
			return undecided
		}
		_, ok := set[sha256.Sum256(id.Chain[1].Raw)]
		return verdictOf(ok)
	}
	return r, nil
}

// ---- Serial numbers ------------------------------------------------------------------------

// maxSerialBytes bounds the serial numbers that can be written: RFC 5280 allows 20 octets, some
// CAs write more, and a deny list must still be able to name them.
const maxSerialBytes = 128

// ParseSerial reads a certificate serial number in the one notation every serial number of this
// package is written in ([RequireSerials], the "serial" key of policy documents, [ParseDenyList]):
// hexadecimal, in one of two forms.
//
//   - "0x" followed by hexadecimal digits: 0x1000. `openssl x509 -serial` prints serial=1000:
//     write 0x1000.
//   - Bytes of two hexadecimal digits separated by colons: 10:00, as `openssl x509 -text`
//     prints long serial numbers.
//
// Digits alone, such as 4096 or 1000, are refused: openssl -serial prints hexadecimal while
// openssl -text and many other tools print small serials in decimal ("4096 (0x1000)": write the
// 0x1000 part), so a bare number could mean either. Hexadecimal digits may be in either case; there
// is no sign, space or other separator; serials of up to 128 bytes can be written. Policies and
// their documents write serials back as 0x followed by lowercase digits.
func ParseSerial(s string) (*big.Int, error) {
	n, msg := parseSerial(s)
	if msg != "" {
		return nil, fmt.Errorf("mtls: serial number %q: %s", s, msg)
	}
	return n, nil
}

func parseSerial(s string) (*big.Int, string) {
	digits, ok := strings.CutPrefix(s, "0x")
	if !ok {
		digits, ok = strings.CutPrefix(s, "0X")
	}
	switch {
	case ok:
		if digits == "" || strings.Contains(digits, ":") {
			return nil, "write 0x followed by hexadecimal digits, or bytes separated by colons"
		}
	case strings.Contains(s, ":"):
		parts := strings.Split(s, ":")
		for _, part := range parts {
			if len(part) != 2 {
				return nil, "write each byte as two hexadecimal digits between colons, as openssl prints it"
			}
		}
		digits = strings.Join(parts, "")
	default:
		return nil, "ambiguous: write hexadecimal with 0x (openssl x509 -serial prints serial=1000: write 0x1000) or bytes with colons (10:00)"
	}
	if len(digits) > 2*(maxSerialBytes+1) { // a leading 00 byte, as openssl -text writes it, is allowed
		return nil, "longer than 128 bytes"
	}
	for i := 0; i < len(digits); i++ {
		if c := digits[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return nil, "not hexadecimal"
		}
	}
	n, _ := new(big.Int).SetString(digits, 16)
	if n.BitLen() > 8*maxSerialBytes {
		return nil, "longer than 128 bytes"
	}
	return n, ""
}

// RequireSerials allows a leaf whose serial number is one of serials, each in the notation of
// [ParseSerial]: hexadecimal, "0x1000" or "10:00" (digits alone are refused as ambiguous).
func RequireSerials(serials ...string) (Policy, error) {
	p, err := buildSerial(serials)
	return public("RequireSerials", p, err)
}

func buildSerial(vals []string) (Policy, *elemError) {
	set := map[string]struct{}{} // big-endian bytes without leading zeros
	doc, err := eachValue(vals, func(_ int, s string) (string, string) {
		n, msg := parseSerial(s)
		if msg != "" {
			return "", msg
		}
		set[string(n.Bytes())] = struct{}{}
		return "0x" + n.Text(16), ""
	})
	if err != nil {
		return nil, err
	}
	return newRule("serial", doc, func(id *Identity) bool {
		sn := id.Leaf.SerialNumber
		if sn == nil || sn.Sign() < 0 || sn.BitLen() > 8*maxSerialBytes {
			return false
		}
		var buf [maxSerialBytes]byte
		_, ok := set[string(sn.FillBytes(buf[:(sn.BitLen()+7)/8]))]
		return ok
	}), nil
}

// ---- Extended key usage --------------------------------------------------------------------

var ekuNames = []struct {
	name string
	oid  asn1.ObjectIdentifier
	eku  x509.ExtKeyUsage
}{
	{"any", asn1.ObjectIdentifier{2, 5, 29, 37, 0}, x509.ExtKeyUsageAny},
	{"serverAuth", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}, x509.ExtKeyUsageServerAuth},
	{"clientAuth", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}, x509.ExtKeyUsageClientAuth},
	{"codeSigning", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 3}, x509.ExtKeyUsageCodeSigning},
	{"emailProtection", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 4}, x509.ExtKeyUsageEmailProtection},
	{"ipsecEndSystem", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 5}, x509.ExtKeyUsageIPSECEndSystem},
	{"ipsecTunnel", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 6}, x509.ExtKeyUsageIPSECTunnel},
	{"ipsecUser", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 7}, x509.ExtKeyUsageIPSECUser},
	{"timeStamping", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}, x509.ExtKeyUsageTimeStamping},
	{"OCSPSigning", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 9}, x509.ExtKeyUsageOCSPSigning},
	{"microsoftServerGatedCrypto", asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 10, 3, 3}, x509.ExtKeyUsageMicrosoftServerGatedCrypto},
	{"netscapeServerGatedCrypto", asn1.ObjectIdentifier{2, 16, 840, 1, 113730, 4, 1}, x509.ExtKeyUsageNetscapeServerGatedCrypto},
	{"microsoftCommercialCodeSigning", asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 22}, x509.ExtKeyUsageMicrosoftCommercialCodeSigning},
	{"microsoftKernelCodeSigning", asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 61, 1, 1}, x509.ExtKeyUsageMicrosoftKernelCodeSigning},
}

// RequireEKUs allows a leaf that carries one of the given extended key usages, each a name
// (clientAuth, serverAuth, codeSigning, emailProtection, timeStamping, OCSPSigning, any, ...;
// case-insensitive) or a dotted object identifier for a private usage. The usage must be listed
// in the certificate: anyExtendedKeyUsage satisfies only "any".
func RequireEKUs(usages ...string) (Policy, error) {
	p, err := buildEKU(usages)
	return public("RequireEKUs", p, err)
}

func buildEKU(vals []string) (Policy, *elemError) {
	var known []x509.ExtKeyUsage
	var other []asn1.ObjectIdentifier
	doc, err := eachValue(vals, func(_ int, s string) (string, string) {
		for _, e := range ekuNames {
			if strings.EqualFold(s, e.name) {
				known = append(known, e.eku)
				return e.name, ""
			}
		}
		oid, msg := parseOID(s)
		if msg != "" {
			return "", "unknown extended key usage (a name such as clientAuth, or a dotted OID)"
		}
		for _, e := range ekuNames {
			if e.oid.Equal(oid) {
				known = append(known, e.eku)
				return e.name, ""
			}
		}
		other = append(other, oid)
		return oid.String(), ""
	})
	if err != nil {
		return nil, err
	}
	r := newRule("eku", doc, nil)
	r.fn3 = func(id *Identity) verdict {
		anyEKU := false
		for _, have := range id.Leaf.ExtKeyUsage {
			anyEKU = anyEKU || have == x509.ExtKeyUsageAny
			for _, want := range known {
				if have == want {
					return yes
				}
			}
		}
		for _, have := range id.Leaf.UnknownExtKeyUsage {
			for _, want := range other {
				if have.Equal(want) {
					return yes
				}
			}
		}
		if anyEKU { // allowed for every usage: not a listed one, but not a mismatch either
			return undecided
		}
		return no
	}
	return r, nil
}

// ---- Extensions ----------------------------------------------------------------------------

// extensionDoc is the document form of an extension matcher.
type extensionDoc struct {
	OID    string   `json:"oid"`
	Values []string `json:"values,omitempty"`
	DER    []string `json:"der,omitempty"`
}

// RequireExtension allows a leaf that carries the extension oid (dotted). With values, the
// extension's value must also be a single ASN.1 string (UTF8String, PrintableString, IA5String
// or VisibleString) equal to one of them, as Vault's required_extensions compares it.
func RequireExtension(oid string, values ...string) (Policy, error) {
	p, err := buildExtension(extensionDoc{OID: oid, Values: values}, len(values) > 0, false)
	return public("RequireExtension", p, err)
}

// RequireExtensionDER allows a leaf that carries the extension oid with a value (the DER inside
// extnValue) equal to one of derHex, each in hexadecimal (case, colons and spaces ignored).
func RequireExtensionDER(oid string, derHex ...string) (Policy, error) {
	p, err := buildExtension(extensionDoc{OID: oid, DER: derHex}, false, true)
	return public("RequireExtensionDER", p, err)
}

func buildExtension(d extensionDoc, withValues, withDER bool) (Policy, *elemError) {
	oid, msg := parseOID(d.OID)
	if msg != "" {
		return nil, &elemError{attr: "oid", index: 0, value: d.OID, msg: msg}
	}
	doc := extensionDoc{OID: oid.String()}
	values := map[string]struct{}{}
	var err *elemError
	switch {
	case withValues:
		doc.Values, err = eachValue(d.Values, func(_ int, s string) (string, string) {
			if !utf8.ValidString(s) {
				return "", "not valid UTF-8"
			}
			values[s] = struct{}{}
			return s, ""
		})
		if err != nil {
			err.attr = "values"
		}
	case withDER:
		doc.DER, err = eachValue(d.DER, func(_ int, s string) (string, string) {
			clean := strings.NewReplacer(":", "", " ", "").Replace(s)
			b, e := hex.DecodeString(clean)
			if e != nil || len(b) == 0 {
				return "", "not hexadecimal"
			}
			values[string(b)] = struct{}{}
			return hex.EncodeToString(b), ""
		})
		if err != nil {
			err.attr = "der"
		}
	}
	if err != nil {
		return nil, err
	}
	r := newRule("extension", doc, nil)
	r.fn3 = func(id *Identity) verdict {
		for i := range id.Leaf.Extensions {
			ext := &id.Leaf.Extensions[i]
			if !ext.Id.Equal(oid) {
				continue
			}
			switch {
			case withValues:
				s, ok := asn1String(ext.Value)
				if !ok { // a value of another type or encoding cannot be compared
					return undecided
				}
				_, ok = values[string(s)]
				return verdictOf(ok)
			case withDER:
				_, ok := values[string(ext.Value)]
				return verdictOf(ok)
			}
			return yes
		}
		return no
	}
	return r, nil
}

// asn1String returns the contents of a DER string of one of the character string types.
func asn1String(der []byte) ([]byte, bool) {
	if len(der) < 2 {
		return nil, false
	}
	switch der[0] {
	case 12, 19, 22, 26: // UTF8String, PrintableString, IA5String, VisibleString
	default:
		return nil, false
	}
	n, rest := int(der[1]), der[2:]
	switch {
	case n < 0x80:
	case n == 0x81 && len(rest) >= 1 && rest[0] >= 0x80:
		n, rest = int(rest[0]), rest[1:]
	case n == 0x82 && len(rest) >= 2 && rest[0] != 0:
		n, rest = int(rest[0])<<8|int(rest[1]), rest[2:]
	default:
		return nil, false
	}
	if n != len(rest) {
		return nil, false
	}
	if der[0] == 12 && !utf8.Valid(rest) {
		return nil, false
	}
	return rest, true
}

// ---- Validity ------------------------------------------------------------------------------

// RequireMinValidity allows a leaf that remains valid for at least d from now: a strict partner
// can refuse certificates that expire within, say, 72 hours. d must be positive. now is the
// clock; nil means the clock of the middleware that runs the policy ([Config.Now]) wherever a
// [Middleware] runs it (Config.Policy, Config.ShadowPolicy, [Middleware.Require],
// [Middleware.Shadow], at any depth of [All], [Any] and [Not], but not inside a policy of your
// own), and time.Now when Check is called otherwise.
func RequireMinValidity(d time.Duration, now func() time.Time) (Policy, error) {
	if d <= 0 {
		return nil, fmt.Errorf("mtls: RequireMinValidity: duration %v is not positive", d)
	}
	return buildMinValidity(d, now), nil
}

func buildMinValidity(d time.Duration, now func() time.Time) *rule {
	clock := now
	if clock == nil {
		clock = time.Now
	}
	r := newRule("min_validity", d.String(), func(id *Identity) bool {
		return !id.Leaf.NotAfter.Before(clock().Add(d))
	})
	if now == nil {
		r.clocked = func(now func() time.Time) *rule { return buildMinValidity(d, now) }
	}
	return r
}

// ---- Principal -----------------------------------------------------------------------------

// RequirePrincipals allows an identity whose [Identity.Principal], as set by
// [Config.Principals], is one of names; the name "*" allows any resolved principal (and refuses
// anonymous identities). Names compare exactly. Router-wide, the principal is resolved before
// [Config.Policy] runs, so both Config.Policy and [Middleware.Require] can use this matcher.
func RequirePrincipals(names ...string) (Policy, error) {
	p, err := buildPrincipal(names)
	return public("RequirePrincipals", p, err)
}

func buildPrincipal(vals []string) (Policy, *elemError) {
	set := map[string]struct{}{}
	anyName := false
	doc, err := eachValue(vals, func(_ int, s string) (string, string) {
		if !utf8.ValidString(s) {
			return "", "not valid UTF-8"
		}
		if s == "*" {
			anyName = true
		}
		set[s] = struct{}{}
		return s, ""
	})
	if err != nil {
		return nil, err
	}
	return newRule("principal", doc, func(id *Identity) bool {
		if id.Principal == "" {
			return false
		}
		if anyName {
			return true
		}
		_, ok := set[id.Principal]
		return ok
	}), nil
}
