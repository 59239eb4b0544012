package mtls

import "testing"

// BenchmarkVerifyColdP256 is a legitimate verification with the cache off: an ECDSA P-256 leaf
// and its intermediate presented, the root configured (root -> intermediate -> leaf).
func BenchmarkVerifyColdP256(b *testing.B) {
	p := newPKI(b)
	m, err := New(Config{RootCAs: p.root.Pool(), CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	r := requestWith(p.alice.Chain()...)
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
			r := requestWith(h.chain...)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Authenticate(r); err == nil {
					b.Fatal("hostile chain accepted")
				}
			}
		})
	}
}
