package mtls

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// Format decodes the header or headers in which a TLS-terminating proxy forwards the client
// certificate. Implementations must be stateless and safe for concurrent use. The presets are
// returned by [HeaderFormat]; users may implement their own.
type Format interface {
	// Name identifies the format in identities ([Identity.Format]) and logs, such as "nginx".
	Name() string
	// HeaderNames returns the default header names, canonical (see [http.CanonicalHeaderKey]).
	// The first carries the leaf certificate or the whole chain; any further ones are optional
	// (such as a header carrying the intermediates).
	HeaderNames() []string
	// Decode decodes the header values: values[i] is the single value of the i-th header of
	// HeaderNames, "" when the header is absent. It returns the DER of the certificates, leaf
	// first, or (nil, nil) when the proxy says there is no certificate (an empty value, Apache's
	// "(null)", Caddy's unexpanded placeholder). A value that cannot be decoded completely is an
	// error wrapping [ErrMalformedHeader]; it is never skipped or partly used.
	Decode(values []string) ([][]byte, error)
}

// Encoder is a [Format] that can also write a certificate chain, for [Forward].
type Encoder interface {
	Format
	// Encode returns one value per header of HeaderNames for chain (leaf first, then its
	// intermediates); "" means the header is not written.
	Encode(chain []*x509.Certificate) ([]string, error)
}

// preset is a built-in Format.
type preset struct {
	name   string
	names  []string
	decode func(values []string) ([][]byte, error)
}

func (p *preset) Name() string                             { return p.name }
func (p *preset) HeaderNames() []string                    { return append([]string(nil), p.names...) }
func (p *preset) Decode(values []string) ([][]byte, error) { return p.decode(values) }

// encodingPreset is a built-in Format that Forward can write.
type encodingPreset struct {
	preset
	encode func(chain []*x509.Certificate) ([]string, error)
}

func (p *encodingPreset) Encode(chain []*x509.Certificate) ([]string, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("mtls: %s: no certificate to encode", p.name)
	}
	return p.encode(chain)
}

// listHeaders is implemented by formats whose i-th header is a structured-field list, which
// may arrive split over several field lines: they are then joined with ", " as RFC 8941
// (section 4.2) prescribes, instead of being refused as a duplicate header.
type listHeaders interface {
	listHeader(i int) bool
}

// rfc9440Preset is the rfc9440 preset: Client-Cert-Chain is a list.
type rfc9440Preset struct{ encodingPreset }

func (*rfc9440Preset) listHeader(i int) bool { return i == 1 }

// Header names of the presets, canonical.
const (
	hdrSSLClientCert   = "X-Ssl-Client-Cert"
	hdrGenericCert     = "X-Client-Cert"
	hdrGenericChain    = "X-Client-Cert-Chain"
	hdrClientCert      = "Client-Cert"
	hdrClientCertChain = "Client-Cert-Chain"
	hdrXFCC            = "X-Forwarded-Client-Cert"
)

