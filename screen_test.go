package mtls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// mint signs a certificate for pub (any public key: no private key is needed for it) with
// signer, under parent (nil: self-signed by signer). extra extensions are added as given.
func mint(tb testing.TB, subject, issuer string, isCA bool, pub any, signer crypto.Signer, extra ...pkix.Extension) *x509.Certificate {
	tb.Helper()
	now := time.Now()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:    serial,
		Subject:         pkix.Name{CommonName: subject},
		NotBefore:       now.Add(-time.Hour),
		NotAfter:        now.Add(24 * time.Hour),
		ExtraExtensions: extra,
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	parent := &x509.Certificate{Subject: pkix.Name{CommonName: issuer}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// withSignature re-encodes c with sig in place of its signature: a leaf whose RSA signature
// has the length of a huge modulus, so that checking it runs the whole modular exponentiation.
func withSignature(tb testing.TB, c *x509.Certificate, sig []byte) *x509.Certificate {
	tb.Helper()
	outer := cryptobyte.String(c.Raw)
	var cert, tbs, algo cryptobyte.String
	if !outer.ReadASN1(&cert, cbasn1.SEQUENCE) || !cert.ReadASN1Element(&tbs, cbasn1.SEQUENCE) ||
		!cert.ReadASN1Element(&algo, cbasn1.SEQUENCE) {
		tb.Fatal("cannot split certificate")
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		b.AddBytes(algo)
		b.AddASN1BitString(sig)
	})
	der, err := b.Bytes()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// hugeRSA is a public key of the given size and exponent that nobody holds the private key of.
func hugeRSA(tb testing.TB, bits, e int) *rsa.PublicKey {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(bits-1)))
	if err != nil {
		tb.Fatal(err)
	}
	n.SetBit(n, bits-1, 1).SetBit(n, 0, 1)
	return &rsa.PublicKey{N: n, E: e}
}

func ecKey(tb testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	tb.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func rsaKey(tb testing.TB, bits int) *rsa.PrivateKey {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// hostileLeafRSA is a client certificate naming issuer, with a signature as long as key's
// modulus (and numerically below it), as a forger presenting a fake CA with that key makes.
func hostileLeafRSA(tb testing.TB, issuer string, key *rsa.PublicKey) *x509.Certificate {
	leaf := mint(tb, "mallory", issuer, false, ecKey(tb, elliptic.P256()).Public(), rsaKey(tb, 2048))
	sig := make([]byte, (key.N.BitLen()+7)/8)
	if _, err := rand.Read(sig[1:]); err != nil {
		tb.Fatal(err)
	}
	return withSignature(tb, leaf, sig)
}

// hostileChain is a presented chain that costs verification work and must be refused.
type hostileChain struct {
	name  string
	chain []*x509.Certificate
	// bound is the part of the screening refusal's detail naming the bound hit; empty when the
	// chain is within every bound and is refused by chain building, without presented keys.
	bound string
}

// hostileChains builds, against p (whose root is the trust anchor), the chains a client without
// any private key of p's can present. Each is at most 5 certificates, the default maximum.
func hostileChains(tb testing.TB, p *pki) []hostileChain {
	tb.Helper()
	issuer := p.issuing.Certificate.Subject.CommonName
	root := p.root.Certificate.Subject.CommonName
	throwaway := ecKey(tb, elliptic.P256())

	huge := hugeRSA(tb, 65536, 65537)
	bigE := hugeRSA(tb, 8192, 1<<31-1)

	// Self-issued CAs sharing one key and differing in their subject alternative names, so that
	// chain building takes each ordering of them for a new path.
	shared := ecKey(tb, elliptic.P521())
	sameKey := []*x509.Certificate{mint(tb, "mallory", issuer, false, throwaway.Public(), shared)}
	for i := range 4 {
		san := pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: dnsSAN(tb, fmt.Sprintf("ca%d.example.test", i))}
		sameKey = append(sameKey, mint(tb, issuer, issuer, true, shared.Public(), shared, san))
	}

	// Distinct CAs of the issuer's name, each with a key that is slow to check a signature with.
	manyNames := []*x509.Certificate{mint(tb, "mallory", issuer, false, throwaway.Public(), ecKey(tb, elliptic.P521()))}
	for range 4 {
		manyNames = append(manyNames, mint(tb, issuer, root, true, ecKey(tb, elliptic.P521()).Public(), throwaway))
	}

	// A well-formed chain of the forger's own CAs, each signing the one below, the top one
	// naming the root as its issuer: every bound is met.
	keys := []*ecdsa.PrivateKey{ecKey(tb, elliptic.P521()), ecKey(tb, elliptic.P521()), ecKey(tb, elliptic.P521()), ecKey(tb, elliptic.P521())}
	names := []string{"Fake CA 1", "Fake CA 2", "Fake CA 3", "Fake CA 4"}
	fake := []*x509.Certificate{mint(tb, "mallory", names[0], false, throwaway.Public(), keys[0])}
	for i := range keys {
		up, signer := root, throwaway
		if i+1 < len(keys) {
			up, signer = names[i+1], keys[i+1]
		}
		fake = append(fake, mint(tb, names[i], up, true, keys[i].Public(), signer))
	}

	oversized := mint(tb, "mallory", issuer, false, throwaway.Public(), throwaway,
		pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Value: make([]byte, 60<<10)})

	return []hostileChain{
		{name: "rsa-modulus-65536", bound: "modulus",
			chain: []*x509.Certificate{hostileLeafRSA(tb, issuer, huge), mint(tb, issuer, root, true, huge, throwaway)}},
		{name: "rsa-exponent-2^31-1", bound: "exponent",
			chain: []*x509.Certificate{hostileLeafRSA(tb, issuer, bigE), mint(tb, issuer, root, true, bigE, throwaway)}},
		{name: "same-key-self-issued-p521", bound: "same subject and key", chain: sameKey},
		{name: "candidates-per-name-p521", bound: "share the subject", chain: manyNames},
		{name: "fake-chain-p521", chain: fake},
		{name: "oversized-60KiB", bound: "bytes", chain: []*x509.Certificate{oversized, p.issuing.Certificate}},
	}
}

func dnsSAN(tb testing.TB, name string) []byte {
	tb.Helper()
	der, err := asn1.Marshal([]asn1.RawValue{{Tag: 2, Class: asn1.ClassContextSpecific, Bytes: []byte(name)}})
	if err != nil {
		tb.Fatal(err)
	}
	return der
}
