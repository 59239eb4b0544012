package mtls

import (
	"crypto/x509"
	"net/netip"
	"strings"
	"time"
)

// HeaderConfig turns on header mode: a TLS-terminating proxy in front of the service forwards the
// client certificate in a request header, and the middleware verifies it like a certificate
// presented on a direct TLS connection.
//
// # Trust model
//
// A header is believed only from a trusted proxy, decided by the immediate peer of the
// connection: its address (r.RemoteAddr) must lie in TrustedProxies, and/or it must have
// presented, on its TLS connection to this service, a certificate that verifies under the
// middleware's trust and is accepted by ProxyPolicy. When both are set, both must hold. At least
// one must be set: [New] refuses a header mode that would trust every peer.
//
// # Which source wins
//
// The peer decides. From a trusted proxy only the header counts: its absence means "no
// certificate", and the proxy's own TLS certificate never authenticates the request. From any
// other peer only the TLS connection counts: the certificate headers are ignored and removed,
// with their companions ([HeaderConfig.CompanionHeaders]), from the request before the next
// handler runs. So one listener can serve direct TLS clients and proxied clients;
// [Identity.Source] says which one a request was.
//
// None of these headers ever reaches the next handler as a request trailer, whatever the peer:
// a proxy's trailers are its client's, not its own word. The request the next handler sees has a
// Trailer map of its own, holding the trailers the client declared other than these; their
// values are copied into it when the body has been read to its end (io.EOF), as net/http does.
//
// The certificate headers must be set, or removed, by the proxy on every request: a client can
// send them too, and the middleware cannot tell a copy the proxy let through from the real one.
//
// [RejectAtHandshake] applies to every TLS connection, the proxies' included: with a required
// certificate, a proxy that connects over TLS must then present a certificate that verifies.
// The checks [Middleware.TLSConfig] makes by default apply to them too: a proxy trusted by its
// address alone that presents a certificate of its own with a key slow to check (RSA above 3072
// bits, ECDSA P-384 or P-521) from a CA outside the middleware's trust fails the handshake. Have
// such a proxy present no certificate, one of a CA of the trust, or one with a faster key
// (P-256, Ed25519, RSA up to 3072 bits).
type HeaderConfig struct {
	// Format decodes the header(s), for example MustHeaderFormat("nginx"). Required.
	Format Format

	// Names replaces Format.HeaderNames() position by position (the first carries the leaf).
	// When set, exactly these headers are read; any default beyond its length is not. A name
	// ending in "-bin" cannot be read from gRPC metadata, which holds such values base64-decoded
	// (see [Call.LowerCaseKeys]). Default: Format.HeaderNames().
	Names []string

	// CompanionHeaders adds names to the family of the certificate headers: the headers the
	// proxy sets beside them under names of its configuration's choosing, such as a verification
	// result, subject or fingerprint (nginx's "proxy_set_header X-Client-Verify
	// $ssl_client_verify;"). The family is Names, the format's default header names, the
	// format's own companions (see [Format]) and these. From a peer that is not a trusted proxy
	// every header of the family is removed before the next handler runs, under any spelling:
	// case, and any byte other than a letter or digit for '-' ('_', '.', '~': CGI gateways and
	// PHP read X_Client_Verify and X.Client.Verify as X-Client-Verify). From a trusted proxy
	// they pass as the proxy set them, and one spelled otherwise (X_Client_Verify) is refused
	// as malformed. Names are canonicalised, and refused like Names when invalid or given
	// twice; at most 64.
	//
	// [Forward] deletes only the families of the formats it is given, and does not know these
	// names: where a Go gateway forwards to this service, add them to the format instead, with
	// [WithCompanions], and use that one format here (in Format) and in the gateway's Forward.
	//
	// What a trusted proxy says in a companion header is its own word, which the middleware does
	// not verify: the proxy may have forwarded a certificate it did not check (nginx's
	// optional_no_ca), and its subject or serial strings differ from the certificate's fields
	// in escaping and form. Handlers should read the [Identity] ([FromContext]), which the
	// middleware verified, not these headers. Default: the format's companions only.
	CompanionHeaders []string

	// TrustedProxies are the networks of the proxies allowed to set the header, compared with
	// the address of the immediate peer (IPv4-mapped IPv6 addresses are unmapped, zones
	// ignored): the connection's, when the server sets [ConnContext], or else r.RemoteAddr in the
	// "ip:port" form net/http sets. A bare address, as middlewares that copy X-Forwarded-For or
	// X-Real-IP into RemoteAddr leave it, is never trusted; a middleware that copies a client's
	// "ip:port" unchecked defeats the check unless ConnContext is set. Such middlewares must run
	// after this one. A prefix that covers every address (/0) is refused.
	//
	// Behind a listener that reads the PROXY protocol (HAProxy's, as AWS NLB and others send
	// it), the connection's address is the one the PROXY header claims: such listeners replace
	// the connection's RemoteAddr, so TrustedProxies judges that claim, not the load balancer
	// that made it. The PROXY listener must itself accept PROXY headers only from the load
	// balancer (its own allow list of source addresses), or any client that reaches the port
	// directly can claim a trusted proxy's address. Default: none.
	TrustedProxies []netip.Prefix

	// ProxyPolicy trusts a proxy by the client certificate it presents on its own TLS
	// connection to this service (as Kubernetes' front proxy and service meshes do). The
	// proxy's certificate is verified with the middleware's trust (and revocation checking, when
	// configured) first, then checked by the policy, which must admit the proxies and nothing else (such as a SPIFFE ID or a pinned
	// fingerprint): any client it admits can assert any identity. Default nil: not used.
	ProxyPolicy Policy

	// MaxBytes bounds the total size of the certificate header values of one request; a larger
	// request is refused as malformed. Default 32 KiB.
	MaxBytes int

	// XFCCBy turns on X-Forwarded-Client-Cert over several hops, for the "envoy-xfcc" format:
	// the By value that the Envoy next to this service writes first for itself, which is the
	// first URI SAN of its own certificate (in a mesh, this service's SPIFFE ID, such as
	// "spiffe://cluster.local/ns/prod/sa/backend"; an X509-SVID has just that one). List
	// several while that identity changes.
	//
	// With it, the header may hold the elements of earlier hops, as Envoy's APPEND_FORWARD
	// writes them. The client is the last element: the one the Envoy next to this service
	// appended. It must start with one of these By values, at the one place in the value
	// where "By=" and one of them follow a comma or the start; be written as Envoy writes an
	// element (By, an unquoted Hash, then the quoted Cert, Chain and Subject, then URI and
	// DNS; no other key); and hold a Cert or Chain that its Hash matches (so that Envoy must
	// forward Cert or Chain). A header in which an earlier element also carries one of these
	// By values is refused, wherever that element is: a client that can write earlier
	// elements (any peer of an APPEND_FORWARD proxy) cannot pass an element of its own for
	// the client's, and a separator in a SAN, which Envoy writes unquoted, cannot either. A
	// last element without one of these By values is refused too, as is any element that does
	// not parse: an earlier element is never skipped. The earlier elements (at most 15, of at
	// most 64 pairs each and 8 KiB of names together; the last element is bounded by MaxBytes
	// only) are on [Identity.ForwardedBy]: what the earlier proxies said, never verified.
	// Earlier proxies write their clients' URI and DNS SANs unquoted, so a client's
	// certificate can make up elements after its proxy's: those are marked
	// [XFCCElement.Ambiguous]. Have the proxies before the one next to this service forward
	// only Hash and Subject, or use SANITIZE_SET, and never let a policy rely on the number of
	// earlier elements, or on the last of them, when one is Ambiguous.
	//
	// Every value must be an absolute URI without ",", ";", `"`, `\`, spaces or control
	// characters (Envoy writes By unquoted). Default none: only the last element is read, and
	// a header whose earlier elements hold anything but Hash and quoted Cert, Chain and
	// Subject (such as any By) is refused as ambiguous.
	XFCCBy []string

	// DangerouslyTrustProxyVerification accepts the forwarded certificate without building a
	// chain to this middleware's trust anchors, relying on the proxy's verification. Only the
	// certificate's own properties are still checked: validity period, clientAuth usage, not a
	// CA, chain length. Anyone who can make the proxy forward a certificate it did not verify
	// (an optional_no_ca listener, a passthrough mode, a misconfiguration) can then authenticate
	// with a self-made certificate. It cannot be combined with [Config.Revocation], which needs
	// chains verified here. Default false: the certificate is verified here as if it had been
	// presented directly.
	DangerouslyTrustProxyVerification bool

	// ProbePath turns on the proxy probe at this path (such as "/.well-known/mtls-probe"): the
	// middleware answers a GET for it itself, before authentication and without calling the next
	// handler, with which request headers carry the canary of [ProbeProxy], so that a forged
	// header the proxy lets through is found. It is compared with r.URL.Path as the middleware
	// sees it. The answer names only headers the client itself sent with its canary, and whether
	// the peer is a trusted proxy (which any client can learn from a forged header's refusal).
	// Default "": off.
	ProbePath string
}

