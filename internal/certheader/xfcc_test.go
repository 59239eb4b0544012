package certheader

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certgate/mtls/internal/certheader/proxyenc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The By values of the tests: this service's proxy, and the proxies before it.
const (
	byBackend = "spiffe://a/backend"
	byFront   = "spiffe://a/front"
	byGateway = "spiffe://a/gateway"
)

var ours = []string{byBackend}

func hashOf(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// TestXFCCByDecodes: values written as Envoy writes them over one, two and three hops.
func TestXFCCByDecodes(t *testing.T) {
	c := newCerts()
	all := proxyenc.EnvoyDetails{Cert: true, Subject: true, URI: true, DNS: true}
	istioSidecar := proxyenc.EnvoyDetails{Subject: true, URI: true, DNS: true}
	front := proxyenc.EnvoyElement([]string{byFront}, istioSidecar, c.leaf)
	cert := proxyenc.EnvoyEscape(proxyenc.PEM(c.leaf))
	frontHop := XFCCHop{By: []string{byFront}, Hash: hashOf(c.leaf.Raw), Subject: c.leaf.Subject.String(),
		URI: []string{"spiffe://example.test/ns/prod/sa/alice"}, DNS: []string{"alice.example.test"}}
	tests := []struct {
		name     string
		ours     []string
		value    string
		wantDERs [][]byte
		wantHops []XFCCHop
	}{
		{"one hop (SANITIZE_SET)", ours, proxyenc.EnvoyElement(ours, all, c.leaf), proxyenc.DERs(c.leaf), nil},
		{"two hops (APPEND_FORWARD)", ours, front + "," + proxyenc.EnvoyElement(ours, all, c.leaf), proxyenc.DERs(c.leaf), []XFCCHop{frontHop}},
		{"three hops", ours, `By=` + byGateway + `;Hash=` + strings.Repeat("AB", 32) + `;URI=,` + front + "," +
			proxyenc.EnvoyElement(ours, proxyenc.EnvoyDetails{Chain: true}, c.leaf, c.inter), proxyenc.DERs(c.leaf, c.inter),
			[]XFCCHop{{By: []string{byGateway}, Hash: strings.Repeat("ab", 32), URI: []string{""}}, ambiguous(frontHop)}},
		{"this proxy has two URI SANs", []string{"spiffe://b/x", byBackend}, front + "," +
			proxyenc.EnvoyElement([]string{"spiffe://b/x", byBackend}, all, c.leaf), proxyenc.DERs(c.leaf), []XFCCHop{frontHop}},
		{"the first of several configured", []string{byBackend, "spiffe://a/backend-next"}, front + "," +
			proxyenc.EnvoyElement(ours, all, c.leaf), proxyenc.DERs(c.leaf), []XFCCHop{frontHop}},
		{"an earlier element without By, with Cert and Chain", ours, `Hash=` + hashOf(c.inter.Raw) + `;Cert="x";Chain="y";DNS=a;DNS=b,` +
			proxyenc.EnvoyElement(ours, all, c.leaf), proxyenc.DERs(c.leaf), []XFCCHop{{Hash: hashOf(c.inter.Raw), DNS: []string{"a", "b"}}}},
		{"an earlier By that our By is a prefix of", ours, "By=" + byBackend + "-canary;Hash=" + hashOf(c.inter.Raw) + "," +
			proxyenc.EnvoyElement(ours, all, c.leaf), proxyenc.DERs(c.leaf), []XFCCHop{{By: []string{byBackend + "-canary"}, Hash: hashOf(c.inter.Raw)}}},
		{"earlier URI holding '=' and a quoted Subject holding ',' ';' '\"'", ours, `By=` + byFront + `;Subject="CN=a\"\,;b,O=c";URI=https://x.test/?a=b&c=d,` +
			proxyenc.EnvoyElement(ours, all, c.leaf), proxyenc.DERs(c.leaf),
			[]XFCCHop{{By: []string{byFront}, Subject: `CN=a\"\,;b,O=c`, URI: []string{"https://x.test/?a=b&c=d"}}}},
		{"the client's URI holding '=' and ';' of a URI", ours, front + ",By=" + byBackend + ";Hash=" + hashOf(c.leaf.Raw) + `;Cert="` + cert +
			`";URI=https://x.test/?a=b;URI=y`, proxyenc.DERs(c.leaf), []XFCCHop{frontHop}},
		{"keys in any case", ours, strings.ToLower(front) + ",By=" + byBackend + ";HASH=" + hashOf(c.leaf.Raw) + `;cert="` + cert + `"`,
			proxyenc.DERs(c.leaf), []XFCCHop{{By: []string{"spiffe://a/front"}, Hash: hashOf(c.leaf.Raw), Subject: strings.ToLower(c.leaf.Subject.String()),
				URI: []string{"spiffe://example.test/ns/prod/sa/alice"}, DNS: []string{"alice.example.test"}}}},
		{"absent", ours, "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ders, hops, err := XFCCBy([]string{tt.value}, tt.ours)
			require.NoError(t, err)
			assert.Equal(t, tt.wantDERs, ders)
			assert.Equal(t, tt.wantHops, hops)
		})
	}
}

