package certheader

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
)

// XFCCPair is one key=value of an element of X-Forwarded-Client-Cert: Key with its ASCII letters
// in lower case, Value unquoted; Quoted says whether it was written in double quotes.
type XFCCPair struct {
	Key, Value string
	Quoted     bool
}

// ParseXFCC parses a whole X-Forwarded-Client-Cert value into elements. Values may be
// double-quoted (then `\` escapes the next character); unquoted values end at ";" or ",". Any
// syntax error fails the whole header: the elements added by earlier hops must not be able to
// shift the boundary of the last one.
func ParseXFCC(v string) ([][]XFCCPair, error) {
	var elems [][]XFCCPair
	var cur []XFCCPair
	s := xfccScanner{v: v}
	for {
		p, sep, err := s.next()
		if err != nil {
			return nil, err
		}
		cur = append(cur, XFCCPair{lowerASCII(p.key), p.unquote(), p.quoted})
		if sep != ';' {
			elems, cur = append(elems, cur), nil
		}
		if sep == 0 {
			return elems, nil
		}
	}
}

// xfccRaw is a pair as written: key trimmed of spaces and tabs, value between the quotes when
// quoted, escapes kept.
type xfccRaw struct {
	key, value string
	quoted     bool
}

// unquote returns the value with the escapes of a quoted value undone.
func (p xfccRaw) unquote() string {
	if !p.quoted || strings.IndexByte(p.value, '\\') < 0 {
		return p.value
	}
	var sb strings.Builder
	sb.Grow(len(p.value))
	for i := 0; i < len(p.value); i++ {
		if p.value[i] == '\\' {
			i++ // the scanner saw to it that an escape is never last
		}
		sb.WriteByte(p.value[i])
	}
	return sb.String()
}

// The keys an X-Forwarded-Client-Cert value is decoded from.
const (
	xfccOther = iota
	xfccCert
	xfccChain
	xfccHash
	xfccSubject
)