// DefaultHeaderMaxBytes is the default of [HeaderConfig.MaxBytes].
const DefaultHeaderMaxBytes = 32 << 10

// maxHeaderNames bounds the number of headers a format may read.
const maxHeaderNames = 8

// maxCompanionHeaders bounds HeaderConfig.CompanionHeaders.
const maxCompanionHeaders = 64

// headerSource is a HeaderConfig checked and frozen by New.
type headerSource struct {
	format     Format
	formatName string
	names      []string // canonical, len <= number of format headers
	// family is names (first, at the same positions), the format's default names, its
	// companions and CompanionHeaders: removed from other peers' requests, never a trailer.
	family     nameSet
	lists      [maxHeaderNames]bool // names[i] is a list whose field lines are joined
	nvalues    int                  // number of values Decode takes
	prefixes   []netip.Prefix
	policy     Policy
	maxBytes   int
	trustProxy bool
	xfccBy     []string // HeaderConfig.XFCCBy; nil: off
	probePath  string   // "": the probe is off
	binName    string   // the first of names that ends in "-bin" (see Call.LowerCaseKeys); "": none
}

// binNameOf returns the first of names that ends in "-bin", in any case: gRPC metadata of such a
// name holds the base64-decoded value, not what was sent.
func binNameOf(names []string) string {
	for _, n := range names {
		if len(n) >= 4 && strings.EqualFold(n[len(n)-4:], "-bin") {
			return n
		}
	}
	return ""
}

// checkForwarded checks what DangerouslyTrustProxyVerification still checks: the certificate's
// own properties, not its chain to an anchor. The chain it returns is the leaf alone: the
// forwarded intermediates were verified by nobody here, so no later step (an issuer rule, a
// revocation check) may rely on them.
func (t *trust) checkForwarded(presented []*x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
	if err := t.checkPresented(presented, now); err != nil {
		return nil, err
	}
	return presented[:1], nil
}
