package mtlstest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"

	"github.com/certgate/mtls/internal/certheader/proxyenc"
)

// NewRequest returns an incoming request, as net/http hands it to a handler after a TLS
// handshake in which the client presented chain (leaf first, such as [Leaf.Chain]; none: the
// client presented no certificate). target is as for [httptest.NewRequest] (a path alone goes to
// example.com). r.TLS holds chain as PeerCertificates and, as the client's SNI, the host of
// target (empty for an IP address), so that the middleware's check that Host and SNI agree
// passes. Set r.Body and r.ContentLength for a request with a body.
func NewRequest(method, target string, chain ...*x509.Certificate) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.TLS = &tls.ConnectionState{
		Version:           tls.VersionTLS13,
		HandshakeComplete: true,
		ServerName:        sniOf(r.Host),
		PeerCertificates:  chain,
	}
	return r
}

// sniOf is the server name a client sends in SNI for host: its name without the port, or nothing
// for an IP address.
func sniOf(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return ""
	}
	return host
}

// Format is the part of an mtls.Format that a [Proxy] needs: every mtls.Format, such as
// mtls.MustHeaderFormat("nginx"), is one.
type Format interface {
	Name() string
	HeaderNames() []string
}

// encoder is the mtls.Encoder method: formats that have it write their own headers.
type encoder interface {
	Encode(chain []*x509.Certificate) ([]string, error)
}

// Proxy is a TLS-terminating proxy that forwards the client certificate to the service in a
// header, as the service's mtls.HeaderConfig expects it.
type Proxy struct {
	// Format is the header format, the one set in mtls.HeaderConfig.Format (required). A format that can
	// encode (an mtls.Encoder, such as "rfc9440" and "envoy-xfcc") writes the headers with its
	// own Encode; the other presets are written the way their proxy writes them, and those that
	// carry the leaf alone ("nginx", "caddy", ...) drop the intermediates, as the proxy does (give
	// them to the service in mtls.Config.Intermediates). Any other format makes NewRequest panic.
	Format Format
	// Names replaces the format's header names, as mtls.HeaderConfig.Names does.
	Names []string
	// Addr is the proxy's address, "host:port", set as the request's RemoteAddr: for the
	// service to read the header, it must be in mtls.HeaderConfig.TrustedProxies. Empty:
	// httptest's 192.0.2.1:1234.
	Addr string
}

// NewRequest returns a request that came from the proxy, without TLS, carrying chain (leaf
// first, such as [Leaf.Chain]) in the format's headers; with no chain, the headers are absent,
// as when the client presented no certificate. target is as for [httptest.NewRequest].
func (p Proxy) NewRequest(method, target string, chain ...*x509.Certificate) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	if p.Addr != "" {
		r.RemoteAddr = p.Addr
	}
	if len(chain) == 0 {
		return r
	}
	if p.Format == nil {
		panic("mtlstest: Proxy without a Format")
	}
	names := p.Names
	if names == nil {
		names = p.Format.HeaderNames()
	}
	for i, v := range p.values(chain) {
		if v != "" && i < len(names) {
			r.Header.Set(names[i], v)
		}
	}
	return r
}

// values returns the value of each of the format's headers for chain, "" for a header not
// written.
func (p Proxy) values(chain []*x509.Certificate) []string {
	if e, ok := p.Format.(encoder); ok {
		values, err := e.Encode(chain)
		if err != nil {
			panic("mtlstest: " + err.Error())
		}
		return values
	}
	leaf, rest := chain[:1], chain[1:]
	escapedPEM := func(certs []*x509.Certificate) string {
		if len(certs) == 0 {
			return ""
		}
		return proxyenc.NginxEscape(proxyenc.PEM(certs...))
	}
	flatPEM := func(certs []*x509.Certificate) string {
		if len(certs) == 0 {
			return ""
		}
		return proxyenc.FlatPEM(certs...)
	}
	switch name := p.Format.Name(); name {
	case "aws-alb":
		return []string{proxyenc.ALBEscape(proxyenc.PEM(chain...))}
	case "aws-alb-verify":
		return []string{proxyenc.ALBEscape(proxyenc.PEM(leaf...))}
	case "nginx", "wso2":
		return []string{escapedPEM(leaf)}
	case "caddy", "azure-app-service", "cloudflare":
		return []string{proxyenc.B64(chain[0])}
	case "traefik":
		b64s := make([]string, len(chain))
		for i, c := range chain {
			b64s[i] = proxyenc.B64(c)
		}
		return []string{strings.Join(b64s, ",")}
	case "haproxy", "base64-der":
		return []string{proxyenc.B64(chain[0]), concatB64(rest)}
	case "apache":
		values := []string{flatPEM(leaf)}
		for i := 0; i < len(rest) && i < 4; i++ {
			values = append(values, flatPEM(rest[i:i+1]))
		}
		return values
	case "pem":
		return []string{flatPEM(leaf), flatPEM(rest)}
	case "url-pem":
		return []string{escapedPEM(leaf), escapedPEM(rest)}
	default:
		panic(fmt.Sprintf("mtlstest: cannot write header format %q", name))
	}
}

// concatB64 is the base64 of the certificates' concatenated DER, "" for none.
func concatB64(certs []*x509.Certificate) string {
	var der []byte
	for _, c := range certs {
		der = append(der, c.Raw...)
	}
	if der == nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(der)
}
