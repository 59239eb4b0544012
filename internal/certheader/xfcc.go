package certheader

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"
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
	xfccBy
	xfccURI
	xfccDNS
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
	case "by":
		return xfccBy
	case "uri":
		return xfccURI
	case "dns":
		return xfccDNS
	}
	return xfccOther
}

// safeBeforeLast says whether p cannot hide an element boundary: Hash unquoted, Cert, Chain and
// Subject quoted.
func (p xfccRaw) safeBeforeLast(key int) bool {
	if key == xfccHash {
		return !p.quoted
	}
	return (key == xfccCert || key == xfccChain || key == xfccSubject) && p.quoted
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

// XFCCHop is what an element of X-Forwarded-Client-Cert before the client's says: the URI SANs
// of the proxy that wrote it (By), and the SHA-256 (Hash, in lower case), subject and SANs of
// the certificate that proxy's own client presented. Nothing of it is verified.
//
// Values are as written. By, URI and DNS keep any quotes: Envoy writes them as they are,
// never quoted, so a quote is part of the name. Subject is without the quotes Envoy writes
// around it, its escapes kept (Envoy escapes nothing; they are those of its RFC 2253 form).
//
// Ambiguous says that the parse cannot know where the element starts and ends, nor that its
// values are the ones its proxy wrote: an earlier element holds a By, URI or DNS value (which
// Envoy writes unquoted, so that a ",", ";" or quote in a certificate's name reads as a
// separator) or a quoted value holding a comma (which may have swallowed the start of the
// element a proxy appended after it), or the element itself holds a key after a URI or DNS
// value that Envoy writes before them. Such an element, and every one after it, may have been
// written by a client through the names of its certificate.
type XFCCHop struct {
	By        []string
	Hash      string
	Subject   string
	URI       []string
	DNS       []string
	Ambiguous bool
}

// Bounds of XFCCBy, besides maxXFCCElements.
const (
	// maxXFCCPairs bounds the key=value pairs of one element before the client's: Envoy writes
	// a By per URI SAN of its own certificate, a URI per URI SAN and a DNS per DNS SAN of its
	// client's, and four other keys. The client's element is bounded by the header's size only.
	maxXFCCPairs = 64
	// MaxXFCCHopBytes bounds the bytes of the values kept from the elements before the client's
	// (By, Hash, Subject, URI, DNS), all elements together.
	MaxXFCCHopBytes = 8 << 10
)

// XFCCBy decodes an X-Forwarded-Client-Cert value that proxies appended to hop by hop (Envoy's
// APPEND_FORWARD), as seen by the service whose own proxy writes ours as its By values: ours
// lists the values that stand for that proxy, which the caller has checked hold none of
// `,;"\`, no space or control character (see ValidXFCCBy).
//
// The last element is the client's: the one this service's proxy appended. It must start with
// a By from ours (Envoy writes a By for each URI SAN of its certificate, in order: ours must
// hold the first), and be written as Envoy writes an element: By values first, then an unquoted Hash,
// then at most one each of Cert, Chain and Subject, quoted and in that order, then URI and DNS
// values; no other key. Its Cert or Chain is decoded as [XFCC] does, and its Hash must match.
//
// Envoy writes By, URI and DNS unquoted whatever they hold. What a client can shape is the
// elements before (any peer of an APPEND_FORWARD proxy can send them) and the SANs of its
// certificate, at the end of its element. A separator in a SAN cannot make a further element
// that passes: it would need a By from ours, and a second element carrying one is refused,
// wherever it is. An earlier element that leaves a quote open swallows the start of the real
// element up to its first quote; what follows that quote (a Cert's, Chain's or Subject's
// value) does not parse, but a SAN's quote could close it where this service's proxy writes
// none of them. So, last, the client's element must start at the one place in the value as
// written where "By=" and a value of ours follow the start or a comma (then ";", "," or the
// end): where Envoy's append put it; a value that holds that text anywhere else is refused.
//
// The elements before it are returned as hops, oldest first: they must parse, carry no By
// from ours, hold at most one Hash (64 hex digits), Subject, Cert and Chain, at most 64 pairs,
// and together at most MaxXFCCHopBytes of kept values; Cert and Chain are not decoded. These
// bounds are not the client's element's: an element that starts with a By from ours is either
// the client's or refused, so it is neither counted nor kept, and its SANs are bounded by the
// size of the value only. A value of more than 16 elements is refused when the 17th starts.
//
// A SAN written unquoted can also make the element of an earlier proxy look like several, the
// later ones made up by that proxy's client (a DNS name "a,By=<the proxy's By>;URI=<anything>"),
// and an earlier element written by a client can leave a quote open that a SAN closes. The
// parse cannot know such boundaries: every hop after one whose end is uncertain is marked
// Ambiguous (see [XFCCHop]), and so is a hop holding a key after its SANs.
func XFCCBy(values, ours []string) ([][]byte, []XFCCHop, error) {
	v := valueAt(values, 0)
	if v == "" {
		return nil, nil, nil
	}
	s := xfccScanner{v: v}
	var hops []XFCCHop
	var e xfccElement
	kept, start := 0, 0 // start: where the element being read starts in v
	ambiguous := false  // the end of an element read so far is uncertain
	for elem := 1; ; {
		p, sep, err := s.next()
		if err != nil {
			return nil, nil, err
		}
		if err := e.add(p, ours, &kept); err != nil {
			return nil, nil, fmt.Errorf("XFCC element %d: %w", elem, err)
		}
		if sep == 0 {
			ders, err := e.client()
			if err == nil && !onlyAnchor(v, start, ours) {
				err = fmt.Errorf("By=<this service's By> starts another element, or this one, in the value as written")
			}
			if err != nil {
				return nil, nil, fmt.Errorf("XFCC element %d, the last: %w", elem, err)
			}
			return ders, hops, nil
		}
		if sep == ',' {
			if e.ours {
				return nil, nil, fmt.Errorf("XFCC element %d, before the last, carries this service's By", elem)
			}
			e.hop.Ambiguous = e.hop.Ambiguous || ambiguous
			ambiguous = ambiguous || e.openEnd
			hops = append(hops, e.hop)
			if elem++; elem > maxXFCCElements {
				return nil, nil, fmt.Errorf("XFCC: more than %d elements", maxXFCCElements)
			}
			e, start = xfccElement{}, s.i
		}
	}
}

// onlyAnchor says whether start is the one place in v where an element starting with By and a
// value of ours does, in the value as written: at the start of v or right after a comma, and
// with ";", "," or the end right after the value. The element this service's proxy appended
// starts so; if the parse put the client's element elsewhere (an earlier element left a quote
// open that swallowed the real start, and a quote in a SAN closed it), the two disagree.
func onlyAnchor(v string, start int, ours []string) bool {
	found := false
	for i := 0; ; i++ {
		j := strings.Index(v[i:], "By=")
		if j < 0 {
			return found
		}
		i += j
		if i > 0 && v[i-1] != ',' {
			continue
		}
		rest := v[i+len("By="):]
		for _, o := range ours {
			if strings.HasPrefix(rest, o) && (len(rest) == len(o) || rest[len(o)] == ';' || rest[len(o)] == ',') {
				if i != start {
					return false
				}
				found = true
			}
		}
	}
}

// ValidXFCCBy says what is wrong with by as a value of XFCCBy's ours, or returns "": an
// absolute URI of at most 2048 bytes (the bound of a SPIFFE ID) holding none of `,;"\`, no
// space, control character or byte beyond ASCII, so that it is written as it is and parses back
// whole.
func ValidXFCCBy(by string) string {
	if by == "" || len(by) > 2048 {
		return "want a URI of 1 to 2048 bytes"
	}
	for i := 0; i < len(by); i++ {
		if c := by[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`,;"\`, c) >= 0 {
			return fmt.Sprintf("%q holds %q, which Envoy would write unquoted", by, c)
		}
	}
	if !hasScheme(by) {
		return fmt.Sprintf("%q is not an absolute URI (such as spiffe://trust-domain/path)", by)
	}
	return ""
}

// hasScheme says whether s starts with a URI scheme and its colon (RFC 3986, section 3.1).
func hasScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return true
		default:
			return false
		}
	}
	return false
}

// xfccElement is an element of XFCCBy being read, pair by pair: what it says as a hop, and
// what decoding it as the client's needs.
type xfccElement struct {
	hop   XFCCHop
	pairs int
	ours  bool
	// clients: the first pair is a By from ours, so the element is the client's or refused; it
	// is not bounded as a hop, nor kept.
	clients bool
	// openEnd: the element holds a value that may hide where it ends (By, URI, DNS, or a quoted
	// value holding a comma).
	openEnd           bool
	sanRank           int // the highest xfccRank of a URI or DNS read so far, 0 if none
	seen              [xfccDNS + 1]bool
	cert, chain, hash xfccRaw
	rank              int    // of the last key read, in Envoy's order (xfccRank)
	notEnvoy          string // the first thing Envoy does not write, "" if none
}

// xfccRank is the order in which Envoy writes the keys of an element.
var xfccRank = [xfccDNS + 1]int{xfccBy: 1, xfccHash: 2, xfccCert: 3, xfccChain: 4, xfccSubject: 5, xfccURI: 6, xfccDNS: 7}

// add reads the pair p into e; kept counts the bytes of the hops' values so far.
func (e *xfccElement) add(p xfccRaw, ours []string, kept *int) error {
	k := p.which()
	if e.pairs == 0 {
		e.clients = k == xfccBy && slices.Contains(ours, p.value)
	}
	if e.pairs++; e.pairs > maxXFCCPairs && !e.clients {
		return fmt.Errorf("more than %d pairs", maxXFCCPairs)
	}
	e.checkOrder(p, k)
	e.checkBoundary(p, k)
	switch k {
	case xfccCert, xfccChain, xfccHash, xfccSubject:
		if e.seen[k] {
			return fmt.Errorf("key %s repeated", lowerASCII(p.key))
		}
	}
	e.seen[k] = true
	var val string
	switch k {
	case xfccCert:
		e.cert = p
		return nil
	case xfccChain:
		e.chain = p
		return nil
	case xfccHash:
		if len(p.value) != 2*sha256.Size || p.quoted || !isHex(p.value) {
			return fmt.Errorf("Hash is not a hex SHA-256 digest")
		}
		e.hash = p
		val = p.value
	case xfccSubject:
		val = p.value // Envoy escapes nothing: a Subject's escapes are those of its RFC 2253 form
	case xfccBy, xfccURI, xfccDNS:
		val = p.value
		if k == xfccBy {
			e.ours = e.ours || slices.Contains(ours, val)
		}
		if p.quoted { // Envoy quotes none of them: the quotes are the name's own
			val = `"` + val + `"`
		}
	default:
		return nil
	}
	if e.clients {
		return nil // the client's element, or refused when it ends: nothing of it is kept
	}
	if *kept += len(val); *kept > MaxXFCCHopBytes {
		return fmt.Errorf("the elements hold more than %d bytes of names", MaxXFCCHopBytes)
	}
	val = strings.Clone(val) // a hop outlives the request: keep none of the header alive
	switch k {
	case xfccBy:
		e.hop.By = append(e.hop.By, val)
	case xfccHash:
		e.hop.Hash = lowerASCII(val)
	case xfccSubject:
		e.hop.Subject = val
	case xfccURI:
		e.hop.URI = append(e.hop.URI, val)
	case xfccDNS:
		e.hop.DNS = append(e.hop.DNS, val)
	}
	return nil
}

// checkBoundary records what the pair p, of key k, says of the boundaries of e: whether its end
// is uncertain (e.openEnd), and whether a SAN may have written pairs into it (e.hop.Ambiguous:
// a key that Envoy writes before the SANs follows one, or a URI follows a DNS).
func (e *xfccElement) checkBoundary(p xfccRaw, k int) {
	san := k == xfccURI || k == xfccDNS
	if k == xfccBy || san || p.quoted && strings.IndexByte(p.value, ',') >= 0 {
		e.openEnd = true
	}
	if e.sanRank > 0 && (!san || xfccRank[k] < e.sanRank) {
		e.hop.Ambiguous = true
	}
	if san {
		e.sanRank = max(e.sanRank, xfccRank[k])
	}
}

// checkOrder records in e.notEnvoy the first way in which the pair p, of key k, departs from an
// element as Envoy writes it.
func (e *xfccElement) checkOrder(p xfccRaw, k int) {
	if e.notEnvoy != "" {
		return
	}
	r := xfccRank[k]
	quoted := k == xfccCert || k == xfccChain || k == xfccSubject
	switch {
	case k == xfccOther:
		e.notEnvoy = fmt.Sprintf("key %s is not one Envoy writes", lowerASCII(p.key))
	case e.rank == 0 && k != xfccBy:
		e.notEnvoy = fmt.Sprintf("starts with %s, not By", lowerASCII(p.key))
	case r < e.rank || r == e.rank && k != xfccBy && k != xfccURI && k != xfccDNS:
		e.notEnvoy = fmt.Sprintf("key %s out of Envoy's order (By, Hash, Cert, Chain, Subject, URI, DNS)", lowerASCII(p.key))
	case quoted && !p.quoted:
		e.notEnvoy = fmt.Sprintf("%s is not quoted", lowerASCII(p.key))
	case k == xfccBy && p.quoted:
		e.notEnvoy = "By is quoted"
	}
	e.rank = max(e.rank, r)
}

// client decodes e as the client's element.
func (e *xfccElement) client() ([][]byte, error) {
	switch {
	case !e.ours:
		return nil, fmt.Errorf("no By of this service (is its proxy's certificate's URI SAN in the configuration?)")
	case e.notEnvoy != "":
		return nil, fmt.Errorf("not as Envoy writes it: %s", e.notEnvoy)
	case !e.seen[xfccHash]:
		return nil, fmt.Errorf("no Hash")
	}
	return xfccLast(e.cert.unquote(), e.chain.unquote(), e.hash.value, true)
}

// isHex says whether s is made of hex digits only.
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