// presets maps each preset name to its constructor.
var presets = map[string]func() Format{
	"rfc9440": func() Format {
		return &rfc9440Preset{encodingPreset{
			preset: preset{"rfc9440", []string{hdrClientCert, hdrClientCertChain}, decodeRFC9440},
			encode: encodeRFC9440,
		}}
	},
	"aws-alb": func() Format {
		return &preset{"aws-alb", []string{"X-Amzn-Mtls-Clientcert"}, leafAndChain(decodeURLPEM, nil)}
	},
	"aws-alb-verify": func() Format {
		return &preset{"aws-alb-verify", []string{"X-Amzn-Mtls-Clientcert-Leaf"}, leafAndChain(one(decodeURLPEM), nil)}
	},
	"nginx": func() Format {
		// $ssl_client_escaped_cert, or the tab-folded $ssl_client_cert (which net/http hands over
		// with the folds turned into spaces).
		return &preset{"nginx", []string{hdrSSLClientCert}, leafAndChain(one(decodeAnyPEM), nil)}
	},
	"envoy-xfcc": func() Format {
		return &encodingPreset{
			preset: preset{"envoy-xfcc", []string{hdrXFCC}, decodeXFCC},
			encode: encodeXFCC,
		}
	},
	"traefik": func() Format {
		return &preset{"traefik", []string{"X-Forwarded-Tls-Client-Cert"}, leafAndChain(decodeTraefik, nil)}
	},
	"haproxy": func() Format {
		return &preset{"haproxy", []string{hdrSSLClientCert, "X-Ssl-Client-Chain"},
			leafAndChain(one(decodeBase64DER), decodeBase64DER)}
	},
	"apache": func() Format {
		return &preset{"apache", []string{hdrSSLClientCert, "X-Ssl-Client-Chain-0", "X-Ssl-Client-Chain-1",
			"X-Ssl-Client-Chain-2", "X-Ssl-Client-Chain-3"}, decodeApache}
	},
	"caddy": func() Format {
		return &preset{"caddy", []string{hdrSSLClientCert}, leafAndChain(one(decodeCaddy), nil)}
	},
	"azure-app-service": func() Format {
		return &preset{"azure-app-service", []string{"X-Arr-Clientcert"}, leafAndChain(one(decodeBase64DER), nil)}
	},
	"cloudflare": func() Format {
		return &preset{"cloudflare", []string{"Cf-Client-Cert-Der-Base64"}, leafAndChain(one(decodeBase64DER), nil)}
	},
	"wso2": func() Format {
		return &preset{"wso2", []string{"X-Wso2-Client-Certificate"}, leafAndChain(decodeAnyPEM, nil)}
	},
	"pem": func() Format {
		return &preset{"pem", []string{hdrGenericCert, hdrGenericChain}, leafAndChain(decodeTextPEM, decodeTextPEM)}
	},
	"url-pem": func() Format {
		return &preset{"url-pem", []string{hdrGenericCert, hdrGenericChain}, leafAndChain(decodeURLPEM, decodeURLPEM)}
	},
	"base64-der": func() Format {
		return &preset{"base64-der", []string{hdrGenericCert, hdrGenericChain}, leafAndChain(decodeBase64DER, decodeBase64DER)}
	},
}

// HeaderFormat returns the preset format called name. The presets, with their default headers:
//
//   - "rfc9440": Client-Cert and Client-Cert-Chain, RFC 9440 structured-field byte sequences
//     (Google Cloud load balancers, Cloudflare transform rules). It can also be written by [Forward].
//   - "aws-alb": X-Amzn-Mtls-Clientcert, the URL-encoded PEM chain of AWS ALB passthrough mode.
//   - "aws-alb-verify": X-Amzn-Mtls-Clientcert-Leaf, the URL-encoded PEM leaf of ALB verify mode.
//   - "nginx": X-SSL-Client-Cert set to $ssl_client_escaped_cert (URL-encoded PEM), or to the
//     deprecated $ssl_client_cert (PEM folded with tabs, which arrives with spaces).
//   - "envoy-xfcc": X-Forwarded-Client-Cert; only the last element (the one added by the hop
//     next to this service) is read, from its Chain or Cert key; Hash, when present, must match.
//     Envoy leaves By, URI and DNS values unquoted whatever they hold, so a header whose earlier
//     elements hold anything but Hash and quoted Cert, Chain and Subject is ambiguous and
//     refused: the hop next to this service should replace the header (SANITIZE_SET). It can
//     also be written by [Forward].
//   - "traefik": X-Forwarded-Tls-Client-Cert, comma-separated base64 DER (also the older
//     percent-escaped form).
//   - "haproxy": X-SSL-Client-Cert set to %[ssl_c_der,base64], and optionally X-SSL-Client-Chain
//     set to %[ssl_c_chain_der,base64] (concatenated DER).
//   - "apache": X-SSL-Client-Cert set to "%{SSL_CLIENT_CERT}s" (PEM with newlines turned into
//     spaces; "(null)" means absent), optionally X-SSL-Client-Chain-0 to -3 set to
//     "%{SSL_CLIENT_CERT_CHAIN_n}s". The escaped "expr=%{escape:...}" form is accepted too.
//   - "caddy": X-SSL-Client-Cert set to {http.request.tls.client.certificate_der_base64}; the
//     unexpanded placeholder that Caddy before 2.11.2 sends without a certificate means absent.
//   - "azure-app-service": X-ARR-ClientCert, base64 DER.
//   - "cloudflare": Cf-Client-Cert-Der-Base64, base64 DER (Access certificate forwarding).
//   - "wso2": X-WSO2-CLIENT-CERTIFICATE, PEM or URL-encoded PEM.
//   - "pem", "url-pem", "base64-der": generic encodings for any header name (set
//     [HeaderConfig.Names]); defaults X-Client-Cert, and X-Client-Cert-Chain for intermediates.
//
// Percent-encoding is decoded without turning "+" into a space.
func HeaderFormat(name string) (Format, error) {
	f, ok := presets[name]
	if !ok {
		return nil, fmt.Errorf("mtls: unknown header format %q (known: %s)", name, strings.Join(HeaderFormatNames(), ", "))
	}
	return f(), nil
}

