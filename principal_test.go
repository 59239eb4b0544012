package mtls

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeTestFile(t *testing.T, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o600))
}

func idOf(pk *pki, l *mtlstest.Leaf) *Identity {
	return newIdentity(append(l.Chain(), pk.root.Certificate), false)
}

func TestBindings(t *testing.T) {
	pk := newPKI(t)
	renewed := pk.issuing.NewClient("alice", mtlstest.WithKey(pk.alice.Key)) // same key, new certificate
	rekeyed := pk.issuing.NewClient("alice")                                 // new key
	otherCA := pk.other.NewClient("alice", mtlstest.WithKey(pk.alice.Key))   // same key, other issuer
	bob := pk.issuing.NewClient("bob")

	b, err := NewBindings(
		Binding{Principal: "acct-alice", Certificate: pk.alice.Certificate},
		Binding{Principal: "acct-bob", SHA256: fingerprint(bob.Certificate)},
	)
	require.NoError(t, err)
	assert.Equal(t, 2, b.Len())
	tests := []struct {
		name string
		id   *Identity
		want string
	}{
		{"bound certificate", idOf(pk, pk.alice), "acct-alice"},
		{"renewal with the same key", idOf(pk, renewed), "acct-alice"},
		{"new key", idOf(pk, rekeyed), ""},
		{"same key from another issuer", newIdentity(otherCA.Chain(), false), ""},
		{"by thumbprint", idOf(pk, bob), "acct-bob"},
		{"renewed bob is not bound by thumbprint", idOf(pk, pk.issuing.NewClient("bob", mtlstest.WithKey(bob.Key))), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := b.ResolvePrincipal(tc.id)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}

	for name, bad := range map[string][]Binding{
		"no principal":                      {{SHA256: fingerprint(bob.Certificate)}},
		"both forms":                        {{Principal: "x", SHA256: fingerprint(bob.Certificate), Certificate: bob.Certificate}},
		"neither form":                      {{Principal: "x"}},
		"bad hex":                           {{Principal: "x", SHA256: "abc"}},
		"control char":                      {{Principal: "x\n", SHA256: fingerprint(bob.Certificate)}},
		"thumb conflict":                    {{Principal: "x", SHA256: fingerprint(bob.Certificate)}, {Principal: "y", SHA256: fingerprint(bob.Certificate)}},
		"key conflict":                      {{Principal: "x", Certificate: pk.alice.Certificate}, {Principal: "y", Certificate: renewed.Certificate}},
		"fingerprint, then the certificate": {{Principal: "x", SHA256: fingerprint(pk.alice.Certificate)}, {Principal: "y", Certificate: pk.alice.Certificate}},
		"certificate, then its fingerprint": {{Principal: "x", Certificate: pk.alice.Certificate}, {Principal: "y", SHA256: fingerprint(pk.alice.Certificate)}},
		"trailing space":                    {{Principal: "x ", SHA256: fingerprint(bob.Certificate)}},
		"no-break space":                    {{Principal: "x\u00a0y", SHA256: fingerprint(bob.Certificate)}},
		"right-to-left override":            {{Principal: "admin\u202e", SHA256: fingerprint(bob.Certificate)}},
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
		writeTestFile(t, filepath.Join(dir, "alice.pem"), pk.alice.CertPEM())
		writeTestFile(t, filepath.Join(dir, "README.txt"), []byte("ignored"))
		s, err := NewBindingStore(dir)
		require.NoError(t, err)
		assert.Equal(t, 1, s.Len())
		got, _ := s.ResolvePrincipal(idOf(pk, pk.alice))
		assert.Equal(t, "alice", got)
		got, _ = s.ResolvePrincipal(idOf(pk, bob))
		assert.Empty(t, got)

		writeTestFile(t, filepath.Join(dir, "billing-svc.crt"), bob.ChainPEM()) // leaf and its CA: the CA is skipped
		require.NoError(t, s.Reload())
		got, _ = s.ResolvePrincipal(idOf(pk, bob))
		assert.Equal(t, "billing-svc", got)

		writeTestFile(t, filepath.Join(dir, "broken.pem"), pk.alice.KeyPEM())
		err = s.Reload()
		assert.ErrorContains(t, err, `is "PRIVATE KEY", want CERTIFICATE`)
		got, _ = s.ResolvePrincipal(idOf(pk, bob))
		assert.Equal(t, "billing-svc", got, "a failed reload keeps the bindings in force")
	})

	t.Run("JSON map of fingerprints", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "bindings.json")
		writeTestFile(t, path, []byte(`{"alice": ["`+fingerprint(pk.alice.Certificate)+`"], "bob": ["`+fingerprint(bob.Certificate)+`"]}`))
		s, err := NewBindingStore(path)
		require.NoError(t, err)
		got, _ := s.ResolvePrincipal(idOf(pk, bob))
		assert.Equal(t, "bob", got)

		writeTestFile(t, path, []byte(`{"alice": ["`+fingerprint(bob.Certificate)+`"]}`))
		require.NoError(t, s.Reload())
		got, _ = s.ResolvePrincipal(idOf(pk, bob))
		assert.Equal(t, "alice", got)
		got, _ = s.ResolvePrincipal(idOf(pk, pk.alice))
		assert.Empty(t, got)
	})

	for name, tc := range map[string]struct{ doc, want string }{
		"not an object":     {`["a"]`, "expected an object of principal to SHA-256 fingerprints"},
		"empty list":        {`{"alice": []}`, "$.alice: empty list"},
		"bad fingerprint":   {`{"alice": ["zz"]}`, "$.alice[0]: sha256"},
		"conflict":          {`{"a": ["` + fingerprint(bob.Certificate) + `"], "b": ["` + fingerprint(bob.Certificate) + `"]}`, "bound to both"},
		"duplicate key":     {`{"a": ["` + fingerprint(bob.Certificate) + `"], "a": ["` + fingerprint(bob.Certificate) + `"]}`, "duplicate key"},
		"Latin-1 principal": {"{\"M\xfcller\": [\"" + fingerprint(bob.Certificate) + "\"]}", "$: not valid UTF-8 at byte 3"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bindings.json")
			writeTestFile(t, path, []byte(tc.doc))
			_, err := NewBindingStore(path)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	t.Run("missing path", func(t *testing.T) {
		_, err := NewBindingStore(filepath.Join(t.TempDir(), "nope"))
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("empty PEM file", func(t *testing.T) {
		dir := t.TempDir()
		writeTestFile(t, filepath.Join(dir, "x.pem"), nil)
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
		{"explicit binding first", chain, idOf(pk, bound), "billing", nil},
		{"cn for the partner CA", chain, newIdentity(append(partner.NewClient("acme-corp").Chain(), pk.root.Certificate), false), "acme-corp", nil},
		{"tenant fallback", chain, idOf(pk, pk.alice), "tenant", nil},
		{"anonymous without fallback", PrincipalChain{bindings}, idOf(pk, pk.alice), "", nil},
		{"an error stops the chain", PrincipalChain{PrincipalResolverFunc(func(*Identity) (string, error) { return "", errBroken }), StaticPrincipal("x")}, idOf(pk, pk.alice), "", errBroken},
		{"spiffe id", PrincipalFromSPIFFEID(), idOf(pk, pk.alice), "spiffe://example.test/ns/prod/sa/alice", nil},
		{"no spiffe id", PrincipalFromSPIFFEID(), idOf(pk, bound), "", nil},
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
		{"empty cn", cn, dn(oidCN, ""), "", ""},
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
	writeTestFile(t, filepath.Join(dir, "alice.pem"), pk.alice.ChainPEM())
	writeTestFile(t, filepath.Join(dir, "bob.pem"), bob.ChainPEM())
	s, err := NewBindingStore(dir)
	require.NoError(t, err)
	assert.Equal(t, 2, s.Len())
	got, _ := s.ResolvePrincipal(idOf(pk, bob))
	assert.Equal(t, "bob", got)
	got, _ = s.ResolvePrincipal(idOf(pk, pk.alice))
	assert.Equal(t, "alice", got)

	renewed := pk.issuing.NewClient("bob", mtlstest.WithKey(bob.Key))
	full := append(bob.ChainPEM(), renewed.CertPEM()...)
	writeTestFile(t, filepath.Join(dir, "bob.pem"), full[:len(full)-100])
	assert.ErrorContains(t, s.Reload(), "bob.pem")
	got, _ = s.ResolvePrincipal(idOf(pk, bob))
	assert.Equal(t, "bob", got, "the bindings in force stay")

	caOnly := t.TempDir()
	writeTestFile(t, filepath.Join(caOnly, "ca.pem"), pk.issuing.CertPEM())
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
	_, err = m.Authenticate(requestWith(p.alice.Chain()...))
	require.ErrorIs(t, err, ErrDenied)
}
