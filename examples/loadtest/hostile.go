package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"io"
	"math/big"

	"github.com/certgate/mtls/mtlstest"
)

// The hostile clients' chains (see scenario.hostile).
const (
	hostileDecoys     = "decoys"
	hostileCAName     = "ca-name"
	hostileCANameP256 = "ca-name-p256"
	hostileManyCAs    = "many-cas"
)

// hostileCertificates returns, by name, functions minting the certificates of the hostile
// clients: a new leaf each time, so that no connection's chain is one the server saw before (its
// refusal would be cached). None is signed by a key of root's or issuing's: their names are all
// a forger knows of them.
func hostileCertificates(root, issuing *mtlstest.CA) map[string]func() tls.Certificate {
	huge := fakeSigner{pub: hugeRSAKey(8192)}
	p256 := mtlstest.NewSelfSigned("p256").Key // one key: what the forger signs with costs it nothing to vary

	// An RSA-8192 leaf under a chain of decoy CAs that name no CA of the service.
	decoyRoot := mtlstest.NewRootCA("Decoy Root CA")
	decoy1 := decoyRoot.NewIntermediate("Decoy CA 1")
	decoy2 := decoy1.NewIntermediate("Decoy CA 2")

	// Forged CAs that bear the names of the service's: an issuing CA under a root of the real
	// root's name, and a second issuing CA of that name (the most the screen allows).
	forgedRoot := mtlstest.NewRootCA(root.Certificate.Subject.CommonName)
	forged := forgedRoot.NewIntermediate(issuing.Certificate.Subject.CommonName)
	second := forgedRoot.NewIntermediate(issuing.Certificate.Subject.CommonName)
	named := func(key crypto.Signer) func() tls.Certificate {
		return func() tls.Certificate {
			return withChain(forged.NewClient("mallory", mtlstest.WithKey(key)).TLSCertificate(), second.Certificate.Raw)
		}
	}
	// Forged CAs of the issuing CA's name with P-521 keys, as many as a Certificate message holds
	// easily: each a candidate intermediate to a verifier that takes every presented certificate.
	var many [][]byte
	for range 99 {
		k, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		if err != nil {
			panic(err)
		}
		many = append(many, forgedRoot.NewIntermediate(issuing.Certificate.Subject.CommonName, mtlstest.WithKey(k)).Certificate.Raw)
	}
	return map[string]func() tls.Certificate{
		hostileManyCAs: func() tls.Certificate {
			return withChain(forged.NewClient("mallory", mtlstest.WithKey(p256)).TLSCertificate(), many...)
		},
		hostileDecoys: func() tls.Certificate {
			return withChain(decoy2.NewClient("mallory", mtlstest.WithKey(huge)).TLSCertificate(), decoy1.Certificate.Raw, decoyRoot.Certificate.Raw)
		},
		hostileCAName:     named(huge),
		hostileCANameP256: named(p256),
	}
}

// withChain appends CA certificates to what c presents.
func withChain(c tls.Certificate, ders ...[]byte) tls.Certificate {
	c.Certificate = append(c.Certificate, ders...)
	return c
}

// hugeRSAKey returns an RSA public key of the given size with no private key behind it: a random
// odd modulus. Checking a signature with it costs what checking one with a real key does.
func hugeRSAKey(bits int) *rsa.PublicKey {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(bits-1)))
	if err != nil {
		panic(err)
	}
	n.SetBit(n, bits-1, 1).SetBit(n, 0, 1)
	return &rsa.PublicKey{N: n, E: 65537}
}

// fakeSigner signs with random bytes, as a forger does: the server pays for checking a
// signature whether or not it is right.
type fakeSigner struct{ pub *rsa.PublicKey }

func (s fakeSigner) Public() crypto.PublicKey { return s.pub }

func (s fakeSigner) Sign(_ io.Reader, _ []byte, _ crypto.SignerOpts) ([]byte, error) {
	sig := make([]byte, (s.pub.N.BitLen()+7)/8)
	_, err := rand.Read(sig[1:])
	return sig, err
}
