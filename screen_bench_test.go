package mtls

import (
	"crypto/elliptic"
	"crypto/x509"
	"net/http"
	"net/netip"
	"testing"

	"github.com/certgate/mtls/mtlstest"
)

// BenchmarkVerifyColdP256 is a legitimate verification with the cache off: an ECDSA P-256 leaf
// and its intermediate presented, the root configured (root -> intermediate -> leaf).
func BenchmarkVerifyColdP256(b *testing.B) {
	p := newPKI(b)
	m, err := New(Config{RootCAs: p.root.Pool(), CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyHostile is the cost of refusing each hostile chain, under the same trust and
// cache setting as BenchmarkVerifyColdP256 (each variant stands for a stream of cache misses).
func BenchmarkVerifyHostile(b *testing.B) {
	p := newPKI(b)
	m, err := New(Config{RootCAs: p.root.Pool(), CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	for _, h := range hostileChains(b, p) {
		b.Run(h.name, func(b *testing.B) {
			r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", h.chain...)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Authenticate(r); err == nil {
					b.Fatal("hostile chain accepted")
				}
			}
		})
	}
}

// BenchmarkVerifyHostileHeader is the cost of refusing each hostile chain forwarded by a trusted
// proxy in RFC 9440 headers (decoding and parsing included), to compare with
// BenchmarkVerifyColdP256. Variants whose headers exceed HeaderConfig.MaxBytes are refused for
// size and left out.
func BenchmarkVerifyHostileHeader(b *testing.B) {
	p := newPKI(b)
	m, err := New(Config{RootCAs: p.root.Pool(), CacheSize: -1, Header: &HeaderConfig{
		Format: MustHeaderFormat("rfc9440"), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}})
	if err != nil {
		b.Fatal(err)
	}
	throwaway := ecKey(b, elliptic.P256())
	issuer, root := p.issuing.Certificate.Subject.CommonName, p.root.Certificate.Subject.CommonName
	// The most a header can make x509 parse: certificates just within the size and extension
	// bounds, filling MaxBytes.
	parse := []*x509.Certificate{
		mint(b, "mallory", issuer, false, throwaway.Public(), throwaway, withExtensions(60), withPadding(7<<10)),
		mint(b, issuer, root, true, ecKey(b, elliptic.P256()).Public(), throwaway, withExtensions(60), withPadding(6<<10)),
		mint(b, issuer, root, true, ecKey(b, elliptic.P256()).Public(), throwaway, withExtensions(60), withPadding(6<<10)),
	}
	chains := append(hostileChains(b, p), hostileChain{name: "parse-bound", chain: parse})
	for _, h := range chains {
		r := mtlstest.Proxy{Format: MustHeaderFormat("rfc9440"), Addr: "10.0.0.1:4000"}.NewRequest(http.MethodGet, "/", h.chain...)
		if len(r.Header.Get("Client-Cert"))+len(r.Header.Get("Client-Cert-Chain")) > DefaultHeaderMaxBytes {
			continue
		}
		b.Run(h.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Authenticate(r); err == nil {
					b.Fatal("hostile chain accepted")
				}
			}
		})
	}
}
