package mtls

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"time"

	"github.com/certgate/mtls/internal/spiffeid"
)

// Source says where a verified certificate came from.
type Source string

const (
	// SourceTLS: the client presented the certificate on the TLS connection to this process.
	SourceTLS Source = "tls"
	// SourceHeader: a trusted proxy terminated TLS and forwarded the certificate in a header.
	SourceHeader Source = "header"
)

// Identity is a verified client. Handlers read it with [FromContext]. It is shared between
// requests that present the same chain, and its CA certificates with every identity under the
// same CAs: treat it, and the certificates it points to, as read-only. Its Leaf may be a copy
// rather than the object in r.TLS.PeerCertificates: compare certificates by Raw or by SHA256,
// never by pointer.
type Identity struct {
	// Source is where the certificate came from.
	Source Source
	// Format is the header format for SourceHeader (such as "nginx"), empty for SourceTLS.
	Format string
	// Proxy is the address of the proxy that forwarded the certificate, for SourceHeader.
	Proxy netip.Addr

	// Leaf is the client certificate.
	Leaf *x509.Certificate
	// Chain is the verified chain, leaf first and trust anchor last. For a pinned leaf, and for a
	// certificate accepted on a proxy's word (HeaderConfig.DangerouslyTrustProxyVerification), it
	// holds the leaf alone.
	Chain []*x509.Certificate
	// Pinned is true when the leaf was accepted by its pinned fingerprint rather than by a chain
	// to a root.
	Pinned bool

	// SHA256 is the lowercase hex SHA-256 fingerprint of the leaf's DER encoding.
	SHA256 string
	// X5tS256 is the same digest in base64url without padding: the RFC 8705 "x5t#S256"
	// confirmation value of certificate-bound access tokens.
	X5tS256 string

	// Subject alternative names of the leaf.
	DNSNames       []string
	EmailAddresses []string
	URIs           []*url.URL
	IPAddresses    []net.IP
	// SPIFFEID is the leaf's SPIFFE ID ("spiffe://trust-domain/path") when it has exactly one
	// URI SAN and that URI is a well-formed SPIFFE ID; empty otherwise.
	SPIFFEID string

	// Principal is the account the certificate stands for, when a principal mapping resolved one.
	Principal string

	// ExpiresSoon: the leaf expires within [Config.ExpiryWarning] of the request; tell the
	// partner to renew it.
	ExpiresSoon bool

	// Revocation is the zero value when revocation passed on fresh answers or is not checked,
	// and says so when the request was accepted on a stale answer or without one (see
	// [RevocationConfig]).
	Revocation RevocationStatus

	sum [sha256.Size]byte
	// bindings are the bindings of each BindingStore loaded with the trust that verified the
	// identity (see Middleware.Reload); nil outside a middleware's reloads.
	bindings map[*BindingStore]*Bindings
	// forwardedBy are the X-Forwarded-Client-Cert elements before the client's (see
	// ForwardedBy); shared, never modified.
	forwardedBy []XFCCElement
}

// NotAfter is the end of the leaf's validity.
func (id *Identity) NotAfter() time.Time { return id.Leaf.NotAfter }

// NewIdentity returns the identity the middleware would build for chain (leaf first, trust
// anchor last, as [x509.Certificate.Verify] returns it), with every field and the internal
// digest that thumbprint rules and bindings compare filled in, so that every [Policy] judges it
// exactly as it judges the identity of a real request presenting that chain. Source is
// [SourceTLS]; set Source, Format, Proxy, Pinned or Principal afterwards to fake a proxied,
// pinned or mapped client. It returns nil when chain is empty or its leaf is nil.
//
// It verifies nothing: it exists for handlers' tests, with [NewContext]. A hand-built Identity
// literal is not judged like a real one (thumbprint rules and bindings refuse it), so build test
// identities with NewIdentity; [github.com/certgate/mtls/mtlstest] mints the chains.
func NewIdentity(chain []*x509.Certificate) *Identity {
	if len(chain) == 0 || chain[0] == nil {
		return nil
	}
	return newIdentity(slices.Clone(chain), false)
}

// newIdentity builds the identity of a verified chain.
func newIdentity(chain []*x509.Certificate, pinned bool) *Identity {
	leaf := chain[0]
	sum := sha256.Sum256(leaf.Raw)
	return &Identity{
		Source:         SourceTLS,
		Leaf:           leaf,
		Chain:          chain,
		Pinned:         pinned,
		SHA256:         hex.EncodeToString(sum[:]),
		X5tS256:        base64.RawURLEncoding.EncodeToString(sum[:]),
		DNSNames:       leaf.DNSNames,
		EmailAddresses: leaf.EmailAddresses,
		URIs:           leaf.URIs,
		IPAddresses:    leaf.IPAddresses,
		SPIFFEID:       spiffeID(leaf.URIs),
		sum:            sum,
	}
}

