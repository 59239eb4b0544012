package mtls

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/certgate/mtls/internal/certheader"
)

// Format decodes the header or headers in which a TLS-terminating proxy forwards the client
// certificate. Implementations must be stateless and safe for concurrent use. The presets are
// returned by [HeaderFormat]; users may implement their own.
//
// A Format may also name its companion headers, those its proxies set beside the certificate
// headers (a verification result, subject, issuer, serial, fingerprint, validity), by
// implementing the optional interface
//
//	interface{ CompanionHeaders() []string }
//
// which returns canonical names (see [http.CanonicalHeaderKey]), in a fresh slice on each call.
// Header mode removes them with the certificate headers from the requests of every peer that is
// not a trusted proxy (see [HeaderConfig.CompanionHeaders]), and [Forward] deletes them. Every
// preset implements it; [WithCompanions] adds names to any format's.
type Format interface {
	// Name identifies the format in identities ([Identity.Format]) and logs, such as "nginx".
	Name() string
	// HeaderNames returns the default header names, canonical (see [http.CanonicalHeaderKey]).
	// The first carries the leaf certificate or the whole chain; any further ones are optional
	// (such as a header carrying the intermediates).
	HeaderNames() []string
	// Decode decodes the header values: values[i] is the single value of the i-th header of
	// HeaderNames, "" when the header is absent. It returns the DER of the certificates, leaf
	// first, or (nil, nil) when the proxy says there is no certificate (an empty value, Apache's
	// "(null)", Caddy's unexpanded placeholder). A value that cannot be decoded completely is an
	// error wrapping [ErrMalformedHeader]; it is never skipped or partly used.
	Decode(values []string) ([][]byte, error)
}

// Encoder is a [Format] that can also write a certificate chain, for [Forward].
type Encoder interface {
	Format
	// Encode returns one value per header of HeaderNames for chain (leaf first, then its
	// intermediates); "" means the header is not written.
	Encode(chain []*x509.Certificate) ([]string, error)
}

// preset is a built-in Format: a codec of internal/certheader under its name and default header
// names, and the family of headers the proxies of the format set.
type preset struct {
	name   string
	names  []string
	decode func(values []string) ([][]byte, error)
	family [][]string // families of certheader: the certificate headers and their companions
}

func (p *preset) Name() string          { return p.name }
func (p *preset) HeaderNames() []string { return append([]string(nil), p.names...) }

