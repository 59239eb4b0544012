package mtls

import (
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// x509Accepts says whether crypto/x509 accepts the presented chain itself, every presented
// certificate a candidate intermediate: the library never accepts more than it does.
func x509Accepts(roots, intermediates *x509.CertPool, presented []*x509.Certificate, now time.Time) bool {
	pool := x509.NewCertPool()
	if intermediates != nil {
		pool = intermediates.Clone()
	}
	for _, c := range presented[1:] {
		pool.AddCert(c)
	}
	_, err := presented[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: pool, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err == nil
}

// TestPathBuilding: chains that clients present during root transitions and key rollovers, and
// with more certificates than the path needs, are accepted when a path verifies, as crypto/x509
// accepts them; the depth bound applies to the path, not to what was presented.
func TestPathBuilding(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	past := mtlstest.WithValidity(now.Add(-48*time.Hour), now.Add(-time.Hour))

	// A root transition: one intermediate key, certified by the old root and cross-signed by a
	// new one (same subject and key, different issuers).
	newRoot := mtlstest.NewRootCA("New Root CA")
	shared := ecKey(t, elliptic.P256())
	byOld := p.root.NewIntermediate("Shared CA", mtlstest.WithKey(shared))
	byNew := newRoot.NewIntermediate("Shared CA", mtlstest.WithKey(shared))
	expiredByOld := p.root.NewIntermediate("Shared CA", mtlstest.WithKey(shared), past)
	carol := byNew.NewClient("carol")

	// A key rollover of the root under its own name: the old key certifies the new one
	// (old-with-new), and a renewed root of the new key certifies the old one (new-with-old).
	// Both are self-issued CA certificates.
	rootName := p.root.Certificate.Subject.CommonName
	newKey := ecKey(t, elliptic.P256())
	oldWithNew := p.root.NewIntermediate(rootName, mtlstest.WithKey(newKey))
	renewedRoot := mtlstest.NewRootCA(rootName, mtlstest.WithKey(newKey))
	newWithOld := renewedRoot.NewIntermediate(rootName, mtlstest.WithKey(p.root.Key))
	underNew := oldWithNew.NewIntermediate("Issuing Under New Key")
	dan := underNew.NewClient("dan")
	erin := oldWithNew.NewClient("erin")

	// A candidate whose issuer is as far from the leaf by names as itself: it is admitted once its
	// issuer is, whichever comes first.
	zCA := p.root.NewIntermediate("Z CA")
	yCA := zCA.NewIntermediate("Y CA")
	xCA := yCA.NewIntermediate("X CA")
	expiredX := zCA.NewIntermediate("X CA", past)
	kim := xCA.NewClient("kim")

	deep := p.issuing.NewIntermediate("Deep CA").NewClient("deep")
	unrelated := []*x509.Certificate{p.other.Certificate, p.other.NewIntermediate("Other Issuing CA").Certificate,
		mtlstest.NewRootCA("Third Root CA").Certificate}

	tests := []struct {
		name     string
		roots    []*mtlstest.CA
		inter    *mtlstest.CA // configured as an intermediate
		depth    int
		chain    []*x509.Certificate
		wantErr  error
		detail   string              // part of the refusal's detail
		wantPath []*x509.Certificate // the verified chain, when accepted
	}{
		{name: "cross-signed copy first, its issuer configured", roots: []*mtlstest.CA{p.root},
			chain:    []*x509.Certificate{carol.Certificate, byOld.Certificate, byNew.Certificate},
			wantPath: []*x509.Certificate{carol.Certificate, byOld.Certificate, p.root.Certificate}},
		{name: "cross-signed copy last, its issuer configured", roots: []*mtlstest.CA{p.root},
			chain:    []*x509.Certificate{carol.Certificate, byNew.Certificate, byOld.Certificate},
			wantPath: []*x509.Certificate{carol.Certificate, byOld.Certificate, p.root.Certificate}},
		{name: "cross-signed copies, the new root configured", roots: []*mtlstest.CA{newRoot},
			chain:    []*x509.Certificate{carol.Certificate, byOld.Certificate, byNew.Certificate},
			wantPath: []*x509.Certificate{carol.Certificate, byNew.Certificate, newRoot.Certificate}},
		{name: "cross-signed copies, the old one expired", roots: []*mtlstest.CA{p.root, newRoot},
			chain:    []*x509.Certificate{carol.Certificate, expiredByOld.Certificate, byNew.Certificate},
			wantPath: []*x509.Certificate{carol.Certificate, byNew.Certificate, newRoot.Certificate}},
		{name: "cross-signed copies, neither issuer configured", roots: []*mtlstest.CA{p.other},
			chain: []*x509.Certificate{carol.Certificate, byOld.Certificate, byNew.Certificate}, wantErr: ErrUntrusted},
		{name: "old-with-new rollover certificate", roots: []*mtlstest.CA{p.root},
			chain:    []*x509.Certificate{erin.Certificate, oldWithNew.Certificate},
			wantPath: []*x509.Certificate{erin.Certificate, oldWithNew.Certificate, p.root.Certificate}},
		{name: "rollover certificate not sent", roots: []*mtlstest.CA{p.root},
			chain: []*x509.Certificate{erin.Certificate}, wantErr: ErrUntrusted, detail: "a CA renewed under the same name? then the client must also send"},
		{name: "old-with-new under an intermediate", roots: []*mtlstest.CA{p.root},
			chain: dan.Chain(), wantPath: append(dan.Chain(), p.root.Certificate)},
		{name: "new-with-old rollover certificate, the renewed root configured", roots: []*mtlstest.CA{renewedRoot},
			chain:    append(p.alice.Chain(), newWithOld.Certificate),
			wantPath: []*x509.Certificate{p.alice.Certificate, p.issuing.Certificate, newWithOld.Certificate, renewedRoot.Certificate}},
		{name: "self-issued certificates do not count against the depth", roots: []*mtlstest.CA{p.root}, depth: 2,
			chain: dan.Chain(), wantPath: append(dan.Chain(), p.root.Certificate)},
		{name: "a configured self-issued intermediate does not count against the depth", roots: []*mtlstest.CA{p.root},
			inter: oldWithNew, depth: 2, chain: dan.Chain()[:2], wantPath: append(dan.Chain(), p.root.Certificate)},
		{name: "the depth bound still holds", roots: []*mtlstest.CA{p.root}, depth: 1,
			chain: dan.Chain(), wantErr: ErrUntrusted},
		{name: "more presented than the depth allows, the path within it", roots: []*mtlstest.CA{p.root}, depth: 2,
			chain:    append(p.alice.Chain(), unrelated...),
			wantPath: append(p.alice.Chain(), p.root.Certificate)},
		{name: "an issuer as far from the leaf as the CA it issued, presented first", roots: []*mtlstest.CA{p.root},
			chain:    []*x509.Certificate{kim.Certificate, xCA.Certificate, expiredX.Certificate, zCA.Certificate, yCA.Certificate},
			wantPath: append(kim.Chain(), p.root.Certificate)},
		{name: "an issuer as far from the leaf as the CA it issued, presented last", roots: []*mtlstest.CA{p.root},
			chain:    []*x509.Certificate{kim.Certificate, xCA.Certificate, expiredX.Certificate, yCA.Certificate, zCA.Certificate},
			wantPath: append(kim.Chain(), p.root.Certificate)},
		{name: "the whole graph of a transition presented", roots: []*mtlstest.CA{newRoot}, depth: 2,
			chain:    []*x509.Certificate{carol.Certificate, p.root.Certificate, byOld.Certificate, expiredByOld.Certificate, byNew.Certificate, newWithOld.Certificate},
			wantPath: []*x509.Certificate{carol.Certificate, byNew.Certificate, newRoot.Certificate}},
		{name: "a path deeper than allowed among surplus certificates", roots: []*mtlstest.CA{p.root}, depth: 2,
			chain: append(deep.Chain(), unrelated...), wantErr: ErrUntrusted},
		{name: "surplus beyond its bound", roots: []*mtlstest.CA{p.root}, depth: 1,
			chain: append(p.alice.Chain(), append(unrelated, p.root.Certificate, newRoot.Certificate)...), wantErr: ErrUntrusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			roots := x509.NewCertPool()
			for _, r := range tt.roots {
				roots.AddCert(r.Certificate)
			}
			cfg := Config{RootCAs: roots, MaxChainDepth: tt.depth, Now: func() time.Time { return now }}
			var inter *x509.CertPool
			if tt.inter != nil {
				inter = tt.inter.Pool()
				cfg.Intermediates = inter
			}
			m, err := New(cfg)
			require.NoError(t, err)
			id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", tt.chain...))
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.ErrorContains(t, err, tt.detail)
				return
			}
			require.NoError(t, err)
			require.True(t, x509Accepts(roots, inter, tt.chain, now), "crypto/x509 accepts it too")
			require.Len(t, id.Chain, len(tt.wantPath))
			for i, c := range tt.wantPath {
				assert.Equal(t, c.Raw, id.Chain[i].Raw, "certificate %d of the path", i)
			}
		})
	}
}

