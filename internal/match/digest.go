package match

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

var hexSeparators = strings.NewReplacer(":", "", " ", "")

// ParseDigest decodes a hexadecimal digest of n bytes; case, colons and spaces are ignored.
func ParseDigest(s string, n int) ([]byte, error) {
	clean := hexSeparators.Replace(s)
	if len(clean) != 2*n {
		return nil, fmt.Errorf("not %d hexadecimal digits", 2*n)
	}
	return decodeHex(clean)
}

// ParseHex decodes non-empty hexadecimal bytes; case, colons and spaces are ignored.
func ParseHex(s string) ([]byte, error) {
	b, err := decodeHex(hexSeparators.Replace(s))
	if err == nil && len(b) == 0 {
		return nil, errNotHex
	}
	return b, err
}

var errNotHex = errors.New("not hexadecimal")

func decodeHex(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, errNotHex
	}
	return b, nil
}

// ParseSHA256Pin decodes a SHA-256 digest written in hexadecimal (as ParseDigest reads it) or in
// base64, padded or not, standard or URL-safe (as Envoy's verify_certificate_spki and HPKP write
// it).
func ParseSHA256Pin(s string) ([]byte, error) {
	if b, err := ParseDigest(s, 32); err == nil {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("not a SHA-256 digest in hexadecimal or base64")
}
