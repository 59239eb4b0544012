package mtls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
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

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// mint signs a certificate of subject for pub (any public key: no private key is needed for it)
// with signer, naming issuer; each of opts then adjusts the template.
func mint(tb testing.TB, subject, issuer string, isCA bool, pub any, signer crypto.Signer, opts ...func(*x509.Certificate)) *x509.Certificate {
	tb.Helper()
	now := time.Now()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: subject},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, o := range opts {
		o(tmpl)
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
// any private key of p's can present. Each is at most 9 certificates, the default maximum
// (MaxChainDepth 4, one leaf, presentedSurplus 4).
func hostileChains(tb testing.TB, p *pki) []hostileChain {
	tb.Helper()
	issuer := p.issuing.Certificate.Subject.CommonName
	root := p.root.Certificate.Subject.CommonName
	throwaway := ecKey(tb, elliptic.P256())

	huge := hugeRSA(tb, 65536, 65537)
	bigE := hugeRSA(tb, 8192, 1<<31-1)

	// Self-issued CAs sharing one key and differing in their subject alternative names, so that
	// chain building would take each ordering of them for a new path: four of one name are
	// beyond the bound, three within it.
	shared := ecKey(tb, elliptic.P521())
	sameKey := []*x509.Certificate{mint(tb, "mallory", issuer, false, throwaway.Public(), shared)}
	for i := range 4 {
		san := func(c *x509.Certificate) { c.DNSNames = []string{fmt.Sprintf("ca%d.example.test", i)} }
		sameKey = append(sameKey, mint(tb, issuer, issuer, true, shared.Public(), shared, san))
	}

	// Distinct CAs of the issuer's name, each with a key that is slow to check a signature with.
	manyNames := []*x509.Certificate{mint(tb, "mallory", issuer, false, throwaway.Public(), ecKey(tb, elliptic.P521()))}
	for range 4 {
		manyNames = append(manyNames, mint(tb, issuer, root, true, ecKey(tb, elliptic.P521()).Public(), throwaway))
	}

	// A well-formed chain of the forger's own CAs, each signing the one below, the top one
	// naming the root as its issuer: every bound is met. The second one allows no CA below it,
	// which x509 reports only after checking signatures with the first two CAs' keys.
	keys := []*ecdsa.PrivateKey{ecKey(tb, elliptic.P521()), ecKey(tb, elliptic.P521()), ecKey(tb, elliptic.P521()), ecKey(tb, elliptic.P521())}
	names := []string{"Fake CA 1", "Fake CA 2", "Fake CA 3", "Fake CA 4"}
	fake := []*x509.Certificate{mint(tb, "mallory", names[0], false, throwaway.Public(), keys[0])}
	for i := range keys {
		up, signer := root, throwaway
		if i+1 < len(keys) {
			up, signer = names[i+1], keys[i+1]
		}
		pathLen := func(c *x509.Certificate) { c.MaxPathLen, c.MaxPathLenZero = i-1, i == 1 }
		fake = append(fake, mint(tb, names[i], up, true, keys[i].Public(), signer, pathLen))
	}

	// CAs linked to the leaf by names, two of each name (the most allowed), three of them naming
	// the root as their issuer: within every bound, each of those costs a check with the root's key.
	other := "Other CA"
	rootNamed := []*x509.Certificate{mint(tb, "mallory", other, false, throwaway.Public(), throwaway)}
	for _, link := range [][2]string{{other, root}, {other, issuer}, {issuer, root}, {issuer, root}} {
		rootNamed = append(rootNamed, mint(tb, link[0], link[1], true, ecKey(tb, elliptic.P256()).Public(), throwaway))
	}

	// The same beside the real (public) intermediate, which is admitted: the leaf's signature is
	// then checked too, with the intermediate's key.
	decoys := []*x509.Certificate{mint(tb, "mallory", issuer, false, throwaway.Public(), throwaway), p.issuing.Certificate,
		mint(tb, issuer, other, true, ecKey(tb, elliptic.P256()).Public(), throwaway)}
	for range 2 {
		decoys = append(decoys, mint(tb, other, root, true, ecKey(tb, elliptic.P256()).Public(), throwaway))
	}

	// At the most that may be presented, each name at the most candidates allowed, every one
	// linked to the leaf by names, six of them naming the root as their issuer.
	surplus := []*x509.Certificate{mint(tb, "mallory", "Linked A", false, throwaway.Public(), throwaway)}
	for _, link := range [][2]string{{"Linked A", root}, {"Linked A", "Linked B"}, {"Linked A", "Linked C"},
		{"Linked B", root}, {"Linked B", root}, {"Linked B", root}, {"Linked C", root}, {"Linked C", root}} {
		surplus = append(surplus, mint(tb, link[0], link[1], true, ecKey(tb, elliptic.P256()).Public(), throwaway))
	}

	// The real (public) intermediate, admitted, and candidates of the leaf's issuer naming it:
	// each is checked against its key once, and not again once it is admitted.
	bait := []*x509.Certificate{mint(tb, "mallory", "Bait CA", false, throwaway.Public(), throwaway)}
	for range 3 {
		bait = append(bait, mint(tb, "Bait CA", issuer, true, ecKey(tb, elliptic.P256()).Public(), throwaway))
	}
	bait = append(bait, p.issuing.Certificate)

	oversized := mint(tb, "mallory", issuer, false, throwaway.Public(), throwaway, withPadding(60<<10))

	// A copy of the (public) root among padded decoys naming it: a presented anchor must not make
	// each decoy be checked twice, against the root and against its copy.
	rootCopy := []*x509.Certificate{mint(tb, "mallory", issuer, false, throwaway.Public(), throwaway, withPadding(7<<10)),
		p.issuing.Certificate, mint(tb, issuer, root, true, ecKey(tb, elliptic.P256()).Public(), throwaway, withPadding(7<<10)),
		p.root.Certificate, mint(tb, root, root, true, ecKey(tb, elliptic.P256()).Public(), throwaway, withPadding(7<<10))}

	// Certificates packed with small extensions, which cost parsing one by one.
	packed := func(subject, issuer string, isCA bool) *x509.Certificate {
		return mint(tb, subject, issuer, isCA, ecKey(tb, elliptic.P256()).Public(), throwaway, withExtensions(65))
	}
	extPacked := []*x509.Certificate{packed("mallory", issuer, false), packed(issuer, root, true)}

	return []hostileChain{
		{name: "rsa-modulus-65536", bound: "modulus",
			chain: []*x509.Certificate{hostileLeafRSA(tb, issuer, huge), mint(tb, issuer, root, true, huge, throwaway)}},
		{name: "rsa-exponent-2^31-1", bound: "exponent",
			chain: []*x509.Certificate{hostileLeafRSA(tb, issuer, bigE), mint(tb, issuer, root, true, bigE, throwaway)}},
		{name: "same-key-self-issued-p521", bound: "share the subject", chain: sameKey},
		{name: "same-key-self-issued-within-bound", chain: sameKey[:4]},
		{name: "candidates-per-name-p521", bound: "share the subject", chain: manyNames},
		{name: "fake-chain-p521", chain: fake},
		{name: "root-named-linked-cas", chain: rootNamed},
		{name: "decoys-beside-real-intermediate", chain: decoys},
		{name: "surplus-linked-cas", chain: surplus},
		{name: "bait-naming-real-intermediate", chain: bait},
		{name: "oversized-60KiB", bound: "bytes", chain: []*x509.Certificate{oversized, p.issuing.Certificate}},
		{name: "root-copy-among-padded-decoys", chain: rootCopy},
		{name: "extension-packed", bound: "extensions", chain: extPacked},
	}
}

// withExtensions adds n small non-critical private extensions.
func withExtensions(n int) func(*x509.Certificate) {
	return func(c *x509.Certificate) {
		for i := range n {
			c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 2, i}, Value: []byte{0x05, 0x00}})
		}
	}
}

