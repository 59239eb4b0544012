package mtls

import (
	"bytes"
	"crypto/elliptic"
	"crypto/x509"
	"net/http"
	"testing"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func authenticate(m *Middleware, chain ...*x509.Certificate) (*Identity, error) {
	return m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", chain...))
}

// TestPathChoiceIsOrderIndependent: a CA cross-signed by two configured roots gives two paths of
// one length; the one taken, and so the issuer a policy sees, is the same whatever the order of
// the presented copies, cached or not.
func TestPathChoiceIsOrderIndependent(t *testing.T) {
	old, nr := mtlstest.NewRootCA("Old Root"), mtlstest.NewRootCA("New Root")
	k := ecKey(t, elliptic.P256())
	byOld := old.NewIntermediate("Shared CA", mtlstest.WithKey(k))
	byNew := nr.NewIntermediate("Shared CA", mtlstest.WithKey(k))
	leaf := byNew.NewClient("carol").Certificate
	roots := x509.NewCertPool()
	roots.AddCert(old.Certificate)
	roots.AddCert(nr.Certificate)
	orders := [][]*x509.Certificate{
		{leaf, byOld.Certificate, byNew.Certificate},
		{leaf, byNew.Certificate, byOld.Certificate},
	}
	path := func(id *Identity) []string {
		var fps []string
		for _, c := range id.Chain {
			fps = append(fps, Fingerprint(c))
		}
		return fps
	}
	var want []string
	for _, tt := range []struct {
		name   string
		cached bool
		first  int
	}{
		{name: "uncached, first order", first: 0},
		{name: "uncached, second order", first: 1},
		{name: "cache filled by the first order", cached: true, first: 0},
		{name: "cache filled by the second order", cached: true, first: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{RootCAs: roots, CacheSize: -1}
			if tt.cached {
				cfg.CacheSize = 0
			}
			m, err := New(cfg)
			require.NoError(t, err)
			for i := range orders {
				id, err := authenticate(m, orders[(tt.first+i)%2]...)
				require.NoError(t, err)
				if want == nil {
					want = path(id)
				}
				assert.Equal(t, want, path(id), "order %d", (tt.first+i)%2)
			}
		})
	}
}

// TestDuplicatePresentedCertificates: copies of the certificates a client presents are dropped
// before the cache and verification, so one client's chain is one entry however often it
// repeats them, and the chain is accepted as without them.
func TestDuplicatePresentedCertificates(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	L, I, R := p.alice.Certificate, p.issuing.Certificate, p.root.Certificate
	for _, chain := range [][]*x509.Certificate{
		{L, I}, {L, I, I}, {L, I, I, I}, {L, I, R}, {L, I, R, R}, {L, L, I}, {L, I, L, R, I}, {L, R, I, R, L},
	} {
		_, err := authenticate(m, chain...)
		require.NoError(t, err, "%d certificates", len(chain))
	}
	assert.Equal(t, 2, m.state.Load().cache.len(), "one entry for {L, I}, one for {L, I, R}")
	assert.Equal(t, []*x509.Certificate{L, I}, distinctCerts([]*x509.Certificate{L, I, L, I}))
	in := []*x509.Certificate{L, I, R}
	assert.Same(t, &in[0], &distinctCerts(in)[0], "no copy without duplicates")
}

// TestSelfIssuedDepthExemption: one self-issued certificate of each name is not counted against
// MaxChainDepth (a key rollover's link certificate); further certificates of that name are.
func TestSelfIssuedDepthExemption(t *testing.T) {
	p := newPKI(t)
	name := p.issuing.Certificate.Subject.CommonName
	s1 := p.issuing.NewIntermediate(name) // "Issuing CA" under "Issuing CA", another key
	s2 := s1.NewIntermediate(name)
	stacked := s2.NewClient("mallory")

	rootName := p.root.Certificate.Subject.CommonName
	newKey := ecKey(t, elliptic.P256())
	oldWithNew := p.root.NewIntermediate(rootName, mtlstest.WithKey(newKey))
	under := oldWithNew.NewIntermediate("Issuing Under New Key")
	rolled := under.NewClient("dan")

	for _, tt := range []struct {
		name  string
		depth int
		chain []*x509.Certificate
		ok    bool
	}{
		{name: "rollover link exempt", depth: 2, chain: rolled.Chain(), ok: true},
		{name: "stacked self-issued counted", depth: 2, chain: stacked.Chain()},
		{name: "stacked self-issued within depth", depth: 3, chain: stacked.Chain(), ok: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(Config{RootCAs: p.root.Pool(), MaxChainDepth: tt.depth, CacheSize: -1})
			require.NoError(t, err)
			_, err = authenticate(m, tt.chain...)
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrUntrusted)
			assert.Contains(t, err.Error(), "CA certificates, at most")
		})
	}
}

