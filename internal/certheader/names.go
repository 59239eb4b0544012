package certheader

// SameName says whether two header names name the same header for some consumer: ASCII letters
// compare without regard to case, and every byte that is neither an ASCII letter nor a digit
// equals every other such byte. CGI, FastCGI and WSGI servers turn both X-SSL-Client-Cert and
// X_SSL_Client_Cert into HTTP_X_SSL_CLIENT_CERT; CGI mappings such as Apache httpd 2.2's turn
// every byte but a letter or digit into '_', and PHP turns '.' into '_' in the names of
// $_SERVER: so X.SSL.Client.Cert, X~SSL~Client~Cert and X-SSL-Client\xffCert may all be read as
// the real header. Names of different lengths never name the same header.
func SameName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if foldName(a[i]) != foldName(b[i]) {
			return false
		}
	}
	return true
}

// foldName maps a byte of a header name to the one SameName compares: an ASCII letter to its
// lower case, a digit to itself, any other byte to '-'.
func foldName(c byte) byte {
	switch {
	case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		return c
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	}
	return '-'
}

// IsASCII says whether s holds ASCII bytes only.
func IsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// EqualFoldASCII says whether a and b are equal with ASCII letters compared without regard to
// case; every other byte, non-ASCII ones included, must be equal. Unlike [strings.EqualFold] it
// folds no Unicode: "ſ" (U+017F) is not "s", nor the Kelvin sign "k".
func EqualFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerByte(a[i]) != lowerByte(b[i]) {
			return false
		}
	}
	return true
}

// lowerByte maps an ASCII upper-case letter to its lower case, and every other byte to itself.
func lowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// Families of the headers in which proxies forward a client certificate and what they make of it
// (verification result, subject and issuer, serial, fingerprint, validity), under the names of
// the proxies' documentation and of the configurations it shows: what a handler that follows that
// documentation reads. Canonical, as net/http spells them.
var (
	// SSLClientFamily: nginx ($ssl_client_*), HAProxy (ssl_c_*), Apache httpd (SSL_CLIENT_*) and
	// Caddy setups, under the X-SSL-Client- names of their documented configurations.
	SSLClientFamily = []string{
		"X-Ssl-Client-Cert", "X-Ssl-Client-Chain",
		"X-Ssl-Client-Chain-0", "X-Ssl-Client-Chain-1", "X-Ssl-Client-Chain-2", "X-Ssl-Client-Chain-3",
		"X-Ssl-Client-Escaped-Cert", "X-Ssl-Client-Raw-Cert",
		"X-Ssl-Client-Verify", "X-Ssl-Client-Used", "X-Ssl-Client-Err", "X-Ssl-Client-Ca-Err",
		"X-Ssl-Client-Dn", "X-Ssl-Client-S-Dn", "X-Ssl-Client-I-Dn",
		"X-Ssl-Client-Serial", "X-Ssl-Client-M-Serial",
		"X-Ssl-Client-Fingerprint", "X-Ssl-Client-Sha1", "X-Ssl-Client-Sha256",
		"X-Ssl-Client-V-Start", "X-Ssl-Client-V-End", "X-Ssl-Client-V-Remain",
		"X-Ssl-Client-Notbefore", "X-Ssl-Client-Notafter",
	}
	// AWSALBFamily: AWS Application Load Balancer, passthrough and verify modes.
	AWSALBFamily = []string{
		"X-Amzn-Mtls-Clientcert", "X-Amzn-Mtls-Clientcert-Leaf",
		"X-Amzn-Mtls-Clientcert-Subject", "X-Amzn-Mtls-Clientcert-Issuer",
		"X-Amzn-Mtls-Clientcert-Serial-Number", "X-Amzn-Mtls-Clientcert-Validity",
	}
	// TraefikFamily: Traefik's PassTLSClientCert middleware.
	TraefikFamily = []string{"X-Forwarded-Tls-Client-Cert", "X-Forwarded-Tls-Client-Cert-Info"}
	// RFC9440Family: the RFC 9440 headers.
	RFC9440Family = []string{"Client-Cert", "Client-Cert-Chain"}
	// CloudflareFamily: Cloudflare Access certificate forwarding and the managed transform "Add
	// TLS client auth headers".
	CloudflareFamily = []string{
		"Cf-Client-Cert-Der-Base64", "Cf-Client-Cert-Sha256",
		"Cf-Cert-Presented", "Cf-Cert-Verified", "Cf-Cert-Revoked",
		"Cf-Cert-Subject-Dn", "Cf-Cert-Issuer-Dn", "Cf-Cert-Subject-Dn-Rfc2253", "Cf-Cert-Issuer-Dn-Rfc2253",
		"Cf-Cert-Subject-Dn-Legacy", "Cf-Cert-Issuer-Dn-Legacy",
		"Cf-Cert-Serial", "Cf-Cert-Issuer-Serial", "Cf-Cert-Fingerprint-Sha256", "Cf-Cert-Fingerprint-Sha1",
		"Cf-Cert-Not-Before", "Cf-Cert-Not-After", "Cf-Cert-Ski", "Cf-Cert-Issuer-Ski",
	}
	// CloudFrontFamily: Amazon CloudFront viewer mTLS.
	CloudFrontFamily = []string{
		"Cloudfront-Viewer-Cert-Pem", "Cloudfront-Viewer-Cert-Present", "Cloudfront-Viewer-Cert-Sha256",
		"Cloudfront-Viewer-Cert-Subject", "Cloudfront-Viewer-Cert-Issuer",
		"Cloudfront-Viewer-Cert-Serial-Number", "Cloudfront-Viewer-Cert-Validity",
	}
	// ClientCertFamily: the X-Client-Cert- names of Google Cloud load balancers' mTLS setup guide
	// and of Kong's tls-metadata-headers plugin.
	ClientCertFamily = []string{
		"X-Client-Cert", "X-Client-Cert-Chain", "X-Client-Cert-Leaf",
		"X-Client-Cert-Present", "X-Client-Cert-Chain-Verified", "X-Client-Cert-Error",
		"X-Client-Cert-Hash", "X-Client-Cert-Fingerprint", "X-Client-Cert-Serial", "X-Client-Cert-Serial-Number",
		"X-Client-Cert-Subject-Dn", "X-Client-Cert-Issuer-Dn", "X-Client-Cert-Spiffe",
		"X-Client-Cert-Uri-Sans", "X-Client-Cert-Dnsname-Sans",
		"X-Client-Cert-Valid-Not-Before", "X-Client-Cert-Valid-Not-After",
	}
)