// TestCacheOneEntryPerChainInAnyOrder: a client reordering its own intermediates reuses one
// cache entry, however it orders them, and every order is accepted.
func TestCacheOneEntryPerChainInAnyOrder(t *testing.T) {
	p := newPKI(t)
	a := p.issuing.NewIntermediate("CA A")
	b := a.NewIntermediate("CA B")
	leaf := b.NewClient("frank")
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	inter := []*x509.Certificate{b.Certificate, a.Certificate, p.issuing.Certificate}
	orders := [][3]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
	for _, o := range orders {
		chain := []*x509.Certificate{leaf.Certificate, inter[o[0]], inter[o[1]], inter[o[2]]}
		id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", reparsed(t, chain)...))
		require.NoError(t, err, "order %v", o)
		assert.Equal(t, "frank", id.Leaf.Subject.CommonName)
	}
	assert.Equal(t, 1, m.state.Load().cache.len(), "one chain, one entry")

	// Forwarded by a proxy, the header values are cached as they come: only the path's order is.
	hm, err := New(Config{RootCAs: p.root.Pool(), Header: &HeaderConfig{
		Format: MustHeaderFormat("rfc9440"), TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}})
	require.NoError(t, err)
	for _, o := range orders {
		chain := []*x509.Certificate{leaf.Certificate, inter[o[0]], inter[o[1]], inter[o[2]]}
		r := mtlstest.Proxy{Format: MustHeaderFormat("rfc9440"), Addr: "10.1.2.3:4000"}.NewRequest(http.MethodGet, "/", chain...)
		id, err := hm.Authenticate(r)
		require.NoError(t, err, "order %v", o)
		assert.Equal(t, "frank", id.Leaf.Subject.CommonName)
	}
	assert.Equal(t, 1, hm.state.Load().cache.len(), "the order of the path, and no other, is cached")

	// A chain with certificates the path does not use, all verifying up to a root, is cached
	// (once, in any order); one with a certificate nobody vouches for is its leaf's one loose
	// entry.
	m, err = New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	reissued := p.root.NewIntermediate(p.issuing.Certificate.Subject.CommonName, mtlstest.WithKey(p.issuing.Key),
		mtlstest.WithCRLDistributionPoints("http://crl.example.test/issuing.crl")).Certificate // not only a new serial
	for _, chain := range [][]*x509.Certificate{append(p.alice.Chain(), reissued, p.root.Certificate), {p.alice.Certificate, p.root.Certificate, reissued, p.issuing.Certificate}} {
		_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", chain...))
		require.NoError(t, err)
	}
	assert.Equal(t, 1, m.state.Load().cache.len())
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", append(p.alice.Chain(), p.other.Certificate)...))
	require.NoError(t, err)
	assert.Equal(t, 2, m.state.Load().cache.len(), "an unvouched certificate makes the acceptance its leaf's loose entry")
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", append(p.alice.Chain(), mtlstest.NewRootCA("Third Root CA").Certificate)...))
	require.NoError(t, err)
	assert.Equal(t, 2, m.state.Load().cache.len(), "which the next one replaces")
}

