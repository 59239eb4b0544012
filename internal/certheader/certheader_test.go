package certheader

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/certgate/mtls/internal/certheader/proxyenc"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type decoder func([]string) ([][]byte, error)

type certs struct {
	root, inter, leaf *x509.Certificate
}

// newCerts returns a root, an intermediate and a client leaf, minted once for the package.
var newCerts = sync.OnceValue(func() certs {
	root := mtlstest.NewRootCA("Test Root CA")
	inter := root.NewIntermediate("Test Issuing CA")
	leaf := inter.NewClient("alice", mtlstest.WithDNS("alice.example.test"),
		mtlstest.WithURIs("spiffe://example.test/ns/prod/sa/alice"))
	return certs{root.Certificate, inter.Certificate, leaf.Certificate}
})

func TestFormatDecode(t *testing.T) {
	c := newCerts()
	leaf, inter, root := c.leaf, c.inter, c.root
	sum := sha256.Sum256(leaf.Raw)
	hash := hex.EncodeToString(sum[:])
	tests := []struct {
		name   string
		decode decoder
		values []string
		want   [][]byte
	}{
		{"rfc9440 leaf", RFC9440, []string{":" + proxyenc.B64(leaf) + ":"}, proxyenc.DERs(leaf)},
		{"rfc9440 chain", RFC9440, []string{":" + proxyenc.B64(leaf) + ":", ":" + proxyenc.B64(inter) + ":, :" + proxyenc.B64(root) + ":"}, proxyenc.DERs(leaf, inter, root)},
		{"rfc9440 unpadded", RFC9440, []string{":" + strings.TrimRight(proxyenc.B64(leaf), "=") + ":"}, proxyenc.DERs(leaf)},
		{"rfc9440 absent", RFC9440, []string{"", ""}, nil},
		{"aws-alb chain", AWSALB, []string{proxyenc.ALBEscape(proxyenc.PEM(leaf, inter))}, proxyenc.DERs(leaf, inter)},
		{"aws-alb equals escaped", AWSALB, []string{strings.ReplaceAll(proxyenc.ALBEscape(proxyenc.PEM(leaf)), "=", "%3D")}, proxyenc.DERs(leaf)},
		{"aws-alb-verify leaf", AWSALBVerify, []string{proxyenc.ALBEscape(proxyenc.PEM(leaf))}, proxyenc.DERs(leaf)},
		{"nginx escaped", Nginx, []string{proxyenc.NginxEscape(proxyenc.PEM(leaf))}, proxyenc.DERs(leaf)},
		{"nginx legacy unfolded", Nginx, []string{strings.TrimSpace(proxyenc.FlatPEM(leaf))}, proxyenc.DERs(leaf)},
		{"envoy-xfcc cert", XFCC, []string{`By=spiffe://mesh/gw;Hash=` + hash + `;Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(leaf)) + `";Subject="CN=alice";URI=spiffe://example.test/ns/prod/sa/alice;DNS=alice.example.test`}, proxyenc.DERs(leaf)},
		{"envoy-xfcc chain", XFCC, []string{`Hash=` + hash + `;Chain="` + proxyenc.EnvoyEscape(proxyenc.PEM(leaf, inter)) + `"`}, proxyenc.DERs(leaf, inter)},
		{"envoy-xfcc last element wins", XFCC, []string{`Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(root)) + `";Subject="CN=x\",y",By=spiffe://mesh/gw;Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(leaf)) + `"`}, proxyenc.DERs(leaf)},
		{"envoy-xfcc keys any case", XFCC, []string{`HASH=` + strings.ToUpper(hash) + `;cert=` + proxyenc.EnvoyEscape(proxyenc.PEM(leaf))}, proxyenc.DERs(leaf)},
		{"traefik chain", Traefik, []string{proxyenc.B64(leaf) + "," + proxyenc.B64(inter)}, proxyenc.DERs(leaf, inter)},
		{"traefik query-escaped", Traefik, []string{url.QueryEscape(proxyenc.B64(leaf)) + "," + url.QueryEscape(proxyenc.B64(inter))}, proxyenc.DERs(leaf, inter)},
		{"haproxy leaf", HAProxy, []string{proxyenc.B64(leaf), ""}, proxyenc.DERs(leaf)},
		{"haproxy chain", HAProxy, []string{proxyenc.B64(leaf), base64.StdEncoding.EncodeToString(append(append([]byte{}, inter.Raw...), root.Raw...))}, proxyenc.DERs(leaf, inter, root)},
		{"apache leaf", Apache, []string{proxyenc.FlatPEM(leaf), "(null)", "(null)"}, proxyenc.DERs(leaf)},
		{"apache chain", Apache, []string{proxyenc.FlatPEM(leaf), proxyenc.FlatPEM(inter), "(null)"}, proxyenc.DERs(leaf, inter)},
		{"apache escaped", Apache, []string{proxyenc.ApacheEscape(proxyenc.PEM(leaf))}, proxyenc.DERs(leaf)},
		{"apache null", Apache, []string{"(null)", "(null)"}, nil},
		{"caddy", Caddy, []string{proxyenc.B64(leaf)}, proxyenc.DERs(leaf)},
		{"caddy placeholder", Caddy, []string{"{http.request.tls.client.certificate_der_base64}"}, nil},
		{"azure-app-service", Base64DERLeaf, []string{proxyenc.B64(leaf)}, proxyenc.DERs(leaf)},
		{"cloudflare", Base64DERLeaf, []string{proxyenc.B64(leaf)}, proxyenc.DERs(leaf)},
		{"wso2 pem", WSO2, []string{proxyenc.FlatPEM(leaf)}, proxyenc.DERs(leaf)},
		{"wso2 url-pem", WSO2, []string{proxyenc.NginxEscape(proxyenc.PEM(leaf))}, proxyenc.DERs(leaf)},
		{"pem with chain header", PEM, []string{proxyenc.FlatPEM(leaf), proxyenc.FlatPEM(inter)}, proxyenc.DERs(leaf, inter)},
		{"pem with tabs", PEM, []string{strings.ReplaceAll(proxyenc.PEM(leaf, inter), "\n", "\t")}, proxyenc.DERs(leaf, inter)},
		{"url-pem plus left alone", URLPEM, []string{proxyenc.ALBEscape(proxyenc.PEM(leaf))}, proxyenc.DERs(leaf)},
		{"pem blank chain is absent", PEM, []string{proxyenc.FlatPEM(leaf), " "}, proxyenc.DERs(leaf)},
		{"base64-der", Base64DER, []string{proxyenc.B64(leaf), proxyenc.B64(inter)}, proxyenc.DERs(leaf, inter)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.decode(tt.values)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestFormatDecodeMalformed(t *testing.T) {
	c := newCerts()
	leaf, inter := c.leaf, c.inter
	good := proxyenc.NginxEscape(proxyenc.PEM(leaf))
	tests := []struct {
		name   string
		decode decoder
		values []string
	}{
		{"rfc9440 no colons", RFC9440, []string{proxyenc.B64(leaf)}},
		{"rfc9440 parameter", RFC9440, []string{":" + proxyenc.B64(leaf) + ":;a=1"}},
		{"rfc9440 bad char", RFC9440, []string{":" + proxyenc.B64(leaf)[:40] + "*" + ":"}},
		{"rfc9440 line break", RFC9440, []string{":" + proxyenc.B64(leaf)[:40] + "\r\n" + proxyenc.B64(leaf)[40:] + ":"}},
		{"rfc9440 chain only", RFC9440, []string{"", ":" + proxyenc.B64(inter) + ":"}},
		{"rfc9440 empty list member", RFC9440, []string{":" + proxyenc.B64(leaf) + ":", ":" + proxyenc.B64(inter) + ":,"}},
		{"rfc9440 empty sequence", RFC9440, []string{"::"}},
		{"aws-alb bad escape", AWSALB, []string{"-----BEGIN%20CERTIFICATE-----%0AMII%ZZ"}},
		{"aws-alb truncated escape", AWSALB, []string{good[:len(good)-2]}},
		{"aws-alb-verify two certs", AWSALBVerify, []string{proxyenc.ALBEscape(proxyenc.PEM(leaf, inter))}},
		{"nginx trailing garbage", Nginx, []string{good + "junk"}},
		{"nginx leading garbage", Nginx, []string{"junk" + good}},
		{"nginx no end", Nginx, []string{proxyenc.NginxEscape(strings.Split(proxyenc.PEM(leaf), "-----END")[0])}},
		{"nginx two certs", Nginx, []string{proxyenc.NginxEscape(proxyenc.PEM(leaf, inter))}},
		{"nginx pem header", Nginx, []string{proxyenc.NginxEscape("-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\n" + strings.SplitN(proxyenc.PEM(leaf), "\n", 2)[1])}},
		{"nginx query-decoded plus", Nginx, []string{strings.ReplaceAll(proxyenc.FlatPEM(leaf), "+", " ")}},
		{"envoy-xfcc unterminated quote", XFCC, []string{`Cert="abc`}},
		{"envoy-xfcc no cert", XFCC, []string{`By=spiffe://a;Hash=00;URI=spiffe://b`}},
		{"envoy-xfcc hash mismatch", XFCC, []string{`Hash=` + strings.Repeat("0", 64) + `;Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(leaf)) + `"`}},
		{"envoy-xfcc hash not hex", XFCC, []string{`Hash=xyz;Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(leaf)) + `"`}},
		{"envoy-xfcc cert and chain differ", XFCC, []string{`Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(inter)) + `";Chain="` + proxyenc.EnvoyEscape(proxyenc.PEM(leaf, inter)) + `"`}},
		{"envoy-xfcc repeated cert", XFCC, []string{`Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(leaf)) + `";Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(leaf)) + `"`}},
		{"envoy-xfcc spoofed open quote swallows last", XFCC, []string{`Cert="x,By=spiffe://gw;Hash=ab;Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(leaf)) + `"`}},
		{"envoy-xfcc missing key", XFCC, []string{`=x`}},
		{"envoy-xfcc injected after unquoted DNS", XFCC, []string{`Hash=00;Cert="x";DNS=a;Subject="b",Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(leaf)) + `"`}},
		{"envoy-xfcc injected after empty DNS", XFCC, []string{`Hash=00;Cert="x";DNS=,Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(leaf)) + `"`}},
		{"envoy-xfcc injected after quote-led DNS", XFCC, []string{`Hash=00;Cert="x";DNS="a",Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(leaf)) + `"`}},
		{"envoy-xfcc injected after quote-led URI", XFCC, []string{`Hash=00;Cert="x";URI="a";Subject="b",Hash=` + hex.EncodeToString(func() []byte { s := sha256.Sum256(leaf.Raw); return s[:] }()) + `;Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(leaf)) + `"`}},
		{"traefik empty element", Traefik, []string{proxyenc.B64(leaf) + ","}},
		{"traefik garbage", Traefik, []string{"not base64!"}},
		{"haproxy trailing bytes", HAProxy, []string{base64.StdEncoding.EncodeToString(append(append([]byte{}, leaf.Raw...), 0x30, 0x01))}},
		{"haproxy two leaves", HAProxy, []string{base64.StdEncoding.EncodeToString(append(append([]byte{}, leaf.Raw...), leaf.Raw...))}},
		{"haproxy chain only", HAProxy, []string{"", proxyenc.B64(inter)}},
		{"haproxy unpadded", HAProxy, []string{strings.TrimRight(proxyenc.B64(leaf)+"A", "=")}},
		{"apache chain gap", Apache, []string{proxyenc.FlatPEM(leaf), "(null)", proxyenc.FlatPEM(inter)}},
		{"apache chain only", Apache, []string{"(null)", proxyenc.FlatPEM(inter)}},
		{"apache garbage", Apache, []string{"SPOOFED"}},
		{"caddy other placeholder text", Caddy, []string{"{foo}"}},
		{"caddy line break", Caddy, []string{proxyenc.B64(leaf)[:64] + "\n" + proxyenc.B64(leaf)[64:]}},
		{"cloudflare not DER", Base64DERLeaf, []string{base64.StdEncoding.EncodeToString([]byte("hello"))}},
		{"base64-der chain absent leaf", Base64DER, []string{"", proxyenc.B64(inter)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.decode(tt.values)
			require.Error(t, err)
			assert.Nil(t, got, "nothing is returned with an error")
		})
	}
}

func TestFormatEncode(t *testing.T) {
	c := newCerts()
	tests := []struct {
		name   string
		encode func([]*x509.Certificate) []string
		decode decoder
		chain  []*x509.Certificate
		want   []string // values written, for the formats whose output is checked letter by letter
	}{
		{"rfc9440 leaf", EncodeRFC9440, RFC9440, []*x509.Certificate{c.leaf}, []string{":" + proxyenc.B64(c.leaf) + ":", ""}},
		{"rfc9440 chain", EncodeRFC9440, RFC9440, []*x509.Certificate{c.leaf, c.inter, c.root},
			[]string{":" + proxyenc.B64(c.leaf) + ":", ":" + proxyenc.B64(c.inter) + ":, :" + proxyenc.B64(c.root) + ":"}},
		{"xfcc leaf", EncodeXFCC, XFCC, []*x509.Certificate{c.leaf}, nil},
		{"xfcc chain", EncodeXFCC, XFCC, []*x509.Certificate{c.leaf, c.inter}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values := tt.encode(tt.chain)
			if tt.want != nil {
				assert.Equal(t, tt.want, values)
			}
			got, err := tt.decode(values)
			require.NoError(t, err)
			assert.Equal(t, proxyenc.DERs(tt.chain...), got)
		})
	}
}

// TestFormatEncodeXFCCQuoting: values holding XFCC's separators are quoted, so that they parse back
// whole.
func TestFormatEncodeXFCCQuoting(t *testing.T) {
	leaf := *newCerts().leaf
	leaf.Subject.CommonName = `Team "Blue", Inc.`
	u, err := url.Parse("spiffe://example.test/a;b=c")
	require.NoError(t, err)
	leaf.URIs = []*url.URL{u}
	leaf.DNSNames = []string{`a,b`, `c\d`, "plain.example.test"}
	elems, err := ParseXFCC(EncodeXFCC([]*x509.Certificate{&leaf})[0])
	require.NoError(t, err)
	require.Len(t, elems, 1)
	var dns []string
	got := map[string]string{}
	for _, p := range elems[0] {
		got[p.Key] = p.Value
		if p.Key == "dns" {
			dns = append(dns, p.Value)
		}
	}
	assert.Equal(t, leaf.Subject.String(), got["subject"])
	assert.Equal(t, "spiffe://example.test/a;b=c", got["uri"])
	assert.Equal(t, leaf.DNSNames, dns)
}

func TestHeaderSameName(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"X-Ssl-Client-Cert", "X-Ssl-Client-Cert", true},
		{"X-Ssl-Client-Cert", "x-ssl-client-cert", true},
		{"X-Ssl-Client-Cert", "X_SSL_Client_Cert", true},
		{"X-Ssl-Client-Cert", "x_ssl-CLIENT_cert", true},
		{"Client-Cert", "Client-Cert-Chain", false},
		// CGI mappings take every byte but a letter or digit for '_', PHP '.' for '_'.
		{"X-Ssl-Client-Cert", "X.Ssl.Client.Cert", true},
		{"X-Ssl-Client-Cert", "X~Ssl!Client*Cert", true},
		{"X-Ssl-Client-Cert", "X Ssl Client Cert", true},
		{"X-Ssl-Client-Cert", "X-Ssl-Client\xffCert", true},
		{"X-Ssl-Client-Cert", "X-Ssl-Client-Cer.", false},
		{"X-Ssl-Client-Cert", "X-Ssl-Client-Cer1", false},
		{"X-Ssl-Client-1", "X-Ssl-Client-2", false},
		{"X-Kelvin", "X-\u212aelvin", false}, // KELVIN SIGN folds to k in Unicode, not in ASCII: and it is 3 bytes
		{"X-Kelvin", "X-\xe2\x84elvin", false},
		{"", "", true},
		{"-", "_", true},
		{".", "~", true},
	}
	for _, tt := range tests {
		t.Run(tt.a+" "+tt.b, func(t *testing.T) {
			assert.Equal(t, tt.want, SameName(tt.a, tt.b))
			assert.Equal(t, tt.want, SameName(tt.b, tt.a))
		})
	}
}
