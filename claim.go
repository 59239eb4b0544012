package mtls

import (
	"context"
	"crypto/x509"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/certgate/mtls/internal/certheader"
)

// claim is what a request presents, before anything about it is believed: the certificates of
// its TLS connection, or the certificate header values of a trusted proxy. Both go through the
// same steps afterwards (see pipeline.go).
type claim struct {
	source Source
	// certs is the chain presented on the TLS connection (SourceTLS), leaf first.
	certs []*x509.Certificate
	// values are the raw certificate header values (SourceHeader), one per header name: the first
	// nvalues count. An array, so that a claim stays off the heap.
	values  [maxHeaderNames]string
	nvalues int
	bytes   int // total size of values
	// proxy is the address of the trusted proxy (SourceHeader).
	proxy netip.Addr
}

// headerValues returns the header values of a SourceHeader claim.
func (c *claim) headerValues() []string { return c.values[:c.nvalues] }

// empty says whether nothing was presented.
func (c *claim) empty() bool {
	if c.source == SourceHeader {
		return c.bytes == 0
	}
	return len(c.certs) == 0
}

// claimOf decides which source speaks for r and reads what it presents into c. The peer decides:
// from a trusted proxy only its header counts; from anyone else only the TLS connection.
func (m *Middleware) claimOf(st *state, r *http.Request, c *claim) error {
	if m.header != nil {
		if proxy, trusted := m.trustedProxy(st, r); trusted {
			c.source, c.proxy = SourceHeader, proxy
			return m.header.read(r, c)
		}
	}
	c.source = SourceTLS
	if r.TLS != nil {
		c.certs = r.TLS.PeerCertificates
	}
	if len(c.certs) > 0 {
		return m.checkHost(r)
	}
	if !m.optional {
		detail := "no certificate on the TLS connection"
		switch {
		case r.TLS == nil && m.header != nil:
			detail = "no TLS connection, and the peer is not a trusted proxy"
		case r.TLS == nil:
			detail = "no TLS connection"
		case m.header != nil:
			detail += ", and the peer is not a trusted proxy"
		}
		return newError(ErrNoCertificate, detail, nil)
	}
	return nil
}

// trustedProxy says whether the immediate peer of r is a trusted proxy, and returns its address.
// A proxy trusted by its certificate goes through the same steps as any client (claim, screen,
// cache, verify, revocation) and then ProxyPolicy instead of the request policies.
func (m *Middleware) trustedProxy(st *state, r *http.Request) (netip.Addr, bool) {
	h := m.header
	// net/http always sets RemoteAddr to the connection's "ip:port". A bare address is the mark
	// of a middleware that replaced it with a client-supplied X-Forwarded-For or X-Real-IP
	// value: it no longer names the peer, so it is not trusted.
	var addr netip.Addr
	remote := r.RemoteAddr
	if peer, ok := r.Context().Value(peerKey{}).(net.Addr); ok {
		remote = peer.String() // recorded by ConnContext: the connection itself
	}
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		addr = ap.Addr().Unmap().WithZone("")
	}
	if len(h.prefixes) > 0 {
		in := false
		for _, p := range h.prefixes {
			if p.Contains(addr) {
				in = true
				break
			}
		}
		if !in {
			return addr, false
		}
	}
	if h.policy != nil {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			return addr, false
		}
		id, _, err := m.verified(r.Context(), st, &claim{source: SourceTLS, certs: r.TLS.PeerCertificates}, m.now())
		if err != nil || h.policy.Check(id) != nil {
			return addr, false
		}
	}
	return addr, true
}

// read takes the certificate header values of a trusted proxy's request into c. Several lines
// of one header are refused unless the format reads it as a list; so is any header whose name
// only differs from a certificate header by '_' for '-' (CGI-style consumers would read it as
// that header), and a total beyond MaxBytes.
func (h *headerSource) read(r *http.Request, c *claim) error {
	c.nvalues = h.nvalues
	var lines [maxHeaderNames][]string // each certificate header's lines, found in one pass
	for k, vs := range r.Header {
		if !h.nameLens.may(k) {
			continue
		}
		if i := h.index(k); i >= 0 {
			if k != h.names[i] {
				return newError(ErrMalformedHeader, fmt.Sprintf("header %q is another spelling of %s", k, h.names[i]), nil)
			}
			lines[i] = vs
		}
	}
	total := 0
	for i, name := range h.names {
		vs := lines[i]
		switch len(vs) {
		case 0:
		case 1:
			c.values[i] = vs[0]
			total += len(vs[0])
		default:
			if !h.lists[i] {
				return newError(ErrMalformedHeader, fmt.Sprintf("%d %s header lines", len(vs), name), nil)
			}
			for _, v := range vs {
				total += len(v) + 2
			}
			if total > h.maxBytes {
				break // refused below, before joining
			}
			c.values[i] = strings.Join(vs, ", ")
		}
	}
	if total > h.maxBytes {
		return newError(ErrMalformedHeader, fmt.Sprintf("certificate headers of %d bytes, at most %d allowed", total, h.maxBytes), nil)
	}
	c.bytes = total
	return nil
}