// which says which of the keys XFCC reads p's key is, regardless of ASCII case.
func (p xfccRaw) which() int {
	var b [len("subject")]byte
	if len(p.key) > len(b) {
		return xfccOther
	}
	for i := 0; i < len(p.key); i++ {
		c := p.key[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	switch string(b[:len(p.key)]) {
	case "cert":
		return xfccCert
	case "chain":
		return xfccChain
	case "hash":
		return xfccHash
	case "subject":
		return xfccSubject
	}
	return xfccOther
}

// safeBeforeLast says whether p cannot hide an element boundary: Hash unquoted, Cert, Chain and
// Subject quoted.
func (p xfccRaw) safeBeforeLast(key int) bool {
	if key == xfccHash {
		return !p.quoted
	}
	return key != xfccOther && p.quoted
}

// lowerASCII returns s with its ASCII letters in lower case.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// xfccScanner reads an X-Forwarded-Client-Cert value pair by pair, in place.
type xfccScanner struct {
	v string
	i int // the next byte to read
}

// next reads the next pair and the separator after it: ';' (the element goes on), ',' (another
// element follows) or 0 (the end of the value). The value must not be read further after an
// error or the end.
func (s *xfccScanner) next() (p xfccRaw, sep byte, err error) {
	v, i := s.v, s.i
	start := i
	for i < len(v) && v[i] != '=' && v[i] != ';' && v[i] != ',' && v[i] != '"' {
		i++
	}
	p.key = trimBlank(v[start:i])
	if i >= len(v) || v[i] != '=' || p.key == "" {
		return p, 0, fmt.Errorf("XFCC: expected key=value at byte %d", start)
	}
	i++ // '='
	p.quoted = i < len(v) && v[i] == '"'
	if p.quoted {
		i++
		vs := i
		for i < len(v) && v[i] != '"' {
			if v[i] == '\\' {
				i++
			}
			i++
		}
		if i >= len(v) {
			return p, 0, fmt.Errorf("XFCC: unterminated quoted value")
		}
		p.value = v[vs:i]
		i++ // '"'
	} else {
		vs := i
		for i < len(v) && v[i] != ';' && v[i] != ',' {
			if v[i] == '"' {
				return p, 0, fmt.Errorf("XFCC: quote inside an unquoted value at byte %d", i)
			}
			i++
		}
		p.value = v[vs:i]
	}
	if i < len(v) {
		sep = v[i]
		if sep != ';' && sep != ',' {
			return p, 0, fmt.Errorf("XFCC: unexpected %q at byte %d", sep, i)
		}
		i++
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
	}
	s.i = i
	return p, sep, nil
}

// trimBlank returns s without its leading and trailing spaces and tabs.
func trimBlank(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// maxXFCCElements bounds the elements of an X-Forwarded-Client-Cert value, one per proxy that
// appended to it: far more hops than any deployment has, and few enough that a refused value
// costs little whatever its length.
const maxXFCCElements = 16

// XFCC decodes Envoy's X-Forwarded-Client-Cert. Only the last element (the one added by the
// hop next to this service) is read, from its Chain or Cert key; Hash, when present, must
// match. Keys compare regardless of ASCII case.
//
// Envoy writes By, URI and DNS values as they are, unquoted and unescaped even when they hold
// ",", ";" or a leading quote, so a client certificate with such a SAN can make the element the
// proxy wrote look like several, the last one made up by the client. Before the last element
// only what cannot hide a boundary is allowed: Hash (hex), and quoted Cert, Chain and Subject.
// Anything else makes the boundary of the last element ambiguous: it is refused rather than
// guessed, as soon as the element that holds it ends. A value of more than 16 elements is
// refused when the 17th starts.
func XFCC(values []string) ([][]byte, error) {
	v := valueAt(values, 0)
	if v == "" {
		return nil, nil
	}
	return decodeXFCC(&xfccScanner{v: v})
}

// decodeXFCC reads the value of s no further than it must to decode or refuse it.
func decodeXFCC(s *xfccScanner) ([][]byte, error) {
	// The pairs of the element being read that the last element is decoded from, and the
	// first ones that would refuse it: a key repeated, a key not allowed before the last one.
	var keep [xfccHash + 1]xfccRaw // by key
	var seen [xfccHash + 1]bool
	var repeated, ambiguous string
	for elem := 1; ; {
		p, sep, err := s.next()
		if err != nil {
			return nil, err
		}
		k := p.which()
		if ambiguous == "" && !p.safeBeforeLast(k) {
			ambiguous = lowerASCII(p.key)
		}
		if k == xfccCert || k == xfccChain || k == xfccHash {
			if seen[k] && repeated == "" {
				repeated = lowerASCII(p.key)
			}
			seen[k], keep[k] = true, p
		}
		switch sep {
		case 0:
			if repeated != "" {
				return nil, fmt.Errorf("XFCC: key %s repeated in the last element", repeated)
			}
			return xfccLast(keep[xfccCert].unquote(), keep[xfccChain].unquote(), keep[xfccHash].unquote(), seen[xfccHash])
		case ',':
			if ambiguous != "" {
				return nil, fmt.Errorf("XFCC: a %s value in element %d, before the last element, makes its boundary ambiguous", ambiguous, elem)
			}
			if elem++; elem > maxXFCCElements {
				return nil, fmt.Errorf("XFCC: more than %d elements", maxXFCCElements)
			}
			keep, seen, repeated = [len(keep)]xfccRaw{}, [len(seen)]bool{}, ""
		}
	}
}

// xfccLast decodes the Cert, Chain and Hash values of the last element; hashSet says whether
// it has a Hash.
func xfccLast(cert, chain, hash string, hashSet bool) ([][]byte, error) {
	var ders [][]byte
	var err error
	if chain != "" {
		if ders, err = decodeURLPEM(chain); err != nil {
			return nil, fmt.Errorf("XFCC Chain: %w", err)
		}
	}
	if cert != "" {
		c, err := one(decodeURLPEM(cert))
		if err != nil {
			return nil, fmt.Errorf("XFCC Cert: %w", err)
		}
		if ders == nil {
			ders = c
		} else if !bytes.Equal(c[0], ders[0]) {
			return nil, fmt.Errorf("XFCC: Cert differs from the first certificate of Chain")
		}
	}
	if ders == nil {
		return nil, fmt.Errorf("XFCC: the last element has no Cert or Chain (enable cert details on the proxy)")
	}
	if hashSet {
		want, err := hex.DecodeString(hash)
		if err != nil || len(want) != sha256.Size {
			return nil, fmt.Errorf("XFCC: Hash is not a hex SHA-256 digest")
		}
		if sum := sha256.Sum256(ders[0]); !bytes.Equal(sum[:], want) {
			return nil, fmt.Errorf("XFCC: Hash does not match the certificate")
		}
	}
	return ders, nil
}

// xfccQuote quotes a value when it holds a character with a meaning in XFCC, or always.
func xfccQuote(v string, always bool) string {
	if !always && !strings.ContainsAny(v, `,;="\`) {
		return v
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

// EncodeXFCC returns the X-Forwarded-Client-Cert value Envoy would write for chain, leaf first
// (at least one certificate): one element with Hash, Cert, Chain, Subject, URI and DNS.
func EncodeXFCC(chain []*x509.Certificate) []string {
	leaf := chain[0]
	raw := make([][]byte, len(chain))
	for i, c := range chain {
		raw[i] = c.Raw
	}
	sum := sha256.Sum256(leaf.Raw)
	var sb strings.Builder
	sb.WriteString("Hash=" + hex.EncodeToString(sum[:]))
	sb.WriteString(`;Cert="` + percentEncode(pemEncode(raw[:1])) + `"`)
	sb.WriteString(`;Chain="` + percentEncode(pemEncode(raw)) + `"`)
	sb.WriteString(";Subject=" + xfccQuote(leaf.Subject.String(), true))
	for _, u := range leaf.URIs {
		sb.WriteString(";URI=" + xfccQuote(u.String(), false))
	}
	for _, d := range leaf.DNSNames {
		sb.WriteString(";DNS=" + xfccQuote(d, false))
	}
	return []string{sb.String()}
}
