// Package mtlsgrpc authenticates the calls of a grpc-go server by X.509 client certificate with
// an [mtls.Middleware] of [github.com/certgate/mtls]: the same pipeline, trust, policies,
// revocation, throttling, events and reloads as its net/http handlers, decided once per unary
// call and once per stream, and refusals as gRPC statuses.
//
//	m, err := mtls.New(mtls.Config{RootCAFiles: []string{"clients-ca.pem"}})
//	if err != nil {
//		log.Fatal(err)
//	}
//	auth, err := mtlsgrpc.New(m,
//		mtlsgrpc.WithPolicy("/bank.Admin/", admins),                 // every method of a service
//		mtlsgrpc.WithoutCertificate("/grpc.health.v1.Health/Check"), // open to anyone, by name
//	)
//	if err != nil {
//		log.Fatal(err)
//	}
//	srv := grpc.NewServer(append(auth.ServerOptions(),
//		grpc.Creds(mtlsgrpc.ServerCredentials(m, &tls.Config{Certificates: serverCerts})))...)
//	bankpb.RegisterAdminServer(srv, admin)
//	healthpb.RegisterHealthServer(srv, health.NewServer())
//	if err := auth.Check(srv); err != nil { // a pattern or open method naming nothing served
//		log.Fatal(err)
//	}
//
// Handlers read the client with [mtls.FromContext], on unary calls and streams alike.
//
// # Other interceptors
//
// Give the server's other interceptors after [Interceptor.ServerOptions], by
// grpc.ChainUnaryInterceptor and grpc.ChainStreamInterceptor: they run after the decision, see
// the identity and no forged certificate metadata, and never see a refused call. Never combine
// ServerOptions with grpc.UnaryInterceptor or grpc.StreamInterceptor: grpc-go runs the
// interceptor of those options before every chained one, wherever it is given in the list. To
// use them all the same, leave ServerOptions out and put [Interceptor.Unary] and
// [Interceptor.Stream] first in your own chain.
//
// # The call
//
// The interceptor builds an [mtls.Call] from what grpc-go knows of the call and runs
// [mtls.Middleware.Decide] on it:
//
//   - the TLS state of the connection, from the peer's credentials.TLSInfo (its SPIFFEID is not
//     used: the middleware verifies the certificate itself); any other AuthInfo is no TLS;
//   - the peer's address, from peer.FromContext, for header mode's trusted proxies: a
//     *net.TCPAddr on grpc-go's own transport, the request's RemoteAddr under
//     grpc.Server.ServeHTTP; anything else is no address, and never a trusted proxy;
//   - the :authority, which must name the server the client named in the handshake
//     (misdirected_request otherwise, see [mtls.Config.DangerouslyAllowHostMismatch]), and a
//     host field beside it (net/http's HTTP/2 server keeps one in the metadata) the same;
//   - the incoming metadata, where header mode reads a trusted proxy's certificate field (Envoy
//     sends x-forwarded-client-cert); the metadata of any other peer is ignored, and every
//     spelling of the certificate fields (any case, '_' for '-') is removed from the context
//     the handler gets, unary and stream alike, and so is, from every peer, the "-bin" form of
//     each (x-forwarded-client-cert-bin), which grpc-go would hand the handler base64-decoded.
//     Stats and tap handlers, which run before the interceptor, still see them;
//   - the full method name, the per-method policy ([WithPolicy], [WithDefaultPolicy]), judged
//     after [mtls.Config.Policy] in the same decision, and the shadow hook ([WithOnShadow]).
//
// Each decision is one [mtls.Event], with Transport "grpc" and Method the full method name the
// call was routed by; its Status stays the HTTP status of the reason. A method named by
// [WithoutCertificate] is not decided at all: no identity, no event.
//
// Under grpc.UnknownServiceHandler, every call of a method the server does not serve is decided
// too, as a stream, by the :path the client sent: the policies of its name apply
// ([WithDefaultPolicy] for a name no pattern names), and Event.Method holds at most its first
// 256 bytes, as the client chose them.
//
// # Refusals
//
// A refusal is a status with the code of its stable reason code ([Code]), the message "mtls: "
// and the reason code, a google.rpc.ErrorInfo detail (Reason the code upper-cased, Domain
// [Domain], metadata "reason" the code) and, for the 429s of HTTP, a google.rpc.RetryInfo
// detail ([Status]):
//
//	certificate_required, certificate_untrusted, certificate_expired,
//	certificate_not_yet_valid, certificate_wrong_usage, certificate_revoked,
//	credentials_required                     Unauthenticated
//	policy_denied, misdirected_request       PermissionDenied
//	revocation_unavailable                   Unavailable
//	header_malformed                         InvalidArgument
//	rate_limited, too_many_refusals          ResourceExhausted, with RetryInfo
//	any other reason code                    Unauthenticated
//
// The detail of a refusal ([mtls.Error.Detail]) goes to the events and the logger only.
//
// # Under net/http
//
// A grpc.Server served by net/http (its ServeHTTP method) takes the same interceptors: give the
// http.Server m.TLSConfig([WithH2](base)) and do not wrap the gRPC server in m.Handler, which
// would decide each call a second time and refuse with HTTP statuses that gRPC clients do not
// read. The peer is then the request's RemoteAddr: a middleware in front that rewrites it from
// a client's header makes header mode trust the client.
//
// # Streams
//
// A stream is decided when it opens and keeps its identity for as long as it lasts, across the
// certificate's expiry, its revocation and reloads: bound the age of connections
// (keepalive.ServerParameters.MaxConnectionAge) and of streams where that matters.
//
// # Module
//
// This is a module of its own, so that package mtls does not depend on grpc-go. grpc-go v1.85
// needs Go 1.26, and so does this module; package mtls itself needs Go 1.25. The test kit is
// [github.com/certgate/mtls/mtlsgrpc/mtlsgrpctest].
package mtlsgrpc
