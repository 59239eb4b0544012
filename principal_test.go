package mtls

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBindings(t *testing.T) {
	pk := newPKI(t)
	renewed := pk.issuing.NewClient("alice", mtlstest.WithKey(pk.alice.Key)) // same key, new certificate
	rekeyed := pk.issuing.NewClient("alice")                                 // new key
	otherCA := pk.other.NewClient("alice", mtlstest.WithKey(pk.alice.Key))   // same key, other issuer
	bob := pk.issuing.NewClient("bob")

	b, err := NewBindings(
		Binding{Principal: "acct-alice", Certificate: pk.alice.Certificate},
		Binding{Principal: "acct-bob", SHA256: bob.SHA256()},
	)
	require.NoError(t, err)
	assert.Equal(t, 2, b.Len())
	tests := []struct {
		name string
		id   *Identity
		want string
	}{
		{"bound certificate", NewIdentity(pk.alice.VerifiedChain()), "acct-alice"},
		{"renewal with the same key", NewIdentity(renewed.VerifiedChain()), "acct-alice"},
		{"new key", NewIdentity(rekeyed.VerifiedChain()), ""},
		{"same key from another issuer", newIdentity(otherCA.Chain(), false), ""},
		{"by thumbprint", NewIdentity(bob.VerifiedChain()), "acct-bob"},
		{"renewed bob is not bound by thumbprint", NewIdentity(pk.issuing.NewClient("bob", mtlstest.WithKey(bob.Key)).VerifiedChain()), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := b.ResolvePrincipal(tc.id)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}

	for name, bad := range map[string][]Binding{
		"no principal":                      {{SHA256: bob.SHA256()}},
		"both forms":                        {{Principal: "x", SHA256: bob.SHA256(), Certificate: bob.Certificate}},
		"neither form":                      {{Principal: "x"}},
		"bad hex":                           {{Principal: "x", SHA256: "abc"}},
		"control char":                      {{Principal: "x\n", SHA256: bob.SHA256()}},
		"thumb conflict":                    {{Principal: "x", SHA256: bob.SHA256()}, {Principal: "y", SHA256: bob.SHA256()}},
		"key conflict":                      {{Principal: "x", Certificate: pk.alice.Certificate}, {Principal: "y", Certificate: renewed.Certificate}},
		"fingerprint, then the certificate": {{Principal: "x", SHA256: pk.alice.SHA256()}, {Principal: "y", Certificate: pk.alice.Certificate}},
		"certificate, then its fingerprint": {{Principal: "x", Certificate: pk.alice.Certificate}, {Principal: "y", SHA256: pk.alice.SHA256()}},
		"trailing space":                    {{Principal: "x ", SHA256: bob.SHA256()}},
		"no-break space":                    {{Principal: "x\u00a0y", SHA256: bob.SHA256()}},
		"right-to-left override":            {{Principal: "admin\u202e", SHA256: bob.SHA256()}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewBindings(bad...)
			assert.Error(t, err)
		})
	}
}