// MustHeaderFormat is like [HeaderFormat] but panics on an unknown name. It is meant for names
// written in the program, not for user input.
func MustHeaderFormat(name string) Format {
	f, err := HeaderFormat(name)
	if err != nil {
		panic(err)
	}
	return f
}

// HeaderFormatNames returns the names of the preset formats, sorted.
func HeaderFormatNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// malformed builds the error of an undecodable header value.
func malformed(format string, args ...any) error {
	return newError(ErrMalformedHeader, fmt.Sprintf(format, args...), nil)
}

// valueAt returns values[i], or "" when values is shorter, with surrounding spaces and tabs
// removed (net/http already removes them; other callers may not).
func valueAt(values []string, i int) string {
	if i >= len(values) {
		return ""
	}
	return strings.Trim(values[i], " \t")
}

// leafAndChain builds a decoder for a leaf header (values[0]) and an optional chain header
// (values[1], nil when the format has none). A chain without a leaf is refused.
func leafAndChain(leaf, chain func(string) ([][]byte, error)) func([]string) ([][]byte, error) {
	return func(values []string) ([][]byte, error) {
		v0 := valueAt(values, 0)
		v1 := ""
		if chain != nil {
			v1 = valueAt(values, 1)
		}
		if v0 == "" {
			if v1 != "" {
				return nil, malformed("a chain header without a certificate header")
			}
			return nil, nil
		}
		ders, err := leaf(v0)
		if err != nil {
			return nil, err
		}
		if ders == nil {
			if v1 != "" {
				return nil, malformed("a chain header while the certificate header says absent")
			}
			return nil, nil
		}
		if v1 != "" {
			more, err := chain(v1)
			if err != nil {
				return nil, fmt.Errorf("chain header: %w", err)
			}
			if more == nil {
				return nil, malformed("chain header says absent while the certificate header is set")
			}
			ders = append(ders, more...)
		}
		return ders, nil
	}
}

// one restricts a decoder to exactly one certificate.
func one(dec func(string) ([][]byte, error)) func(string) ([][]byte, error) {
	return func(v string) ([][]byte, error) {
		ders, err := dec(v)
		if err != nil || ders == nil {
			return ders, err
		}
		if len(ders) != 1 {
			return nil, malformed("%d certificates where one is expected", len(ders))
		}
		return ders, nil
	}
}

// --- building blocks ---

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// percentDecode decodes %XX escapes (either case). Unlike url.QueryUnescape it leaves "+" alone:
// "+" is a base64 character that several proxies do not escape.
func percentDecode(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			out = append(out, c)
			continue
		}
		if i+2 >= len(s) {
			return nil, malformed("truncated percent escape at byte %d", i)
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return nil, malformed("invalid percent escape at byte %d", i)
		}
		out = append(out, hi<<4|lo)
		i += 2
	}
	return out, nil
}