// stripHeader returns r without the certificate headers (under any spelling, the format's
// default names included when Names replaces them), unless the identity came from them. The request given to the handler is not modified: a copy with its own
// header map is made, and only when there is something to remove.
func (m *Middleware) stripHeader(r *http.Request, id *Identity) *http.Request {
	h := m.header
	if h == nil || id != nil && id.Source == SourceHeader {
		return r
	}
	found := false
	for k := range r.Header {
		if h.stripLens.may(k) && nameIndex(k, h.stripNames) >= 0 {
			found = true
			break
		}
	}
	if !found {
		return r
	}
	r2 := r.WithContext(r.Context())
	r2.Header = maps.Clone(r.Header) // a map of its own; the values are shared, never changed
	for k := range r2.Header {
		if nameIndex(k, h.stripNames) >= 0 {
			delete(r2.Header, k)
		}
	}
	return r2
}

// nameLengths is the set of the lengths of some header names: a key of another length cannot
// name one of them (nameIndex compares names of equal length only), which saves comparing it.
type nameLengths uint64 // bit n: a name of n bytes; names of 64 bytes and more are not recorded

func lengthsOf(names []string) nameLengths {
	var l nameLengths
	for _, n := range names {
		if len(n) < 64 {
			l |= 1 << len(n)
		}
	}
	return l
}

// may says whether key may name one of the names.
func (l nameLengths) may(key string) bool { return len(key) >= 64 || l&(1<<len(key)) != 0 }

// index returns the position of the certificate header that key names, or -1.
func (h *headerSource) index(key string) int { return nameIndex(key, h.names) }

// nameIndex returns the position in names of the header that key names, or -1. Keys are compared
// without regard to case and with '_' equal to '-': net/http canonicalises the keys it reads, but
// a request built by code may hold a non-canonical one, which a reverse proxy would still send
// on, and CGI, FastCGI and WSGI consumers read X_SSL_Client_Cert as X-SSL-Client-Cert.
func nameIndex(key string, names []string) int {
	for i, name := range names {
		if key == name { // the canonical spelling, as net/http reads it: the common case
			return i
		}
	}
	for i, name := range names {
		if certheader.SameName(key, name) {
			return i
		}
	}
	return -1
}

type peerKey struct{}

// ConnContext records the peer address of each connection, for [http.Server.ConnContext]. Header
// mode then judges whether the peer is a trusted proxy by the connection itself, not by
// r.RemoteAddr, which a middleware that believes X-Forwarded-For or X-Real-IP (such as gorilla's
// handlers.ProxyHeaders) may have replaced with an "ip:port" of the client's choosing:
//
//	srv := &http.Server{Handler: m.Handler(mux), ConnContext: mtls.ConnContext}
//
// A server that has its own ConnContext calls this one from it.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, peerKey{}, c.RemoteAddr())
}

// checkHost refuses a request whose Host names another server than the one the client named in
// the TLS handshake (SNI), when the client authenticated on that connection: a certificate
// accepted by one virtual host's TLS configuration must not reach another's routes. Without SNI
// (a client connecting by address), the Host must be an address too.
//
// Names on the wire are ASCII (IDNs travel as A-labels): they compare with ASCII letters folded
// and nothing else, and a Host or server name holding any other byte is refused. A Unicode case
// fold would let a client name "ſecure.example" (U+017F) in the handshake and reach
// "secure.example" by Host, or the Kelvin sign stand for a "k".
func (m *Middleware) checkHost(r *http.Request) error {
	if m.allowHostMismatch || r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	if sni := r.TLS.ServerName; r.Host == sni && sni != "" && certheader.IsASCII(sni) {
		return nil // the common case: the client wrote the same name twice
	}
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i > strings.LastIndexByte(host, ']') {
		host = host[:i] // the port
	}
	host = strings.TrimSuffix(host, ".")
	sni := strings.TrimSuffix(r.TLS.ServerName, ".")
	switch {
	case !certheader.IsASCII(host) || !certheader.IsASCII(sni):
	case sni == "":
		if _, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil || host == "" {
			return nil
		}
	case certheader.EqualFoldASCII(host, sni):
		return nil
	}
	return newError(ErrMisdirected, fmt.Sprintf("Host %q does not match the TLS server name %q", r.Host, r.TLS.ServerName), nil)
}
