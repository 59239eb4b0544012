package mtls

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
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

// claimOf decides which source speaks for call c and reads what it presents into cl. The peer
// decides: from a trusted proxy only its header counts; from anyone else only the TLS
// connection.
func (m *Middleware) claimOf(st *state, c *Call, cl *claim) error {
	if m.header != nil {
		if proxy, trusted := m.trustedPeer(st, c); trusted {
			cl.source, cl.proxy = SourceHeader, proxy
			return m.header.read(c, cl)
		}
	}
	cl.source = SourceTLS
	if c.TLS != nil {
		cl.certs = c.TLS.PeerCertificates
	}
	if len(cl.certs) > 0 {
		return m.checkAuthority(c)
	}
	if !m.optional {
		detail := "no certificate on the TLS connection"
		switch {
		case c.TLS == nil && m.header != nil:
			detail = "no TLS connection, and the peer is not a trusted proxy"
		case c.TLS == nil:
			detail = "no TLS connection"
		case m.header != nil:
			detail += ", and the peer is not a trusted proxy"
		}
		return newError(ErrNoCertificate, detail, nil)
	}
	return nil
}

// trustedProxy says whether the immediate peer of r is a trusted proxy, and returns its address.
func (m *Middleware) trustedProxy(st *state, r *http.Request) (netip.Addr, bool) {
	c := callOf(r)
	return m.trustedPeer(st, &c)
}

// trustedPeer says whether the immediate peer of c is a trusted proxy, and returns its address.
// A proxy trusted by its certificate goes through the same steps as any client (claim, screen,
// cache, verify, revocation) and then ProxyPolicy instead of the request policies.
func (m *Middleware) trustedPeer(st *state, c *Call) (netip.Addr, bool) {
	h := m.header
	// net/http always sets RemoteAddr to the connection's "ip:port". A bare address is the mark
	// of a middleware that replaced it with a client-supplied X-Forwarded-For or X-Real-IP
	// value: it no longer names the peer, so it is not trusted (Call.peer).
	addr, _ := c.peer() // as ConnContext recorded it: the connection itself
	if len(h.prefixes) > 0 && !h.inPrefixes(addr) {
		return addr, false
	}
	if h.policy != nil {
		if c.TLS == nil || len(c.TLS.PeerCertificates) == 0 {
			return addr, false
		}
		if m.slowedPeer(st, c.TLS.PeerCertificates, m.now()) {
			return addr, false // not verified: the claim's gate answers it 429
		}
		id, _, err := m.verified(c.ctx(), st, &claim{source: SourceTLS, certs: c.TLS.PeerCertificates}, m.now())
		if err != nil || h.policy.Check(id) != nil {
			return addr, false
		}
	}
	return addr, true
}

// read takes the certificate header values of a trusted proxy's call c into cl. Several lines
// of one header are refused unless the format reads it as a list; so is any header whose name
// only differs from one of the family (a certificate header or a companion) by case or by
// punctuation, '_' or '.' for '-' (CGI-style consumers would read it as that header; see
// certheader.SameName), and a total beyond MaxBytes. The one spelling read is the canonical
// one, or the lower-case one with Call.LowerCaseKeys.
func (h *headerSource) read(c *Call, cl *claim) error {
	if c.LowerCaseKeys && h.binName != "" {
		return newError(ErrMalformedHeader, fmt.Sprintf("certificate header %s ends in -bin, whose values gRPC decodes from base64: "+
			"they are not what the proxy sent; configure HeaderConfig.Names without it for calls with lower-case keys", h.binName), nil)
	}
	var lines [maxHeaderNames][]string // each certificate header's lines, found in one pass
	if err := h.lines(c, &lines); err != nil {
		return err
	}
	return h.join(&lines, cl)
}