func TestBindingStore(t *testing.T) {
	pk := newPKI(t)
	bob := pk.issuing.NewClient("bob")

	t.Run("directory of PEM files, reloaded", func(t *testing.T) {
		dir := t.TempDir()
		mtlstest.WriteFile(dir, "alice.pem", pk.alice.CertPEM())
		mtlstest.WriteFile(dir, "README.txt", []byte("ignored"))
		s, err := NewBindingStore(dir)
		require.NoError(t, err)
		assert.Equal(t, 1, s.Len())
		got, _ := s.ResolvePrincipal(NewIdentity(pk.alice.VerifiedChain()))
		assert.Equal(t, "alice", got)
		got, _ = s.ResolvePrincipal(NewIdentity(bob.VerifiedChain()))
		assert.Empty(t, got)

		mtlstest.WriteFile(dir, "billing-svc.crt", bob.ChainPEM()) // leaf and its CA: the CA is skipped
		require.NoError(t, s.Reload())
		got, _ = s.ResolvePrincipal(NewIdentity(bob.VerifiedChain()))
		assert.Equal(t, "billing-svc", got)

		mtlstest.WriteFile(dir, "broken.pem", pk.alice.KeyPEM())
		err = s.Reload()
		assert.ErrorContains(t, err, `is "PRIVATE KEY", want CERTIFICATE`)
		got, _ = s.ResolvePrincipal(NewIdentity(bob.VerifiedChain()))
		assert.Equal(t, "billing-svc", got, "a failed reload keeps the bindings in force")
	})

	t.Run("JSON map of fingerprints", func(t *testing.T) {
		dir := t.TempDir()
		path := mtlstest.WriteFile(dir, "bindings.json", []byte(`{"alice": ["`+pk.alice.SHA256()+`"], "bob": ["`+bob.SHA256()+`"]}`))
		s, err := NewBindingStore(path)
		require.NoError(t, err)
		got, _ := s.ResolvePrincipal(NewIdentity(bob.VerifiedChain()))
		assert.Equal(t, "bob", got)

		mtlstest.WriteFile(dir, "bindings.json", []byte(`{"alice": ["`+bob.SHA256()+`"]}`))
		require.NoError(t, s.Reload())
		got, _ = s.ResolvePrincipal(NewIdentity(bob.VerifiedChain()))
		assert.Equal(t, "alice", got)
		got, _ = s.ResolvePrincipal(NewIdentity(pk.alice.VerifiedChain()))
		assert.Empty(t, got)
	})

	for name, tc := range map[string]struct{ doc, want string }{
		"not an object":     {`["a"]`, "expected an object of principal to SHA-256 fingerprints"},
		"empty list":        {`{"alice": []}`, "$.alice: empty list"},
		"bad fingerprint":   {`{"alice": ["zz"]}`, "$.alice[0]: sha256"},
		"conflict":          {`{"a": ["` + bob.SHA256() + `"], "b": ["` + bob.SHA256() + `"]}`, "bound to both"},
		"duplicate key":     {`{"a": ["` + bob.SHA256() + `"], "a": ["` + bob.SHA256() + `"]}`, "duplicate key"},
		"Latin-1 principal": {"{\"M\xfcller\": [\"" + bob.SHA256() + "\"]}", "$: not valid UTF-8 at byte 3"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewBindingStore(mtlstest.WriteFile(t.TempDir(), "bindings.json", []byte(tc.doc)))
			assert.ErrorContains(t, err, tc.want)
		})
	}
	t.Run("missing path", func(t *testing.T) {
		_, err := NewBindingStore(filepath.Join(t.TempDir(), "nope"))
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("empty PEM file", func(t *testing.T) {
		dir := t.TempDir()
		mtlstest.WriteFile(dir, "x.pem", nil)
		_, err := NewBindingStore(dir)
		assert.ErrorContains(t, err, "no PEM certificate")
	})
}

func TestPrincipalChain(t *testing.T) {
	pk := newPKI(t)
	partner := pk.root.NewIntermediate("Partner CA")
	bound := pk.issuing.NewClient("svc-7")
	bindings, err := NewBindings(Binding{Principal: "billing", Certificate: bound.Certificate})
	require.NoError(t, err)
	cn := must(PrincipalFromSubject("cn"))
	fromPartner := Must(RequireIssuer(Attributes{"cn": {"Partner CA"}}))
	errBroken := errors.New("directory down")

	chain := PrincipalChain{
		bindings,
		PrincipalWhen(fromPartner, cn),
		nil,
		StaticPrincipal("tenant"),
	}
	tests := []struct {
		name string
		r    PrincipalResolver
		id   *Identity
		want string
		err  error
	}{
		{"explicit binding first", chain, NewIdentity(bound.VerifiedChain()), "billing", nil},
		{"cn for the partner CA", chain, NewIdentity(partner.NewClient("acme-corp").VerifiedChain()), "acme-corp", nil},
		{"tenant fallback", chain, NewIdentity(pk.alice.VerifiedChain()), "tenant", nil},
		{"anonymous without fallback", PrincipalChain{bindings}, NewIdentity(pk.alice.VerifiedChain()), "", nil},
		{"an error stops the chain", PrincipalChain{PrincipalResolverFunc(func(*Identity) (string, error) { return "", errBroken }), StaticPrincipal("x")}, NewIdentity(pk.alice.VerifiedChain()), "", errBroken},
		{"spiffe id", PrincipalFromSPIFFEID(), NewIdentity(pk.alice.VerifiedChain()), "spiffe://example.test/ns/prod/sa/alice", nil},
		{"no spiffe id", PrincipalFromSPIFFEID(), NewIdentity(bound.VerifiedChain()), "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.r.ResolvePrincipal(tc.id)
			assert.ErrorIs(t, err, tc.err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestPrincipalFromSubject(t *testing.T) {
	cn := must(PrincipalFromSubject("cn"))
	uid := must(PrincipalFromSubject("0.9.2342.19200300.100.1.1"))
	tests := []struct {
		name    string
		r       PrincipalResolver
		subject pkix.Name
		want    string
		wantErr string
	}{
		{"cn", cn, dn(oidCN, "alice"), "alice", ""},
		{"no cn", cn, dn(oidOU, "x"), "", ""},
		{"two cn", cn, dn(oidCN, "alice", oidCN, "root"), "", "more than one cn"},
		{"control characters", cn, dn(oidCN, "alice\nlevel=admin"), "", "control characters"},
		{"empty cn", cn, dn(oidCN, ""), "", "cn is empty"}, // refused: a CN that is there but empty no longer falls through
		{"built in code: CommonName without Names", cn, pkix.Name{CommonName: "alice"}, "", "without their parsed Names"},
		{"built in code: ExtraNames without Names", cn, pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidCN, Value: 42}}}, "", "without their parsed Names"},
		{"built in code: other fields without Names", cn, pkix.Name{Organization: []string{"acme"}}, "", "without their parsed Names"},
		{"no subject at all", cn, pkix.Name{}, "", ""},
		{"uid by oid", uid, dn(asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}, "u123"), "u123", ""},
		{"inner space", cn, dn(oidCN, "Alice Smith"), "Alice Smith", ""},
		{"leading space", cn, dn(oidCN, " alice"), "", "not a plain account name"},
		{"trailing space", cn, dn(oidCN, "alice "), "", "not a plain account name"},
		{"no-break space", cn, dn(oidCN, "alice\u00a0"), "", "not a plain account name"},
		{"ideographic space", cn, dn(oidCN, "ali\u3000ce"), "", "not a plain account name"},
		{"Hangul filler", cn, dn(oidCN, "al\u3164ice"), "", "not a plain account name"},
		{"halfwidth Hangul filler", cn, dn(oidCN, "alice\uffa0"), "", "not a plain account name"},
		{"Hangul choseong filler", cn, dn(oidCN, "\u115falice"), "", "not a plain account name"},
		{"braille blank", cn, dn(oidCN, "\u2800"), "", "not a plain account name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.r.ResolvePrincipal(synth(&x509.Certificate{Subject: tc.subject}))
			if tc.wantErr != "" {
				assert.ErrorContains(t, err, tc.wantErr)
			} else {
				assert.NoError(t, err)
			}
			assert.Equal(t, tc.want, got)
		})
	}
	_, err := PrincipalFromSubject("nickname")
	assert.Error(t, err)
	_, err = cn.ResolvePrincipal(nil)
	assert.Error(t, err)
}