// withPadding adds a non-critical private extension of n bytes.
func withPadding(n int) func(*x509.Certificate) {
	return func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Value: make([]byte, n)})
	}
}

func TestScreen(t *testing.T) {
	p := newPKI(t)
	issuer := p.issuing.Certificate.Subject.CommonName
	signer := ecKey(t, elliptic.P256())
	leafWith := func(pub any) *x509.Certificate { return mint(t, "bob", issuer, false, pub, signer) }
	caWith := func(name string, pub any) *x509.Certificate { return mint(t, name, "Test Root CA", true, pub, signer) }
	rsa2048 := rsaKey(t, 2048).Public()
	shared := ecKey(t, elliptic.P384()).Public()
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	tests := []struct {
		name      string
		presented []*x509.Certificate
		want      string // part of the detail; empty: within bounds
	}{
		{name: "ordinary chain", presented: p.alice.Chain()},
		{name: "RSA 2048, exponent 65537", presented: []*x509.Certificate{leafWith(rsa2048)}},
		{name: "RSA exponent 3", presented: []*x509.Certificate{leafWith(hugeRSA(t, 2048, 3))}},
		{name: "RSA 8192", presented: []*x509.Certificate{leafWith(hugeRSA(t, 8192, 65537))}},
		{name: "P-384 and Ed25519", presented: []*x509.Certificate{leafWith(shared), caWith(issuer, edPub)}},
		{name: "RSA 1024", presented: []*x509.Certificate{leafWith(hugeRSA(t, 1024, 65537))},
			want: "presented certificate 1: RSA modulus of 1024 bits, 2048 to 8192 allowed"},
		{name: "RSA 8200", presented: []*x509.Certificate{p.alice.Certificate, caWith(issuer, hugeRSA(t, 8200, 65537))},
			want: "presented certificate 2: RSA modulus of 8200 bits"},
		{name: "RSA exponent 65539", presented: []*x509.Certificate{leafWith(hugeRSA(t, 2048, 65539))},
			want: "RSA public exponent 65539, an odd number from 3 to 65537 allowed"},
		{name: "RSA exponent even", presented: []*x509.Certificate{leafWith(hugeRSA(t, 2048, 65536))},
			want: "RSA public exponent 65536"},
		{name: "RSA exponent 1", presented: []*x509.Certificate{leafWith(hugeRSA(t, 2048, 1))},
			want: "RSA public exponent 1"},
		{name: "CA certificate over 8 KiB", want: "presented certificate 2: 8",
			presented: []*x509.Certificate{p.alice.Certificate, mint(t, issuer, "Test Root CA", true, shared, signer, withPadding(8<<10))}},
		{name: "64 extensions", presented: []*x509.Certificate{mint(t, "bob", issuer, false, shared, signer, withExtensions(60))}},
		{name: "65 extensions", want: "extensions, at most 64 allowed",
			presented: []*x509.Certificate{mint(t, "bob", issuer, false, shared, signer, withExtensions(63))}},
		{name: "16 KiB certificate", want: "presented certificate 1: 16",
			presented: []*x509.Certificate{mint(t, "bob", issuer, false, signer.Public(), signer, withPadding(16<<10))}},
		{name: "two candidates of one name", presented: []*x509.Certificate{p.alice.Certificate, caWith(issuer, shared), caWith(issuer, rsa2048)}},
		{name: "three candidates of one name", presented: []*x509.Certificate{p.alice.Certificate, caWith(issuer, shared), caWith(issuer, rsa2048), caWith(issuer, signer.Public())}},
		{name: "four candidates of one name", want: `4 presented certificates share the subject "CN=Test Issuing CA", at most 3 allowed`,
			presented: []*x509.Certificate{p.alice.Certificate, caWith(issuer, shared), caWith(issuer, rsa2048), caWith(issuer, signer.Public()), caWith(issuer, edPub)}},
		{name: "same subject and key, as cross-signed copies are",
			presented: []*x509.Certificate{p.alice.Certificate, caWith(issuer, shared), caWith("Other", rsa2048), caWith(issuer, shared)}},
		{name: "the same certificate twice counts twice", want: "4 presented certificates share the subject",
			presented: []*x509.Certificate{p.alice.Certificate, p.issuing.Certificate, caWith(issuer, shared), p.issuing.Certificate, p.issuing.Certificate}},
		{name: "leaf and candidate of one subject and key",
			presented: []*x509.Certificate{mint(t, issuer, issuer, false, shared, signer), caWith(issuer, shared)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := screen(tt.presented, defaultScreenLimits)
			if tt.want == "" {
				assert.Empty(t, got)
				return
			}
			assert.Contains(t, got, tt.want)
		})
	}
}

