package mtls

import (
	"crypto/sha1" //nolint:gosec // test of SHA-1 thumbprints
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/require"
)

// typicalPolicy is a partner policy of nine matchers, as a service would write it.
func typicalPolicy(t testing.TB, pk *pki, thumb string) Policy {
	t.Helper()
	return All(
		Must(RequireIssuer(Attributes{"cn": {"Test Issuing CA"}})),
		Not(Must(RequireSubject(Attributes{"ou": {"contractors"}}))),
		Any(
			Must(RequireSubject(Attributes{"cn": {"bob", "carol"}, "ou": {"payments"}})),
			Must(RequireURIs("spiffe://example.test/ns/prod/*")),
			Must(RequireThumbprints(thumb)),
		),
		Must(RequireDNSNames("*.example.test")),
		Must(RequireEKUs("clientAuth")),
		Must(RequireIPs("192.0.2.0/24")),
		Must(RequireSPIFFEIDs("spiffe://example.test/*")),
		Must(RequireMinValidity(24*time.Hour, nil)),
	)
}

func policyBenchIdentity(t testing.TB) (*pki, *Identity) {
	pk := newPKI(t)
	return pk, NewIdentity(pk.alice.VerifiedChain())
}

// TestPolicyAllocations holds evaluation to zero allocations when the policy allows, for the
// typical policy and for every matcher.
func TestPolicyAllocations(t *testing.T) {
	pk, id := policyBenchIdentity(t)
	spki := sha256Hex(pk.alice.Certificate.RawSubjectPublicKeyInfo)
	serial := "0x" + pk.alice.Certificate.SerialNumber.Text(16)
	policies := map[string]Policy{
		"typical":           typicalPolicy(t, pk, id.SHA256),
		"subject":           Must(RequireSubject(Attributes{"cn": {"alice"}})),
		"dns":               Must(RequireDNSNames("ALICE.example.test")),
		"email":             Must(RequireEmails("@example.test")),
		"uri":               Must(RequireURIs("spiffe://example.test/ns/prod/sa/alice")),
		"ip":                Must(RequireIPs("192.0.2.7")),
		"thumbprint":        Must(RequireThumbprints(id.SHA256)),
		"sha1":              Must(RequireSHA1Thumbprints(sha1Hex(pk.alice.Certificate.Raw))),
		"spki":              Must(RequireSPKIPins(spki)),
		"issuer_thumbprint": Must(RequireIssuerThumbprints(sha256Hex(pk.issuing.Certificate.Raw))),
		"serial":            Must(RequireSerials(serial)),
		"extension":         Must(RequireExtension("2.5.29.37")),
		"principal":         Must(RequirePrincipals("*")),
	}
	withPrincipal := *id
	withPrincipal.Principal = "alice"
	for name, p := range policies {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, p.Check(&withPrincipal))
			allocs := testing.AllocsPerRun(100, func() { _ = p.Check(&withPrincipal) })
			require.Zero(t, allocs, "allocations per evaluation")
		})
	}
	t.Run("refusal by a matcher", func(t *testing.T) {
		p := Must(RequireDNSNames("nowhere.test"))
		require.Zero(t, testing.AllocsPerRun(100, func() { _ = p.Check(id) }))
	})
}

// TestPolicyHotPathAllocations holds a request through Handler with a policy, a shadow policy and
// principal mapping to the middleware's budget of three allocations.
func TestPolicyHotPathAllocations(t *testing.T) {
	pk, id := policyBenchIdentity(t)
	m, err := New(Config{
		RootCAs:      pk.root.Pool(),
		Policy:       typicalPolicy(t, pk, id.SHA256),
		ShadowPolicy: Must(RequireSubject(Attributes{"cn": {"alice"}})),
		OnShadow:     func(*http.Request, ShadowResult) {},
		Principals:   PrincipalChain{must(PrincipalFromSubject("cn"))},
	})
	require.NoError(t, err)
	var seen string
	h := m.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		id, _ := FromContext(r.Context())
		seen = id.Principal
	}))
	r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", pk.alice.Chain()...)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "alice", seen)
	if allocs := testing.AllocsPerRun(200, func() { h.ServeHTTP(w, r) }); allocs > 3 {
		t.Fatalf("request with policy and principal allocates %v times, budget is 3", allocs)
	}
}

