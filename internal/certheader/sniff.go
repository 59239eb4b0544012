package certheader

import "strings"

// Encoding is what a header value looks like by its first bytes (see [Sniff]): the encodings the
// formats are built from, told apart for a refusal's detail, never to decode.
type Encoding int

const (
	// EncUnknown: none of the others, or too short to tell.
	EncUnknown Encoding = iota
	// EncPEMText: "-----BEGIN CERTIFICATE-----", its line breaks kept or turned into spaces.
	EncPEMText
	// EncURLPEM: PEM text percent-encoded, as nginx's $ssl_client_escaped_cert and AWS ALB send it.
	EncURLPEM
	// EncBase64DER: base64 of a DER certificate ("MII..."), as HAProxy and Caddy send it.
	EncBase64DER
	// EncSFBinary: an RFC 8941 byte sequence of one (":MII...:"), as RFC 9440 has it.
	EncSFBinary
	// EncXFCC: the key=value pairs of Envoy's X-Forwarded-Client-Cert.
	EncXFCC
)

// SniffPrefix bounds the bytes of a value that [Sniff] reads.
const SniffPrefix = 64

// Sniff says what v looks like from its first SniffPrefix bytes at most (after spaces and tabs),
// whatever its length: its cost is bounded.
func Sniff(v string) Encoding {
	v = strings.TrimLeft(v[:min(len(v), SniffPrefix)], " \t")
	switch {
	case strings.HasPrefix(v, pemBegin):
		return EncPEMText
	case strings.HasPrefix(v, ":MI") && base64Prefix(v[1:]):
		return EncSFBinary
	case strings.HasPrefix(v, "MI") && base64Prefix(v):
		return EncBase64DER
	case xfccKeyPrefix(v):
		return EncXFCC
	}
	if strings.IndexByte(v, '%') < 0 {
		return EncUnknown
	}
	if i := strings.LastIndexByte(v, '%'); i > len(v)-3 {
		v = v[:i] // an escape cut by the bound
	}
	if s, err := percentDecode(v); err == nil && strings.HasPrefix(s, pemBegin) {
		return EncURLPEM
	}
	return EncUnknown
}

// base64Prefix says whether v starts with at least 8 bytes of the base64 alphabet, up to its end,
// a list's comma, an escape or padding: the start of a DER certificate in base64.
func base64Prefix(v string) bool {
	n := 0
	for ; n < len(v); n++ {
		c := v[n]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			break
		}
	}
	return n >= 8 && (n == len(v) || strings.IndexByte(",:%=", v[n]) >= 0)
}

// xfccKeyPrefix says whether v starts with a key of an X-Forwarded-Client-Cert element and "=".
func xfccKeyPrefix(v string) bool {
	key, _, ok := strings.Cut(v, "=")
	if !ok {
		return false
	}
	for _, k := range []string{"By", "Hash", "Cert", "Chain", "Subject", "URI", "DNS"} {
		if strings.EqualFold(key, k) {
			return true
		}
	}
	return false
}
