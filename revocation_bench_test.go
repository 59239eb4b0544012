package mtls

import (
	"context"
	"math/big"
	"net/http"
	"sync"
	"testing"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/require"
)

// BenchmarkRevocationStep measures the revocation step alone on a warm path, and whole requests
// with and without it.
func BenchmarkRevocationStep(b *testing.B) {
	p := newRevPKI()
	resp := mtlstest.NewOCSPResponder(p.issuing)
	defer resp.Close()
	leaf := p.issuing.NewClient("alice")
	crlFile := mtlstest.WriteFile(b.TempDir(), "i.crl", p.issuing.NewCRL(mtlstest.CRL{Revoked: []*big.Int{big.NewInt(3)}}))
	for _, tc := range []struct {
		name string
		rc   *RevocationConfig
	}{
		{"off", nil},
		{"ocsp", &RevocationConfig{OCSP: &OCSPConfig{Responder: resp.URL}}},
		{"crl", &RevocationConfig{CRL: &CRLConfig{Files: []string{crlFile}}}},
		// OCSP answers, and the loaded CRL is consulted too (a listing wins).
		{"ocsp+crl", &RevocationConfig{OCSP: &OCSPConfig{Responder: resp.URL}, CRL: &CRLConfig{Files: []string{crlFile}}}},
	} {
		m, err := New(Config{RootCAs: p.root.Pool(), Revocation: tc.rc})
		require.NoError(b, err)
		r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...)
		id, err := m.Authenticate(r)
		require.NoError(b, err)
		if tc.rc != nil {
			b.Run("step/"+tc.name, func(b *testing.B) {
				b.ReportAllocs()
				ctx := context.Background()
				for b.Loop() {
					if _, _, err := m.revoc.check(ctx, nil, id); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run("request/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			h := m.Handler(noop)
			w := &discardWriter{h: http.Header{}}
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkOCSPColdConcurrent sends 1,000 concurrent requests for one certificate to a middleware
// with an empty OCSP cache, and reports the responder queries they caused.
func BenchmarkOCSPColdConcurrent(b *testing.B) {
	p := newRevPKI()
	resp := mtlstest.NewOCSPResponder(p.issuing)
	defer resp.Close()
	leaf := p.issuing.NewClient("alice")
	const n = 1000
	before := resp.Requests()
	iterations := 0
	for b.Loop() {
		m, err := New(Config{RootCAs: p.root.Pool(), Revocation: &RevocationConfig{OCSP: &OCSPConfig{Responder: resp.URL}}})
		require.NoError(b, err)
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...)); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		iterations++
	}
	b.ReportMetric(float64(resp.Requests()-before)/float64(iterations), "queries/op")
}
