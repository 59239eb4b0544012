package mtls

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/require"
)

// cachedIdentities is how many distinct clients BenchmarkCacheMemory caches.
const cachedIdentities = 100_000

// BenchmarkCacheMemory caches 100,000 distinct client certificates (ECDSA P-256 leaf, its
// intermediate presented beside it) and reports the heap they keep alive per identity, measured
// with runtime.ReadMemStats after a GC, for both sources; "accounted-B/identity" is what
// CacheMaxBytes counts for them. Direct-TLS chains are parsed from one buffer, as crypto/tls
// parses a Certificate message, so each certificate keeps what it points into. It verifies every
// chain once: run it with -benchtime=1x.
func BenchmarkCacheMemory(b *testing.B) {
	if testing.Short() {
		b.Skip("mints and verifies 100,000 chains")
	}
	p := newPKI(b)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(b, err)
	leaves := make([][]byte, cachedIdentities) // DER only: what the inputs cost is not counted
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < cachedIdentities; i += 4 {
				leaves[i] = p.issuing.NewClient(fmt.Sprintf("client-%d", i), mtlstest.WithKey(key)).Certificate.Raw
			}
		})
	}
	wg.Wait()
	intermediate := p.issuing.Certificate.Raw
	lan := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	proxy := mtlstest.Proxy{Format: MustHeaderFormat("haproxy"), Addr: "10.0.0.1:4000"}

	for _, source := range []string{"tls", "header"} {
		b.Run("source="+source, func(b *testing.B) {
			cfg := Config{RootCAs: p.root.Pool(), CacheSize: 2 * cachedIdentities, CacheMaxBytes: 4 << 30}
			if source == "header" {
				cfg.Header = &HeaderConfig{Format: MustHeaderFormat("haproxy"), TrustedProxies: lan}
			}
			request := func(i int) *http.Request {
				msg := append(append([]byte(nil), leaves[i]...), intermediate...) // one Certificate message
				leaf, err := x509.ParseCertificate(msg[:len(leaves[i])])
				require.NoError(b, err)
				inter, err := x509.ParseCertificate(msg[len(leaves[i]):])
				require.NoError(b, err)
				if source == "header" {
					return proxy.NewRequest(http.MethodGet, "/", leaf, inter)
				}
				return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf, inter)
			}
			var m *Middleware
			var before, after runtime.MemStats
			for b.Loop() {
				m = nil
				runtime.GC()
				runtime.ReadMemStats(&before)
				m, err = New(cfg)
				require.NoError(b, err)
				var wg sync.WaitGroup
				for w := range runtime.GOMAXPROCS(0) {
					wg.Go(func() {
						for i := w; i < cachedIdentities; i += runtime.GOMAXPROCS(0) {
							if _, err := m.Authenticate(request(i)); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				runtime.GC()
				runtime.ReadMemStats(&after)
			}
			c := m.state.Load().cache
			n := c.len() // a set-associative table: a few collide even with room to spare
			require.Greater(b, n, cachedIdentities*9/10)
			b.ReportMetric(float64(n), "identities")
			b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n), "B/identity")
			b.ReportMetric(float64(c.bytes.Load())/float64(n), "accounted-B/identity")
			runtime.KeepAlive(m)
		})
	}
}

// BenchmarkVerifyCold verifies a chain on every request (cache off) for each key type, every
// certificate of the chain (root, intermediate presented beside the leaf, leaf) of that type.
func BenchmarkVerifyCold(b *testing.B) {
	for _, kt := range []struct {
		name string
		kt   mtlstest.KeyType
	}{{"ecdsa-p256", mtlstest.ECDSAP256}, {"rsa-2048", mtlstest.RSA2048}, {"ed25519", mtlstest.Ed25519}} {
		b.Run(kt.name, func(b *testing.B) {
			root := mtlstest.NewRootCA("Root "+kt.name, mtlstest.WithKeyType(kt.kt))
			issuing := root.NewIntermediate("Issuing "+kt.name, mtlstest.WithKeyType(kt.kt))
			leaf := issuing.NewClient("client", mtlstest.WithKeyType(kt.kt))
			m, err := New(Config{RootCAs: root.Pool(), CacheSize: -1})
			require.NoError(b, err)
			r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Authenticate(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCacheChurn cycles through a working set of distinct clients 1x, 2x and 4x the
// cache's size (1024 entries): the cost per request as hits turn into verifications, and the
// share of requests that hit ("hit-ratio").
func BenchmarkCacheChurn(b *testing.B) {
	const size = 1024
	p := newPKI(b)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(b, err)
	requests := make([]*http.Request, 4*size)
	for i := range requests {
		requests[i] = mtlstest.NewRequest(http.MethodGet, "https://api.example.test/",
			p.issuing.NewClient(fmt.Sprintf("churn-%d", i), mtlstest.WithKey(key)).Chain()...)
	}
	for _, factor := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("working-set=%dx", factor), func(b *testing.B) {
			m, err := New(Config{RootCAs: p.root.Pool(), CacheSize: size})
			require.NoError(b, err)
			set := requests[:factor*size]
			for _, r := range set { // warm: the cache holds what fits
				_, err := m.Authenticate(r)
				require.NoError(b, err)
			}
			c := m.state.Load().cache
			hits, n := 0, 0
			b.ReportAllocs()
			for b.Loop() {
				r := set[n%len(set)]
				if _, e := c.lookupChain(r.TLS.PeerCertificates, time.Now()); e != nil {
					hits++
				}
				if _, err := m.Authenticate(r); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(hits)/float64(n), "hit-ratio")
		})
	}
}
