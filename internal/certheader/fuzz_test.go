package certheader

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"github.com/certgate/mtls/internal/certheader/proxyenc"
	"github.com/stretchr/testify/require"
)

// Fuzz targets for the codecs. Each one checks, whatever the input: no panic; an error comes
// with no certificate; a success yields only complete DER certificates, at most
// MaxCertificates; what an encoder writes for decoded certificates decodes to the same. Seeds:
// the cases below plus testdata/fuzz/<target>/ (values from the real captures).

// checkDecode decodes values and checks the outcome; it returns the certificates.
func checkDecode(t *testing.T, dec decoder, values ...string) [][]byte {
	got, err := dec(values)
	if err != nil {
		require.Nil(t, got, "nothing is returned with an error")
		return nil
	}
	require.LessOrEqual(t, len(got), MaxCertificates)
	for _, der := range got {
		d, err := splitDER(der)
		require.NoError(t, err, "an incomplete DER certificate")
		require.Len(t, d, 1, "concatenated certificates returned as one")
	}
	return got
}

// certsOf wraps DER in certificates, for the encoders, which read only Raw (and the names).
func certsOf(ders [][]byte) []*x509.Certificate {
	out := make([]*x509.Certificate, len(ders))
	for i, der := range ders {
		out[i] = &x509.Certificate{Raw: der}
	}
	return out
}

func fuzzSeeds(f *testing.F, pairs ...[2]string) {
	for _, p := range pairs {
		f.Add(p[0], p[1])
	}
}

func FuzzHeaderRFC9440(f *testing.F) {
	c := newCerts()
	leaf, inter := ":"+proxyenc.B64(c.leaf)+":", ":"+proxyenc.B64(c.inter)+":"
	fuzzSeeds(f, [2]string{leaf, inter}, [2]string{leaf, inter + ", " + inter}, [2]string{"", inter},
		[2]string{leaf + ";a=1", ""}, [2]string{"::", ""}, [2]string{":AAAA", ""}, [2]string{leaf, inter + ","})
	f.Fuzz(func(t *testing.T, v0, v1 string) {
		if ders := checkDecode(t, RFC9440, v0, v1); ders != nil {
			again, err := RFC9440(EncodeRFC9440(certsOf(ders)))
			require.NoError(t, err)
			require.Equal(t, ders, again)
		}
	})
}

