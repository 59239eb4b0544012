package mtls

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// everyKey uses every document key once.
const everyKey = `{"all": [
  {"issuer": {"cn": ["Issuing CA"], "O": ["Acme"]}},
  {"any": [
    {"subject": {"cn": ["alice"], "ou": ["payments"], "2.5.4.12": ["engineer"], "serialNumber": ["7"]}},
    {"uri": ["spiffe://acme.test/ns/prod/*"]},
    {"thumbprint": ["AB:CD:EF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC"]},
    {"dns": ["*.svc.Example.com"]},
    {"email": ["@acme.test"]},
    {"ip": ["10.0.0.0/8", "::ffff:192.0.2.1"]},
    {"spiffe": ["spiffe://acme.test/*"]},
    {"sha1": ["00112233445566778899aabbccddeeff00112233"]},
    {"spki": ["q83vABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8w="]},
    {"issuer_thumbprint": ["abcdef0011223344556677889900aabbccddeeff00112233445566778899aabb"]},
    {"serial": ["10:00", "0x1f"]},
    {"principal": ["alice"]}
  ]},
  {"not": {"eku": ["serverAuth"]}},
  {"extension": {"oid": "1.3.6.1.4.1.99999.1", "values": ["prod"]}},
  {"extension": {"oid": "1.3.6.1.4.1.99999.2", "der": ["0C:04:70:72:6F:64"]}},
  {"extension": {"oid": "1.3.6.1.4.1.99999.3"}},
  {"min_validity": "72h"}
]}`

// everyKeyNormalised is how everyKey is written back.
const everyKeyNormalised = `{"all":[
  {"issuer":{"cn":["Issuing CA"],"o":["Acme"]}},
  {"any":[
    {"subject":{"cn":["alice"],"ou":["payments"],"2.5.4.12":["engineer"],"serial_number":["7"]}},
    {"uri":["spiffe://acme.test/ns/prod/*"]},
    {"thumbprint":["abcdef00112233445566778899aabbccddeeff00112233445566778899aabbcc"]},
    {"dns":["*.svc.example.com"]},
    {"email":["@acme.test"]},
    {"ip":["10.0.0.0/8","192.0.2.1"]},
    {"spiffe":["spiffe://acme.test/*"]},
    {"sha1":["00112233445566778899aabbccddeeff00112233"]},
    {"spki":["abcdef00112233445566778899aabbccddeeff00112233445566778899aabbcc"]},
    {"issuer_thumbprint":["abcdef0011223344556677889900aabbccddeeff00112233445566778899aabb"]},
    {"serial":["0x1000","0x1f"]},
    {"principal":["alice"]}
  ]},
  {"not":{"eku":["serverAuth"]}},
  {"extension":{"oid":"1.3.6.1.4.1.99999.1","values":["prod"]}},
  {"extension":{"oid":"1.3.6.1.4.1.99999.2","der":["0c0470726f64"]}},
  {"extension":{"oid":"1.3.6.1.4.1.99999.3"}},
  {"min_validity":"72h0m0s"}
]}`

func TestParsePolicyRoundTrip(t *testing.T) {
	p, err := ParsePolicy([]byte(everyKey))
	require.NoError(t, err)
	out, err := json.Marshal(p)
	require.NoError(t, err)
	assert.JSONEq(t, everyKeyNormalised, string(out))

	again, err := ParsePolicy(out)
	require.NoError(t, err)
	out2, err := json.Marshal(again)
	require.NoError(t, err)
	assert.Equal(t, string(out), string(out2), "the normalised form is a fixed point")

	t.Run("code and document agree", func(t *testing.T) {
		code := All(
			Must(RequireIssuer(Attributes{"cn": {"Issuing CA"}})),
			Any(Must(RequireSubject(Attributes{"cn": {"alice"}, "ou": {"payments"}})), Must(RequireURIs("spiffe://acme.test/ns/prod/*"))),
			Not(Must(RequireEKUs("serverAuth"))),
		)
		doc, err := ParsePolicy([]byte(`{"all":[{"issuer":{"cn":["Issuing CA"]}},
			{"any":[{"subject":{"ou":["payments"],"cn":["alice"]}},{"uri":["spiffe://acme.test/ns/prod/*"]}]},
			{"not":{"eku":["1.3.6.1.5.5.7.3.1"]}}]}`))
		require.NoError(t, err)
		a, err := json.Marshal(code)
		require.NoError(t, err)
		b, err := json.Marshal(doc)
		require.NoError(t, err)
		assert.Equal(t, string(a), string(b))
	})
	t.Run("a PolicyFunc has no document form", func(t *testing.T) {
		_, err := json.Marshal(All(PolicyFunc(func(*Identity) error { return nil })))
		assert.ErrorContains(t, err, "has no document form")
	})
}