// TestSameChainMatchesAsASet: the leaf in place, the others as a multiset.
func TestSameChainMatchesAsASet(t *testing.T) {
	id := func(b []byte) []byte { return b }
	l, x, y, z := []byte("leaf"), []byte("x"), []byte("y"), []byte("z")
	tests := []struct {
		name string
		a, b [][]byte
		want bool
	}{
		{name: "same order", a: [][]byte{l, x, y}, b: [][]byte{l, x, y}, want: true},
		{name: "reordered", a: [][]byte{l, y, z, x}, b: [][]byte{l, x, y, z}, want: true},
		{name: "leaf moved", a: [][]byte{x, l, y}, b: [][]byte{l, x, y}},
		{name: "duplicates counted", a: [][]byte{l, x, x}, b: [][]byte{l, x, y}},
		{name: "duplicates reordered", a: [][]byte{l, y, x, x}, b: [][]byte{l, x, y, x}, want: true},
		{name: "shorter", a: [][]byte{l, x}, b: [][]byte{l, x, y}},
		{name: "empty", a: nil, b: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, sameChain(tt.a, tt.b, id))
		})
	}
}

// TestWeakConfiguredKeys: a configured CA whose key a client could not present is refused: from
// files by New and Reload (which keeps the trust in force), from a pool at verification.
func TestWeakConfiguredKeys(t *testing.T) {
	weakRoot := mtlstest.NewRootCA("Weak Root CA", mtlstest.WithKey(rsaKey(t, 1024)))
	strongRoot := mtlstest.NewRootCA("Strong Root CA")
	weakInter := strongRoot.NewIntermediate("Weak Issuing CA", mtlstest.WithKey(rsaKey(t, 1024)))
	dir := t.TempDir()
	weakRootFile := mtlstest.WriteFile(dir, "weak-root.pem", weakRoot.CertPEM())
	weakInterFile := mtlstest.WriteFile(dir, "weak-inter.pem", weakInter.CertPEM())

	for _, tt := range []struct {
		name  string
		cfg   Config
		field string
	}{
		{name: "root file", cfg: Config{RootCAFiles: []string{weakRootFile}}, field: "RootCAFiles[0]"},
		{name: "intermediate file", cfg: Config{RootCAs: strongRoot.Pool(), IntermediateFiles: []string{weakInterFile}}, field: "IntermediateFiles[0]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tt.field, ce.Field)
			assert.Contains(t, err.Error(), "RSA modulus of 1024 bits")
		})
	}

	t.Run("reload keeps the trust in force", func(t *testing.T) {
		file := mtlstest.WriteFile(dir, "roots.pem", strongRoot.CertPEM())
		m, err := New(Config{RootCAFiles: []string{file}, CacheSize: -1})
		require.NoError(t, err)
		leaf := strongRoot.NewClient("grace")
		require.NoError(t, os.WriteFile(filepath.Join(dir, "roots.pem"), weakRoot.CertPEM(), 0o600))
		err = m.Reload()
		var ce *ConfigError
		require.ErrorAs(t, err, &ce)
		assert.Equal(t, "RootCAFiles[0]", ce.Field)
		_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...))
		require.NoError(t, err, "the last good trust is kept")
	})

	for _, tt := range []struct {
		name  string
		cfg   Config
		chain []*x509.Certificate
	}{
		{name: "root pool", cfg: Config{RootCAs: weakRoot.Pool()}, chain: weakRoot.NewClient("henry").Chain()},
		{name: "intermediate pool", cfg: Config{RootCAs: strongRoot.Pool(), Intermediates: weakInter.Pool()},
			chain: []*x509.Certificate{weakInter.NewClient("ivy").Certificate}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(tt.cfg)
			require.NoError(t, err, "a pool is opaque: its keys are checked at verification")
			_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", tt.chain...))
			require.ErrorIs(t, err, ErrUntrusted)
			var e *Error
			require.True(t, errors.As(err, &e))
			assert.Contains(t, e.Detail, "configured CA certificate")
			assert.Contains(t, e.Detail, "RSA modulus of 1024 bits")
		})
	}
}
