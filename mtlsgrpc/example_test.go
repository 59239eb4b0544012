package mtlsgrpc_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"net"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlsgrpc"
	"github.com/certgate/mtls/mtlstest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// A health service whose List needs a client certificate of the service's CA, and whose Check
// is open to anyone, such as a load balancer.
func Example() {
	clients := mtlstest.NewRootCA("Clients CA")
	servers := mtlstest.NewRootCA("Servers CA")
	serverCert := servers.NewServer("127.0.0.1").TLSCertificate()

	m, err := mtls.New(mtls.Config{RootCAs: clients.Pool(), Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	auth, err := mtlsgrpc.New(m, mtlsgrpc.WithoutCertificate("/grpc.health.v1.Health/Check"))
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(append(auth.ServerOptions(),
		grpc.Creds(mtlsgrpc.ServerCredentials(m, &tls.Config{Certificates: []tls.Certificate{serverCert}})))...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	for _, client := range []struct {
		name string
		leaf *mtlstest.Leaf
	}{
		{"trusted", clients.NewClient("alice")},
		{"untrusted", mtlstest.NewRootCA("Other CA").NewClient("mallory")},
		{"no certificate", nil},
	} {
		cfg := &tls.Config{RootCAs: servers.Pool()}
		if client.leaf != nil {
			cfg = client.leaf.ClientTLSConfig(servers.Pool())
		}
		conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			log.Fatal(err)
		}
		hc := healthpb.NewHealthClient(conn)
		_, checkErr := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
		_, listErr := hc.List(context.Background(), &healthpb.HealthListRequest{})
		fmt.Printf("%s: Check %s, List %s\n", client.name, outcome(checkErr), outcome(listErr))
		_ = conn.Close()
	}
	// Output:
	// trusted: Check OK, List OK
	// untrusted: Check OK, List Unauthenticated certificate_untrusted
	// no certificate: Check OK, List Unauthenticated certificate_required
}

// Check catches a pattern that names nothing the server serves, here a method in another case
// than the health service's, which would otherwise leave Check closed and fail every probe.
func ExampleInterceptor_Check() {
	m, err := mtls.New(mtls.Config{RootCAs: mtlstest.NewRootCA("Clients CA").Pool(), Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	auth, err := mtlsgrpc.New(m, mtlsgrpc.WithoutCertificate("/grpc.health.v1.health/Check"))
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(auth.ServerOptions()...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	fmt.Println(auth.Check(srv))
	// Output:
	// mtls: WithoutCertificate: "/grpc.health.v1.health/Check" names no method of the server (names are compared case and all: the server has "/grpc.health.v1.Health/Check")
}

// outcome is the code of err's status, and the reason code of its ErrorInfo.
func outcome(err error) string {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == mtlsgrpc.Domain {
			return st.Code().String() + " " + info.GetMetadata()["reason"]
		}
	}
	return st.Code().String()
}

// Refusals carry the reason code for clients and dashboards, and nothing more of the reason.
func ExampleStatus() {
	st := mtlsgrpc.Status(&mtls.Error{Kind: mtls.ErrExpired, Detail: "leaf expired 3h ago"})
	fmt.Println(st.Code(), st.Message())
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			fmt.Println(info.GetReason(), info.GetDomain(), info.GetMetadata()["reason"])
		}
	}
	// Output:
	// Unauthenticated mtls: certificate_expired
	// CERTIFICATE_EXPIRED github.com/certgate/mtls certificate_expired
}
