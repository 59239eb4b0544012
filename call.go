package mtls

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/netip"
)

// The pipeline over any transport. The net/http handlers build a Call from each request, on the
// stack, and run the one pipeline (pipeline.go) on it; a transport of another kind (gRPC) builds
// its own and calls Decide, which runs the same steps and reports the same event.

// Call is one call to authenticate, on whatever transport carries it: what [Middleware.Decide]
// needs to know of it, all of it read-only. Context is the only field required; a zero field
// means "not presented". Build one per call (it is small enough for the stack); Decide keeps no
// reference to it.
type Call struct {
	// Context is the call's context: revocation checks run in it, and [Config.OnDecision] and
	// the logger receive it. nil stands for context.Background().
	Context context.Context

	// TLS is the state of the TLS connection the call came on; nil: not TLS. Its
	// PeerCertificates are the client's presented chain (leaf first), as crypto/tls hands them
	// out: the cache keys on these very certificate objects, so pass the connection's own
	// slice, not a copy, for the fast path. A proxy trusted by [HeaderConfig.ProxyPolicy] is
	// judged by the certificate it presented here.
	TLS *tls.ConnectionState

	// Peer is the address of the connection's immediate peer, as the transport reports the
	// connection (never as a header or metadata names it): it is compared with
	// [HeaderConfig.TrustedProxies], keys the slowing of calls without a certificate
	// ([Config.RefusalThrottle]) and is logged. IPv4-mapped IPv6 addresses are unmapped and
	// zones ignored. The zero Addr (invalid) is never a trusted proxy and is never slowed.
	Peer netip.Addr

	// Authority is the server the call is addressed to: the HTTP Host, the :authority of
	// HTTP/2 and gRPC. On a TLS connection with a client certificate it must name the server
	// the client named in the handshake (TLS.ServerName), with a port of digits if any, or the
	// call is refused with [ErrMisdirected] (see [Config.DangerouslyAllowHostMismatch]). The
	// check runs whether or not Authority is set: an empty one passes only when the client sent
	// no server name either.
	Authority string

	// Fields are the call's header fields (HTTP headers, gRPC metadata): an http.Header and a
	// metadata.MD assign to it as they are, without a copy. From a trusted proxy
	// ([HeaderConfig]), the certificate fields are read from them; from any other peer they
	// are ignored, and [Middleware.StripCertificateFields] removes them before the handler
	// runs. A "Host" field ("host" with LowerCaseKeys) that names another authority than
	// Authority is refused as [ErrMisdirected] (RFC 9113, section 8.3.1). Decide never
	// modifies Fields. nil: no fields.
	Fields map[string][]string

	// LowerCaseKeys says that the keys of Fields are lower-case, as HTTP/2 sends field names
	// and gRPC metadata holds them; otherwise they are canonical, as net/http reads them
	// ([http.CanonicalHeaderKey]). A trusted proxy's certificate field is read under that one
	// spelling of its name; any other spelling of the name (another case, '_' or '.' for '-') is
	// refused as [ErrMalformedHeader], as consumers that fold names would read it as the same
	// field. With LowerCaseKeys, a configured certificate header name ([HeaderConfig.Names])
	// that ends in "-bin" refuses every call from a trusted proxy as ErrMalformedHeader:
	// grpc-go decodes the base64 of such metadata, so that its value is not the text the proxy
	// sent.
	LowerCaseKeys bool

	// Transport names the transport, such as "grpc", and Method the call, such as the full gRPC
	// method "/pkg.Service/Method": they are copied to [Event.Transport] and [Event.Method] and
	// logged, and judge nothing. The event gets at most their first 256 bytes (cut at a rune,
	// "..." marking the cut): a client may choose the method, as a gRPC server's
	// UnknownServiceHandler decides any :path. The net/http handlers leave both empty.
	Transport string
	Method    string

	// Policy is a policy for this call alone (per method): it is judged after [Config.Policy]
	// (and Config.PolicyFiles), in the same decision, and before the throttling tiers, so that
	// a refused call takes no token; a refusal is 403 "policy_denied" ([ErrDenied]) in the call's
	// one event, with Event.Rule and Event.Method. In optional mode ([Config.Optional]) a call
	// with a Policy and without a certificate is refused with 401 "certificate_required", as
	// [Middleware.Require] refuses a request without an identity. [Config.ShadowPolicy] is
	// compared with Config.Policy alone (ShadowResult.Enforced). Prepare it once with
	// [Middleware.CallPolicy], so that it runs on [Config.Now] and follows the middleware's
	// reloads; any other Policy is judged as it is. nil: none.
	Policy Policy

	// OnShadow receives the outcome of [Config.ShadowPolicy] for this call, in place of
	// [Config.OnShadow], which takes an *http.Request and is not called for a Call; the logger
	// gets the outcome either way. It runs in the call's path and must be fast and safe for
	// concurrent use. nil: none.
	OnShadow func(ctx context.Context, res ShadowResult)

	req *http.Request // the request a net/http handler built the call from; nil for Decide's
}

// callOf is the call of an HTTP request: its context, TLS state, Host and header. The peer is
// read from r when it is needed (peer): only header mode and the slowing of requests without a
// certificate look at it.
func callOf(r *http.Request) Call {
	return Call{Context: r.Context(), TLS: r.TLS, Authority: r.Host, Fields: r.Header, req: r}
}

