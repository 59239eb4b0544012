package mtlsgrpc_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlsgrpc"
	"github.com/certgate/mtls/mtlsgrpc/mtlsgrpctest"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const healthCheck = "/grpc.health.v1.Health/Check"

// TestCalls runs unary calls and streams over TLS, each case on a server of its own, on
// grpc-go's own transport and under net/http (ServeHTTP): what the client gets, and what the
// handler saw.
func TestCalls(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	expired := p.issuing.NewClient("old", mtlstest.WithValidity(now.Add(-48*time.Hour), now.Add(-24*time.Hour)))
	onlyAlice := mtls.Must(mtls.RequireURIs("spiffe://example.test/alice"))
	cases := []struct {
		name    string
		client  *mtlstest.Leaf
		opts    []mtlsgrpc.Option
		method  string // SayMethod or ChatMethod
		reason  string // "": accepted
		answers string // the answer to "hi" when accepted
	}{
		{name: "valid", client: p.alice, method: mtlsgrpctest.SayMethod, answers: "alice:hi"},
		{name: "valid stream", client: p.alice, method: mtlsgrpctest.ChatMethod, answers: "alice:hi"},
		{name: "no certificate", method: mtlsgrpctest.SayMethod, reason: mtls.ReasonCertificateRequired},
		{name: "no certificate stream", method: mtlsgrpctest.ChatMethod, reason: mtls.ReasonCertificateRequired},
		{name: "untrusted", client: p.other.NewClient("mallory"), method: mtlsgrpctest.SayMethod, reason: mtls.ReasonCertificateUntrusted},
		{name: "self-signed", client: mtlstest.NewSelfSigned("mallory"), method: mtlsgrpctest.ChatMethod, reason: mtls.ReasonCertificateUntrusted},
		{name: "expired", client: expired, method: mtlsgrpctest.SayMethod, reason: mtls.ReasonCertificateExpired},
		{name: "denied by the method's policy", client: p.bob, method: mtlsgrpctest.SayMethod,
			opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy(mtlsgrpctest.SayMethod, onlyAlice)}, reason: mtls.ReasonPolicyDenied},
		{name: "allowed by the method's policy", client: p.alice, method: mtlsgrpctest.SayMethod,
			opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy(mtlsgrpctest.SayMethod, onlyAlice)}, answers: "alice:hi"},
		{name: "another method's policy", client: p.bob, method: mtlsgrpctest.ChatMethod,
			opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy(mtlsgrpctest.SayMethod, onlyAlice)}, answers: "bob:hi"},
		{name: "denied by the service's policy", client: p.bob, method: mtlsgrpctest.ChatMethod,
			opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy("/"+mtlsgrpctest.EchoService+"/", onlyAlice)}, reason: mtls.ReasonPolicyDenied},
		{name: "the method's policy before the service's", client: p.bob, method: mtlsgrpctest.SayMethod,
			opts: []mtlsgrpc.Option{
				mtlsgrpc.WithPolicy("/"+mtlsgrpctest.EchoService+"/", onlyAlice),
				mtlsgrpc.WithPolicy(mtlsgrpctest.SayMethod, mtls.PolicyFunc(func(*mtls.Identity) error { return nil })),
			}, answers: "bob:hi"},
		{name: "denied by the default policy", client: p.bob, method: mtlsgrpctest.ChatMethod,
			opts: []mtlsgrpc.Option{mtlsgrpc.WithDefaultPolicy(onlyAlice)}, reason: mtls.ReasonPolicyDenied},
		{name: "open method is not the checked one", method: mtlsgrpctest.SayMethod,
			opts: []mtlsgrpc.Option{mtlsgrpc.WithoutCertificate(healthCheck)}, reason: mtls.ReasonCertificateRequired},
	}
	for _, serveHTTP := range []bool{false, true} {
		for _, tc := range cases {
			name := tc.name
			if serveHTTP {
				name = "ServeHTTP/" + name
			}
			t.Run(name, func(t *testing.T) {
				srv := mtlsgrpctest.Start(t, mtlsgrpctest.Config{Middleware: newMiddleware(t, p, mtls.Config{}, nil), Options: tc.opts, ServeHTTP: serveHTTP})
				conn := srv.Dial(t, tc.client)
				var answer string
				var err error
				if tc.method == mtlsgrpctest.SayMethod {
					answer, err = mtlsgrpctest.Say(ctx(t), conn, "hi")
				} else {
					var answers []string
					answers, err = mtlsgrpctest.Chat(ctx(t), conn, []string{"hi"})
					if len(answers) > 0 {
						answer = answers[0]
					}
				}
				seen := srv.Echo.Seen()
				if tc.reason != "" {
					requireRefused(t, err, tc.reason)
					require.Empty(t, seen, "the handler ran")
					return
				}
				require.NoError(t, err)
				require.Equal(t, tc.answers, answer)
				require.Len(t, seen, 1)
				require.Equal(t, tc.method, seen[0].Method)
				require.Equal(t, tc.client.SHA256(), seen[0].Identity.SHA256)
			})
		}
	}
}

