package match

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Attr is a distinguished-name attribute type.
type Attr struct {
	Name   string // canonical name (cn, ou, ...) or the dotted object identifier
	OID    asn1.ObjectIdentifier
	Single bool // a name with more than one value of it matches nothing
}

var attrs = []Attr{
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

var attrAliases = map[string]string{
	"serialnumber": "serial_number", "postalcode": "postal_code", "emailaddress": "email",
	"commonname": "cn", "domaincomponent": "dc",
}

var errUnknownAttr = errors.New("unknown attribute (use cn, o, ou, c, l, st, street, postal_code, serial_number, dc, uid, email or a dotted OID)")

// LookupAttr resolves an attribute key (a name or alias, case-insensitive, or a dotted object
// identifier) to its canonical name and type.
func LookupAttr(key string) (Attr, error) {
	k := strings.ToLower(key)
	if a, ok := attrAliases[k]; ok {
		k = a
	}
	for _, a := range attrs {
		if a.Name == k {
			return a, nil
		}
	}
	oid, err := ParseOID(key)
	if err != nil {
		return Attr{}, errUnknownAttr
	}
	for _, a := range attrs {
		if a.OID.Equal(oid) {
			return a, nil
		}
	}
	return Attr{Name: oid.String(), OID: oid}, nil
}

// ParseOID parses a dotted object identifier strictly: at least two arcs, the first 0, 1 or 2,
// decimal arcs without leading zeros.
func ParseOID(s string) (asn1.ObjectIdentifier, error) {
	errSyntax := errors.New("not a dotted object identifier")
	parts := strings.Split(s, ".")
	if len(parts) < 2 {
		return nil, errSyntax
	}
	oid := make(asn1.ObjectIdentifier, len(parts))
	for i, p := range parts {
		if p == "" || len(p) > 9 || (len(p) > 1 && p[0] == '0') {
			return nil, errSyntax
		}
		for j := 0; j < len(p); j++ {
			if p[j] < '0' || p[j] > '9' {
				return nil, errSyntax
			}
		}
		n, _ := strconv.Atoi(p)
		oid[i] = n
	}
	if oid[0] > 2 || (oid[0] < 2 && oid[1] > 39) {
		return nil, errors.New("not a valid object identifier")
	}
	return oid, nil
}

// NameRule is one attribute of a subject or issuer rule: its type and accepted values.
type NameRule struct {
	oid       asn1.ObjectIdentifier
	single    bool
	values    map[string]struct{}
	folded    map[string]struct{} // the values' folded forms (see AppendFolded)
	maxFolded int                 // the longest folded form, in bytes
}

// NewNameRule returns the rule accepting values (valid UTF-8) for the attribute a.
func NewNameRule(a Attr, values []string) NameRule {
	r := NameRule{oid: a.OID, single: a.Single, values: make(map[string]struct{}, len(values)),
		folded: make(map[string]struct{}, len(values))}
	for _, v := range values {
		r.values[v] = struct{}{}
		f, _ := AppendFolded(nil, v, len(v)*utf8.UTFMax)
		r.folded[string(f)] = struct{}{}
		r.maxFolded = max(r.maxFolded, len(f))
	}
	return r
}

// foldedEqual reports whether s, folded, is the folded form of a listed value. It allocates only
// for listed values longer than 256 bytes folded.
func (r *NameRule) foldedEqual(s string) bool {
	var buf [256]byte
	f, ok := AppendFolded(buf[:0], s, r.maxFolded)
	if !ok {
		return false
	}
	_, ok = r.folded[string(f)]
	return ok
}

// AppendFolded appends to dst the form of s in which the differences X.500 matching ignores
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
func AppendFolded(dst []byte, s string, limit int) (_ []byte, ok bool) {
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

// MatchName reports whether names satisfies every rule. Attributes are compared one by one, as
// parsed from the certificate, never through a string rendering of the name: a CN of
// "eve,O=Admin" is one CN, not an O. A value equal to a listed one only once folded (see
// AppendFolded), and a single-valued attribute held more than once, one of its values listed, are
// Undecided.
func MatchName(names []pkix.AttributeTypeAndValue, rules []NameRule) Verdict {
	v := Yes
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
			return No
		case !hit, r.single && count != 1:
			v = Undecided
		}
	}
	return v
}
