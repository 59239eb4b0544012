package certheader

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
)

// XFCCPair is one key=value of an element of X-Forwarded-Client-Cert: Key in lower case, Value
// unquoted; Quoted says whether it was written in double quotes.
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
	i := 0
	for {
		// key
		start := i
		for i < len(v) && v[i] != '=' && v[i] != ';' && v[i] != ',' && v[i] != '"' {
			i++
		}
		key := strings.Trim(v[start:i], " \t")
		if i >= len(v) || v[i] != '=' || key == "" {
			return nil, fmt.Errorf("XFCC: expected key=value at byte %d", start)
		}
		i++ // '='
		var val string
		quoted := i < len(v) && v[i] == '"'
		if quoted {
			var sb strings.Builder
			i++
			closed := false
			for i < len(v) {
				c := v[i]
				if c == '\\' {
					if i+1 >= len(v) {
						break
					}
					sb.WriteByte(v[i+1])
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				sb.WriteByte(c)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("XFCC: unterminated quoted value")
			}
			val = sb.String()
		} else {
			s := i
			for i < len(v) && v[i] != ';' && v[i] != ',' {
				if v[i] == '"' {
					return nil, fmt.Errorf("XFCC: quote inside an unquoted value at byte %d", i)
				}
				i++
			}
			val = v[s:i]
		}
		cur = append(cur, XFCCPair{strings.ToLower(key), val, quoted})
		if i >= len(v) {
			elems = append(elems, cur)
			return elems, nil
		}
		switch v[i] {
		case ';':
		case ',':
			elems = append(elems, cur)
			cur = nil
		default:
			return nil, fmt.Errorf("XFCC: unexpected %q at byte %d", v[i], i)
		}
		i++
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
	}
}

// XFCC decodes Envoy's X-Forwarded-Client-Cert. Only the last element (the one added by the
// hop next to this service) is read, from its Chain or Cert key; Hash, when present, must
// match.
//
// Envoy writes By, URI and DNS values as they are, unquoted and unescaped even when they hold
// ",", ";" or a leading quote, so a client certificate with such a SAN can make the element the
// proxy wrote look like several, the last one made up by the client. Before the last element
// only what cannot hide a boundary is allowed: Hash (hex), and quoted Cert, Chain and Subject.
// Anything else makes the boundary of the last element ambiguous: it is refused rather than
// guessed.
func XFCC(values []string) ([][]byte, error) {
	v := valueAt(values, 0)
	if v == "" {
		return nil, nil
	}
	elems, err := ParseXFCC(v)
	if err != nil {
		return nil, err
	}
	for _, e := range elems[:len(elems)-1] {
		for _, p := range e {
			switch {
			case p.Key == "hash" && !p.Quoted:
			case (p.Key == "cert" || p.Key == "chain" || p.Key == "subject") && p.Quoted:
			default:
				return nil, fmt.Errorf("XFCC: a %s value before the last element makes its boundary ambiguous", p.Key)
			}
		}
	}
	var cert, chain, hash string
	var seen [3]bool
	for _, p := range elems[len(elems)-1] {
		var dst *string
		var k int
		switch p.Key {
		case "cert":
			dst, k = &cert, 0
		case "chain":
			dst, k = &chain, 1
		case "hash":
			dst, k = &hash, 2
		default:
			continue
		}
		if seen[k] {
			return nil, fmt.Errorf("XFCC: key %s repeated in the last element", p.Key)
		}
		seen[k], *dst = true, p.Value
	}
	var ders [][]byte
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
	if seen[2] {
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
