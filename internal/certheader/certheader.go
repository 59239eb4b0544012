// Package certheader holds the codecs of the headers in which TLS-terminating proxies forward
// the client certificate: header values in, DER certificates out, and back for the formats
// that can be written. It knows nothing of trust or of the errors the middleware reports: a
// value that cannot be decoded completely is a plain error, never skipped or partly used.
//
// Every decoder takes the values of the format's headers, values[i] the single value of the
// i-th header ("" when it is absent; surrounding spaces and tabs are ignored), and returns the
// DER of the certificates, leaf first, or (nil, nil) when the proxy says there is no
// certificate. Percent-encoding is decoded without turning "+" into a space.
//
// A decoder returns at most [MaxCertificates] certificates and refuses a value that holds more
// as soon as it has counted them, before decoding the rest: what a value costs to refuse stays
// small whatever its length.
package certheader

import (
	"fmt"
	"strings"
)

// MaxCertificates is the most certificates a decoder returns: a chain of a leaf and 15 CA
// certificates, deeper than any in use.
const MaxCertificates = 16

// errTooMany is the error of a value that holds more than MaxCertificates certificates.
var errTooMany = fmt.Errorf("more than %d certificates", MaxCertificates)

// RFC9440 decodes Client-Cert and Client-Cert-Chain, RFC 9440 structured-field byte sequences.
func RFC9440(values []string) ([][]byte, error) { return leafAndChain(values, sfLeaf, sfList) }

// AWSALB decodes the URL-encoded PEM chain of AWS ALB passthrough mode.
func AWSALB(values []string) ([][]byte, error) { return leafAndChain(values, decodeURLPEM, nil) }

// AWSALBVerify decodes the URL-encoded PEM leaf of AWS ALB verify mode.
func AWSALBVerify(values []string) ([][]byte, error) {
	return leafAndChain(values, oneOf(decodeURLPEM), nil)
}

// Nginx decodes $ssl_client_escaped_cert (URL-encoded PEM), or the tab-folded $ssl_client_cert
// (which net/http hands over with the folds turned into spaces).
func Nginx(values []string) ([][]byte, error) {
	return leafAndChain(values, oneOf(decodeAnyPEM), nil)
}

// HAProxy decodes %[ssl_c_der,base64] and, in the second header, %[ssl_c_chain_der,base64]
// (concatenated DER).
func HAProxy(values []string) ([][]byte, error) {
	return leafAndChain(values, oneOf(decodeBase64DER), decodeBase64DER)
}

// Caddy decodes {http.request.tls.client.certificate_der_base64}; the unexpanded placeholder
// that Caddy before 2.11.2 sends without a certificate means absent.
func Caddy(values []string) ([][]byte, error) {
	return leafAndChain(values, oneOf(func(v string) ([][]byte, error) {
		if strings.HasPrefix(v, "{http.request.tls.client.") && strings.HasSuffix(v, "}") {
			return nil, nil
		}
		return decodeBase64DER(v)
	}), nil)
}

// Base64DERLeaf decodes one header holding the base64 DER of the leaf (azure-app-service,
// cloudflare).
func Base64DERLeaf(values []string) ([][]byte, error) {
	return leafAndChain(values, oneOf(decodeBase64DER), nil)
}

// WSO2 decodes PEM or URL-encoded PEM.
func WSO2(values []string) ([][]byte, error) { return leafAndChain(values, decodeAnyPEM, nil) }

// PEM decodes PEM text (line breaks possibly turned into spaces or tabs) in a certificate
// header and an optional chain header.
func PEM(values []string) ([][]byte, error) {
	return leafAndChain(values, decodePEMBlocks, decodePEMBlocks)
}

// URLPEM decodes URL-encoded PEM in a certificate header and an optional chain header.
func URLPEM(values []string) ([][]byte, error) {
	return leafAndChain(values, decodeURLPEM, decodeURLPEM)
}

// Base64DER decodes base64 of concatenated DER in a certificate header and an optional chain
// header.
func Base64DER(values []string) ([][]byte, error) {
	return leafAndChain(values, decodeBase64DER, decodeBase64DER)
}

// valueAt returns values[i], or "" when values is shorter, with surrounding spaces and tabs
// removed (net/http already removes them; other callers may not).
func valueAt(values []string, i int) string {
	if i >= len(values) {
		return ""
	}
	return strings.Trim(values[i], " \t")
}

// leafAndChain decodes a leaf header (values[0]) and an optional chain header (values[1], not
// read when chain is nil). A chain without a leaf is refused.
func leafAndChain(values []string, leaf, chain func(string) ([][]byte, error)) ([][]byte, error) {
	v0 := valueAt(values, 0)
	v1 := ""
	if chain != nil {
		v1 = valueAt(values, 1)
	}
	if v0 == "" {
		if v1 != "" {
			return nil, fmt.Errorf("a chain header without a certificate header")
		}
		return nil, nil
	}
	ders, err := leaf(v0)
	if err != nil {
		return nil, err
	}
	if ders == nil {
		if v1 != "" {
			return nil, fmt.Errorf("a chain header while the certificate header says absent")
		}
		return nil, nil
	}
	if v1 != "" {
		more, err := chain(v1)
		if err != nil {
			return nil, fmt.Errorf("chain header: %w", err)
		}
		if more == nil {
			return nil, fmt.Errorf("chain header says absent while the certificate header is set")
		}
		if len(ders)+len(more) > MaxCertificates {
			return nil, errTooMany
		}
		ders = append(ders, more...)
	}
	return ders, nil
}

// oneOf restricts a decoder to exactly one certificate.
func oneOf(dec func(string) ([][]byte, error)) func(string) ([][]byte, error) {
	return func(v string) ([][]byte, error) { return one(dec(v)) }
}