// TestWithoutCertificate: a method named by WithoutCertificate is called without a certificate,
// and its handler sees no identity, also when the client presents one; every other method still
// needs one.
func TestWithoutCertificate(t *testing.T) {
	p := newPKI(t)
	var ev events
	srv := start(t, newMiddleware(t, p, mtls.Config{}, &ev), mtlsgrpc.WithoutCertificate(healthCheck))
	for _, client := range []*mtlstest.Leaf{nil, p.other.NewClient("mallory"), p.alice} {
		conn := srv.Dial(t, client)
		res, err := healthpb.NewHealthClient(conn).Check(ctx(t), &healthpb.HealthCheckRequest{})
		require.NoError(t, err)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, res.GetStatus())
		_, err = healthpb.NewHealthClient(conn).List(ctx(t), &healthpb.HealthListRequest{})
		if client == p.alice {
			require.NoError(t, err)
		} else {
			require.Error(t, err)
		}
	}
	got := ev.take()
	require.Len(t, got, 3, "the List calls only")
	for _, e := range got {
		require.Equal(t, "/grpc.health.v1.Health/List", e.Method)
	}
}

// TestWithoutCertificateStrips: the handler of a method open without a certificate sees no
// certificate metadata, from a trusted proxy or not, and no identity.
func TestWithoutCertificateStrips(t *testing.T) {
	p := newPKI(t)
	for _, trusted := range []string{"127.0.0.1/32", "192.0.2.0/24"} {
		t.Run(trusted, func(t *testing.T) {
			m := newMiddleware(t, p, mtls.Config{Header: &mtls.HeaderConfig{
				Format: mtls.MustHeaderFormat("envoy-xfcc"), TrustedProxies: []netip.Prefix{netip.MustParsePrefix(trusted)},
			}}, nil)
			srv := start(t, m, mtlsgrpc.WithoutCertificate(mtlsgrpctest.SayMethod, mtlsgrpctest.ChatMethod))
			for _, client := range []*mtlstest.Leaf{nil, p.bob} {
				conn := srv.Dial(t, client)
				md := metadata.Pairs("x-forwarded-client-cert", xfcc(t, p.alice), "x_forwarded_client_cert", xfcc(t, p.alice))
				for _, method := range []string{mtlsgrpctest.SayMethod, mtlsgrpctest.ChatMethod} {
					srv.Echo.Reset()
					answer, err := call(metadata.NewOutgoingContext(ctx(t), md), conn, method)
					require.NoError(t, err)
					require.Equal(t, "-:hi", answer)
					seen := srv.Echo.Seen()
					require.Len(t, seen, 1)
					require.Nil(t, seen[0].Identity)
					requireNoCertificateMetadata(t, seen[0].Metadata)
				}
			}
		})
	}
}