// TestVerifyRefusesHostileChains: every hostile chain is refused as untrusted, with the leaf
// attached; those beyond a bound are refused by screening, before any signature is checked; and
// the others without a signature ever being checked with a key that only the client vouches for.
func TestVerifyRefusesHostileChains(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool(), CacheSize: -1})
	require.NoError(t, err)
	tr := m.state.Load().trust
	for _, h := range hostileChains(t, p) {
		t.Run(h.name, func(t *testing.T) {
			if h.bound != "" {
				assert.Contains(t, screen(h.chain, defaultScreenLimits), h.bound)
			} else {
				assert.Empty(t, screen(h.chain, defaultScreenLimits))
				a := tr.admit(h.chain, time.Now())
				require.NotNil(t, a.refused, "no presented CA is admitted")
			}
			_, err := m.verifiedChain(m.state.Load(), &claim{source: SourceTLS, certs: h.chain}, m.now())
			require.ErrorIs(t, err, ErrUntrusted)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Same(t, h.chain[0], e.Leaf)
			assert.Contains(t, e.Detail+e.Error(), h.bound)
			// What x509 reports only once a signature was checked with a presented key: the
			// candidate whose key failed to verify one, or the path length of one that did.
			for _, c := range h.chain[1:] {
				if c.Subject.CommonName == p.root.Certificate.Subject.CommonName || c == p.issuing.Certificate {
					continue // the name of the configured root, or the real intermediate: their keys may well be used
				}
				assert.NotContains(t, err.Error(), fmt.Sprintf("candidate authority certificate %q", c.Subject.CommonName))
			}
			assert.NotContains(t, err.Error(), "path length constraint")
		})
	}
}
