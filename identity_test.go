package mtls

import (
	"crypto/sha1" //nolint:gosec // fingerprints, not signatures
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNewIdentityJudgedAsReal: every policy and the bindings judge the identity NewIdentity
// builds exactly as they judge the one the middleware builds for the same chain.
func TestNewIdentityJudgedAsReal(t *testing.T) {
	pk := newPKI(t)
	now := time.Now()
	bob := pk.root.NewIntermediate("Other Issuing CA").NewClient("bob", mtlstest.WithValidity(now.Add(-time.Hour), now.Add(time.Hour)))
	m, err := New(Config{RootCAs: pk.root.Pool()})
	require.NoError(t, err)
	real := func(l *mtlstest.Leaf) *Identity {
		id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", l.Chain()...))
		require.NoError(t, err)
		return id
	}

	alice := pk.alice.Certificate
	s1 := sha1.Sum(alice.Raw) //nolint:gosec // fingerprint
	spki := sha256.Sum256(alice.RawSubjectPublicKeyInfo)
	var eku []byte
	for _, e := range alice.Extensions {
		if e.Id.String() == "2.5.29.37" {
			eku = e.Value
		}
	}
	thumb := Must(RequireThumbprints(pk.alice.SHA256()))
	policies := []struct {
		name string
		p    Policy
	}{
		{"RequireSubject", Must(RequireSubject(Attributes{"cn": {"alice"}}))},
		{"RequireIssuer", Must(RequireIssuer(Attributes{"cn": {"Test Issuing CA"}}))},
		{"RequireDNSNames", Must(RequireDNSNames("alice.example.test"))},
		{"RequireEmails", Must(RequireEmails("alice@example.test"))},
		{"RequireURIs", Must(RequireURIs("spiffe://example.test/ns/prod/sa/alice"))},
		{"RequireIPs", Must(RequireIPs("192.0.2.0/24"))},
		{"RequireSPIFFEIDs", Must(RequireSPIFFEIDs("spiffe://example.test/ns/prod/sa/alice"))},
		{"RequireThumbprints", thumb},
		{"RequireSHA1Thumbprints", Must(RequireSHA1Thumbprints(hex.EncodeToString(s1[:])))},
		{"RequireSPKIPins", Must(RequireSPKIPins(hex.EncodeToString(spki[:])))},
		{"RequireIssuerThumbprints", Must(RequireIssuerThumbprints(pk.issuing.SHA256()))},
		{"RequireSerials", Must(RequireSerials(FormatSerial(alice.SerialNumber)))},
		{"RequireEKUs", Must(RequireEKUs("clientAuth"))},
		{"RequireExtension", Must(RequireExtension("2.5.29.37"))},
		{"RequireExtensionDER", Must(RequireExtensionDER("2.5.29.37", hex.EncodeToString(eku)))},
		{"RequireMinValidity", Must(RequireMinValidity(24*time.Hour, nil))},
		{"RequirePrincipals", Must(RequirePrincipals("*"))},
		{"All", All(thumb, Must(RequireDNSNames("alice.example.test")))},
		{"Any", Any(Must(RequireDNSNames("nobody.example.test")), thumb)},
		{"Not", Not(thumb)},
		{"PolicyFunc", PolicyFunc(func(id *Identity) error { return thumb.Check(id) })},
		{"ParsePolicy", Must(ParsePolicy(must(json.Marshal(All(thumb, Not(Must(RequireSPIFFEIDs("spiffe://other.test/*"))))))))},
	}
	for _, tc := range policies {
		t.Run(tc.name, func(t *testing.T) {
			for _, l := range []*mtlstest.Leaf{pk.alice, bob} {
				want := tc.p.Check(real(l))
				got := tc.p.Check(NewIdentity(l.VerifiedChain()))
				if want == nil {
					assert.NoError(t, got, l.Certificate.Subject.CommonName)
				} else {
					assert.EqualError(t, got, want.Error(), l.Certificate.Subject.CommonName)
				}
				if l == pk.alice {
					deniesAlice := tc.name == "Not" || tc.name == "RequirePrincipals"
					assert.Equal(t, deniesAlice, want != nil, "the case is not vacuous")
				}
			}
		})
	}

	t.Run("Bindings", func(t *testing.T) {
		b, err := NewBindings(Binding{Principal: "acct-alice", SHA256: pk.alice.SHA256()}, Binding{Principal: "acct-bob", Certificate: bob.Certificate})
		require.NoError(t, err)
		for _, l := range []*mtlstest.Leaf{pk.alice, bob} {
			want, err := b.ResolvePrincipal(real(l))
			require.NoError(t, err)
			got, err := b.ResolvePrincipal(NewIdentity(l.VerifiedChain()))
			require.NoError(t, err)
			assert.NotEmpty(t, want)
			assert.Equal(t, want, got)
		}
	})

	t.Run("fields", func(t *testing.T) {
		want := real(pk.alice)
		got := NewIdentity(pk.alice.VerifiedChain())
		assert.Equal(t, want, got)
		assert.Nil(t, NewIdentity(nil))
		assert.Nil(t, NewIdentity([]*x509.Certificate{nil}))
	})
}