func BenchmarkPolicy(b *testing.B) {
	pk, id := policyBenchIdentity(b)
	typical := typicalPolicy(b, pk, id.SHA256)
	bench := func(name string, p Policy, want bool) {
		b.Run(name, func(b *testing.B) {
			if (p.Check(id) == nil) != want {
				b.Fatalf("unexpected outcome %v", p.Check(id))
			}
			b.ReportAllocs()
			for b.Loop() {
				_ = p.Check(id)
			}
		})
	}
	bench("typical-9-matchers", typical, true)
	bench("subject", Must(RequireSubject(Attributes{"cn": {"alice"}, "ou": {"payments"}})), false)
	bench("dns-wildcard", Must(RequireDNSNames("*.example.test")), true)
	bench("uri-prefix", Must(RequireURIs("spiffe://example.test/ns/prod/*")), true)
	bench("spiffe", Must(RequireSPIFFEIDs("spiffe://example.test/ns/*")), true)
	bench("thumbprint", Must(RequireThumbprints(id.SHA256)), true)
	bench("spki", Must(RequireSPKIPins(sha256Hex(pk.alice.Certificate.RawSubjectPublicKeyInfo))), true)
	bench("sha1", Must(RequireSHA1Thumbprints(sha1Hex(pk.alice.Certificate.Raw))), true)
	bench("issuer-thumbprint", Must(RequireIssuerThumbprints(sha256Hex(pk.issuing.Certificate.Raw))), true)
	bench("refused-any-of-3", Any(
		Must(RequireSubject(Attributes{"cn": {"bob"}})),
		Must(RequireDNSNames("x.test")),
		Must(RequireThumbprints(hex.EncodeToString(make([]byte, 32)))),
	), false)
}

// BenchmarkPolicyRequest measures a cache-hit request with a typical policy and principal mapping.
func BenchmarkPolicyRequest(b *testing.B) {
	pk, id := policyBenchIdentity(b)
	m, err := New(Config{
		RootCAs:    pk.root.Pool(),
		Policy:     typicalPolicy(b, pk, id.SHA256),
		Principals: PrincipalChain{must(PrincipalFromSubject("cn"))},
	})
	require.NoError(b, err)
	h := m.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", pk.alice.Chain()...)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

// BenchmarkBindings measures principal look-ups in a large binding set.
func BenchmarkBindings(b *testing.B) {
	pk := newPKI(b)
	var bs []Binding
	for i := range 1000 {
		leaf := pk.issuing.NewClient("svc", mtlstest.WithSubject(pkix.Name{CommonName: "svc", SerialNumber: hex.EncodeToString([]byte{byte(i)})}))
		bs = append(bs, Binding{Principal: "svc", SHA256: leaf.SHA256()})
	}
	bs = append(bs, Binding{Principal: "alice", Certificate: pk.alice.Certificate})
	set, err := NewBindings(bs...)
	require.NoError(b, err)
	id := newIdentity(pk.alice.Chain(), false)
	b.ReportAllocs()
	for b.Loop() {
		if p, _ := set.ResolvePrincipal(id); p != "alice" {
			b.Fatal(p)
		}
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func sha1Hex(b []byte) string {
	s := sha1.Sum(b) //nolint:gosec // test of SHA-1 thumbprints
	return hex.EncodeToString(s[:])
}

// BenchmarkParsePolicyManyKeys loads an object of as many keys as fit in the document size limit
// (it is refused, having more than one key, after being read whole).
func BenchmarkParsePolicyManyKeys(b *testing.B) {
	n := 0
	for len(manyKeys(n+1000)) < maxPolicyDocument {
		n += 1000
	}
	doc := manyKeys(n)
	b.ReportAllocs()
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := ParsePolicy(doc); err == nil {
			b.Fatal("accepted")
		}
	}
}