// TestP224KeysRefused: P-224 keys, which crypto/x509 parses, are below the floor, presented or
// configured.
func TestP224KeysRefused(t *testing.T) {
	root := mtlstest.NewRootCA("P-224 Root", mtlstest.WithKey(ecKey(t, elliptic.P224())))
	m, err := New(Config{RootCAs: root.Pool(), CacheSize: -1})
	require.NoError(t, err)
	_, err = authenticate(m, root.NewClient("p224").Certificate)
	require.ErrorIs(t, err, ErrUntrusted)
	assert.Contains(t, err.Error(), "P-224")

	_, err = New(Config{RootCAFiles: []string{mtlstest.WriteFile(t.TempDir(), "r.pem", root.CertPEM())}})
	var ce *ConfigError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "RootCAFiles[0]", ce.Field)

	strong := mtlstest.NewRootCA("Strong Root")
	leaf := strong.NewClient("p224leaf", mtlstest.WithKey(ecKey(t, elliptic.P224())))
	m, err = New(Config{RootCAs: strong.Pool(), CacheSize: -1})
	require.NoError(t, err)
	_, err = authenticate(m, leaf.Certificate)
	require.ErrorIs(t, err, ErrUntrusted)
	assert.Contains(t, err.Error(), "P-224")
}

// decoyBag is a valid client's chain with what costs the most to admit: two copies of its
// intermediate, a self-issued decoy of the intermediate's name, decoys of the root's name that
// name the intermediate as their issuer but were signed by another key, and a certificate of
// another name.
func decoyBag(t *testing.T) (roots *x509.CertPool, legit, bag []*x509.Certificate) {
	root := mtlstest.NewRootCA("Root")
	ik := ecKey(t, elliptic.P256())
	i1 := root.NewIntermediate("Issuing", mtlstest.WithKey(ik))
	i2 := root.NewIntermediate("Issuing", mtlstest.WithKey(ik))
	alice := i1.NewClient("alice")
	jk := ecKey(t, elliptic.P256())
	fake := mtlstest.NewRootCA("Issuing", mtlstest.WithKey(jk)) // the intermediate's name, another key
	bag = []*x509.Certificate{alice.Certificate, i1.Certificate, i2.Certificate, fake.Certificate}
	for range 3 {
		bag = append(bag, fake.NewIntermediate("Root").Certificate)
	}
	bag = append(bag, fake.NewIntermediate("Z").Certificate)
	return root.Pool(), alice.Chain(), bag
}

// TestDecoysCostOneTry: a presented candidate whose authority key identifier names no admitted
// CA is not tried again when a CA of its issuer's name is admitted; and a valid client's chain
// with such certificates is verified once, then served from the cache as its leaf's loose entry.
func TestDecoysCostOneTry(t *testing.T) {
	roots, _, bag := decoyBag(t)
	m, err := New(Config{RootCAs: roots})
	require.NoError(t, err)
	before := admitTries.Load()
	id, err := authenticate(m, bag...)
	require.NoError(t, err)
	assert.Equal(t, "alice", id.Leaf.Subject.CommonName)
	// Linked: the two copies, the decoy of their name, the three decoys of the root's name. One
	// copy is admitted, the other, differing only by serial number, is not tried; the decoy of
	// the intermediate's name is retried once the copy is admitted (it has no authority key
	// identifier); the root's decoys name another key.
	assert.Equal(t, int64(5), admitTries.Load()-before, "candidate tries")
	issuer := id.Chain[1]
	swapped := append([]*x509.Certificate{bag[0], bag[2], bag[1]}, bag[3:]...)
	m, err = New(Config{RootCAs: roots})
	require.NoError(t, err)
	id, err = authenticate(m, swapped...)
	require.NoError(t, err)
	assert.Equal(t, issuer.Raw, id.Chain[1].Raw, "the same copy in either order")
	before = admitTries.Load()
	again, err := authenticate(m, bag...)
	require.NoError(t, err)
	assert.Same(t, id, again, "a hit")
	assert.Zero(t, admitTries.Load()-before)
}

// FuzzTBSWithoutSerialValidity: the pieces are parts of the input, in order, and leave out at
// most what lies between them; a TBSCertificate re-encoded with another serial gives the same.
func FuzzTBSWithoutSerialValidity(f *testing.F) {
	p := newPKI(f)
	f.Add(p.issuing.Certificate.RawTBSCertificate)
	f.Add(p.alice.Certificate.RawTBSCertificate)
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x01})
	f.Fuzz(func(t *testing.T, tbs []byte) {
		v, ai, rest, ok := tbsWithoutSerialValidity(tbs)
		if !ok {
			return
		}
		require.LessOrEqual(t, len(v)+len(ai)+len(rest), len(tbs))
		require.True(t, bytes.Contains(tbs, ai) && bytes.HasSuffix(tbs, rest) || len(rest) == 0)
	})
}
