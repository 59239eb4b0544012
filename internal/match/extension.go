package match

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"unicode/utf8"
)

// Extension is a rule on one extension of a certificate: its presence, or with values, its
// value as a string (ASN.1 character string) or as DER.
type Extension struct {
	OID    asn1.ObjectIdentifier
	values map[string]struct{}
	der    bool // values are DER encodings, not strings
}

// AddString accepts the extension whose value is a string equal to s.
func (e *Extension) AddString(s string) { e.add(s, false) }

// AddDER accepts the extension whose value (the DER inside extnValue) is der.
func (e *Extension) AddDER(der []byte) { e.add(string(der), true) }

func (e *Extension) add(v string, der bool) {
	if e.values == nil {
		e.values = map[string]struct{}{}
	}
	e.values[v], e.der = struct{}{}, der
}

// Match judges the extensions of a certificate: No without the extension; with it, Yes when no
// values are listed or its value is listed, No when it is not, and Undecided when strings are
// listed and its value is not a readable string (another type or encoding cannot be compared).
func (e *Extension) Match(exts []pkix.Extension) Verdict {
	for i := range exts {
		ext := &exts[i]
		if !ext.Id.Equal(e.OID) {
			continue
		}
		switch {
		case e.values == nil:
			return Yes
		case e.der:
			_, ok := e.values[string(ext.Value)]
			return Of(ok)
		}
		s, ok := ASN1String(ext.Value)
		if !ok {
			return Undecided
		}
		_, ok = e.values[string(s)]
		return Of(ok)
	}
	return No
}

// ASN1String returns the contents of a DER string of one of the character string types
// UTF8String (valid UTF-8 only), PrintableString, IA5String and VisibleString.
func ASN1String(der []byte) ([]byte, bool) {
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
