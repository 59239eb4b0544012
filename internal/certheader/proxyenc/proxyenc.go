// Package proxyenc encodes certificates the way each proxy writes them in a header,
// independently of the codecs under test, for the tests of certheader and of the middleware, and
// for the requests package mtlstest builds.
package proxyenc

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"strings"
)

// PEM is the PEM text of certs.
func PEM(certs ...*x509.Certificate) string {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return string(b)
}

// NginxEscape is $ssl_client_escaped_cert: everything but RFC 3986 unreserved is %XX.
func NginxEscape(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			sb.WriteByte(c)
		} else {
			sb.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
		}
	}
	return sb.String()
}

// ALBEscape is AWS ALB's "URL-encoded with +=/ as safe characters".
func ALBEscape(s string) string {
	return strings.NewReplacer(" ", "%20", "\n", "%0A").Replace(s)
}

// ApacheEscape is Apache's expr=%{escape:...}: lowercase, + / = left alone.
func ApacheEscape(s string) string {
	return strings.NewReplacer(" ", "%20", "\n", "%0a").Replace(s)
}

// EnvoyEscape is Envoy's XFCC Cert/Chain escaping.
func EnvoyEscape(s string) string {
	return strings.NewReplacer("\n", "%0A", " ", "%20", "+", "%2B", "/", "%2F", "=", "%3D").Replace(s)
}

// FlatPEM is PEM with line breaks turned into spaces (Apache %{...}s, nginx $ssl_client_cert
// after unfolding).
func FlatPEM(certs ...*x509.Certificate) string {
	return strings.ReplaceAll(PEM(certs...), "\n", " ")
}

// B64 is the base64 DER of c.
func B64(c *x509.Certificate) string { return base64.StdEncoding.EncodeToString(c.Raw) }

// DERs returns the DER of certs.
func DERs(certs ...*x509.Certificate) [][]byte {
	out := make([][]byte, len(certs))
	for i, c := range certs {
		out[i] = c.Raw
	}
	return out
}

// EnvoyDetails are the keys of Envoy's set_current_client_cert_details.
type EnvoyDetails struct{ Cert, Chain, Subject, URI, DNS bool }

// EnvoyElement is the X-Forwarded-Client-Cert element Envoy (APPEND_FORWARD or SANITIZE_SET)
// writes for the peer chain it was presented, leaf first, as conn_manager_utility.cc builds it:
// By for each URI SAN of its own certificate, Hash, then the details in Envoy's fixed order
// Cert, Chain, Subject, URI (one per URI SAN, "URI=" for none), DNS (one per DNS SAN). By, URI
// and DNS are written as they are, unquoted whatever they hold; Subject is quoted with nothing
// escaped beyond what its RFC 2253 form escapes (Go's pkix.Name form stands in for OpenSSL's).
func EnvoyElement(by []string, d EnvoyDetails, chain ...*x509.Certificate) string {
	leaf := chain[0]
	var kv []string
	for _, b := range by {
		kv = append(kv, "By="+b)
	}
	sum := sha256.Sum256(leaf.Raw)
	kv = append(kv, "Hash="+hex.EncodeToString(sum[:]))
	if d.Cert {
		kv = append(kv, `Cert="`+EnvoyEscape(PEM(leaf))+`"`)
	}
	if d.Chain {
		kv = append(kv, `Chain="`+EnvoyEscape(PEM(chain...))+`"`)
	}
	if d.Subject {
		kv = append(kv, `Subject="`+leaf.Subject.String()+`"`)
	}
	if d.URI {
		if len(leaf.URIs) == 0 {
			kv = append(kv, "URI=")
		}
		for _, u := range leaf.URIs {
			kv = append(kv, "URI="+u.String())
		}
	}
	if d.DNS {
		for _, n := range leaf.DNSNames {
			kv = append(kv, "DNS="+n)
		}
	}
	return strings.Join(kv, ";")
}