// lines finds the lines of each certificate header among the fields of c, in one pass, and
// refuses another spelling of a name of the family.
func (h *headerSource) lines(c *Call, lines *[maxHeaderNames][]string) error {
	spelling := h.family.names
	if c.LowerCaseKeys {
		spelling = h.family.lower
	}
	for k, vs := range c.Fields {
		i := h.family.index(k)
		if i < 0 {
			continue
		}
		if k != spelling[i] {
			return newError(ErrMalformedHeader, fmt.Sprintf("header %q is another spelling of %s", clip(k), spelling[i]), nil)
		}
		if i < len(h.names) {
			lines[i] = vs
		}
	}
	return nil
}

// join takes the lines of each certificate header into cl: one value per header, the lines of a
// list joined, the total bounded by MaxBytes.
func (h *headerSource) join(lines *[maxHeaderNames][]string, c *claim) error {
	c.nvalues = h.nvalues
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

// accepted returns the request the next handler sees once r is accepted with id (nil: without
// a certificate), with id in its context. In header mode the family of the certificate headers
// (certificate headers and companions, under any spelling) is removed from its header unless id
// came from them, and from its trailers whatever the peer. r itself is not modified: a copy with
// a header map of its own is made when there is something to remove.
func (m *Middleware) accepted(r *http.Request, id *Identity) *http.Request {
	ctx := r.Context()
	if id != nil {
		ctx = NewContext(ctx, id)
	}
	return m.acceptedIn(r, id, ctx)
}

// acceptedIn is accepted with ctx as the context of the request next sees, ctx carrying id
// itself: one copy of r at most.
func (m *Middleware) acceptedIn(r *http.Request, id *Identity, ctx context.Context) *http.Request {
	h := m.header
	header, strip := m.StripCertificateFields(r.Header, id)
	trail := h != nil && mayTrail(r)
	if !strip && !trail {
		if ctx == r.Context() {
			return r
		}
		return r.WithContext(ctx)
	}
	r2 := r.WithContext(ctx)
	if strip {
		r2.Header = header
	}
	if trail {
		h.family.guardTrailers(r, r2)
	}
	return r2
}

// mayTrail says whether r may carry trailers: it declares some, or it has a body (an HTTP/1.1
// chunked body may end with trailers it did not declare, which net/http puts in r.Trailer).
func mayTrail(r *http.Request) bool {
	return r.Trailer != nil || r.Body != nil && r.Body != http.NoBody
}

// guardTrailers gives to, a copy of from, a Trailer map of its own: the trailers from declares
// that are not of the set. A server fills the trailers of from, which it read, once the body
// reaches its end; to's body then copies their values into to's map, for its keys only. So no
// trailer of the set can reach a handler of to: not a declared one, not one sent undeclared,
// whatever the spelling, and not one that a map shared with from would have let in.
func (s *nameSet) guardTrailers(from, to *http.Request) {
	var own http.Header
	for k, vv := range from.Trailer {
		if s.index(k) < 0 {
			if own == nil {
				own = make(http.Header, len(from.Trailer))
			}
			own[k] = vv // nil until the body is read, for a server's request
		}
	}
	to.Trailer = own
	if own != nil && to.Body != nil && to.Body != http.NoBody {
		to.Body = &trailerBody{ReadCloser: to.Body, atEOF: func() {
			for k := range own {
				if vv, ok := from.Trailer[k]; ok {
					own[k] = vv
				}
			}
		}}
	}
}

// trailerBody is a request body that calls atEOF once, when the body it wraps reports io.EOF,
// before passing it on: the server has read the trailers by then, and the reader (a handler, a
// reverse proxy's transport) reads them after.
type trailerBody struct {
	io.ReadCloser
	atEOF func()
	done  bool
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		b.atEOF()
	}
	return n, err
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

// nameSet is a set of header names that finds a key under any spelling, as nameIndex does: a key
// of a length no name has costs a bit test (nameLengths), one whose last byte ends no name of its
// length another, any other a comparison with the names of its length only; so a family of
// dozens of names costs about what one name does.
type nameSet struct {
	names []string // canonical; no two name the same header
	lower []string // names, lower-case, as HTTP/2 fields and gRPC metadata spell them
	lens  nameLengths
	byLen [65][]int  // positions in names of the names of each length; the last: 64 bytes and more
	tails [65]uint32 // of each length, the tailBit of the names' last bytes
}

// tailBit is the class of the last byte of a header name, folded as certheader.SameName folds it:
// a key that ends in another class than every name of its length names none of them.
func tailBit(c byte) uint32 {
	switch {
	case 'a' <= c && c <= 'z':
		return 1 << (c - 'a')
	case 'A' <= c && c <= 'Z':
		return 1 << (c - 'A')
	case '0' <= c && c <= '9':
		return 1 << 26
	}
	return 1 << 27 // '-', '_' and every other byte: SameName takes them for one another
}

// newNameSet returns the set of names, canonical, in their order; a name that names the same
// header as an earlier one is left out.
func newNameSet(names []string) nameSet {
	var s nameSet
	for _, n := range names {
		if s.index(n) >= 0 {
			continue
		}
		l := min(len(n), 64)
		s.byLen[l] = append(s.byLen[l], len(s.names))
		s.tails[l] |= tailBit(n[len(n)-1])
		s.names = append(s.names, n)
		s.lower = append(s.lower, strings.ToLower(n))
		s.lens |= lengthsOf([]string{n})
	}
	return s
}

// index returns the position of the name that key names, or -1. It inlines to the bit test, the
// common outcome.
func (s *nameSet) index(key string) int {
	if len(key) < 64 && s.lens&(1<<len(key)) == 0 { // !s.lens.may(key), within the inlining budget
		return -1
	}
	return s.lookup(key)
}

// lookup is index past the bit test.
func (s *nameSet) lookup(key string) int {
	l := min(len(key), 64)
	if s.tails[l]&tailBit(key[len(key)-1]) == 0 {
		return -1
	}
	same := s.byLen[l]
	for _, i := range same {
		if key == s.names[i] || key == s.lower[i] { // as net/http reads it, or HTTP/2 sends it: the common cases
			return i
		}
	}
	for _, i := range same {
		if certheader.SameName(key, s.names[i]) {
			return i
		}
	}
	return -1
}

// in says whether a key of hdr names one of the set.
func (s *nameSet) in(hdr map[string][]string) bool {
	for k := range hdr {
		if s.index(k) >= 0 {
			return true
		}
	}
	return false
}

// without returns a copy of hdr without the keys that name one of the set; the values are shared,
// never changed.
func (s *nameSet) without(hdr map[string][]string) map[string][]string {
	out := maps.Clone(hdr)
	for k := range out {
		if s.index(k) >= 0 {
			delete(out, k)
		}
	}
	return out
}

// nameIndex returns the position in names of the header that key names, or -1. Keys are compared
// as certheader.SameName compares them: without regard to case, and with every byte other than a
// letter or digit ('-', '_', '.', ...) equal to every other: net/http canonicalises the keys it
// reads, but a request built by code may hold a non-canonical one, which a reverse proxy would
// still send on, and CGI, FastCGI and WSGI consumers read X_SSL_Client_Cert (PHP also
// X.SSL.Client.Cert) as X-SSL-Client-Cert.
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
// (a client connecting by address), the Host must be an address too. A port, when the Host has
// one, must be digits: "secure.example:other.example" is refused, as servers and routers that
// split the Host at another colon would take other.example for its name.
//
// Over HTTP/2 (and HTTP/3) r.Host is the :authority, and a host header field the request also
// carries stays in r.Header (HTTP/1.1 moves it to r.Host): one that names another authority
// makes the request malformed (RFC 9113, section 8.3.1), and is refused like a Host that names
// another server, since a handler or proxy that reads it would go elsewhere.
//
// Names on the wire are ASCII (IDNs travel as A-labels): they compare with ASCII letters folded
// and nothing else, and a Host or server name holding any other byte is refused. A Unicode case
// fold would let a client name "ſecure.example" (U+017F) in the handshake and reach
// "secure.example" by Host, or the Kelvin sign stand for a "k".
func (m *Middleware) checkHost(r *http.Request) error {
	c := callOf(r)
	return m.checkAuthority(&c)
}

// checkAuthority is checkHost on a call: its Authority (r.Host) and Host fields against the
// server name of its TLS handshake.
func (m *Middleware) checkAuthority(c *Call) error {
	if m.allowHostMismatch || c.TLS == nil || len(c.TLS.PeerCertificates) == 0 {
		return nil
	}
	authority := c.Authority
	for _, field := range c.hostFields() {
		if !certheader.EqualFoldASCII(field, authority) {
			return newError(ErrMisdirected, fmt.Sprintf("the request's host header field %q names another authority than its :authority %q, "+
				"which makes an HTTP/2 request malformed (RFC 9113, section 8.3.1): the client, or a proxy in front, must send one "+
				"authority only, or the same in both; %s", clip(field), clip(authority), hostCheckOff), nil)
		}
	}
	sni := c.TLS.ServerName
	if authority == sni && sni != "" && certheader.IsASCII(sni) && strings.IndexByte(sni, ':') < 0 {
		return nil // the common case: the client wrote the same name twice
	}
	host, ok := hostOf(authority)
	host = strings.TrimSuffix(host, ".")
	sni = strings.TrimSuffix(sni, ".")
	switch {
	case !ok || !certheader.IsASCII(authority) || !certheader.IsASCII(sni): // the port included
	case sni == "":
		if _, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil || host == "" {
			return nil
		}
	case certheader.EqualFoldASCII(host, sni):
		return nil
	}
	return newError(ErrMisdirected, hostMismatch(authority, c.TLS.ServerName, ok), nil)
}

// hostMismatch is the detail of checkHost's refusal of host for the TLS server name sni (ok:
// host is a host and a port of digits): what the client did, and what would fix it.
func hostMismatch(host, sni string, ok bool) string {
	var what string
	switch {
	case !ok:
		what = fmt.Sprintf("Host %q is not a host name or address with a port of digits, and TLS server name %q does not match it", clip(host), clip(sni))
	case !certheader.IsASCII(host) || !certheader.IsASCII(sni):
		what = fmt.Sprintf("the client connected with TLS server name %q and sent Host %q, which hold bytes that are not ASCII: "+
			"names on the wire are A-labels (\"xn--...\"), and the two must be the same", clip(sni), clip(host))
	case sni == "":
		what = fmt.Sprintf("the client connected without a TLS server name (SNI), by address, but sent Host %q: a client that names "+
			"a server in Host must name it in the handshake too (a Go client dialling an address with req.Host set does not; "+
			"nginx sends none unless proxy_ssl_server_name is on)", clip(host))
	default:
		what = fmt.Sprintf("the client connected with TLS server name (SNI) %q but sent Host %q: clients must send a Host "+
			"that names the server they named in the handshake", clip(sni), clip(host))
	}
	return what + "; a proxy in front must name in its TLS connection the server of the Host it sends, rewritten " +
		"or not (nginx: proxy_ssl_server_name on, and proxy_ssl_name $host beside proxy_set_header Host $host); " + hostCheckOff
}

// hostCheckOff ends the details of checkHost's refusals: how to turn the check off, and its risk.
const hostCheckOff = "Config.DangerouslyAllowHostMismatch turns the check off, and lets a client authenticated under one " +
	"virtual host's TLS settings send its requests to another's routes"

// hostOf returns the host of a Host value without its port, and whether the value is a host
// (an IPv6 literal in brackets, or a name or IPv4 address without a colon) followed by nothing
// or by ":" and a port of ASCII digits (possibly none, as RFC 3986 allows).
func hostOf(hostport string) (string, bool) {
	host, port := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		i := strings.IndexByte(hostport, ']')
		if i < 0 {
			return "", false
		}
		host, port = hostport[:i+1], hostport[i+1:]
	} else if i := strings.IndexByte(hostport, ':'); i >= 0 {
		host, port = hostport[:i], hostport[i:]
	}
	if port == "" {
		return host, true
	}
	if port[0] != ':' {
		return "", false
	}
	for i := 1; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return "", false
		}
	}
	return host, true
}