// TestOptions: what New refuses.
func TestOptions(t *testing.T) {
	p := newPKI(t)
	m := newMiddleware(t, p, mtls.Config{}, nil)
	allow := mtls.PolicyFunc(func(*mtls.Identity) error { return nil })
	cases := []struct {
		name  string
		opts  []mtlsgrpc.Option
		field string // "": accepted
	}{
		{name: "none"},
		{name: "method and service", opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy("/a.B/C", allow), mtlsgrpc.WithPolicy("/a.B/", allow)}},
		{name: "no leading slash", opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy("a.B/C", allow)}, field: "WithPolicy"},
		{name: "no service", opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy("//C", allow)}, field: "WithPolicy"},
		{name: "a prefix of a service", opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy("/a.", allow)}, field: "WithPolicy"},
		{name: "too many slashes", opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy("/a.B/C/D", allow)}, field: "WithPolicy"},
		{name: "two policies", opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy("/a.B/C", allow), mtlsgrpc.WithPolicy("/a.B/C", allow)}, field: "WithPolicy"},
		{name: "nil policy", opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy("/a.B/C", nil)}, field: "WithPolicy"},
		{name: "nil default", opts: []mtlsgrpc.Option{mtlsgrpc.WithDefaultPolicy(nil)}, field: "WithDefaultPolicy"},
		{name: "open service", opts: []mtlsgrpc.Option{mtlsgrpc.WithoutCertificate("/grpc.health.v1.Health/")}, field: "WithoutCertificate"},
		{name: "open everything", opts: []mtlsgrpc.Option{mtlsgrpc.WithoutCertificate("/")}, field: "WithoutCertificate"},
		{name: "open and a policy", opts: []mtlsgrpc.Option{mtlsgrpc.WithoutCertificate("/a.B/C"), mtlsgrpc.WithPolicy("/a.B/C", allow)}, field: "WithoutCertificate"},
		{name: "open and its service's policy", opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy("/a.B/", allow), mtlsgrpc.WithoutCertificate("/a.B/C")}, field: "WithoutCertificate"},
		{name: "open and another service's policy", opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy("/a.B/", allow), mtlsgrpc.WithoutCertificate("/a.Bc/C")}},
		{name: "open and the default policy", opts: []mtlsgrpc.Option{mtlsgrpc.WithDefaultPolicy(allow), mtlsgrpc.WithoutCertificate("/a.B/C")}},
		{name: "open twice", opts: []mtlsgrpc.Option{mtlsgrpc.WithoutCertificate("/a.B/C", "/a.B/C")}, field: "WithoutCertificate"},
		{name: "open twice by two options", opts: []mtlsgrpc.Option{mtlsgrpc.WithoutCertificate("/a.B/C"), mtlsgrpc.WithoutCertificate("/a.B/C")}, field: "WithoutCertificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			i, err := mtlsgrpc.New(m, tc.opts...)
			if tc.field == "" {
				require.NoError(t, err)
				require.NotNil(t, i)
				return
			}
			var ce *mtls.ConfigError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, tc.field, ce.Field)
		})
	}
	_, err := mtlsgrpc.New(nil)
	require.Error(t, err)
}