// ctx is the call's context.
func (c *Call) ctx() context.Context {
	if c.Context == nil {
		return context.Background()
	}
	return c.Context
}

// peer is the address of the call's immediate peer, and whether there is one: for an HTTP
// request, as [ConnContext] recorded it or else its RemoteAddr in the "ip:port" form net/http
// sets (a bare address is a middleware's rewrite from a client-supplied header); otherwise
// Call.Peer.
func (c *Call) peer() (netip.Addr, bool) {
	if c.req != nil {
		return peerAddr(c.req)
	}
	a := c.Peer.Unmap().WithZone("")
	return a, a.IsValid()
}

// remote is the peer as the shadow policy's records name it: an HTTP request's RemoteAddr, or
// the peer's address.
func (c *Call) remote() string {
	if c.req != nil {
		return c.req.RemoteAddr
	}
	if a, ok := c.peer(); ok {
		return a.String()
	}
	return ""
}

// hostFields are the values of the call's Host field, which HTTP/2 leaves beside :authority.
func (c *Call) hostFields() []string {
	if c.LowerCaseKeys {
		return c.Fields["host"]
	}
	return c.Fields["Host"]
}

// Decide runs the whole pipeline on c (claim, refusal slowing, screen, cache, verification,
// revocation, principal, [Config.Policy], c.Policy, throttling tiers) and returns the identity,
// or the refusal: an [*Error], the same as a net/http handler's, so that [StatusAndReason] gives
// its stable reason code (and the HTTP status); RetryAfter is set on the 429s. It reports the
// decision as one [Event] ([Config.OnDecision], the logger; Transport and Method from c), and
// the shadow policy's outcome, as [Middleware.Handler] does; it writes nothing, and c is not
// modified. In optional mode a call without a certificate yields (nil, nil).
//
// It is the entry point of transports other than net/http, such as a gRPC interceptor, which
// maps the refusal to its own status by reason code, never sends Error.Detail, places the
// identity in the handler's context with [NewContext], and, unless the identity came from the
// proxy's fields, removes the certificate fields a client may have forged with
// [Middleware.StripCertificateFields]. c must not be nil.
func (m *Middleware) Decide(c *Call) (*Identity, error) {
	start := m.clock()
	d := m.decide(c)
	m.slowNoCertificate(c, &d)
	m.note(c, &d, start)
	return d.id, d.err
}

// HeaderMode reports whether the middleware reads a certificate from a trusted proxy's fields
// ([Config.Header] is set). Without it, [Middleware.Decide] reads no [Call.Fields] but the
// Host check's, and [Middleware.StripCertificateFields] removes nothing: a transport whose
// fields cost a copy to read (gRPC metadata) can then leave Fields nil.
func (m *Middleware) HeaderMode() bool { return m.header != nil }

// StripCertificateFields returns f without the certificate fields of header mode (the
// certificate headers and their companions, see [HeaderConfig.CompanionHeaders], under any
// spelling: any case, '_' or '.' for '-') unless id came from them (id.Source is
// [SourceHeader]), and whether it removed any. f itself is never modified: when something must
// go, the result is a copy (sharing the values), else f. Without header mode it returns f,
// false. Call it on the fields the handler will see, after an acceptance by
// [Middleware.Decide] (id nil in optional mode), so that a client's forged certificate field
// never reaches it; the net/http handlers do the same on each request they accept.
func (m *Middleware) StripCertificateFields(f map[string][]string, id *Identity) (map[string][]string, bool) {
	h := m.header
	if h == nil || id != nil && id.Source == SourceHeader || !h.family.in(f) {
		return f, false
	}
	return h.family.without(f), true
}

// CallPolicy returns p prepared for [Call.Policy]: judged on [Config.Now], and, when p is a
// policy read by [LoadPolicyFile] or holds one inside [All], [Any] or [Not], following the
// middleware's reloads as a [Middleware.Require] policy does (read again with the rest of the
// configuration, and judged as loaded with the trust that verified the call). Prepare each
// policy once, when the service is set up, not per call. The result is a Policy of its own,
// usable elsewhere too (it then judges as loaded now). CallPolicy panics if p is nil, and
// beyond 1024 distinct policy files, as Require does.
func (m *Middleware) CallPolicy(p Policy) Policy {
	if p == nil {
		panic("mtls: CallPolicy called with a nil policy")
	}
	return &callPolicy{rp: m.preparedPolicy(p)}
}

// callPolicy is a policy of CallPolicy.
type callPolicy struct{ rp *routePolicy }

// Check judges id by the policy as loaded now.
func (p *callPolicy) Check(id *Identity) error { return p.rp.under(p.rp.m.state.Load()).Check(id) }

// callPolicyOf returns the policy of c for a decision under st: a policy of m's CallPolicy as
// loaded with st, any other as it is; nil when c has none.
func (m *Middleware) callPolicyOf(c *Call, st *state) Policy {
	if cp, ok := c.Policy.(*callPolicy); ok && cp.rp.m == m {
		return cp.rp.under(st)
	}
	return c.Policy
}