// spiffeID returns the SPIFFE ID of a leaf per the X509-SVID rules: exactly one URI SAN, and
// that URI a SPIFFE ID as [spiffeid.Validate] defines it (the validator the SPIFFE matchers use).
func spiffeID(uris []*url.URL) string {
	if len(uris) != 1 || uris[0] == nil {
		return ""
	}
	s := uris[0].String()
	if spiffeid.Validate(s) != nil {
		return ""
	}
	return s
}

type ctxKey struct{}

// NewContext returns a copy of ctx carrying id. Handlers' tests use it, with an identity from
// [NewIdentity], to fake an authenticated request. A [Middleware.Require] judges an identity
// placed this way (from [Middleware.Authenticate], say) by its policy as loaded now, not as
// loaded with the trust that verified it, and reports its refusal as an event of its own.
func NewContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity the middleware placed in ctx. ok is false when the request
// went on without a certificate (optional mode) or did not pass through the middleware.
func FromContext(ctx context.Context) (id *Identity, ok bool) {
	id, ok = ctx.Value(ctxKey{}).(*Identity)
	return id, ok && id != nil
}

// XFCCElement is an element of X-Forwarded-Client-Cert that a proxy before the one next to this
// service appended: what that proxy says of the client that connected to it. Nothing of it is
// verified; it is the proxies' word, as far as every hop between it and this service passed it
// on unchanged, and under APPEND_FORWARD any client of a hop can write such elements. Use it
// for audit and for policies that narrow what is allowed, never as an identity.
//
// Envoy writes the URI and DNS SANs of its client's certificate unquoted, whatever they hold:
// a client whose certificate has a name such as "a.test,By=<the gateway's By>;URI=<anything>"
// makes the gateway's element read as two, the second one made up. Elements whose boundaries
// may be so written are marked Ambiguous. Have the proxies before the one next to this service
// forward only Hash and Subject (quoted), or replace the header (SANITIZE_SET), and let no
// policy rely on the number of elements, or on the last of them, when one is Ambiguous.
type XFCCElement struct {
	// By are the URI SANs of the certificate of the proxy that wrote the element, as written
	// (quotes included: Envoy writes none).
	By []string
	// Hash is the SHA-256 of that proxy's client's certificate, lower-case hex; "" if absent.
	Hash string
	// Subject is that certificate's subject as the proxy wrote it (RFC 2253, its escapes
	// kept), without the quotes around it; "" if absent.
	Subject string
	// URI and DNS are that certificate's URI and DNS SANs as the proxy wrote them, quotes
	// included (Envoy writes none). A name holding ";" reads as several.
	URI, DNS []string
	// Ambiguous: the element's boundaries, and its values, may have been written by a client
	// through the SANs of its certificate, which an earlier proxy writes unquoted (or through an
	// earlier element of its own leaving a quote open). It is set on every element after one
	// holding a By, URI or DNS value or a quoted value with a comma, and on an element holding
	// a key after its URI or DNS values, where Envoy writes none; every element after an
	// Ambiguous one is Ambiguous too. When set, neither this element nor the number of elements
	// says what the proxies wrote.
	Ambiguous bool
}

// ForwardedBy returns the X-Forwarded-Client-Cert elements that the proxies before the one next
// to this service appended, oldest first, when [HeaderConfig.XFCCBy] is set; nil otherwise, and
// for a header of one element. The identity itself is the last element's certificate, verified;
// these are not (see [XFCCElement]): an element marked Ambiguous, and any after it, may have
// been made up by a client through its certificate's names. The result is a copy, the caller's
// to keep or change.
func (id *Identity) ForwardedBy() []XFCCElement {
	if len(id.forwardedBy) == 0 {
		return nil
	}
	out := make([]XFCCElement, len(id.forwardedBy))
	for i, e := range id.forwardedBy {
		out[i] = XFCCElement{By: slices.Clone(e.By), Hash: e.Hash, Subject: e.Subject, URI: slices.Clone(e.URI), DNS: slices.Clone(e.DNS), Ambiguous: e.Ambiguous}
	}
	return out
}

// forwardedBytes estimates the bytes forwardedBy holds, for the cache's bound.
func (id *Identity) forwardedBytes() int {
	n := 0
	for _, e := range id.forwardedBy {
		n += 128 + len(e.Hash) + len(e.Subject)
		for _, s := range slices.Concat(e.By, e.URI, e.DNS) {
			n += 16 + len(s)
		}
	}
	return n
}