func ambiguous(h XFCCHop) XFCCHop {
	h.Ambiguous = true
	return h
}

// TestXFCCByAmbiguous: what a client can make of the elements before its own through the names
// of its certificate, which Envoy writes unquoted, or through an element of its own leaving a
// quote open: every element whose boundaries it may have written is marked, and its names come
// back as written, quotes included.
func TestXFCCByAmbiguous(t *testing.T) {
	c := newCerts()
	mine := proxyenc.EnvoyElement(ours, proxyenc.EnvoyDetails{Cert: true}, c.leaf)
	ab := strings.Repeat("ab", 32)
	// What the gateway writes for its client (c.inter stands in for its certificate), up to and
	// with the names the client chose.
	gateway := func(details string) string { return "By=" + byGateway + ";Hash=" + hashOf(c.inter.Raw) + details }
	forged := "By=" + byGateway + ";Hash=" + ab + ";URI=spiffe://trusted/admin"
	tests := []struct {
		name  string
		value string
		want  []XFCCHop
	}{
		{"a DNS name splitting the gateway's element", gateway(";DNS=app.partner.test,"+forged) + "," + mine, []XFCCHop{
			{By: []string{byGateway}, Hash: hashOf(c.inter.Raw), DNS: []string{"app.partner.test"}},
			{By: []string{byGateway}, Hash: ab, URI: []string{"spiffe://trusted/admin"}, Ambiguous: true}}},
		{"a URI name splitting the gateway's element", gateway(";URI=spiffe://partner/app,"+forged+";DNS=x") + "," + mine, []XFCCHop{
			{By: []string{byGateway}, Hash: hashOf(c.inter.Raw), URI: []string{"spiffe://partner/app"}},
			{By: []string{byGateway}, Hash: ab, URI: []string{"spiffe://trusted/admin"}, DNS: []string{"x"}, Ambiguous: true}}},
		{"a quoted DNS name", gateway(`;DNS="spiffe://trusted/admin"`) + "," + mine, []XFCCHop{
			{By: []string{byGateway}, Hash: hashOf(c.inter.Raw), DNS: []string{`"spiffe://trusted/admin"`}}}},
		{"a quoted By and URI", `By="` + byGateway + `";Hash=` + ab + `;URI="a,b"` + "," + mine, []XFCCHop{
			{By: []string{`"` + byGateway + `"`}, Hash: ab, URI: []string{`"a,b"`}}}},
		{"a name writing a Subject into the gateway's element", gateway(`;URI=spiffe://partner/app;Subject="CN=admin"`) + "," + mine, []XFCCHop{
			{By: []string{byGateway}, Hash: hashOf(c.inter.Raw), Subject: "CN=admin", URI: []string{"spiffe://partner/app"}, Ambiguous: true}}},
		{"a name writing a By into the gateway's element", gateway(";URI=spiffe://partner/app;By=spiffe://trusted") + "," + mine, []XFCCHop{
			{By: []string{byGateway, "spiffe://trusted"}, Hash: hashOf(c.inter.Raw), URI: []string{"spiffe://partner/app"}, Ambiguous: true}}},
		{"a URI after a DNS", gateway(";DNS=a;URI=b") + "," + mine, []XFCCHop{
			{By: []string{byGateway}, Hash: hashOf(c.inter.Raw), URI: []string{"b"}, DNS: []string{"a"}, Ambiguous: true}}},
		// The client's own element, before the gateway's, leaves a quote open that swallows the
		// gateway's By and Hash; a quote in its URI name closes it.
		{"an open quote closed by a name", "Hash=" + ab + `;Subject="x` + "," + gateway(`;URI=",`+forged) + "," + mine, []XFCCHop{
			{Hash: ab, Subject: "x,By=" + byGateway + ";Hash=" + hashOf(c.inter.Raw) + ";URI="},
			{By: []string{byGateway}, Hash: ab, URI: []string{"spiffe://trusted/admin"}, Ambiguous: true}}},
		{"after a quoted value holding a comma", `Hash=` + ab + `;Subject="CN=a,O=b",` + gateway("") + "," + mine, []XFCCHop{
			{Hash: ab, Subject: "CN=a,O=b"}, {By: []string{byGateway}, Hash: hashOf(c.inter.Raw), Ambiguous: true}}},
		{"after only what cannot hide a boundary", `Hash=` + ab + `;Subject="CN=a";Cert="x",` + gateway("") + "," + mine, []XFCCHop{
			{Hash: ab, Subject: "CN=a"}, {By: []string{byGateway}, Hash: hashOf(c.inter.Raw)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ders, hops, err := XFCCBy([]string{tt.value}, ours)
			require.NoError(t, err)
			assert.Equal(t, proxyenc.DERs(c.leaf), ders, "the client's element is the sidecar's")
			assert.Equal(t, tt.want, hops)
		})
	}
}

// TestXFCCByClientElementBounds: the bounds of the earlier elements are not the client's: its
// element may hold any number of names, within the size of the value.
func TestXFCCByClientElementBounds(t *testing.T) {
	c := newCerts()
	mine := "By=" + byBackend + ";Hash=" + hashOf(c.leaf.Raw) + `;Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(c.leaf)) + `"`
	front := proxyenc.EnvoyElement([]string{byFront}, proxyenc.EnvoyDetails{Subject: true}, c.inter)
	many := strings.Repeat(";DNS=h.example.test", 2*maxXFCCPairs)
	long := strings.Repeat(";DNS="+strings.Repeat("a", 250), MaxXFCCHopBytes/250+1)
	for _, tt := range []struct{ name, value string }{
		{"many names", mine + many},
		{"many names after an earlier element", front + "," + mine + many},
		{"long names", mine + long},
		{"long names after an earlier element", front + "," + mine + long},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ders, _, err := XFCCBy([]string{tt.value}, ours)
			require.NoError(t, err)
			assert.Equal(t, proxyenc.DERs(c.leaf), ders)
		})
	}
	for _, tt := range []struct{ name, value, wantErr string }{
		{"many names in an earlier element", front + many + "," + mine, "element 1: more than 64 pairs"},
		{"long names in an earlier element", front + long + "," + mine, "element 1: the elements hold more than 8192 bytes"},
		{"many names in an element of ours before the last", mine + many + "," + mine, "element 1, before the last, carries this service's By"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := XFCCBy([]string{tt.value}, ours)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// TestXFCCByRefuses: what the hop next to this service cannot have written, and what a client
// or an earlier hop can write to pass for another client, is refused whole.
func TestXFCCByRefuses(t *testing.T) {
	c := newCerts()
	all := proxyenc.EnvoyDetails{Cert: true, Subject: true, URI: true, DNS: true}
	front := proxyenc.EnvoyElement([]string{byFront}, proxyenc.EnvoyDetails{Subject: true, URI: true}, c.inter)
	// The victim: a certificate anyone may know, which a forged element would name.
	victim := `Hash=` + hashOf(c.leaf.Raw) + `;Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(c.leaf)) + `"`
	// What this service's proxy writes for mallory (c.root stands in for mallory's certificate),
	// up to and with the SAN mallory chose.
	mallory := func(details, san string) string {
		return "By=" + byBackend + ";Hash=" + hashOf(c.root.Raw) + details + ";URI=" + san
	}
	malloryCert := `;Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(c.root)) + `"`
	tests := []struct{ name, value, wantErr string }{
		{"the last element has no By", victim, "no By of this service"},
		{"the last element has another By", "By=" + byFront + ";" + victim, "no By of this service"},
		{"the last element's By differs by a suffix", "By=" + byBackend + "x;" + victim, "no By of this service"},
		{"a client's element claiming our By before the last", "By=" + byBackend + ";" + victim + "," + proxyenc.EnvoyElement(ours, all, c.inter),
			"element 1, before the last, carries this service's By"},
		{"our By in the middle", front + ",By=" + byBackend + ";" + victim + "," + proxyenc.EnvoyElement(ours, all, c.inter),
			"element 2, before the last, carries this service's By"},
		{"our By in an earlier element, in another case", "by=" + byBackend + ";" + victim + "," + proxyenc.EnvoyElement(ours, all, c.inter),
			"before the last, carries this service's By"},
		{"our By quoted in an earlier element", `By="` + byBackend + `";` + victim + "," + proxyenc.EnvoyElement(ours, all, c.inter),
			"before the last, carries this service's By"},
		{"our By second in an earlier element", "By=" + byFront + ";By=" + byBackend + ";" + victim + "," + proxyenc.EnvoyElement(ours, all, c.inter),
			"before the last, carries this service's By"},
		{"a SAN appending an element with our By", mallory(malloryCert, "spiffe://m/x,By="+byBackend+";"+victim), "element 1, before the last, carries"},
		{"a SAN appending an element without By", mallory(malloryCert, "spiffe://m/x,"+victim), "element 1, before the last, carries"},
		{"a SAN appending a Cert", mallory(malloryCert, `spiffe://m/x;Cert="`+proxyenc.EnvoyEscape(proxyenc.PEM(c.leaf))+`"`), "key cert repeated"},
		{"a SAN appending a Hash", mallory(malloryCert, "spiffe://m/x;Hash="+hashOf(c.leaf.Raw)), "key hash repeated"},
		{"a SAN appending an unknown key", mallory(malloryCert, "spiffe://m/x;Foo=bar"), "key foo is not one Envoy writes"},
		{"a SAN appending a Subject", mallory(malloryCert, `spiffe://m/x;Subject="CN=alice"`), "key subject out of Envoy's order"},
		{"a SAN with ';' and no '='", mallory(malloryCert, "spiffe://m/x;y"), "expected key=value"},
		{"a SAN with an odd quote", mallory(malloryCert, `spiffe://m/x"y`), "quote inside an unquoted value"},
		// An earlier element leaves a quote open: it swallows the start of the real last
		// element up to the first quote of that element.
		{"an open quote closed by our Cert", `By=` + byFront + `;Subject="x,` + proxyenc.EnvoyElement(ours, all, c.inter), "unexpected"},
		{"an open quote closed by our Subject", `By=` + byFront + `;Subject="x,` + proxyenc.EnvoyElement(ours, proxyenc.EnvoyDetails{Subject: true}, c.inter), "unexpected"},
		// Without Cert, Chain and Subject from this service's proxy, a SAN's quote closes it:
		// the forged element carries our By, in Envoy's order, and the victim's Cert.
		{"an open quote closed by a SAN's quote", "By=" + byBackend + ";" + victim + `;URI="x,` + mallory("", `"`), "starts another element"},
		{"an open quote closed by a SAN's quote, element after", `By=` + byFront + `;URI="x,` + mallory("", `",By=`+byBackend+";"+victim), "starts another element"},
		{"a space before our element", front + ", " + proxyenc.EnvoyElement(ours, all, c.leaf), "starts another element"},
		{"our By in another case", "by=" + byBackend + ";" + victim, "starts another element"},
		{"our By second of this proxy's", front + ",By=spiffe://b/x;" + proxyenc.EnvoyElement(ours, all, c.leaf), "starts another element"},
		{"no Hash", "By=" + byBackend + `;Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(c.leaf)) + `"`, "no Hash"},
		{"Hash mismatch", "By=" + byBackend + ";Hash=" + hashOf(c.root.Raw) + `;Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(c.leaf)) + `"`, "Hash does not match"},
		{"Hash quoted", "By=" + byBackend + `;Hash="` + hashOf(c.leaf.Raw) + `";Cert="x"`, "Hash is not a hex SHA-256 digest"},
		{"Hash short", "By=" + byBackend + ";Hash=abcd;" + victim, "Hash is not a hex SHA-256 digest"},
		{"Cert unquoted", "By=" + byBackend + ";Hash=" + hashOf(c.leaf.Raw) + ";Cert=" + proxyenc.EnvoyEscape(proxyenc.PEM(c.leaf)), "cert is not quoted"},
		{"Cert before Hash", "By=" + byBackend + `;Cert="` + proxyenc.EnvoyEscape(proxyenc.PEM(c.leaf)) + `";Hash=` + hashOf(c.leaf.Raw), "key hash out of Envoy's order"},
		{"By after Hash", victim + ";By=" + byBackend, "starts with hash, not By"},
		{"no Cert or Chain", "By=" + byBackend + ";Hash=" + hashOf(c.leaf.Raw) + `;Subject="CN=a"`, "no Cert or Chain"},
		{"an earlier element malformed", `By=` + byFront + `;URI=a;b,` + proxyenc.EnvoyElement(ours, all, c.inter), "expected key=value"},
		{"an earlier element with a bad Hash", `By=` + byFront + `;Hash=xyz,` + proxyenc.EnvoyElement(ours, all, c.inter), "element 1: Hash is not a hex"},
		{"an earlier element with two Subjects", `By=` + byFront + `;Subject="a";Subject="b",` + proxyenc.EnvoyElement(ours, all, c.inter), "element 1: key subject repeated"},
		{"an empty element", front + ",," + proxyenc.EnvoyElement(ours, all, c.inter), "expected key=value"},
		{"too many elements", strings.Repeat(front+",", maxXFCCElements) + proxyenc.EnvoyElement(ours, all, c.inter), "more than 16 elements"},
		{"too many pairs", strings.Repeat("DNS=a;", maxXFCCPairs) + "DNS=a," + proxyenc.EnvoyElement(ours, all, c.inter), "more than 64 pairs"},
		{"too many bytes of names", strings.Repeat("By="+strings.Repeat("x", 1000)+";", 9) + "Hash=00," + proxyenc.EnvoyElement(ours, all, c.inter), "more than 8192 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ders, hops, err := XFCCBy([]string{tt.value}, ours)
			require.ErrorContains(t, err, tt.wantErr)
			assert.Nil(t, ders)
			assert.Nil(t, hops)
		})
	}
}

// TestXFCCByRefusesEarly: a value is read no further than the element that refuses it.
func TestXFCCByRefusesEarly(t *testing.T) {
	tail := strings.Repeat(`DNS=a;`, 1000) + `Cert="never closed`
	for _, head := range []string{
		"By=" + byBackend + ";Hash=00,",
		strings.Repeat("By=x;Hash="+strings.Repeat("0", 64)+",", maxXFCCElements),
		strings.Repeat("DNS=a;", maxXFCCPairs),
	} {
		_, _, err := XFCCBy([]string{head + tail}, ours)
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "never closed")
		assert.NotContains(t, err.Error(), "unterminated", "read to the end")
	}
}

func TestValidXFCCBy(t *testing.T) {
	for _, ok := range []string{byBackend, "spiffe://example.org/ns/default/sa/backend", "https://x.test/a?b=c", "urn:x-a.b+c:d"} {
		assert.Empty(t, ValidXFCCBy(ok), ok)
	}
	for _, bad := range []string{"", "backend", "/a/b", ":a", "1a:b", "spiffe://a/b,c", "spiffe://a/b;c", `spiffe://a/"b`, `spiffe://a/\b`,
		"spiffe://a/b c", "spiffe://a/b\tc", "spiffe://a/\x7f", "spiffe://a/\u00e9", "spiffe://a/" + strings.Repeat("x", 2048)} {
		assert.NotEmpty(t, ValidXFCCBy(bad), "%q", bad)
	}
}

// TestXFCCByEnvoyDocs: the examples of Envoy's documentation (testdata/xfcc/envoy-docs.txt)
// parse, and are refused for want of a Cert only; with one spliced in after the last element's
// Hash (which then names it), the earlier elements come back as written.
func TestXFCCByEnvoyDocs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "xfcc", "envoy-docs.txt"))
	require.NoError(t, err)
	docs := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, docs, 3)
	const front, back = "http://frontend.lyft.com", "http://backend.lyft.com"
	for _, tt := range []struct {
		doc     int
		ours    string
		wantErr string
	}{
		{0, front, "no Cert or Chain"},
		{1, back, "no Cert or Chain"},
		{1, front, "element 1, before the last, carries this service's By"},
		{2, front, "no Cert or Chain"},
		{2, back, "no By of this service"},
	} {
		_, _, err := XFCCBy([]string{docs[tt.doc]}, []string{tt.ours})
		require.ErrorContains(t, err, tt.wantErr, "example %d, By %s", tt.doc+1, tt.ours)
	}

	c := newCerts()
	const lastHash = "9ba61d6425303443c0748a02dd8de688468ed33be74eee6556d90c0149c1309e"
	require.Contains(t, docs[1], ";Hash="+lastHash+";")
	v := strings.Replace(docs[1], ";Hash="+lastHash, ";Hash="+hashOf(c.leaf.Raw)+`;Cert="`+proxyenc.EnvoyEscape(proxyenc.PEM(c.leaf))+`"`, 1)
	ders, hops, err := XFCCBy([]string{v}, []string{back})
	require.NoError(t, err)
	assert.Equal(t, proxyenc.DERs(c.leaf), ders)
	assert.Equal(t, []XFCCHop{{By: []string{front}, Hash: "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688",
		URI: []string{"http://testclient.lyft.com"}}}, hops)
}
