package crl

import (
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"math/big"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// largeCRL is a CRL of n entries with random 16-byte serials, minted once per process.
type largeCRL struct {
	ca      *mtlstest.CA
	der     []byte
	serials [][]byte
}

var (
	largeCRLsMu sync.Mutex
	largeCRLs   = map[int]*largeCRL{}
)

func mintLargeCRL(tb testing.TB, n int) *largeCRL {
	tb.Helper()
	largeCRLsMu.Lock()
	defer largeCRLsMu.Unlock()
	if l := largeCRLs[n]; l != nil {
		return l
	}
	ca := mtlstest.NewRootCA("Large CRL CA")
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	backing := make([]byte, 16*n)
	serials := make([][]byte, n)
	for i := range serials {
		s := backing[16*i : 16*i+16 : 16*i+16]
		binary.BigEndian.PutUint64(s, rng.Uint64())
		binary.BigEndian.PutUint64(s[8:], rng.Uint64())
		s[0] = s[0]&0x7f | 0x01 // positive, no leading zero: 16 content bytes
		serials[i] = s
	}
	now := time.Now()
	der := ca.NewCRL(mtlstest.CRL{ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(7 * 24 * time.Hour), RevokedSerials: serials})
	l := &largeCRL{ca: ca, der: der, serials: serials}
	largeCRLs[n] = l
	return l
}

// BenchmarkCRLLoad scans a CRL and checks its signature, against x509.ParseRevocationList plus
// CheckSignatureFrom on the same bytes as the baseline.
func BenchmarkCRLLoad(b *testing.B) {
	for _, n := range []int{1000, 100_000, 1_000_000} {
		l := mintLargeCRL(b, n)
		b.Run(fmt.Sprintf("scan/entries=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(l.der)))
			var c *CRL
			for b.Loop() {
				var err error
				c, err = Parse(l.der)
				if err != nil {
					b.Fatal(err)
				}
				if err := c.CheckSigner(l.ca.Certificate); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(c.Serials.SizeBytes())/float64(n), "B/entry")
		})
		b.Run(fmt.Sprintf("x509/entries=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(l.der)))
			for b.Loop() {
				rl, err := x509.ParseRevocationList(l.der)
				if err != nil {
					b.Fatal(err)
				}
				if err := rl.CheckSignatureFrom(l.ca.Certificate); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCRLLookup looks serials up in a CRL of a million entries.
func BenchmarkCRLLookup(b *testing.B) {
	l := mintLargeCRL(b, 1_000_000)
	c, err := Parse(l.der)
	require.NoError(b, err)
	listed := make([]*big.Int, 1024)
	absent := make([]*big.Int, 1024)
	for i := range listed {
		listed[i] = new(big.Int).SetBytes(l.serials[i*977])
		absent[i] = new(big.Int).Add(listed[i], big.NewInt(1))
	}
	for _, tc := range []struct {
		name    string
		serials []*big.Int
		want    bool
	}{{"listed", listed, true}, {"absent", absent, false}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if c.Serials.Revoked(tc.serials[i&1023]) != tc.want {
					b.Fatal("wrong answer")
				}
				i++
			}
		})
	}
}

// TestLargeCRLMemoryAndLookups holds a CRL of a million entries to its memory and allocation
// figures (the load time is for the benchmark: this machine's load varies too much).
func TestLargeCRLMemoryAndLookups(t *testing.T) {
	if testing.Short() {
		t.Skip("mints a CRL of a million entries")
	}
	const n = 1_000_000
	l := mintLargeCRL(t, n)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	c, err := Parse(l.der)
	require.NoError(t, err)
	runtime.GC()
	runtime.ReadMemStats(&after)
	require.NoError(t, c.CheckSigner(l.ca.Certificate))
	assert.Equal(t, n, c.Serials.Len())
	perEntry := float64(c.Serials.SizeBytes()) / n
	heapPerEntry := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("index %.1f B/entry, heap retained %.1f B/entry, DER %.1f B/entry", perEntry, heapPerEntry, float64(len(l.der))/n)
	assert.Less(t, perEntry, 40.0)
	assert.Less(t, heapPerEntry, 40.0)

	listed := new(big.Int).SetBytes(l.serials[12345])
	absent := new(big.Int).Add(listed, big.NewInt(1))
	assert.True(t, c.Serials.Revoked(listed))
	assert.False(t, c.Serials.Revoked(absent))
	assert.Zero(t, testing.AllocsPerRun(100, func() { c.Serials.Revoked(listed); c.Serials.Revoked(absent) }))
	runtime.KeepAlive(c)
}
