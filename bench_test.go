package mtls

import (
	"context"
	"net/http"
	"testing"

	"github.com/certgate/mtls/mtlstest"
)

// discardWriter is a ResponseWriter that costs nothing, so benchmarks measure the middleware.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

var noop = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

type floorKey struct{}

// BenchmarkFloor is the least any context-carrying middleware costs: one context value, one
// request copy, one call.
func BenchmarkFloor(b *testing.B) {
	p := newPKI(b)
	r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...)
	w := &discardWriter{h: http.Header{}}
	id := &Identity{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		noop.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), floorKey{}, id)))
	})
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

// BenchmarkHandler measures a request whose chain (ECDSA P-256 leaf + intermediate, root
// configured) was verified before: the cache-hit path.
func BenchmarkHandler(b *testing.B) {
	p := newPKI(b)
	m, err := New(Config{RootCAs: p.root.Pool()})
	if err != nil {
		b.Fatal(err)
	}
	h := m.Handler(noop)
	r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...)
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, r) // warm the cache
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

// BenchmarkHandlerParallel is the cache-hit path under concurrent requests.
func BenchmarkHandlerParallel(b *testing.B) {
	p := newPKI(b)
	m, err := New(Config{RootCAs: p.root.Pool()})
	if err != nil {
		b.Fatal(err)
	}
	h := m.Handler(noop)
	h.ServeHTTP(&discardWriter{h: http.Header{}}, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...)
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			h.ServeHTTP(w, r)
		}
	})
}

// BenchmarkHandlerCold verifies the same chain on every request (cache off): the cost of a miss.
func BenchmarkHandlerCold(b *testing.B) {
	p := newPKI(b)
	m, err := New(Config{RootCAs: p.root.Pool(), CacheSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	h := m.Handler(noop)
	r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

// TestHotPathAllocations holds the cache-hit path to its allocation budget (at most 3).
func TestHotPathAllocations(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Handler(noop)
	r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...)
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, r)
	if allocs := testing.AllocsPerRun(200, func() { h.ServeHTTP(w, r) }); allocs > 2 {
		t.Fatalf("cache-hit request allocates %v times, budget is 2", allocs)
	}
}