// FuzzHeaderXFCC decodes v0, and when it holds certificates writes them again with v1 as the
// subject's common name and as a DNS name, which must parse back whole.
func FuzzHeaderXFCC(f *testing.F) {
	c := newCerts()
	cert := proxyenc.EnvoyEscape(proxyenc.PEM(c.leaf))
	sum := sha256.Sum256(c.leaf.Raw)
	hash := hex.EncodeToString(sum[:])
	fuzzSeeds(f,
		[2]string{`By=spiffe://gw;Hash=` + hash + `;Cert="` + cert + `";Subject="CN=a\"b";URI=spiffe://x;DNS=a`, `a,b;c="d\`},
		[2]string{`Cert="x,By=y;Cert="` + cert + `"`, ""},
		[2]string{`Hash=` + hash + `;Chain="` + proxyenc.EnvoyEscape(proxyenc.PEM(c.leaf, c.inter)) + `"`, "x.example.test"},
		[2]string{`URI=spiffe://a,URI=spiffe://b;Cert=` + cert, ""},
		[2]string{`=`, ""}, [2]string{`Cert="\`, ""})
	f.Fuzz(func(t *testing.T, v0, v1 string) {
		_, parseErr := ParseXFCC(v0)
		ders := checkDecode(t, XFCC, v0)
		if ders == nil {
			return
		}
		require.NoError(t, parseErr, "decoded, so it parses")
		chain := certsOf(ders)
		chain[0].Subject = pkix.Name{CommonName: v1}
		chain[0].DNSNames = []string{v1}
		written := EncodeXFCC(chain)
		again, err := XFCC(written)
		require.NoError(t, err)
		require.Equal(t, ders, again)
		elems, err := ParseXFCC(written[0])
		require.NoError(t, err)
		require.Len(t, elems, 1)
		got := map[string]string{}
		for _, p := range elems[0] {
			got[p.Key] = p.Value
		}
		require.Equal(t, chain[0].Subject.String(), got["subject"])
		require.Equal(t, v1, got["dns"])
	})
}

// FuzzHeaderXFCCBy decodes v0 as a value appended to over several hops, then as the elements
// before the one this service's proxy appends for a client whose certificate has v1 as its URI
// SAN: whatever v0 and v1 hold, that value decodes to the certificate of that element or is
// refused, and when the element has no certificate it is refused. Last, v0 is the elements
// before the one a gateway appends for a client with v1 as its DNS SAN, followed by this
// service's proxy's: the last earlier element, unless Ambiguous, is the gateway's, and without
// v0 the first is the gateway's and every later one is Ambiguous.
func FuzzHeaderXFCCBy(f *testing.F) {
	c := newCerts()
	victim := `Hash=` + hashOf(c.inter.Raw) + `;Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(c.inter)) + `"`
	fuzzSeeds(f,
		[2]string{proxyenc.EnvoyElement([]string{byFront}, proxyenc.EnvoyDetails{Subject: true, URI: true, DNS: true}, c.leaf), "spiffe://a/client"},
		[2]string{"By=" + byBackend + ";" + victim, "spiffe://m/x,By=" + byBackend + ";" + victim},
		[2]string{"By=" + byBackend + ";" + victim + `;URI="x`, `"`},
		[2]string{`By=` + byFront + `;URI="x`, `",By=` + byBackend + ";" + victim},
		[2]string{`By=` + byFront + `;Subject="CN=a"\,b";URI=https://x/?a=b;DNS=c,Hash=` + hashOf(c.root.Raw), `x;URI=y`},
		[2]string{"", ""}, [2]string{",", `"`}, [2]string{`By=` + byFront + `;Subject="`, `\`},
		[2]string{"", "app.partner.test,By=" + byGateway + ";Hash=" + strings.Repeat("ab", 32) + ";URI=spiffe://trusted/admin"},
		[2]string{`Hash=00;Subject="x`, `",By=` + byGateway + ";Hash=" + strings.Repeat("ab", 32) + ";URI=spiffe://trusted/admin"},
		[2]string{"", `"spiffe://trusted/admin"`}, [2]string{"", "a;Subject=\"CN=admin\""},
		[2]string{"", strings.Repeat("h.test;DNS=", 70) + "h.test"})
	ours := []string{byBackend}
	leaf := proxyenc.DERs(c.leaf)
	mine := "By=" + byBackend + ";Hash=" + hashOf(c.leaf.Raw)
	cert := `;Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(c.leaf)) + `"`
	gatewayHash := hashOf(c.inter.Raw)
	gateway := "By=" + byGateway + ";Hash=" + gatewayHash + `;Subject="CN=partner"`
	f.Fuzz(func(t *testing.T, v0, v1 string) {
		ders, hops, err := XFCCBy([]string{v0}, ours)
		if err != nil {
			require.Nil(t, ders)
			require.Nil(t, hops)
		} else {
			checkDecode(t, func([]string) ([][]byte, error) { return ders, nil })
			require.Less(t, len(hops), maxXFCCElements)
			kept := 0
			for _, h := range hops {
				require.NotContains(t, h.By, byBackend, "a hop carries this service's By")
				kept += len(h.Hash) + len(h.Subject)
				for _, s := range slices.Concat(h.By, h.URI, h.DNS) {
					kept += len(s)
				}
			}
			require.LessOrEqual(t, kept, MaxXFCCHopBytes)
		}
		for _, details := range []string{cert + `;Subject="CN=alice"`, cert, `;Subject="CN=alice"`, ""} {
			v := mine + details + ";URI=" + v1
			if v0 != "" {
				v = v0 + "," + v
			}
			ders, _, err := XFCCBy([]string{v}, ours)
			if err != nil {
				continue
			}
			require.NotEmpty(t, details, "%q: a certificate where this service's proxy wrote none", v)
			require.Contains(t, details, "Cert", "%q: a certificate where this service's proxy wrote none", v)
			require.Equal(t, leaf, ders, "%q: another certificate than the one this service's proxy wrote", v)
		}
		v := gateway + ";DNS=" + v1 + "," + mine + cert
		if v0 != "" {
			v = v0 + "," + v
		}
		ders, hops, err = XFCCBy([]string{v}, ours)
		if err != nil {
			return
		}
		require.Equal(t, leaf, ders, "%q: another certificate than the one this service's proxy wrote", v)
		require.NotEmpty(t, hops)
		if last := hops[len(hops)-1]; !last.Ambiguous {
			require.Equal(t, []string{byGateway}, last.By, "%q: the last earlier element is not the gateway's", v)
			require.Equal(t, gatewayHash, last.Hash, "%q: the last earlier element is not the gateway's", v)
		}
		if v0 == "" { // the gateway's element is the first: only those after it are unsure
			require.Equal(t, byGateway, hops[0].By[0], "%q", v)
			require.Equal(t, gatewayHash, hops[0].Hash, "%q", v)
			require.True(t, hops[0].Ambiguous || len(hops[0].By) == 1, "%q: a By written by a name, unmarked", v)
			for _, h := range hops[1:] {
				require.True(t, h.Ambiguous, "%q: an element after the gateway's names is not marked", v)
			}
		}
	})
}

func FuzzHeaderTraefik(f *testing.F) {
	c := newCerts()
	fuzzSeeds(f, [2]string{proxyenc.B64(c.leaf) + "," + proxyenc.B64(c.inter), ""},
		[2]string{strings.ReplaceAll(proxyenc.B64(c.leaf), "+", "%2B"), ""}, [2]string{",", ""}, [2]string{"%", ""})
	f.Fuzz(func(t *testing.T, v0, _ string) { checkDecode(t, Traefik, v0) })
}

func FuzzHeaderApache(f *testing.F) {
	c := newCerts()
	fuzzSeeds(f, [2]string{proxyenc.FlatPEM(c.leaf), proxyenc.FlatPEM(c.inter)},
		[2]string{"(null)", "(null)"}, [2]string{"(null)", proxyenc.FlatPEM(c.inter)},
		[2]string{proxyenc.ApacheEscape(proxyenc.PEM(c.leaf)), ""}, [2]string{"-----BEGIN CERTIFICATE----- ", ""})
	f.Fuzz(func(t *testing.T, v0, v1 string) {
		checkDecode(t, Apache, v0, v1, "", "", "")
		checkDecode(t, Apache, v0, "(null)", v1, "", "")
	})
}

// FuzzHeaderPEM covers the PEM and URL-encoded PEM decoders (nginx, aws-alb, aws-alb-verify, wso2,
// pem, url-pem) and percent-encoding.
func FuzzHeaderPEM(f *testing.F) {
	c := newCerts()
	fuzzSeeds(f, [2]string{proxyenc.NginxEscape(proxyenc.PEM(c.leaf)), ""},
		[2]string{proxyenc.ALBEscape(proxyenc.PEM(c.leaf, c.inter)), ""},
		[2]string{proxyenc.FlatPEM(c.leaf), proxyenc.FlatPEM(c.inter)},
		[2]string{"-----BEGIN%20CERTIFICATE-----%0A%ZZ", ""}, [2]string{"-----BEGIN CERTIFICATE-----", "x"})
	f.Fuzz(func(t *testing.T, v0, v1 string) {
		for _, dec := range []decoder{Nginx, AWSALB, AWSALBVerify, WSO2} {
			checkDecode(t, dec, v0)
		}
		checkDecode(t, PEM, v0, v1)
		if ders := checkDecode(t, URLPEM, v0, v1); ders != nil {
			again, err := URLPEM([]string{percentEncode(pemEncode(ders))})
			require.NoError(t, err)
			require.Equal(t, ders, again)
		}
		s, err := percentDecode(percentEncode(v0))
		require.NoError(t, err)
		require.Equal(t, v0, s)
		if !strings.Contains(v0, "%") {
			s, err := percentDecode(v0)
			require.NoError(t, err)
			require.Equal(t, v0, s, "percent-decoding changes nothing but escapes; + stays +")
		}
	})
}

// FuzzHeaderBase64DER covers the base64 DER decoders: haproxy, caddy, azure-app-service,
// cloudflare, base64-der.
func FuzzHeaderBase64DER(f *testing.F) {
	c := newCerts()
	fuzzSeeds(f, [2]string{proxyenc.B64(c.leaf), proxyenc.B64(c.inter)},
		[2]string{"{http.request.tls.client.certificate_der_base64}", ""}, [2]string{"", proxyenc.B64(c.inter)},
		[2]string{"MIIB", ""}, [2]string{"MAA=", ""})
	f.Fuzz(func(t *testing.T, v0, v1 string) {
		checkDecode(t, HAProxy, v0, v1)
		checkDecode(t, Base64DER, v0, v1)
		for _, dec := range []decoder{Caddy, Base64DERLeaf} {
			checkDecode(t, dec, v0)
		}
	})
}

func FuzzHeaderSameName(f *testing.F) {
	fuzzSeeds(f, [2]string{"X-Ssl-Client-Cert", "x_ssl_client_cert"}, [2]string{"Client-Cert", "Client-Cert-Chain"},
		[2]string{"X-\u212a", "X-k"}, [2]string{"A\xff", "a\xff"})
	f.Fuzz(func(t *testing.T, a, b string) {
		same := SameName(a, b)
		require.Equal(t, same, SameName(b, a))
		require.True(t, SameName(a, a))
		require.True(t, SameName(a, strings.NewReplacer("-", "_", "_", "-", ".", "~").Replace(a)), "punctuation swapped")
		// What a CGI mapping makes of a name: letters upper case, every other byte but a
		// digit '_'.
		cgi := func(s string) string {
			out := []byte(s)
			for i, c := range out {
				switch {
				case 'a' <= c && c <= 'z':
					out[i] = c - 'a' + 'A'
				case 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
				default:
					out[i] = '_'
				}
			}
			return string(out)
		}
		require.Equal(t, cgi(a) == cgi(b), same, "%q and %q", a, b)
	})
}