// TestCheck: Check reports each pattern and open method that names nothing the server serves,
// such as a name in another case than the service's.
func TestCheck(t *testing.T) {
	p := newPKI(t)
	allow := mtls.PolicyFunc(func(*mtls.Identity) error { return nil })
	cases := []struct {
		name string
		opts []mtlsgrpc.Option
		errs []string // the problems reported, in order
	}{
		{name: "none"},
		{name: "served", opts: []mtlsgrpc.Option{
			mtlsgrpc.WithPolicy(mtlsgrpctest.SayMethod, allow), mtlsgrpc.WithPolicy("/grpc.health.v1.Health/", allow),
			mtlsgrpc.WithoutCertificate(mtlsgrpctest.ChatMethod), mtlsgrpc.WithDefaultPolicy(allow),
		}},
		{name: "a service in another case", opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy("/mtlsgrpctest.echo/", allow)},
			errs: []string{`WithPolicy: mtls: "/mtlsgrpctest.echo/" names no service of the server (names are compared case and all: the server has "/mtlsgrpctest.Echo/")`}},
		{name: "a method not served", opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy("/mtlsgrpctest.Echo/Shout", allow)},
			errs: []string{`WithPolicy: mtls: "/mtlsgrpctest.Echo/Shout" names no method of the server`}},
		{name: "an open method in another case", opts: []mtlsgrpc.Option{mtlsgrpc.WithoutCertificate("/grpc.health.v1.Health/check")},
			errs: []string{`WithoutCertificate: mtls: "/grpc.health.v1.Health/check" names no method of the server (names are compared case and all: the server has "/grpc.health.v1.Health/Check")`}},
		{name: "every one reported", opts: []mtlsgrpc.Option{
			mtlsgrpc.WithPolicy("/b.B/", allow), mtlsgrpc.WithPolicy("/a.A/A", allow), mtlsgrpc.WithoutCertificate("/c.C/C"),
		}, errs: []string{
			`WithPolicy: mtls: "/a.A/A" names no method of the server`,
			`WithPolicy: mtls: "/b.B/" names no service of the server`,
			`WithoutCertificate: mtls: "/c.C/C" names no method of the server`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := mtlsgrpctest.Start(t, mtlsgrpctest.Config{Middleware: newMiddleware(t, p, mtls.Config{}, nil), Options: tc.opts})
			err := srv.Interceptor.Check(srv.GRPC)
			if tc.errs == nil {
				require.NoError(t, err)
				return
			}
			var got []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var ce *mtls.ConfigError
				require.ErrorAs(t, e, &ce)
				got = append(got, ce.Field+": "+ce.Err.Error())
			}
			require.Equal(t, tc.errs, got)
		})
	}
	auth, err := mtlsgrpc.New(newMiddleware(t, p, mtls.Config{}, nil))
	require.NoError(t, err)
	require.Error(t, auth.Check(nil))
}

// TestRenamedService: a grpc.ServiceDesc registered under another ServiceName is judged by the
// name the call was routed by, on unary calls as on streams, although generated unary handlers
// give the interceptor the name they were generated under (info.FullMethod).
func TestRenamedService(t *testing.T) {
	p := newPKI(t)
	const service = "renamed.EchoV2"
	onlyAlice := mtls.Must(mtls.RequireURIs("spiffe://example.test/alice"))
	cases := []struct {
		name   string
		opts   []mtlsgrpc.Option
		client *mtlstest.Leaf
		method string // "Say" or "Chat"
		reason string // "": accepted
	}{
		{name: "service policy, unary", opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy("/"+service+"/", onlyAlice)}, client: p.bob, method: "Say", reason: mtls.ReasonPolicyDenied},
		{name: "service policy, stream", opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy("/"+service+"/", onlyAlice)}, client: p.bob, method: "Chat", reason: mtls.ReasonPolicyDenied},
		{name: "method policy, unary", opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy("/"+service+"/Say", onlyAlice)}, client: p.bob, method: "Say", reason: mtls.ReasonPolicyDenied},
		{name: "the generated name's policy does not apply", opts: []mtlsgrpc.Option{mtlsgrpc.WithPolicy(mtlsgrpctest.SayMethod, onlyAlice)}, client: p.bob, method: "Say"},
		{name: "open by the routed name", opts: []mtlsgrpc.Option{mtlsgrpc.WithoutCertificate("/" + service + "/Say")}, method: "Say"},
		{name: "not open by the generated name", opts: []mtlsgrpc.Option{mtlsgrpc.WithoutCertificate(mtlsgrpctest.SayMethod)}, method: "Say", reason: mtls.ReasonCertificateRequired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var ev events
			auth, err := mtlsgrpc.New(newMiddleware(t, p, mtls.Config{}, &ev), tc.opts...)
			require.NoError(t, err)
			conn := startEcho(t, service, tc.client, auth.ServerOptions()...)
			full := "/" + service + "/" + tc.method
			out := new(wrapperspb.StringValue)
			if tc.method == "Say" {
				err = conn.Invoke(ctx(t), full, wrapperspb.String("hi"), out)
			} else {
				var st grpc.ClientStream
				st, err = conn.NewStream(ctx(t), &grpc.StreamDesc{StreamName: "Chat", ServerStreams: true, ClientStreams: true}, full)
				if err == nil {
					require.NoError(t, st.SendMsg(wrapperspb.String("hi")))
					err = st.RecvMsg(out)
				}
			}
			if tc.reason != "" {
				requireRefused(t, err, tc.reason)
			} else {
				require.NoError(t, err)
			}
			got := ev.take()
			if tc.client == nil && tc.reason == "" {
				require.Empty(t, got, "an open method is not decided")
				return
			}
			require.Len(t, got, 1)
			require.Equal(t, full, got[0].Method)
		})
	}
}