func TestParsePolicyEvaluates(t *testing.T) {
	pk := newPKI(t)
	alice := NewIdentity(pk.alice.VerifiedChain())
	bob := NewIdentity(pk.issuing.NewClient("bob").VerifiedChain())
	carol := NewIdentity(pk.issuing.NewClient("carol", mtlstest.WithURIs("spiffe://example.test/ns/prod/sa/carol")).VerifiedChain())
	doc := `{"all": [{"issuer": {"cn": ["Test Issuing CA"]}}, {"any": [
		{"subject": {"cn": ["alice"]}}, {"uri": ["spiffe://example.test/ns/prod/*"]}, {"thumbprint": ["` + bob.SHA256 + `"]}]}]}`
	p, err := ParsePolicy([]byte(doc))
	require.NoError(t, err)
	assert.NoError(t, p.Check(alice))
	assert.NoError(t, p.Check(bob))
	assert.NoError(t, p.Check(carol))
	dave := NewIdentity(pk.issuing.NewClient("dave").VerifiedChain())
	assert.ErrorContains(t, p.Check(dave), "not matched: any of (")
	erin := newIdentity(pk.other.NewClient("alice").Chain(), false)
	assert.ErrorContains(t, p.Check(erin), `issuer {"cn":["Test Issuing CA"]}`)
}

func TestParsePolicyErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string
	}{
		{"not JSON", `{"dns": [`, "mtls: policy $: incomplete JSON document"},
		{"Latin-1", "{\"not\": {\"subject\": {\"o\": [\"M\xfcller GmbH\"]}}}", "mtls: policy $: not valid UTF-8 at byte 29"},
		{"syntax", `{"dns" ["a"]}`, "mtls: policy $: invalid JSON at byte"},
		{"trailing data", `{"dns": ["a.test"]} {}`, "mtls: policy $: data after the document"},
		{"top-level list", `[]`, "mtls: policy $: expected an object such as"},
		{"empty object", `{}`, "mtls: policy $: expected an object with exactly one key, found 0"},
		{"two keys", `{"dns": ["a.test"], "email": ["@a.test"]}`, "mtls: policy $: expected an object with exactly one key, found 2"},
		{"unknown key", `{"all": [{"dnss": ["a.test"]}]}`, `mtls: policy $.all[0]: unknown key "dnss"`},
		{"unknown key, odd characters", `{"all": [{"d n\"s": ["a.test"]}]}`, `mtls: policy $.all[0]: unknown key "d n\"s"`},
		{"duplicate key", `{"subject": {"cn": ["a"], "cn": ["b"]}}`, `mtls: policy $.subject: duplicate key "cn"`},
		{"empty all", `{"all": []}`, "mtls: policy $.all: empty list"},
		{"any not a list", `{"any": {"dns": ["a.test"]}}`, "mtls: policy $.any: expected a list of policies, found an object"},
		{"not of a list", `{"not": [{"dns": ["a.test"]}]}`, "mtls: policy $.not: expected an object such as"},
		{"empty list", `{"any": [{"dns": ["a.test"]}, {"uri": []}]}`, "mtls: policy $.any[1].uri: empty list"},
		{"string instead of list", `{"dns": "a.test"}`, "mtls: policy $.dns: expected a list of strings, found a string"},
		{"number in list", `{"serial": [4096]}`, "mtls: policy $.serial[0]: expected a string, found a number"},
		{"null in list", `{"email": [null]}`, "mtls: policy $.email[0]: expected a string, found null"},
		{"empty string", `{"dns": ["a.test", ""]}`, `mtls: policy $.dns[1]: "": empty value`},
		{"bad wildcard", `{"all": [{"any": [{"dns": ["a.test", "*.com"]}]}]}`, `mtls: policy $.all[0].any[0].dns[1]: "*.com": a wildcard must be followed by at least two labels`},
		{"bad uri pattern", `{"uri": ["https://api.example*"]}`, `mtls: policy $.uri[0]: "https://api.example*": '*' must follow the '/' after the host`},
		{"bad hex", `{"thumbprint": ["abc"]}`, `mtls: policy $.thumbprint[0]: "abc": not 64 hexadecimal digits`},
		{"ambiguous serial", `{"serial": ["4096"]}`, `mtls: policy $.serial[0]: "4096": ambiguous: write hexadecimal with 0x`},
		{"unknown attribute", `{"subject": {"cn": ["a"], "nickname": ["b"]}}`, `mtls: policy $.subject.nickname: unknown attribute`},
		{"attribute twice", `{"subject": {"cn": ["a"], "2.5.4.3": ["b"]}}`, `attribute given twice (as cn)`},
		{"empty subject", `{"issuer": {}}`, "mtls: policy $.issuer: no attributes"},
		{"subject values not a list", `{"subject": {"cn": "alice"}}`, "mtls: policy $.subject.cn: expected a list of strings, found a string"},
		{"empty attribute values", `{"subject": {"ou": []}}`, "mtls: policy $.subject.ou: empty list"},
		{"empty attribute value", `{"subject": {"ou": ["x", ""]}}`, `mtls: policy $.subject.ou[1]: "": empty value`},
		{"extension without oid", `{"extension": {"values": ["x"]}}`, `mtls: policy $.extension: missing "oid"`},
		{"extension bad oid", `{"extension": {"oid": "1.2.x"}}`, `mtls: policy $.extension.oid: "1.2.x": not a dotted object identifier`},
		{"extension unknown key", `{"extension": {"oid": "1.2.3", "value": ["x"]}}`, `mtls: policy $.extension: unknown key "value"`},
		{"extension both forms", `{"extension": {"oid": "1.2.3", "values": ["x"], "der": ["00"]}}`, "exclude each other"},
		{"extension bad der", `{"extension": {"oid": "1.2.3", "der": ["0g"]}}`, `mtls: policy $.extension.der[0]: "0g": not hexadecimal`},
		{"min_validity number", `{"min_validity": 3600}`, "mtls: policy $.min_validity: expected a duration"},
		{"min_validity days", `{"min_validity": "3d"}`, `mtls: policy $.min_validity: "3d" is not a positive duration`},
		{"min_validity negative", `{"min_validity": "-1h"}`, "is not a positive duration"},
		{"too deep", strings.Repeat(`{"not":`, 40) + `{"dns":["a.test"]}` + strings.Repeat(`}`, 40), "nested more than 32 levels deep"},
		{"boolean", `{"all": [true]}`, "mtls: policy $.all[0]: expected an object such as {\"dns\": [...]}, found a boolean"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tc.doc))
			require.Error(t, err)
			assert.Nil(t, p)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	t.Run("too large", func(t *testing.T) {
		_, err := ParsePolicy(make([]byte, maxPolicyDocument+1))
		assert.ErrorContains(t, err, "larger than")
	})
}