const (
	pemBegin = "-----BEGIN CERTIFICATE-----"
	pemEnd   = "-----END CERTIFICATE-----"
)

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func trimSpaceBytes(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// decodePEMBlocks decodes one or more CERTIFICATE blocks whose line breaks may have become
// spaces or tabs on the way. Nothing but whitespace may surround the blocks, and a block body
// must be base64 only (no PEM headers).
func decodePEMBlocks(b []byte) ([][]byte, error) {
	var ders [][]byte
	rest := trimSpaceBytes(b)
	for len(rest) > 0 {
		if !bytes.HasPrefix(rest, []byte(pemBegin)) {
			if len(ders) == 0 {
				return nil, malformed("value does not start with %q", pemBegin)
			}
			return nil, malformed("trailing data after certificate %d", len(ders))
		}
		rest = rest[len(pemBegin):]
		end := bytes.Index(rest, []byte(pemEnd))
		if end < 0 {
			return nil, malformed("certificate %d has no END line", len(ders)+1)
		}
		body := make([]byte, 0, end)
		for _, c := range rest[:end] {
			if !isSpace(c) {
				body = append(body, c)
			}
		}
		der := make([]byte, base64.StdEncoding.DecodedLen(len(body)))
		n, err := base64.StdEncoding.Decode(der, body)
		if err != nil || n == 0 {
			return nil, newError(ErrMalformedHeader, fmt.Sprintf("certificate %d: bad base64", len(ders)+1), err)
		}
		if d, err := splitDER(der[:n]); err != nil || len(d) != 1 {
			return nil, malformed("certificate %d: not a single DER certificate", len(ders)+1)
		}
		ders = append(ders, der[:n])
		rest = trimSpaceBytes(rest[end+len(pemEnd):])
	}
	if len(ders) == 0 {
		return nil, malformed("no certificate")
	}
	return ders, nil
}

// decodeTextPEM decodes PEM text (line breaks possibly turned into spaces).
func decodeTextPEM(v string) ([][]byte, error) { return decodePEMBlocks([]byte(v)) }

// decodeURLPEM decodes percent-encoded PEM.
func decodeURLPEM(v string) ([][]byte, error) {
	b, err := percentDecode(v)
	if err != nil {
		return nil, err
	}
	return decodePEMBlocks(b)
}

// decodeAnyPEM decodes percent-encoded PEM or PEM text, told apart by the first line.
func decodeAnyPEM(v string) ([][]byte, error) {
	if strings.HasPrefix(v, pemBegin) {
		return decodeTextPEM(v)
	}
	return decodeURLPEM(v)
}

// splitDER splits concatenated DER certificates by their outer SEQUENCE lengths.
func splitDER(b []byte) ([][]byte, error) {
	var ders [][]byte
	for len(b) > 0 {
		if len(b) < 2 || b[0] != 0x30 {
			return nil, malformed("DER certificate %d: not a SEQUENCE", len(ders)+1)
		}
		hdr, n := 2, int(b[1])
		if b[1]&0x80 != 0 {
			k := int(b[1] & 0x7f)
			if k == 0 || k > 3 || len(b) < 2+k {
				return nil, malformed("DER certificate %d: bad length", len(ders)+1)
			}
			n = 0
			for _, c := range b[2 : 2+k] {
				n = n<<8 | int(c)
			}
			hdr += k
		}
		if n > len(b)-hdr {
			return nil, malformed("DER certificate %d: truncated", len(ders)+1)
		}
		ders = append(ders, b[:hdr+n])
		b = b[hdr+n:]
	}
	if len(ders) == 0 {
		return nil, malformed("no certificate")
	}
	return ders, nil
}

// decodeBase64 decodes standard base64, padded (or unpadded when pad is false).
func decodeBase64(v string, padOptional bool) ([]byte, error) {
	enc := base64.StdEncoding
	if padOptional && len(v)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	if strings.ContainsAny(v, "\r\n") {
		return nil, malformed("line break in base64")
	}
	b, err := enc.DecodeString(v)
	if err != nil {
		return nil, newError(ErrMalformedHeader, "bad base64", err)
	}
	return b, nil
}

// decodeBase64DER decodes base64 of one or more concatenated DER certificates.
func decodeBase64DER(v string) ([][]byte, error) {
	b, err := decodeBase64(v, false)
	if err != nil {
		return nil, err
	}
	return splitDER(b)
}

// --- rfc9440 ---

// sfByteSequence decodes one RFC 8941 byte sequence (":base64:") with nothing around it.
// Parameters are not defined by RFC 9440 and are refused.
func sfByteSequence(v string) ([]byte, error) {
	if len(v) < 2 || v[0] != ':' {
		return nil, malformed("not a structured-field byte sequence")
	}
	end := strings.IndexByte(v[1:], ':')
	if end < 0 {
		return nil, malformed("byte sequence without closing colon")
	}
	if rest := v[end+2:]; rest != "" {
		return nil, malformed("unexpected data after byte sequence")
	}
	inner := v[1 : end+1]
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return nil, malformed("invalid character in byte sequence")
		}
	}
	b, err := decodeBase64(inner, true)
	if err != nil {
		return nil, err
	}
	if d, err := splitDER(b); err != nil || len(d) != 1 {
		return nil, malformed("byte sequence is not a single DER certificate")
	}
	return b, nil
}

