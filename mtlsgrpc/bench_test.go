package mtlsgrpc_test

import (
	"context"
	"testing"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlsgrpc/mtlsgrpctest"
)

// BenchmarkUnary measures a unary call, client and server in one process, on one kept-alive
// TLS connection over 127.0.0.1: without interceptors ("bare", the handshake asks for the
// certificate and verifies none) and decided by the middleware ("mtls"), whose cache holds the
// chain after the first call. allocs/op counts both ends.
func BenchmarkUnary(b *testing.B) {
	p := newPKI(b)
	for _, tc := range []struct {
		name string
		m    *mtls.Middleware
	}{
		{"bare", nil},
		{"mtls", newMiddleware(b, p, mtls.Config{}, nil)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			srv := mtlsgrpctest.Start(b, mtlsgrpctest.Config{Middleware: tc.m})
			conn := srv.Dial(b, p.alice)
			c := context.Background()
			if _, err := mtlsgrpctest.Say(c, conn, "hi"); err != nil { // connects, fills the cache
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := mtlsgrpctest.Say(c, conn, "hi"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
