// Package mtlsgrpctest is the test kit of [github.com/certgate/mtls/mtlsgrpc]: a real grpc-go
// server on 127.0.0.1 over TLS, authenticating its calls with an [mtls.Middleware], the hand-written
// Echo service it serves, and clients that dial it with a client certificate minted by
// [github.com/certgate/mtls/mtlstest].
//
//	root := mtlstest.NewRootCA("Test Root CA")
//	m, _ := mtls.New(mtls.Config{RootCAs: root.Pool()})
//	srv := mtlsgrpctest.Start(t, mtlsgrpctest.Config{Middleware: m})
//	conn := srv.Dial(t, root.NewClient("alice"))
//	answer, err := mtlsgrpctest.Say(ctx, conn, "hi") // "alice:hi"
//
// Everything here is for tests: it fails the test (tb.Fatal) on any error of its own, and
// stops what it started when the test ends.
package mtlsgrpctest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlsgrpc"
	"github.com/certgate/mtls/mtlstest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Config says what server [Start] runs.
type Config struct {
	// Middleware decides the calls, through an [mtlsgrpc.Interceptor] with Options, and its
	// TLSConfig (with TLSOptions) asks for the client certificate. Nil: a server without
	// interceptors whose handshake asks for a client certificate and verifies none.
	Middleware *mtls.Middleware
	Options    []mtlsgrpc.Option
	TLSOptions []mtls.TLSOption
	// ServerOptions are more options of the grpc.Server, after the interceptor's.
	ServerOptions []grpc.ServerOption
	// ServeHTTP serves the grpc.Server under net/http's HTTP/2 server (grpc.Server.ServeHTTP),
	// whose peer address is the request's RemoteAddr string, instead of grpc-go's own transport.
	ServeHTTP bool
}

// Server is a running grpc-go server on 127.0.0.1, serving [Echo] and the standard health
// service (grpc.health.v1.Health, every service SERVING).
type Server struct {
	// Addr is the server's address, "127.0.0.1:port".
	Addr string
	// Roots trusts the server's certificate, issued for 127.0.0.1 and localhost.
	Roots *x509.CertPool
	// GRPC is the server.
	GRPC *grpc.Server
	// Interceptor is the interceptor of Config.Middleware; nil without one.
	Interceptor *mtlsgrpc.Interceptor
	// Echo is the Echo service, with what its handlers saw.
	Echo *Echo
	// Health is the health service.
	Health *health.Server
}

// Start starts a server as cfg says, on 127.0.0.1 on a port of its own, and stops it when the
// test ends.
func Start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	ca := mtlstest.NewRootCA("mtlsgrpctest server CA")
	leaf := ca.NewServer("127.0.0.1", "localhost")
	base := &tls.Config{Certificates: []tls.Certificate{leaf.TLSCertificate()}, MinVersion: tls.VersionTLS12}
	s := &Server{Roots: ca.Pool(), Echo: new(Echo), Health: health.NewServer()}
	var opts []grpc.ServerOption
	var tlsCfg *tls.Config // for ServeHTTP
	var creds credentials.TransportCredentials
	if m := cfg.Middleware; m != nil {
		i, err := mtlsgrpc.New(m, cfg.Options...)
		if err != nil {
			tb.Fatalf("mtlsgrpctest: %v", err)
		}
		s.Interceptor = i
		opts = i.ServerOptions()
		tlsCfg = m.TLSConfig(mtlsgrpc.WithH2(base), cfg.TLSOptions...)
		creds = mtlsgrpc.ServerCredentials(m, base, cfg.TLSOptions...)
	} else {
		tlsCfg = mtlsgrpc.WithH2(base)
		tlsCfg.ClientAuth = tls.RequestClientCert
		creds = credentials.NewTLS(tlsCfg)
	}
	if !cfg.ServeHTTP {
		opts = append(opts, grpc.Creds(creds))
	}
	s.GRPC = grpc.NewServer(append(opts, cfg.ServerOptions...)...)
	s.Echo.Register(s.GRPC)
	healthpb.RegisterHealthServer(s.GRPC, s.Health)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("mtlsgrpctest: %v", err)
	}
	s.Addr = ln.Addr().String()
	done := make(chan error, 1)
	if cfg.ServeHTTP {
		hs := &http.Server{Handler: s.GRPC, TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second}
		go func() { done <- hs.ServeTLS(ln, "", "") }()
		tb.Cleanup(func() {
			_ = hs.Close()
			s.GRPC.Stop()
			if err := <-done; !errors.Is(err, http.ErrServerClosed) {
				tb.Errorf("mtlsgrpctest: serve: %v", err)
			}
		})
		return s
	}
	go func() { done <- s.GRPC.Serve(ln) }()
	tb.Cleanup(func() {
		s.GRPC.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			tb.Errorf("mtlsgrpctest: serve: %v", err)
		}
	})
	return s
}

// ClientTLS returns the TLS configuration of a client of s presenting client's certificate (nil:
// none).
func (s *Server) ClientTLS(client *mtlstest.Leaf) *tls.Config {
	if client == nil {
		return &tls.Config{RootCAs: s.Roots, MinVersion: tls.VersionTLS12}
	}
	return client.ClientTLSConfig(s.Roots)
}

// Dial returns a client connection to s presenting client's certificate (nil: none), closed when
// the test ends. opts come after the transport credentials: a grpc.WithTransportCredentials of
// its own replaces them.
func (s *Server) Dial(tb testing.TB, client *mtlstest.Leaf, opts ...grpc.DialOption) *grpc.ClientConn {
	tb.Helper()
	return s.DialTLS(tb, s.ClientTLS(client), opts...)
}

// DialTLS is Dial with a TLS configuration of the caller's.
func (s *Server) DialTLS(tb testing.TB, cfg *tls.Config, opts ...grpc.DialOption) *grpc.ClientConn {
	tb.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cfg))}, opts...)
	conn, err := grpc.NewClient("passthrough:///"+s.Addr, opts...)
	if err != nil {
		tb.Fatalf("mtlsgrpctest: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}