func decodeRFC9440(values []string) ([][]byte, error) {
	leaf, chain := valueAt(values, 0), valueAt(values, 1)
	if leaf == "" {
		if chain != "" {
			return nil, malformed("Client-Cert-Chain without Client-Cert")
		}
		return nil, nil
	}
	der, err := sfByteSequence(leaf)
	if err != nil {
		return nil, fmt.Errorf("Client-Cert: %w", err)
	}
	ders := [][]byte{der}
	if chain == "" {
		return ders, nil
	}
	for i, member := range strings.Split(chain, ",") {
		b, err := sfByteSequence(strings.Trim(member, " \t"))
		if err != nil {
			return nil, fmt.Errorf("Client-Cert-Chain member %d: %w", i+1, err)
		}
		ders = append(ders, b)
	}
	return ders, nil
}

func sfEncode(c *x509.Certificate) string {
	return ":" + base64.StdEncoding.EncodeToString(c.Raw) + ":"
}

func encodeRFC9440(chain []*x509.Certificate) ([]string, error) {
	var members []string
	for _, c := range chain[1:] {
		members = append(members, sfEncode(c))
	}
	return []string{sfEncode(chain[0]), strings.Join(members, ", ")}, nil
}

// --- traefik ---

func decodeTraefik(v string) ([][]byte, error) {
	var ders [][]byte
	for i, part := range strings.Split(v, ",") {
		part = strings.Trim(part, " \t")
		if part == "" {
			return nil, malformed("empty element %d", i+1)
		}
		if strings.IndexByte(part, '%') >= 0 {
			b, err := percentDecode(part)
			if err != nil {
				return nil, err
			}
			part = string(b)
		}
		b, err := decodeBase64(part, false)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i+1, err)
		}
		d, err := splitDER(b)
		if err != nil {
			return nil, fmt.Errorf("element %d: %w", i+1, err)
		}
		if len(d) != 1 {
			return nil, malformed("element %d holds %d certificates", i+1, len(d))
		}
		ders = append(ders, d[0])
	}
	return ders, nil
}

// --- apache ---

// apacheValue decodes one Apache value: "(null)" or empty is absent; PEM with spaces for line
// breaks, or the percent-escaped form of "expr=%{escape:...}".
func apacheValue(v string) ([][]byte, error) {
	if v == "" || v == "(null)" {
		return nil, nil
	}
	return one(decodeAnyPEM)(v)
}

