package mtlsgrpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/certgate/mtls"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// Interceptor authenticates the calls of a grpc-go server with an [mtls.Middleware]: once per
// unary call and once per stream (not per message), by the same pipeline, policies, revocation,
// throttling and events as the middleware's HTTP requests. It is safe for concurrent use.
type Interceptor struct {
	m        *mtls.Middleware
	exact    map[string]mtls.Policy // by full method name
	services map[string]mtls.Policy // by "/pkg.Service/"
	def      mtls.Policy            // nil: none
	open     map[string]bool        // full methods callable without a certificate
	onShadow func(context.Context, mtls.ShadowResult)
}

// New returns an interceptor deciding with m. It reports every problem of the options at once,
// each as an [*mtls.ConfigError] naming the option.
func New(m *mtls.Middleware, opts ...Option) (*Interceptor, error) {
	if m == nil {
		return nil, &mtls.ConfigError{Field: "Middleware", Err: errors.New("mtls: nil middleware")}
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	i := &Interceptor{m: m}
	if err := o.compile(i); err != nil {
		return nil, err
	}
	return i, nil
}

// Check reports, as one error joining an [*mtls.ConfigError] per name, each pattern of
// [WithPolicy] and each method of [WithoutCertificate] that names no service or method
// registered on s (a *grpc.Server): such a name, a typo or another case than the service's,
// applies to no call, and the calls it was meant for get the default policy, or none. Call it
// once the services are registered, before serving. A server with a grpc.UnknownServiceHandler
// may mean to name methods it does not register: Check reports them all the same.
func (i *Interceptor) Check(s interface {
	GetServiceInfo() map[string]grpc.ServiceInfo
}) error {
	if s == nil {
		return &mtls.ConfigError{Field: "Check", Err: errors.New("mtls: nil server")}
	}
	known := map[string]bool{} // "/pkg.Service/" and "/pkg.Service/Method"
	for service, info := range s.GetServiceInfo() {
		known["/"+service+"/"] = true
		for _, m := range info.Methods {
			known["/"+service+"/"+m.Name] = true
		}
	}
	var errs []error
	report := func(field string, names []string) {
		slices.Sort(names)
		for _, name := range names {
			if known[name] {
				continue
			}
			what := "method"
			if strings.HasSuffix(name, "/") {
				what = "service"
			}
			hint := ""
			for _, k := range slices.Sorted(maps.Keys(known)) {
				if strings.EqualFold(k, name) {
					hint = fmt.Sprintf(" (names are compared case and all: the server has %q)", k)
					break
				}
			}
			errs = append(errs, &mtls.ConfigError{Field: field, Err: fmt.Errorf("mtls: %q names no %s of the server%s", name, what, hint)})
		}
	}
	report("WithPolicy", slices.AppendSeq(slices.Collect(maps.Keys(i.exact)), maps.Keys(i.services)))
	report("WithoutCertificate", slices.Collect(maps.Keys(i.open)))
	return errors.Join(errs...)
}

// ServerOptions returns the options that chain the interceptor's Unary and Stream into a
// grpc.Server (grpc.ChainUnaryInterceptor, grpc.ChainStreamInterceptor), for
// grpc.NewServer(i.ServerOptions()...). Give the server's other interceptors after them, by
// grpc.ChainUnaryInterceptor and grpc.ChainStreamInterceptor, so that they see the identity and
// no forged certificate metadata. Never combine ServerOptions with grpc.UnaryInterceptor or
// grpc.StreamInterceptor: grpc-go runs the interceptor of those options before every chained
// one, wherever it is given, so it would see the calls before they are decided, refused ones
// too. Where one of those is needed, leave ServerOptions out and put Unary (Stream) first in
// the chain it runs.
func (i *Interceptor) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(i.Unary), grpc.ChainStreamInterceptor(i.Stream)}
}