// CompanionHeaders returns the headers that the proxies of the format set beside the certificate
// headers (HeaderNames), canonical: verification results, subjects, serials, fingerprints,
// validity, and the certificate headers of the proxies' other modes.
func (p *preset) CompanionHeaders() []string {
	var out []string
	for _, f := range p.family {
		for _, n := range f {
			if !slices.Contains(p.names, n) && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// companionHeaders is the optional interface of a [Format] that names the headers its proxies set
// beside the certificate headers (see [Format]).
type companionHeaders interface {
	CompanionHeaders() []string
}

// WithCompanions returns format with names added to its companion headers (see [Format]): the
// headers a proxy of this deployment sets beside the certificate headers under names of its
// configuration's choosing, such as nginx's "proxy_set_header X-Client-Verify
// $ssl_client_verify;". It reads, decodes and encodes as format does, under its name; it is an
// [Encoder] when format is one. Names are canonicalised; one that names a header format already
// has (under any spelling, see [HeaderConfig.CompanionHeaders]) is left out. A nil format gives
// nil.
//
// So one value names such headers to both ends: in [HeaderConfig.Format] they join the
// family removed from the requests of peers that are not trusted proxies, as
// [HeaderConfig.CompanionHeaders] do; given to [Forward], they are deleted from the request to
// the next hop with the format's own headers, so that a client's forged X-Client-Verify cannot
// travel beside the real identity. A Go gateway and the service behind it share one value:
//
//	format := mtls.WithCompanions(mtls.MustHeaderFormat("rfc9440"), "X-Client-Verify")
//	// gateway: mtls.Forward(pr.Out, id, format)
//	// service: &mtls.HeaderConfig{Format: format, TrustedProxies: gateways}
func WithCompanions(format Format, names ...string) Format {
	if format == nil {
		return nil
	}
	var companions []string // the format's own, or those of the wrapper it is, then names
	if own, ok := format.(companionHeaders); ok {
		companions = slices.Clone(own.CompanionHeaders())
	}
	if w, ok := format.(interface{ unwrapFormat() Format }); ok {
		format = w.unwrapFormat() // one wrapper, holding every name added
	}
	known := slices.Concat(format.HeaderNames(), companions)
	for _, n := range names {
		if !slices.ContainsFunc(known, func(k string) bool { return certheader.SameName(k, n) }) {
			n = http.CanonicalHeaderKey(n)
			known = append(known, n)
			companions = append(companions, n)
		}
	}
	c := withCompanions{Format: format, companions: companions}
	if e, ok := format.(Encoder); ok {
		return &encoderWithCompanions{withCompanions: c, enc: e}
	}
	return &c
}

// withCompanions is a Format with companion headers added (WithCompanions).
type withCompanions struct {
	Format
	companions []string
}

func (w *withCompanions) CompanionHeaders() []string { return slices.Clone(w.companions) }

// unwrapFormat returns the format that w adds companions to, for the optional interfaces of the
// presets (listHeaders, hopsDecoder), which w does not have.
func (w *withCompanions) unwrapFormat() Format { return w.Format }

// encoderWithCompanions is an Encoder with companion headers added (WithCompanions).
type encoderWithCompanions struct {
	withCompanions
	enc Encoder
}

func (e *encoderWithCompanions) Encode(chain []*x509.Certificate) ([]string, error) {
	return e.enc.Encode(chain)
}

// baseFormat returns the format that f adds companions to, or f itself.
func baseFormat(f Format) Format {
	if w, ok := f.(interface{ unwrapFormat() Format }); ok {
		return w.unwrapFormat()
	}
	return f
}

// Decode decodes with the codec; its error is reported as ErrMalformedHeader, with the format
// name as detail and the codec's error as cause.
func (p *preset) Decode(values []string) ([][]byte, error) {
	ders, err := p.decode(values)
	if err != nil {
		return nil, newError(ErrMalformedHeader, p.name, err)
	}
	return ders, nil
}

// encodingPreset is a built-in Format that Forward can write.
type encodingPreset struct {
	preset
	encode func(chain []*x509.Certificate) []string
}

func (p *encodingPreset) Encode(chain []*x509.Certificate) ([]string, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("mtls: %s: no certificate to encode", p.name)
	}
	return p.encode(chain), nil
}

// listHeaders is implemented by formats whose i-th header is a structured-field list, which
// may arrive split over several field lines: they are then joined with ", " as RFC 8941
// (section 4.2) prescribes, instead of being refused as a duplicate header.
type listHeaders interface {
	listHeader(i int) bool
}

// rfc9440Preset is the rfc9440 preset: Client-Cert-Chain is a list.
type rfc9440Preset struct{ encodingPreset }

func (*rfc9440Preset) listHeader(i int) bool { return i == 1 }

// hopsDecoder is implemented by formats that can read the elements of earlier hops
// ([HeaderConfig.XFCCBy]).
type hopsDecoder interface {
	// decodeHops decodes values as Decode does, the client being the element that carries a
	// By of ours, and returns the earlier elements too.
	decodeHops(values, ours []string) ([][]byte, []XFCCElement, error)
}

// xfccPreset is the envoy-xfcc preset: it reads earlier hops with HeaderConfig.XFCCBy.
type xfccPreset struct{ encodingPreset }

func (p *xfccPreset) decodeHops(values, ours []string) ([][]byte, []XFCCElement, error) {
	ders, hops, err := certheader.XFCCBy(values, ours)
	if err != nil {
		return nil, nil, newError(ErrMalformedHeader, p.name, err)
	}
	var out []XFCCElement
	if len(hops) > 0 {
		out = make([]XFCCElement, len(hops))
		for i, h := range hops {
			out[i] = XFCCElement{By: h.By, Hash: h.Hash, Subject: h.Subject, URI: h.URI, DNS: h.DNS, Ambiguous: h.Ambiguous}
		}
	}
	return ders, out, nil
}

// Header names of the presets, canonical.
const (
	hdrSSLClientCert   = "X-Ssl-Client-Cert"
	hdrGenericCert     = "X-Client-Cert"
	hdrGenericChain    = "X-Client-Cert-Chain"
	hdrClientCert      = "Client-Cert"
	hdrClientCertChain = "Client-Cert-Chain"
	hdrXFCC            = "X-Forwarded-Client-Cert"
)

// The families of the presets (see [preset.CompanionHeaders]).
var (
	sslFamily        = [][]string{certheader.SSLClientFamily}
	awsFamily        = [][]string{certheader.AWSALBFamily}
	traefikFamily    = [][]string{certheader.TraefikFamily}
	cloudflareFamily = [][]string{certheader.CloudflareFamily, certheader.RFC9440Family}
	clientCertFamily = [][]string{certheader.ClientCertFamily}
	// RFC 9440 headers are set by Google Cloud load balancers, CloudFront and Cloudflare, each with
	// its own companions.
	rfc9440Family = [][]string{certheader.RFC9440Family, certheader.ClientCertFamily,
		certheader.CloudFrontFamily, certheader.CloudflareFamily}
)

// presets maps each preset name to its constructor.
var presets = map[string]func() Format{
	"rfc9440": func() Format {
		return &rfc9440Preset{encodingPreset{
			preset: preset{"rfc9440", []string{hdrClientCert, hdrClientCertChain}, certheader.RFC9440, rfc9440Family},
			encode: certheader.EncodeRFC9440,
		}}
	},
	"aws-alb": func() Format {
		return &preset{"aws-alb", []string{"X-Amzn-Mtls-Clientcert"}, certheader.AWSALB, awsFamily}
	},
	"aws-alb-verify": func() Format {
		return &preset{"aws-alb-verify", []string{"X-Amzn-Mtls-Clientcert-Leaf"}, certheader.AWSALBVerify, awsFamily}
	},
	"nginx": func() Format {
		return &preset{"nginx", []string{hdrSSLClientCert}, certheader.Nginx, sslFamily}
	},
	"envoy-xfcc": func() Format {
		return &xfccPreset{encodingPreset{
			preset: preset{"envoy-xfcc", []string{hdrXFCC}, certheader.XFCC, nil},
			encode: certheader.EncodeXFCC,
		}}
	},
	"traefik": func() Format {
		return &preset{"traefik", []string{"X-Forwarded-Tls-Client-Cert"}, certheader.Traefik, traefikFamily}
	},
	"haproxy": func() Format {
		return &preset{"haproxy", []string{hdrSSLClientCert, "X-Ssl-Client-Chain"}, certheader.HAProxy, sslFamily}
	},
	"apache": func() Format {
		return &preset{"apache", []string{hdrSSLClientCert, "X-Ssl-Client-Chain-0", "X-Ssl-Client-Chain-1",
			"X-Ssl-Client-Chain-2", "X-Ssl-Client-Chain-3"}, certheader.Apache, sslFamily}
	},
	"caddy": func() Format {
		return &preset{"caddy", []string{hdrSSLClientCert}, certheader.Caddy, sslFamily}
	},
	"azure-app-service": func() Format {
		return &preset{"azure-app-service", []string{"X-Arr-Clientcert"}, certheader.Base64DERLeaf, nil}
	},
	"cloudflare": func() Format {
		return &preset{"cloudflare", []string{"Cf-Client-Cert-Der-Base64"}, certheader.Base64DERLeaf, cloudflareFamily}
	},
	"wso2": func() Format {
		return &preset{"wso2", []string{"X-Wso2-Client-Certificate"}, certheader.WSO2, nil}
	},
	"pem": func() Format {
		return &preset{"pem", []string{hdrGenericCert, hdrGenericChain}, certheader.PEM, clientCertFamily}
	},
	"url-pem": func() Format {
		return &preset{"url-pem", []string{hdrGenericCert, hdrGenericChain}, certheader.URLPEM, clientCertFamily}
	},
	"base64-der": func() Format {
		return &preset{"base64-der", []string{hdrGenericCert, hdrGenericChain}, certheader.Base64DER, clientCertFamily}
	},
}

// HeaderFormat returns the preset format called name. The presets, with their default headers:
//
//   - "rfc9440": Client-Cert and Client-Cert-Chain, RFC 9440 structured-field byte sequences
//     (Google Cloud load balancers, Cloudflare transform rules). It can also be written by [Forward].
//   - "aws-alb": X-Amzn-Mtls-Clientcert, the URL-encoded PEM chain of AWS ALB passthrough mode.
//   - "aws-alb-verify": X-Amzn-Mtls-Clientcert-Leaf, the URL-encoded PEM leaf of ALB verify mode.
//   - "nginx": X-SSL-Client-Cert set to $ssl_client_escaped_cert (URL-encoded PEM), or to the
//     deprecated $ssl_client_cert (PEM folded with tabs, which arrives with spaces).
//   - "envoy-xfcc": X-Forwarded-Client-Cert; only the last element (the one added by the hop
//     next to this service) is read, from its Chain or Cert key; Hash, when present, must match.
//     Envoy leaves By, URI and DNS values unquoted whatever they hold, so a header whose earlier
//     elements hold anything but Hash and quoted Cert, Chain and Subject is ambiguous and
//     refused: the hop next to this service should replace the header (SANITIZE_SET), or
//     [HeaderConfig.XFCCBy] should name the By it writes. With XFCCBy, the header may hold
//     the elements of earlier hops (APPEND_FORWARD): the last element must carry that By, be
//     written as Envoy writes an element, and have a Hash, which must match; an earlier
//     element carrying that By refuses the header; the earlier elements are on
//     [Identity.ForwardedBy], as the proxies' word, marked Ambiguous where a certificate's
//     names may have written their boundaries. It can also be written by [Forward].
//   - "traefik": X-Forwarded-Tls-Client-Cert, comma-separated base64 DER (also the older
//     percent-escaped form).
//   - "haproxy": X-SSL-Client-Cert set to %[ssl_c_der,base64], and optionally X-SSL-Client-Chain
//     set to %[ssl_c_chain_der,base64] (concatenated DER).
//   - "apache": X-SSL-Client-Cert set to "%{SSL_CLIENT_CERT}s" (PEM with newlines turned into
//     spaces; "(null)" means absent), optionally X-SSL-Client-Chain-0 to -3 set to
//     "%{SSL_CLIENT_CERT_CHAIN_n}s". The escaped "expr=%{escape:...}" form is accepted too.
//   - "caddy": X-SSL-Client-Cert set to {http.request.tls.client.certificate_der_base64}; the
//     unexpanded placeholder that Caddy before 2.11.2 sends without a certificate means absent.
//   - "azure-app-service": X-ARR-ClientCert, base64 DER.
//   - "cloudflare": Cf-Client-Cert-Der-Base64, base64 DER (Access certificate forwarding).
//   - "wso2": X-WSO2-CLIENT-CERTIFICATE, PEM or URL-encoded PEM.
//   - "pem", "url-pem", "base64-der": generic encodings for any header name (set
//     [HeaderConfig.Names]); defaults X-Client-Cert, and X-Client-Cert-Chain for intermediates.
//
// Percent-encoding is decoded without turning "+" into a space.
//
// Each preset also names its companion headers (see [Format]), under the names of its proxies'
// documentation: "nginx", "haproxy", "apache" and "caddy" the X-SSL-Client- family
// (X-SSL-Client-Verify, -S-DN, -I-DN, -Serial, -M-Serial, -Fingerprint, -SHA1, -V-Start, -V-End,
// -Used, the chain headers, ...); "aws-alb" and "aws-alb-verify" X-Amzn-Mtls-Clientcert and its
// -Leaf, -Subject, -Issuer, -Serial-Number and -Validity; "traefik"
// X-Forwarded-Tls-Client-Cert-Info; "cloudflare" Cf-Client-Cert-Sha256, the Cf-Cert- headers of
// its managed transform and the RFC 9440 headers; "rfc9440" the X-Client-Cert- headers of Google
// Cloud's setup guide, CloudFront's CloudFront-Viewer-Cert- headers and Cloudflare's Cf-Cert-
// headers; "pem", "url-pem" and "base64-der" the X-Client-Cert- headers. "envoy-xfcc",
// "azure-app-service" and "wso2" carry everything in their one header.
func HeaderFormat(name string) (Format, error) {
	f, ok := presets[name]
	if !ok {
		return nil, fmt.Errorf("mtls: unknown header format %q (known: %s)", name, strings.Join(HeaderFormatNames(), ", "))
	}
	return f(), nil
}

// MustHeaderFormat is like [HeaderFormat] but panics on an unknown name. It is meant for names
// written in the program, not for user input.
func MustHeaderFormat(name string) Format {
	f, err := HeaderFormat(name)
	if err != nil {
		panic(err)
	}
	return f
}

// HeaderFormatNames returns the names of the preset formats, sorted.
func HeaderFormatNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// canonicalNames checks header names and returns them canonical. Two names that differ only in
// case or in punctuation ("_" or "." for "-") are the same header (see [certheader.SameName])
// and refused.
func canonicalNames(names []string) ([]string, error) {
	out := make([]string, len(names))
	for i, n := range names {
		if n == "" || strings.ContainsAny(n, " \t\r\n:") {
			return nil, fmt.Errorf("mtls: invalid header name %q", n)
		}
		for _, prev := range names[:i] {
			if certheader.SameName(n, prev) {
				return nil, fmt.Errorf("mtls: header name %q given twice", n)
			}
		}
		out[i] = http.CanonicalHeaderKey(n)
	}
	return out, nil
}

// presetEncodings are the encodings (as [certheader.Sniff] tells them apart) that each preset
// reads in its certificate headers.
var presetEncodings = map[string][]certheader.Encoding{
	"rfc9440":           {certheader.EncSFBinary},
	"aws-alb":           {certheader.EncURLPEM, certheader.EncPEMText},
	"aws-alb-verify":    {certheader.EncURLPEM, certheader.EncPEMText},
	"nginx":             {certheader.EncURLPEM, certheader.EncPEMText},
	"envoy-xfcc":        {certheader.EncXFCC},
	"traefik":           {certheader.EncBase64DER},
	"haproxy":           {certheader.EncBase64DER},
	"apache":            {certheader.EncPEMText, certheader.EncURLPEM},
	"caddy":             {certheader.EncBase64DER},
	"azure-app-service": {certheader.EncBase64DER},
	"cloudflare":        {certheader.EncBase64DER},
	"wso2":              {certheader.EncPEMText, certheader.EncURLPEM},
	"pem":               {certheader.EncPEMText},
	"url-pem":           {certheader.EncURLPEM, certheader.EncPEMText},
	"base64-der":        {certheader.EncBase64DER},
}

// encodingNames says what each encoding is, and which presets read it.
var encodingNames = map[certheader.Encoding]string{
	certheader.EncPEMText:   `PEM text, as nginx's $ssl_client_cert and Apache's SSL_CLIENT_CERT are (format "nginx", "apache" or "pem")`,
	certheader.EncURLPEM:    `URL-escaped PEM, as nginx's $ssl_client_escaped_cert and AWS ALB send it (format "nginx", "aws-alb" or "url-pem")`,
	certheader.EncBase64DER: `base64 DER, as HAProxy's %[ssl_c_der,base64] and Caddy send it (format "haproxy", "caddy", "traefik" or "base64-der")`,
	certheader.EncSFBinary:  `an RFC 9440 byte sequence (format "rfc9440")`,
	certheader.EncXFCC:      `Envoy's X-Forwarded-Client-Cert (format "envoy-xfcc")`,
}

// encodings returns the encodings the preset reads.
func (p *preset) encodings() []certheader.Encoding { return presetEncodings[p.name] }

// formatMismatch says, for a refusal's detail, that a value of values (those of the headers
// names, in order) looks like an encoding that format, a preset, does not read: the first such
// value, or "" when none does or format is not a preset (whose encodings are known). Each value
// costs at most certheader.SniffPrefix bytes read.
func formatMismatch(format Format, names, values []string) string {
	p, ok := baseFormat(format).(interface{ encodings() []certheader.Encoding })
	if !ok {
		return ""
	}
	reads := p.encodings()
	for i, v := range values {
		enc := certheader.Sniff(v)
		if enc == certheader.EncUnknown || slices.Contains(reads, enc) {
			continue
		}
		header := "the value"
		if i < len(names) {
			header = "the value of " + names[i]
		}
		return fmt.Sprintf("%s looks like %s, but the configured format is %q", header, encodingNames[enc], format.Name())
	}
	return ""
}