// TestInterceptorOrder: an interceptor chained after ServerOptions (grpc.ChainUnaryInterceptor,
// grpc.ChainStreamInterceptor), or after Unary and Stream in a chain of one's own, sees the
// identity and no forged certificate metadata; one given by grpc.UnaryInterceptor or
// grpc.StreamInterceptor runs before every chained one, wherever it is given, and sees neither.
func TestInterceptorOrder(t *testing.T) {
	p := newPKI(t)
	m := newMiddleware(t, p, mtls.Config{Header: &mtls.HeaderConfig{
		Format: mtls.MustHeaderFormat("envoy-xfcc"), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
	}}, nil)
	auth, err := mtlsgrpc.New(m)
	require.NoError(t, err)
	var mu sync.Mutex
	var saw []string // per call: "identity" or "forged" or both
	look := func(c context.Context) {
		var s string
		if _, ok := mtls.FromContext(c); ok {
			s += "identity"
		}
		if md, _ := metadata.FromIncomingContext(c); len(md.Get("x-forwarded-client-cert")) > 0 {
			s += "forged"
		}
		mu.Lock()
		defer mu.Unlock()
		saw = append(saw, s)
	}
	unary := func(c context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		look(c)
		return h(c, req)
	}
	stream := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		look(ss.Context())
		return h(srv, ss)
	}
	cases := []struct {
		name string
		opts []grpc.ServerOption
		saw  string
	}{
		{name: "chained after ServerOptions", saw: "identity",
			opts: append(auth.ServerOptions(), grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream))},
		{name: "after Unary and Stream in a chain of one's own", saw: "identity",
			opts: []grpc.ServerOption{grpc.ChainUnaryInterceptor(auth.Unary, unary), grpc.ChainStreamInterceptor(auth.Stream, stream)}},
		{name: "grpc.UnaryInterceptor after ServerOptions runs first", saw: "forged",
			opts: append(auth.ServerOptions(), grpc.UnaryInterceptor(unary), grpc.StreamInterceptor(stream))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			saw = nil
			mu.Unlock()
			conn := startEcho(t, mtlsgrpctest.EchoService, p.bob, tc.opts...)
			for _, method := range []string{mtlsgrpctest.SayMethod, mtlsgrpctest.ChatMethod} {
				c := metadata.NewOutgoingContext(ctx(t), metadata.Pairs("x-forwarded-client-cert", xfcc(t, p.alice)))
				answer, err := call(c, conn, method)
				require.NoError(t, err)
				require.Equal(t, "bob:hi", answer)
			}
			mu.Lock()
			defer mu.Unlock()
			require.Equal(t, []string{tc.saw, tc.saw}, saw)
		})
	}
}

// startEcho serves Echo under the service name service on a server with opts, over TLS asking
// for a client certificate and verifying none, and returns a connection to it presenting
// client's certificate (nil: none).
func startEcho(t *testing.T, service string, client *mtlstest.Leaf, opts ...grpc.ServerOption) *grpc.ClientConn {
	t.Helper()
	ca := mtlstest.NewRootCA("server CA")
	cert := ca.NewServer("127.0.0.1").TLSCertificate()
	s := grpc.NewServer(append(opts[:len(opts):len(opts)], grpc.Creds(credentials.NewTLS(mtlsgrpc.WithH2(&tls.Config{
		Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12,
	}))))...)
	desc := mtlsgrpctest.EchoServiceDesc
	desc.ServiceName = service
	s.RegisterService(&desc, new(mtlsgrpctest.Echo))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)
	cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	if client != nil {
		cfg = client.ClientTLSConfig(ca.Pool())
	}
	conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