// Unary is a grpc.UnaryServerInterceptor: it calls handler with the identity in the context
// ([mtls.FromContext]), or refuses the call with the status of the refusal ([Status]). The
// method judged is the one the call was routed by (grpc.Method), as for streams, and not
// info.FullMethod, which generated code fills with the name the service was generated under
// even when its grpc.ServiceDesc is registered under another ServiceName; info.FullMethod only
// when the context names none.
func (i *Interceptor) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method, ok := grpc.Method(ctx)
	if !ok || method == "" {
		method = info.FullMethod
	}
	ctx, err := i.Authenticate(ctx, method)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// Stream is a grpc.StreamServerInterceptor: it decides once, when the stream opens, and calls
// handler with a stream whose Context carries the identity, or refuses the stream with the
// status of the refusal ([Status]). A stream keeps the identity it opened with for as long as
// it lasts, across expiry, revocation and reloads: bound the age of connections
// (keepalive.ServerParameters.MaxConnectionAge) and of streams where that matters.
func (i *Interceptor) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := i.Authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &serverStream{ServerStream: ss, ctx: ctx})
}

// serverStream is a grpc.ServerStream with the context of the decision.
type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the stream's context, with the identity.
func (s *serverStream) Context() context.Context { return s.ctx }

// Authenticate decides the call of fullMethod ("/pkg.Service/Method") whose server context is
// ctx, as Unary and Stream do, and returns the context for the handler: with the identity, and
// without the certificate metadata of header mode unless the identity came from it; or a status
// error ([Error]). It is the function for an interceptor of your own (an auth function of
// go-grpc-middleware's interceptors/auth, for one).
func (i *Interceptor) Authenticate(ctx context.Context, fullMethod string) (context.Context, error) {
	if i.open[fullMethod] {
		if !i.m.HeaderMode() {
			return ctx, nil
		}
		md, _ := metadata.FromIncomingContext(ctx)
		return i.stripped(ctx, md, nil), nil
	}
	id, md, err := i.decide(ctx, fullMethod)
	if err != nil {
		return ctx, Error(err)
	}
	ctx = i.stripped(ctx, md, id)
	if id != nil {
		ctx = mtls.NewContext(ctx, id)
	}
	return ctx, nil
}

// policyOf returns the policy of fullMethod: its own, its service's, or the default; nil: none.
func (i *Interceptor) policyOf(fullMethod string) mtls.Policy {
	if p, ok := i.exact[fullMethod]; ok {
		return p
	}
	if len(i.services) > 0 {
		if j := lastSlash(fullMethod); j > 0 {
			if p, ok := i.services[fullMethod[:j+1]]; ok {
				return p
			}
		}
	}
	return i.def
}

func lastSlash(s string) int {
	for j := len(s) - 1; j >= 0; j-- {
		if s[j] == '/' {
			return j
		}
	}
	return -1
}

// connection is what grpc-go knows of the peer of a call.
type connection struct {
	tls  *tls.ConnectionState // nil: not a TLS connection
	addr netip.Addr           // invalid: unknown, never a trusted proxy
}

// connectionOf reads the peer of ctx. The TLS state is credentials.TLSInfo's, a value: on the
// server's own transport as on ServeHTTP's (which builds it from the request's TLS state). Its
// SPIFFEID is not used: the middleware verifies the certificate itself. Any other AuthInfo is no
// TLS. The address is a *net.TCPAddr on the server's own transport, and the "ip:port" string
// of the request's RemoteAddr under ServeHTTP; anything else (a Unix socket, a bare address) is
// no address.
func connectionOf(ctx context.Context) connection {
	var c connection
	p, ok := peer.FromContext(ctx)
	if !ok {
		return c
	}
	if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
		c.tls = &info.State
	}
	c.addr = addrOf(p.Addr)
	return c
}

// addrOf is the IP address of a, unmapped and without a zone, as package mtls reads a peer.
func addrOf(a net.Addr) netip.Addr {
	var ap netip.AddrPort
	switch a := a.(type) {
	case nil:
		return netip.Addr{}
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return netip.Addr{}
		}
	}
	if !ap.IsValid() {
		return netip.Addr{}
	}
	return ap.Addr().Unmap().WithZone("")
}