// TestBindingStoreFullChainFiles: binding files are often full chains. The CA certificates in
// them bind no client (a CA cannot be a client certificate), so two principals' chains sharing
// their CA must load, and a truncated file (a reload racing a write) must fail rather than load
// part of its certificates.
func TestBindingStoreFullChainFiles(t *testing.T) {
	pk := newPKI(t)
	bob := pk.issuing.NewClient("bob")
	dir := t.TempDir()
	mtlstest.WriteFile(dir, "alice.pem", pk.alice.ChainPEM())
	mtlstest.WriteFile(dir, "bob.pem", bob.ChainPEM())
	s, err := NewBindingStore(dir)
	require.NoError(t, err)
	assert.Equal(t, 2, s.Len())
	got, _ := s.ResolvePrincipal(NewIdentity(bob.VerifiedChain()))
	assert.Equal(t, "bob", got)
	got, _ = s.ResolvePrincipal(NewIdentity(pk.alice.VerifiedChain()))
	assert.Equal(t, "alice", got)

	renewed := pk.issuing.NewClient("bob", mtlstest.WithKey(bob.Key))
	full := append(bob.ChainPEM(), renewed.CertPEM()...)
	mtlstest.WriteFile(dir, "bob.pem", full[:len(full)-100])
	assert.ErrorContains(t, s.Reload(), "bob.pem")
	got, _ = s.ResolvePrincipal(NewIdentity(bob.VerifiedChain()))
	assert.Equal(t, "bob", got, "the bindings in force stay")

	caOnly := t.TempDir()
	mtlstest.WriteFile(caOnly, "ca.pem", pk.issuing.CertPEM())
	_, err = NewBindingStore(caOnly)
	assert.ErrorContains(t, err, "no client certificate")
}

