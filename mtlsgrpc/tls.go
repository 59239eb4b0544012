package mtlsgrpc

import (
	"crypto/tls"
	"slices"

	"github.com/certgate/mtls"
	"google.golang.org/grpc/credentials"
)

// ServerCredentials returns the transport credentials of a grpc-go server whose handshake asks
// for client certificates as m's does: credentials.NewTLS(m.TLSConfig(base, opts...)), for
// grpc.Creds. base holds the server's certificate (Certificates or GetCertificate). The decision
// is the interceptor's, per call, not the handshake's (see [mtls.Middleware.TLSConfig]).
//
// grpc-go refuses a handshake that does not negotiate "h2" by ALPN. The copy of base that
// m.TLSConfig takes offers it first ([WithH2]), and credentials.NewTLS adds it to every
// configuration a handshake uses, also those made per handshake for [mtls.AdvertiseCAs] and
// those of base's own GetConfigForClient.
func ServerCredentials(m *mtls.Middleware, base *tls.Config, opts ...mtls.TLSOption) credentials.TransportCredentials {
	return credentials.NewTLS(m.TLSConfig(WithH2(base), opts...))
}

// WithH2 returns a copy of base (nil: an empty configuration) whose NextProtos offer "h2" first,
// as a gRPC server needs, also one served by net/http (grpc.Server.ServeHTTP).
func WithH2(base *tls.Config) *tls.Config {
	cfg := &tls.Config{}
	if base != nil {
		cfg = base.Clone()
	}
	if !slices.Contains(cfg.NextProtos, "h2") {
		cfg.NextProtos = append([]string{"h2"}, cfg.NextProtos...)
	}
	return cfg
}