func decodeApache(values []string) ([][]byte, error) {
	leaf, err := apacheValue(valueAt(values, 0))
	if err != nil {
		return nil, err
	}
	var ders [][]byte
	if leaf != nil {
		ders = append(ders, leaf[0])
	}
	gap := false
	for i := 1; i < len(values); i++ {
		c, err := apacheValue(valueAt(values, i))
		if err != nil {
			return nil, fmt.Errorf("chain header %d: %w", i-1, err)
		}
		if c == nil {
			gap = true
			continue
		}
		if leaf == nil {
			return nil, malformed("a chain header without a certificate header")
		}
		if gap {
			return nil, malformed("chain header %d set after an absent one", i-1)
		}
		ders = append(ders, c[0])
	}
	return ders, nil
}

// --- caddy ---

func decodeCaddy(v string) ([][]byte, error) {
	if strings.HasPrefix(v, "{http.request.tls.client.") && strings.HasSuffix(v, "}") {
		return nil, nil // Caddy < 2.11.2 leaves the placeholder when there is no certificate
	}
	return decodeBase64DER(v)
}

// --- envoy-xfcc ---

// xfccPair is one key=value of an XFCC element, the value unquoted; quoted says whether it was
// written in double quotes.
type xfccPair struct {
	key, value string
	quoted     bool
}

// parseXFCC parses a whole XFCC header value into elements. Values may be double-quoted (then
// `\` escapes the next character); unquoted values end at ";" or ",". Any syntax error fails the
// whole header: the elements added by earlier hops must not be able to shift the boundary of
// the last one.
func parseXFCC(v string) ([][]xfccPair, error) {
	var elems [][]xfccPair
	var cur []xfccPair
	i := 0
	for {
		// key
		start := i
		for i < len(v) && v[i] != '=' && v[i] != ';' && v[i] != ',' && v[i] != '"' {
			i++
		}
		key := strings.Trim(v[start:i], " \t")
		if i >= len(v) || v[i] != '=' || key == "" {
			return nil, malformed("XFCC: expected key=value at byte %d", start)
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
				return nil, malformed("XFCC: unterminated quoted value")
			}
			val = sb.String()
		} else {
			s := i
			for i < len(v) && v[i] != ';' && v[i] != ',' {
				if v[i] == '"' {
					return nil, malformed("XFCC: quote inside an unquoted value at byte %d", i)
				}
				i++
			}
			val = v[s:i]
		}
		cur = append(cur, xfccPair{strings.ToLower(key), val, quoted})
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
			return nil, malformed("XFCC: unexpected %q at byte %d", v[i], i)
		}
		i++
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
	}
}

func decodeXFCC(values []string) ([][]byte, error) {
	v := valueAt(values, 0)
	if v == "" {
		return nil, nil
	}
	elems, err := parseXFCC(v)
	if err != nil {
		return nil, err
	}
	// Envoy writes By, URI and DNS values as they are, unquoted and unescaped even when they hold
	// ",", ";" or a leading quote, so a client certificate with such a SAN can make the element
	// the proxy wrote look like several, the last one made up by the client. Before the last
	// element only what cannot hide a boundary is allowed: Hash (hex), and quoted Cert, Chain and
	// Subject. Anything else makes the boundary of the last element ambiguous: refuse rather
	// than guess.
	for _, e := range elems[:len(elems)-1] {
		for _, p := range e {
			switch {
			case p.key == "hash" && !p.quoted:
			case (p.key == "cert" || p.key == "chain" || p.key == "subject") && p.quoted:
			default:
				return nil, malformed("XFCC: a %s value before the last element makes its boundary ambiguous", p.key)
			}
		}
	}
	last := elems[len(elems)-1]
	var cert, chain, hash string
	var seen [3]bool
	for _, p := range last {
		var dst *string
		var k int
		switch p.key {
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
			return nil, malformed("XFCC: key %s repeated in the last element", p.key)
		}
		seen[k], *dst = true, p.value
	}
	var ders [][]byte
	switch {
	case chain != "":
		if ders, err = decodeURLPEM(chain); err != nil {
			return nil, fmt.Errorf("XFCC Chain: %w", err)
		}
		if cert != "" {
			c, err := one(decodeURLPEM)(cert)
			if err != nil {
				return nil, fmt.Errorf("XFCC Cert: %w", err)
			}
			if !bytes.Equal(c[0], ders[0]) {
				return nil, malformed("XFCC: Cert differs from the first certificate of Chain")
			}
		}
	case cert != "":
		if ders, err = one(decodeURLPEM)(cert); err != nil {
			return nil, fmt.Errorf("XFCC Cert: %w", err)
		}
	default:
		return nil, malformed("XFCC: the last element has no Cert or Chain (enable cert details on the proxy)")
	}
	if seen[2] {
		want, err := hex.DecodeString(hash)
		if err != nil || len(want) != sha256.Size {
			return nil, malformed("XFCC: Hash is not a hex SHA-256 digest")
		}
		if sum := sha256.Sum256(ders[0]); !bytes.Equal(sum[:], want) {
			return nil, malformed("XFCC: Hash does not match the certificate")
		}
	}
	return ders, nil
}

