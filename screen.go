package mtls

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
)

// screenLimits bounds what presented certificates may hold. They are checked before any
// signature, so that what a client sends cannot make a refusal expensive: a huge RSA modulus or
// exponent makes one signature check cost as much as thousands of ordinary ones, and several
// candidate issuers of one name make chain building try each of them (and each ordering of
// them, when they share a key).
type screenLimits struct {
	maxDER         int // bytes of one certificate's DER encoding
	minRSABits     int // RSA modulus size
	maxRSABits     int
	maxRSAExponent int // RSA public exponent, which must also be odd and at least 3
	maxPerSubject  int // presented CA candidates (the certificates after the leaf) of one subject
}

// defaultScreenLimits are the bounds in force. 16 KiB holds a certificate with hundreds of
// names; RSA keys below 2048 bits are too weak to accept, and 8192 bits is crypto/tls's own cap
// on peer keys; 65537 is the exponent every CA uses; two candidates of one name allow for a
// renewed intermediate presented next to the one it replaces.
var defaultScreenLimits = screenLimits{
	maxDER:         16 << 10,
	minRSABits:     2048,
	maxRSABits:     8192,
	maxRSAExponent: 65537,
	maxPerSubject:  2,
}

// screen says which bound of l the presented chain (leaf first) exceeds, or "" when it is within
// all of them. It only reads the certificates: no signature is checked.
func screen(presented []*x509.Certificate, l screenLimits) string {
	for i, c := range presented {
		if d := screenKey(c, l); d != "" {
			return fmt.Sprintf("presented certificate %d: %s", i+1, d)
		}
	}
	// The candidates are the certificates after the leaf.
	for i := 1; i < len(presented); i++ {
		c, same := presented[i], 1
		for j := 1; j < i; j++ {
			if !bytes.Equal(c.RawSubject, presented[j].RawSubject) {
				continue
			}
			if bytes.Equal(c.RawSubjectPublicKeyInfo, presented[j].RawSubjectPublicKeyInfo) {
				return fmt.Sprintf("presented certificates %d and %d have the same subject and key", j+1, i+1)
			}
			same++
		}
		if same > l.maxPerSubject {
			return fmt.Sprintf("%d presented certificates share the subject %q, at most %d allowed", same, c.Subject, l.maxPerSubject)
		}
	}
	return ""
}

// screenKey checks one certificate's size and public key.
func screenKey(c *x509.Certificate, l screenLimits) string {
	if len(c.Raw) > l.maxDER {
		return fmt.Sprintf("%d bytes, at most %d allowed", len(c.Raw), l.maxDER)
	}
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < l.minRSABits || n > l.maxRSABits {
			return fmt.Sprintf("RSA modulus of %d bits, %d to %d allowed", n, l.minRSABits, l.maxRSABits)
		}
		if k.E < 3 || k.E%2 == 0 || k.E > l.maxRSAExponent {
			return fmt.Sprintf("RSA public exponent %d, an odd number from 3 to %d allowed", k.E, l.maxRSAExponent)
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
		// x509 parses only the P-256, P-384 and P-521 curves, whose sizes are fixed.
	default:
		return fmt.Sprintf("unsupported public key algorithm %v", c.PublicKeyAlgorithm)
	}
	return ""
}
