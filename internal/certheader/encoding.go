package certheader

import (
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// The encodings the formats are built from: percent-encoding, PEM whose line breaks may have
// been turned into spaces, base64 of DER, and comma-separated lists.

// percentDecode decodes %XX escapes (either case). Unlike url.QueryUnescape it leaves "+" alone:
// "+" is a base64 character that several proxies do not escape.
func percentDecode(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) {
				return "", fmt.Errorf("truncated percent escape at byte %d", i)
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("invalid percent escape at byte %d", i)
			}
			c = hi<<4 | lo
			i += 2
		}
		b = append(b, c)
	}
	return string(b), nil
}

// unhex returns the value of a hexadecimal digit (either case).
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

// percentEncode escapes every byte of s but the RFC 3986 unreserved characters.
func percentEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			sb.WriteByte(c)
			continue
		}
		sb.WriteByte('%')
		sb.WriteByte(hexDigits[c>>4])
		sb.WriteByte(hexDigits[c&15])
	}
	return sb.String()
}

// errNoCertificate is the error of a value that should hold certificates and holds none.
var errNoCertificate = errors.New("no certificate")

const (
	pemBegin = "-----BEGIN CERTIFICATE-----"
	pemEnd   = "-----END CERTIFICATE-----"
)

// pemEncode returns the PEM text of the DER certificates.
func pemEncode(ders [][]byte) string {
	var b []byte
	for _, der := range ders {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return string(b)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func trimSpace(s string) string {
	for len(s) > 0 && isSpace(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// removeSpace returns s without its spaces, tabs and line breaks.
func removeSpace(s string) string {
	var b []byte
	run := 0 // s[run:i] holds no space
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) {
			if b == nil {
				b = make([]byte, 0, len(s))
			}
			b = append(b, s[run:i]...)
			run = i + 1
		}
	}
	if b == nil {
		return s
	}
	return string(append(b, s[run:]...))
}

// decodePEMBlocks decodes one or more CERTIFICATE blocks whose line breaks may have become
// spaces or tabs on the way. Nothing but whitespace may surround the blocks, and a block body
// must be base64 only (no PEM headers).
func decodePEMBlocks(s string) ([][]byte, error) {
	var ders [][]byte
	rest := trimSpace(s)
	for len(rest) > 0 {
		if len(ders) == MaxCertificates {
			return nil, errTooMany
		}
		if !strings.HasPrefix(rest, pemBegin) {
			if len(ders) == 0 {
				return nil, fmt.Errorf("value does not start with %q", pemBegin)
			}
			return nil, fmt.Errorf("trailing data after certificate %d", len(ders))
		}
		rest = rest[len(pemBegin):]
		end := strings.Index(rest, pemEnd)
		if end < 0 {
			return nil, fmt.Errorf("certificate %d has no END line", len(ders)+1)
		}
		der, err := decodeOneDER(removeSpace(rest[:end]), false)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(ders)+1, err)
		}
		ders = append(ders, der)
		rest = trimSpace(rest[end+len(pemEnd):])
	}
	if len(ders) == 0 {
		return nil, errNoCertificate
	}
	return ders, nil
}

// decodeURLPEM decodes percent-encoded PEM.
func decodeURLPEM(v string) ([][]byte, error) {
	s, err := percentDecode(v)
	if err != nil {
		return nil, err
	}
	return decodePEMBlocks(s)
}

// decodeAnyPEM decodes percent-encoded PEM or PEM text, told apart by the first line.
func decodeAnyPEM(v string) ([][]byte, error) {
	if strings.HasPrefix(v, pemBegin) {
		return decodePEMBlocks(v)
	}
	return decodeURLPEM(v)
}

// splitDER splits concatenated DER certificates by their outer SEQUENCE lengths.
func splitDER(b []byte) ([][]byte, error) {
	var ders [][]byte
	for len(b) > 0 {
		if len(ders) == MaxCertificates {
			return nil, errTooMany
		}
		if len(b) < 2 || b[0] != 0x30 {
			return nil, fmt.Errorf("DER certificate %d: not a SEQUENCE", len(ders)+1)
		}
		hdr, n := 2, int(b[1])
		if b[1]&0x80 != 0 {
			k := int(b[1] & 0x7f)
			if k == 0 || k > 3 || len(b) < 2+k {
				return nil, fmt.Errorf("DER certificate %d: bad length", len(ders)+1)
			}
			n = 0
			for _, c := range b[2 : 2+k] {
				n = n<<8 | int(c)
			}
			hdr += k
		}
		if n > len(b)-hdr {
			return nil, fmt.Errorf("DER certificate %d: truncated", len(ders)+1)
		}
		ders = append(ders, b[:hdr+n])
		b = b[hdr+n:]
	}
	if len(ders) == 0 {
		return nil, errNoCertificate
	}
	return ders, nil
}

// decodeBase64 decodes standard base64, padded, or unpadded too when padOptional is set.
func decodeBase64(v string, padOptional bool) ([]byte, error) {
	enc := base64.StdEncoding
	if padOptional && len(v)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	if strings.ContainsAny(v, "\r\n") {
		return nil, fmt.Errorf("line break in base64")
	}
	b, err := enc.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("bad base64: %w", err)
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

// decodeOneDER decodes base64 of exactly one DER certificate.
func decodeOneDER(v string, padOptional bool) ([]byte, error) {
	b, err := decodeBase64(v, padOptional)
	if err != nil {
		return nil, err
	}
	ders, err := one(splitDER(b))
	if err != nil {
		return nil, err
	}
	return ders[0], nil
}

// one restricts the outcome of a decoder to exactly one certificate; absent stays absent.
func one(ders [][]byte, err error) ([][]byte, error) {
	if err == nil && ders != nil && len(ders) != 1 {
		return nil, fmt.Errorf("%d certificates where one is expected", len(ders))
	}
	return ders, err
}

// decodeList decodes a comma-separated list of certificates, each element trimmed of spaces
// and tabs and decoded by elem. An empty element is refused, and so is a list of more than
// MaxCertificates elements, before any is decoded.
func decodeList(v string, elem func(string) ([]byte, error)) ([][]byte, error) {
	n := strings.Count(v, ",") + 1
	if n > MaxCertificates {
		return nil, errTooMany
	}
	ders := make([][]byte, n)
	for i := range ders {
		e, rest, _ := strings.Cut(v, ",")
		v = rest
		if e = strings.Trim(e, " \t"); e == "" {
			return nil, fmt.Errorf("empty list element %d", i+1)
		}
		der, err := elem(e)
		if err != nil {
			return nil, fmt.Errorf("list element %d: %w", i+1, err)
		}
		ders[i] = der
	}
	return ders, nil
}