// urlEscapePEM percent-encodes PEM of certs, keeping only RFC 3986 unreserved characters.
func urlEscapePEM(certs []*x509.Certificate) string {
	const hexDigits = "0123456789ABCDEF"
	var sb strings.Builder
	for _, c := range certs {
		pemText := pemBegin + "\n" + wrap64(base64.StdEncoding.EncodeToString(c.Raw)) + pemEnd + "\n"
		for i := 0; i < len(pemText); i++ {
			b := pemText[i]
			if b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-' || b == '.' || b == '_' || b == '~' {
				sb.WriteByte(b)
				continue
			}
			sb.WriteByte('%')
			sb.WriteByte(hexDigits[b>>4])
			sb.WriteByte(hexDigits[b&15])
		}
	}
	return sb.String()
}

func wrap64(s string) string {
	var sb strings.Builder
	for len(s) > 64 {
		sb.WriteString(s[:64])
		sb.WriteByte('\n')
		s = s[64:]
	}
	sb.WriteString(s)
	sb.WriteByte('\n')
	return sb.String()
}

// xfccQuote quotes a value when it holds a character with a meaning in XFCC.
func xfccQuote(v string, always bool) string {
	if !always && !strings.ContainsAny(v, `,;="\`) {
		return v
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

func encodeXFCC(chain []*x509.Certificate) ([]string, error) {
	leaf := chain[0]
	sum := sha256.Sum256(leaf.Raw)
	var sb strings.Builder
	sb.WriteString("Hash=" + hex.EncodeToString(sum[:]))
	sb.WriteString(`;Cert="` + urlEscapePEM(chain[:1]) + `"`)
	sb.WriteString(`;Chain="` + urlEscapePEM(chain) + `"`)
	sb.WriteString(";Subject=" + xfccQuote(leaf.Subject.String(), true))
	for _, u := range leaf.URIs {
		sb.WriteString(";URI=" + xfccQuote(u.String(), false))
	}
	for _, d := range leaf.DNSNames {
		sb.WriteString(";DNS=" + xfccQuote(d, false))
	}
	return []string{sb.String()}, nil
}

// canonicalNames checks header names and returns them canonical.
func canonicalNames(names []string) ([]string, error) {
	out := make([]string, len(names))
	seen := map[string]bool{}
	for i, n := range names {
		if n == "" || strings.ContainsAny(n, " \t\r\n:") {
			return nil, fmt.Errorf("mtls: invalid header name %q", n)
		}
		c := http.CanonicalHeaderKey(n)
		if seen[c] {
			return nil, fmt.Errorf("mtls: header name %q given twice", n)
		}
		seen[c], out[i] = true, c
	}
	return out, nil
}
