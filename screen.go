package mtls

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// screenLimits bounds what presented certificates may hold. They are checked before any
// signature, so that what a client sends cannot make a refusal expensive: a huge RSA modulus or
// exponent makes one signature check cost as much as thousands of ordinary ones, and several
// candidate issuers of one name make chain building try each of them. The key bounds apply to
// configured CAs too (screenKey, at New, Reload and verification), so that no accepted chain
// rests on a key weaker than a client may present.
type screenLimits struct {
	maxDER         int // bytes of the leaf's DER encoding
	maxCADER       int // bytes of a presented CA certificate's DER encoding, hashed on every check
	maxExtensions  int // extensions of one certificate, parsed one by one
	minRSABits     int // RSA modulus size
	maxRSABits     int
	maxRSAExponent int // RSA public exponent, which must also be odd and at least 3
	maxPerSubject  int // presented CA candidates (the certificates after the leaf) of one subject
}

// defaultScreenLimits are the bounds in force. 16 KiB holds a certificate with hundreds of
// names, 8 KiB any CA certificate in use, 64 extensions several times what certificates carry;
// RSA keys below 2048 bits are too weak to accept, and 8192 bits is crypto/tls's own cap on peer
// keys; 65537 is the exponent every CA uses; three candidates of one name allow for an
// intermediate cross-signed during a root transition (one copy per issuer, same subject and key)
// or renewed under its name (a self-issued certificate of the new key) beside the one it replaces.
var defaultScreenLimits = screenLimits{
	maxDER:         16 << 10,
	maxCADER:       8 << 10,
	maxExtensions:  64,
	minRSABits:     2048,
	maxRSABits:     8192,
	maxRSAExponent: 65537,
	maxPerSubject:  3,
}

// screen says which bound of l the presented chain (leaf first) exceeds, or "" when it is within
// all of them. It only reads the certificates: no signature is checked.
func screen(presented []*x509.Certificate, l screenLimits) string {
	for i, c := range presented {
		d := screenKey(c, l)
		if d == "" {
			d = screenDER(c.Raw, i, l)
		}
		if d != "" {
			return fmt.Sprintf("presented certificate %d: %s", i+1, d)
		}
	}
	// The candidates are the certificates after the leaf. Copies of one CA (the same subject and
	// key under different issuers, or the same certificate twice) count like any other candidate
	// of the name: chain building tries each of them.
	for i := 1; i < len(presented); i++ {
		c, same := presented[i], 1
		for j := 1; j < i; j++ {
			if bytes.Equal(c.RawSubject, presented[j].RawSubject) {
				same++
			}
		}
		if same > l.maxPerSubject {
			return fmt.Sprintf("%d presented certificates share the subject %q, at most %d allowed", same, clip(c.Subject.String()), l.maxPerSubject)
		}
	}
	return ""
}

// screenDER checks what can be checked of the DER of the certificate at position i (0: the leaf)
// before it is parsed, since parsing costs grow with them: its size, and the number of its
// extensions. DER that cannot be walked is left to the parser to refuse.
func screenDER(der []byte, i int, l screenLimits) string {
	max := l.maxDER
	if i > 0 {
		max = l.maxCADER
	}
	if len(der) > max {
		return fmt.Sprintf("%d bytes, at most %d allowed", len(der), max)
	}
	if n := countExtensions(der); n > l.maxExtensions {
		return fmt.Sprintf("%d extensions, at most %d allowed", n, l.maxExtensions)
	}
	return ""
}

// countExtensions returns the number of extensions in a certificate's DER, or 0 when the DER is
// not a certificate (the parser says why).
func countExtensions(der []byte) int {
	input := cryptobyte.String(der)
	var cert, tbs cryptobyte.String
	if !input.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return 0
	}
	// version [0], serial, signature, issuer, validity, subject, subjectPublicKeyInfo,
	// issuerUniqueID [1], subjectUniqueID [2]: skipped; extensions [3].
	if !tbs.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return 0
	}
	for range 6 {
		if !tbs.SkipASN1(peekTag(tbs)) {
			return 0
		}
	}
	if !tbs.SkipOptionalASN1(cbasn1.Tag(1).ContextSpecific()) || !tbs.SkipOptionalASN1(cbasn1.Tag(2).ContextSpecific()) {
		return 0
	}
	var wrapped, exts cryptobyte.String
	var present bool
	if !tbs.ReadOptionalASN1(&wrapped, &present, cbasn1.Tag(3).Constructed().ContextSpecific()) || !present ||
		!wrapped.ReadASN1(&exts, cbasn1.SEQUENCE) {
		return 0
	}
	n := 0
	for !exts.Empty() && exts.SkipASN1(cbasn1.SEQUENCE) {
		n++
	}
	return n
}

// peekTag returns the tag of the next element of s.
func peekTag(s cryptobyte.String) cbasn1.Tag {
	if len(s) == 0 {
		return 0
	}
	return cbasn1.Tag(s[0])
}

// screenKey checks one certificate's public key: the rule for presented and configured keys alike.
func screenKey(c *x509.Certificate, l screenLimits) string {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < l.minRSABits || n > l.maxRSABits {
			return fmt.Sprintf("RSA modulus of %d bits, %d to %d allowed", n, l.minRSABits, l.maxRSABits)
		}
		if k.E < 3 || k.E%2 == 0 || k.E > l.maxRSAExponent {
			return fmt.Sprintf("RSA public exponent %d, an odd number from 3 to %d allowed", k.E, l.maxRSAExponent)
		}
	case *ecdsa.PublicKey:
		// x509 also parses P-224 keys, of about 112-bit strength: below the floor, as RSA keys
		// below 2048 bits are.
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return fmt.Sprintf("ECDSA key on curve %s, only P-256, P-384 and P-521 allowed", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Sprintf("unsupported public key algorithm %v", c.PublicKeyAlgorithm)
	}
	return ""
}