// TestPrincipalFromSubjectInvisibleCharacters: an account name is shown in logs and consoles; a
// value with format characters (a right-to-left override, a zero-width joiner) or bytes that are
// not UTF-8 (a T61String CN is passed through raw) could pose as another name, and is refused.
func TestPrincipalFromSubjectInvisibleCharacters(t *testing.T) {
	cn := must(PrincipalFromSubject("cn"))
	for _, v := range []string{"alice\u202egnp.exe", "ali\u200dce", "alice\xff", "alice\u2028admin"} {
		got, err := cn.ResolvePrincipal(synth(&x509.Certificate{Subject: dn(oidCN, v)}))
		assert.Error(t, err, "%q", v)
		assert.Empty(t, got)
	}
	got, err := cn.ResolvePrincipal(synth(&x509.Certificate{Subject: dn(oidCN, "Zoë Müller-Łukasz 李")}))
	require.NoError(t, err)
	assert.Equal(t, "Zoë Müller-Łukasz 李", got)
}

func TestNilBindingsFailClosed(t *testing.T) {
	p := newPKI(t)
	store, err := NewBindingStore(filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)
	require.Nil(t, store)

	_, err = New(Config{RootCAs: p.root.Pool(), Principals: store})
	require.ErrorContains(t, err, "nil bindings")

	// Inside a chain the nil store is not visible to New: it must refuse, not panic.
	m, err := New(Config{RootCAs: p.root.Pool(), Principals: PrincipalChain{store, StaticPrincipal("tenant")}})
	require.NoError(t, err)
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	require.ErrorIs(t, err, ErrDenied)
}

// TestPrincipalFromSubjectNotAString: a subject attribute whose value is not a string (an
// INTEGER, an OCTET STRING, a UTF8String that is not UTF-8) is refused, so that a chain never
// falls through to its default for it. Go's parser refuses such a certificate; one built in code
// (a leaf given to NewIdentity) holds the values as encoded.
func TestPrincipalFromSubjectNotAString(t *testing.T) {
	ca := mtlstest.NewRootCA("Odd Values CA")
	key := ca.NewClient("template").Key
	chain := PrincipalChain{must(PrincipalFromSubject("cn")), StaticPrincipal("tenant-default")}
	m, err := New(Config{RootCAs: ca.Pool(), Principals: chain})
	require.NoError(t, err)
	for _, tc := range []struct {
		name  string
		value any
	}{
		{"INTEGER", 42},
		{"OCTET STRING", []byte("alice")},
		{"UTF8String not UTF-8", asn1.RawValue{Tag: asn1.TagUTF8String, Bytes: []byte{'a', 0xff}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(7),
				Subject:      pkix.Name{ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidCN, Value: tc.value}}},
				NotBefore:    time.Now().Add(-time.Hour),
				NotAfter:     time.Now().Add(time.Hour),
				ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Certificate, key.Public(), ca.Key)
			require.NoError(t, err)
			// Up to Go 1.26 the parser refuses it, and a request presenting it never gets this far;
			// from Go 1.27 it parses, and the resolver is what refuses it.
			leaf, err := x509.ParseCertificate(der)
			if err != nil {
				leaf = &x509.Certificate{Raw: der, Subject: pkix.Name{Names: tmpl.Subject.ExtraNames}}
			}
			id := synth(leaf)
			got, err := chain.ResolvePrincipal(id)
			require.ErrorContains(t, err, "subject cn is not a string")
			assert.Empty(t, got, "no fall-through to the default")

			d := decision{}
			m.authorize(&d, m.state.Load(), id)
			require.ErrorIs(t, d.err, ErrDenied)
			status, _ := StatusAndReason(d.err)
			assert.Equal(t, http.StatusForbidden, status)
			var e *Error
			require.ErrorAs(t, d.err, &e)
			assert.Equal(t, stepPrincipal, e.Step)
			assert.Nil(t, d.id)
		})
	}
}
