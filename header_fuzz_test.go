package mtls

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Fuzz targets for the header decoders. Each one checks, whatever the input: no panic; an error
// wraps ErrMalformedHeader and comes with no certificate; a success yields only complete DER
// certificates. Seeds: the cases below plus testdata/fuzz/<target>/ (values from the real
// captures).

func checkDecode(t *testing.T, name string, values ...string) {
	f := MustHeaderFormat(name)
	got, err := f.Decode(values)
	if err != nil {
		require.ErrorIs(t, err, ErrMalformedHeader, "%s", name)
		require.Nil(t, got, "%s: nothing is returned with an error", name)
		return
	}
	for _, der := range got {
		d, err := splitDER(der)
		require.NoError(t, err, "%s returned an incomplete DER certificate", name)
		require.Len(t, d, 1, "%s returned concatenated certificates as one", name)
	}
}

func fuzzSeeds(f *testing.F, pairs ...[2]string) {
	for _, p := range pairs {
		f.Add(p[0], p[1])
	}
}

func FuzzHeaderRFC9440(f *testing.F) {
	p := newPKI(f)
	leaf, inter := ":"+b64(p.alice.Certificate)+":", ":"+b64(p.issuing.Certificate)+":"
	fuzzSeeds(f, [2]string{leaf, inter}, [2]string{leaf, inter + ", " + inter}, [2]string{"", inter},
		[2]string{leaf + ";a=1", ""}, [2]string{"::", ""}, [2]string{":AAAA", ""}, [2]string{leaf, inter + ","})
	f.Fuzz(func(t *testing.T, v0, v1 string) { checkDecode(t, "rfc9440", v0, v1) })
}

func FuzzHeaderXFCC(f *testing.F) {
	p := newPKI(f)
	cert := envoyEscape(pemText(p.alice.Certificate))
	hash := fingerprint(p.alice.Certificate)
	fuzzSeeds(f,
		[2]string{`By=spiffe://gw;Hash=` + hash + `;Cert="` + cert + `";Subject="CN=a\"b";URI=spiffe://x;DNS=a`, ""},
		[2]string{`Cert="x,By=y;Cert="` + cert + `"`, ""},
		[2]string{`Hash=` + hash + `;Chain="` + envoyEscape(pemText(p.alice.Chain()...)) + `"`, ""},
		[2]string{`URI=spiffe://a,URI=spiffe://b;Cert=` + cert, ""},
		[2]string{`=`, ""}, [2]string{`Cert="\`, ""})
	f.Fuzz(func(t *testing.T, v0, _ string) {
		checkDecode(t, "envoy-xfcc", v0)
		_, _ = parseXFCC(v0)
	})
}

func FuzzHeaderTraefik(f *testing.F) {
	p := newPKI(f)
	fuzzSeeds(f, [2]string{b64(p.alice.Certificate) + "," + b64(p.issuing.Certificate), ""},
		[2]string{strings.ReplaceAll(b64(p.alice.Certificate), "+", "%2B"), ""}, [2]string{",", ""}, [2]string{"%", ""})
	f.Fuzz(func(t *testing.T, v0, _ string) { checkDecode(t, "traefik", v0) })
}

func FuzzHeaderApache(f *testing.F) {
	p := newPKI(f)
	fuzzSeeds(f, [2]string{flatPEM(p.alice.Certificate), flatPEM(p.issuing.Certificate)},
		[2]string{"(null)", "(null)"}, [2]string{"(null)", flatPEM(p.issuing.Certificate)},
		[2]string{apacheEscape(pemText(p.alice.Certificate)), ""}, [2]string{"-----BEGIN CERTIFICATE----- ", ""})
	f.Fuzz(func(t *testing.T, v0, v1 string) {
		checkDecode(t, "apache", v0, v1, "", "", "")
		checkDecode(t, "apache", v0, "(null)", v1, "", "")
	})
}

// FuzzHeaderPEM covers the PEM and URL-encoded PEM decoders: nginx, aws-alb, aws-alb-verify,
// wso2, pem, url-pem.
func FuzzHeaderPEM(f *testing.F) {
	p := newPKI(f)
	fuzzSeeds(f, [2]string{nginxEscape(pemText(p.alice.Certificate)), ""},
		[2]string{albEscape(pemText(p.alice.Chain()...)), ""},
		[2]string{flatPEM(p.alice.Certificate), flatPEM(p.issuing.Certificate)},
		[2]string{"-----BEGIN%20CERTIFICATE-----%0A%ZZ", ""}, [2]string{"-----BEGIN CERTIFICATE-----", "x"})
	f.Fuzz(func(t *testing.T, v0, v1 string) {
		for _, name := range []string{"nginx", "aws-alb", "aws-alb-verify", "wso2"} {
			checkDecode(t, name, v0)
		}
		checkDecode(t, "pem", v0, v1)
		checkDecode(t, "url-pem", v0, v1)
		if !strings.Contains(v0, "%") {
			b, err := percentDecode(v0)
			require.NoError(t, err)
			require.Equal(t, v0, string(b), "percent-decoding changes nothing but escapes; + stays +")
		}
	})
}

// FuzzHeaderBase64DER covers the base64 DER decoders: haproxy, caddy, azure-app-service,
// cloudflare, base64-der.
func FuzzHeaderBase64DER(f *testing.F) {
	p := newPKI(f)
	fuzzSeeds(f, [2]string{b64(p.alice.Certificate), b64(p.issuing.Certificate)},
		[2]string{"{http.request.tls.client.certificate_der_base64}", ""}, [2]string{"", b64(p.issuing.Certificate)},
		[2]string{"MIIB", ""}, [2]string{"MAA=", ""})
	f.Fuzz(func(t *testing.T, v0, v1 string) {
		checkDecode(t, "haproxy", v0, v1)
		checkDecode(t, "base64-der", v0, v1)
		for _, name := range []string{"caddy", "azure-app-service", "cloudflare"} {
			checkDecode(t, name, v0)
		}
	})
}