func TestLoadPolicyFile(t *testing.T) {
	p, err := LoadPolicyFile(filepath.Join("testdata", "policy", "partners.json"))
	require.NoError(t, err)
	b, err := json.Marshal(p)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"spiffe://acme.test/ns/prod/*"`)

	_, err = LoadPolicyFile(filepath.Join("testdata", "policy", "invalid-unknown-key.json"))
	assert.ErrorContains(t, err, `mtls: policy file "testdata/policy/invalid-unknown-key.json": $.all[1].any[0]: unknown key "common_name"`)

	_, err = LoadPolicyFile(filepath.Join(t.TempDir(), "missing.json"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestDocumentedExampleParses(t *testing.T) {
	// The example of the README, with a real fingerprint.
	doc := `{"all": [{"issuer": {"cn": ["Issuing CA"]}}, {"any": [{"subject": {"cn": ["alice"], "ou": ["payments"]}},
		{"uri": ["spiffe://acme.test/ns/prod/*"]}, {"thumbprint": ["` + hex.EncodeToString(make([]byte, 32)) + `"]}]}]}`
	_, err := ParsePolicy([]byte(doc))
	require.NoError(t, err)
}

// manyKeys is an object of n distinct keys, the shape of a binding file of many principals.
func manyKeys(n int) []byte {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"` + strconv.Itoa(i) + `":0`)
	}
	b.WriteString("}")
	return []byte(b.String())
}

// allocatedPerRun is testing.AllocsPerRun for bytes: the average number of bytes f allocates.
func allocatedPerRun(runs int, f func()) float64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	f() // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return float64(after.TotalAlloc-before.TotalAlloc) / float64(runs)
}

// TestParsePolicyManyKeys: the duplicate-key check must not be quadratic (an object of some
// hundred thousand keys fits in the size limit, and a binding file of many principals is
// legitimate). The work is counted, not timed: doubling the keys must double the allocations
// and the bytes allocated, not quadruple them. BenchmarkParsePolicyManyKeys measures the speed.
func TestParsePolicyManyKeys(t *testing.T) {
	parse := func(n int) func() {
		doc := manyKeys(n)
		return func() {
			_, err := ParsePolicy(doc)
			require.ErrorContains(t, err, "expected an object with exactly one key")
		}
	}
	small, large := parse(4000), parse(8000)
	allocs := testing.AllocsPerRun(3, large) / testing.AllocsPerRun(3, small)
	assert.InDelta(t, 2, allocs, 0.25, "allocations, 8000 keys against 4000")
	bytes := allocatedPerRun(3, large) / allocatedPerRun(3, small)
	assert.InDelta(t, 2, bytes, 0.25, "bytes allocated, 8000 keys against 4000")

	_, err := ParsePolicy([]byte(`{"all": [{"dns": ["a.test"]}], "x": 1, "all": 2}`))
	assert.ErrorContains(t, err, `mtls: policy $: duplicate key "all"`)
}
