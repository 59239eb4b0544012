// Command grpc shows client-certificate authentication of a gRPC service end to end, with
// nothing to set up:
//
//	cd examples/grpc && go run .
//
// It mints an in-memory PKI, serves a greeter and the standard health service with grpc-go on a
// random 127.0.0.1 port, authenticated by an mtls.Middleware through mtlsgrpc's interceptors,
// calls it as a trusted client, an untrusted one and one without a certificate, prints what
// each got (the gRPC code and the reason code of the refusal's ErrorInfo) and exits. The health
// check is open to anyone, as a load balancer's probe needs. The server's log (slog.Default(),
// on stderr) says why each refusal was made; the client gets the reason code only.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlsgrpc"
	"github.com/certgate/mtls/mtlstest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(out io.Writer) error {
	// The PKI: a CA that issues our clients' certificates, one we do not trust, and the server's.
	clientCA := mtlstest.NewRootCA("Clients Root CA")
	strangerCA := mtlstest.NewRootCA("Unknown CA")
	serverCA := mtlstest.NewRootCA("Server CA")
	serverCert := serverCA.NewServer("127.0.0.1").TLSCertificate()

	// The service: every call needs a certificate that chains to clientCA, but the health check.
	m, err := mtls.New(mtls.Config{RootCAs: clientCA.Pool()})
	if err != nil {
		return err
	}
	defer m.Close()
	auth, err := mtlsgrpc.New(m, mtlsgrpc.WithoutCertificate("/grpc.health.v1.Health/Check"))
	if err != nil {
		return err
	}
	srv := grpc.NewServer(append(auth.ServerOptions(),
		grpc.Creds(mtlsgrpc.ServerCredentials(m, &tls.Config{Certificates: []tls.Certificate{serverCert}})))...)
	srv.RegisterService(&greeterDesc, greeter{})
	healthpb.RegisterHealthServer(srv, health.NewServer())
	if err := auth.Check(srv); err != nil { // a policy or open method naming no registered method
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() { srv.Stop(); <-served }()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range []struct {
		name string
		leaf *mtlstest.Leaf
	}{
		{"trusted client", clientCA.NewClient("acme-billing")},
		{"untrusted CA", strangerCA.NewClient("mallory")},
		{"no certificate", nil},
	} {
		cfg := &tls.Config{RootCAs: serverCA.Pool(), MinVersion: tls.VersionTLS12}
		if c.leaf != nil {
			cfg = c.leaf.ClientTLSConfig(serverCA.Pool())
		}
		conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			return err
		}
		reply := new(wrapperspb.StringValue)
		err = conn.Invoke(ctx, "/demo.Greeter/Hello", wrapperspb.String("hi"), reply)
		fmt.Fprintf(out, "%-16s Hello  %s\n", c.name, outcome(err, reply.GetValue()))
		res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		fmt.Fprintf(out, "%-16s Check  %s\n", c.name, outcome(err, res.GetStatus().String()))
		if err := conn.Close(); err != nil {
			return err
		}
	}
	return nil
}

// outcome is what a client got: OK and the answer, or the code and the reason code of the
// refusal's ErrorInfo.
func outcome(err error, answer string) string {
	st := status.Convert(err)
	if err == nil {
		return fmt.Sprintf("%-16s %s", st.Code(), answer)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == mtlsgrpc.Domain {
			return fmt.Sprintf("%-16s reason=%s", st.Code(), info.GetMetadata()["reason"])
		}
	}
	return fmt.Sprintf("%-16s %s", st.Code(), st.Message())
}

// greeter answers Hello with the client's name, which the handler reads from the context.
type greeter struct{}

func (greeter) hello(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	id, ok := mtls.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "no identity") // cannot happen: the method needs a certificate
	}
	return wrapperspb.String(in.GetValue() + " " + id.Leaf.Subject.CommonName), nil
}

// greeterDesc describes the service demo.Greeter by hand, as protoc-gen-go-grpc would.
var greeterDesc = grpc.ServiceDesc{
	ServiceName: "demo.Greeter",
	HandlerType: (*interface {
		hello(context.Context, *wrapperspb.StringValue) (*wrapperspb.StringValue, error)
	})(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Hello",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			handler := func(ctx context.Context, req any) (any, error) {
				return srv.(greeter).hello(ctx, req.(*wrapperspb.StringValue))
			}
			if interceptor == nil {
				return handler(ctx, in)
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/demo.Greeter/Hello"}, handler)
		},
	}},
}
