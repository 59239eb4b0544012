package mtls

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCacheBounds(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool(), CacheSize: 8})
	require.NoError(t, err)
	for i := range 40 {
		_, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.issuing.NewClient("c"+string(rune('a'+i))).Chain()...))
		require.NoError(t, err)
		assert.LessOrEqual(t, m.state.Load().cache.len(), 8)
	}

	off, err := New(Config{RootCAs: p.root.Pool(), CacheSize: -1})
	require.NoError(t, err)
	_, err = off.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	require.NoError(t, err)
	assert.Equal(t, 0, off.state.Load().cache.len())
}

func TestCacheNeverOutlivesTheChain(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	clock := now
	shortLived := p.issuing.NewClient("short", mtlstest.WithValidity(now.Add(-time.Hour), now.Add(time.Hour)))
	m, err := New(Config{RootCAs: p.root.Pool(), Now: func() time.Time { return clock }})
	require.NoError(t, err)

	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", shortLived.Chain()...))
	require.NoError(t, err)
	clock = now.Add(2 * time.Hour)
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", shortLived.Chain()...))
	require.ErrorIs(t, err, ErrExpired)
}

func TestCacheRemembersRefusalsBriefly(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	clock := now
	early := p.issuing.NewClient("early", mtlstest.WithValidity(now.Add(10*time.Second), now.Add(time.Hour)))
	m, err := New(Config{RootCAs: p.root.Pool(), Now: func() time.Time { return clock }})
	require.NoError(t, err)

	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", early.Chain()...))
	require.ErrorIs(t, err, ErrNotYetValid)
	clock = now.Add(11 * time.Second)
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", early.Chain()...))
	require.NoError(t, err, "a not-yet-valid refusal is not remembered past NotBefore")
}

// fillChain fills c for a presented chain as the pipeline does.
func fillChain(c *cache, k uint64, chain []*x509.Certificate, now time.Time, verify func() (*Identity, time.Time, error)) (*Identity, error) {
	return c.fill(k, chainMaterial(chain), matchChain(chain), presentedChain(chain), now, func() (*Identity, time.Time, bool, error) {
		id, until, err := verify()
		return id, until, false, err
	})
}

func TestCacheConfirmsHitsByContent(t *testing.T) {
	p := newPKI(t)
	c := newCache(16, 1<<20)
	now := time.Now()
	chain := p.alice.Chain()
	k, e := c.lookupChain(chain, now)
	require.Nil(t, e)
	_, err := fillChain(c, k, chain, now, func() (*Identity, time.Time, error) { return &Identity{Chain: chain}, now.Add(time.Hour), nil })
	require.NoError(t, err)
	_, e = c.lookupChain(chain, now)
	require.NotNil(t, e)

	// Force other content under the same key: it must not hit.
	match := func(presented []*x509.Certificate) bool {
		return c.find(k, now, matchChain(presented), func() string { return chainMaterial(presented) }) != nil
	}
	assert.True(t, match(chain))
	assert.False(t, match(p.other.NewClient("mallory").Chain()))
	assert.False(t, match(chain[:1]))
	// Header values equal to the DER bytes are another material.
	values := []string{string(chain[0].Raw), string(chain[1].Raw)}
	assert.NotEqual(t, chainMaterial(chain), valuesMaterial(values))
	_, e = c.lookupValues(values, now)
	assert.Nil(t, e)
}

func TestCacheSetPrefersEvictingSoonestExpiry(t *testing.T) {
	c := newCache(1, 1<<20) // one set of cacheWays ways
	now := time.Now()
	for i := range cacheWays {
		c.put(&entry{key: uint64(i), material: string(rune('a' + i)), expires: now.Add(time.Duration(i+1) * time.Hour)}, now)
	}
	require.Equal(t, cacheWays, c.len())
	c.put(&entry{key: 99, material: "new", expires: now.Add(10 * time.Hour)}, now)
	assert.Equal(t, cacheWays, c.len())
	assert.Nil(t, c.find(0, now, func(*entry) bool { return true }, nil), "the entry expiring first made room")
	assert.NotNil(t, c.find(99, now, func(*entry) bool { return true }, nil))
	assert.NotNil(t, c.find(1, now, func(*entry) bool { return true }, nil))
}

func TestConcurrentMissesVerifyOnce(t *testing.T) {
	p := newPKI(t)
	c := newCache(16, 1<<20)
	now := time.Now()
	chain := p.alice.Chain()
	var calls atomic.Int32
	release := make(chan struct{})
	var wg, missed sync.WaitGroup
	for range 1000 {
		wg.Add(1)
		missed.Add(1)
		go func() {
			defer wg.Done()
			k, e := c.lookupChain(chain, now)
			missed.Done()
			if e != nil {
				return
			}
			_, _ = fillChain(c, k, chain, now, func() (*Identity, time.Time, error) {
				calls.Add(1)
				<-release
				return &Identity{Chain: chain}, now.Add(time.Hour), nil
			})
		}()
	}
	missed.Wait() // every request missed the cache before the first verification ends
	close(release)
	wg.Wait()
	assert.Equal(t, int32(1), calls.Load())
}

// TestCacheKeepsNoMaterialOfRefusals: a refusal is remembered by the digest of what was
// presented, so that refused clients cannot fill the memory with their material.
func TestCacheKeepsNoMaterialOfRefusals(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	bulky := bulkyClient(p.other, 12<<10)
	for range 2 {
		_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", bulky.Chain()...))
		require.ErrorIs(t, err, ErrUntrusted)
	}
	c := m.state.Load().cache
	require.Equal(t, 1, c.len(), "the refusal is remembered")
	for _, e := range entries(c) {
		assert.True(t, e.digest)
		assert.Len(t, e.material, 32, "a digest, not the presented chain")
	}
	assert.Less(t, c.bytes.Load(), int64(1<<10))
}

// TestCacheBoundedByBytes: outcomes that would take the cache past CacheMaxBytes are returned
// and not kept.
func TestCacheBoundedByBytes(t *testing.T) {
	p := newPKI(t)
	const budget = 16 << 10
	m, err := New(Config{RootCAs: p.root.Pool(), CacheMaxBytes: budget})
	require.NoError(t, err)
	for i := range 40 {
		id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.issuing.NewClient(fmt.Sprint("client-", i)).Chain()...))
		require.NoError(t, err)
		require.NotNil(t, id)
	}
	c := m.state.Load().cache
	assert.LessOrEqual(t, c.bytes.Load(), int64(budget))
	assert.Less(t, c.len(), 40, "not everything fits")
	assert.Positive(t, c.len())
	var sum int64
	for _, e := range entries(c) {
		sum += e.size
	}
	assert.Equal(t, sum, c.bytes.Load(), "the byte count is exact")
}

// bulkyClient is a client certificate of ca with an extension of n bytes.
func bulkyClient(ca *mtlstest.CA, n int) *mtlstest.Leaf {
	return ca.NewClient("bulky", mtlstest.WithExtension(pkix.Extension{
		Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Value: bytes.Repeat([]byte{0x04}, n)}))
}

// TestCacheSkipsScreenedRefusals: a claim refused by screening (the number of certificates it
// presents, their sizes and keys) takes no room in the cache, from either source.
func TestCacheSkipsScreenedRefusals(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool(), MaxChainDepth: 1})
	require.NoError(t, err)
	tooMany := append(p.alice.Chain(), slices.Repeat([]*x509.Certificate{p.root.Certificate}, 1+presentedSurplus)...) // one more than allowed
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", tooMany...))
	require.ErrorIs(t, err, ErrUntrusted)
	assert.Zero(t, m.state.Load().cache.len())
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", bulkyClient(p.issuing, 20<<10).Certificate))
	require.ErrorIs(t, err, ErrUntrusted)
	assert.Zero(t, m.state.Load().cache.len())

	f := newHeaderFixture(t)
	hm, err := New(Config{RootCAs: p.root.Pool(), MaxChainDepth: 1, Header: &HeaderConfig{
		Format: MustHeaderFormat("rfc9440"), TrustedProxies: []netip.Prefix{f.trusts}}})
	require.NoError(t, err)
	r := mtlstest.Proxy{Format: MustHeaderFormat("rfc9440"), Addr: "10.1.2.3:4000"}.
		NewRequest(http.MethodGet, "/", append(tooMany, p.root.Certificate)...)
	_, err = hm.Authenticate(r)
	require.ErrorIs(t, err, ErrUntrusted)
	assert.Zero(t, hm.state.Load().cache.len())
}

// entries lists the stored entries of c.
func entries(c *cache) []*entry {
	var es []*entry
	for i := range c.sets {
		for j := range c.sets[i] {
			if e := c.sets[i][j].Load(); e != nil {
				es = append(es, e)
			}
		}
	}
	return es
}

// TestCacheKeepsOneLooseEntryPerLeaf: presented certificates the verified chain does not use,
// and that no root vouches for, would make every variation of them a new acceptance held for the
// chain's lifetime: a leaf has one such entry, each variation replacing the one before, and the
// same variation presented again is a hit.
func TestCacheKeepsOneLooseEntryPerLeaf(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	var last []*x509.Certificate
	for i := range 3 {
		junk := mtlstest.NewRootCA(fmt.Sprint("junk ", i)).Certificate
		last = append(p.alice.Chain(), junk)
		id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", last...))
		require.NoError(t, err)
		assert.Equal(t, "alice", id.Leaf.Subject.CommonName)
		assert.Equal(t, 1, m.state.Load().cache.len(), "variation %d replaces the one before", i)
	}
	before := admitTries.Load()
	reordered := []*x509.Certificate{last[0], last[2], last[1]}
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", reparsed(t, reordered)...))
	require.NoError(t, err)
	assert.Equal(t, before, admitTries.Load(), "the last variation, in another order, is a hit")
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", append(p.alice.Chain(), p.root.Certificate)...))
	require.NoError(t, err)
	assert.Equal(t, 2, m.state.Load().cache.len(), "a presented root is part of the chain: an entry of its own")
}

// TestCacheRefusalsNeverEvictAcceptances: in a full set, a refusal finds no room rather than
// taking the place of a live acceptance.
func TestCacheRefusalsNeverEvictAcceptances(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool(), CacheSize: cacheWays}) // one set
	require.NoError(t, err)
	for i := range cacheWays {
		_, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.issuing.NewClient(fmt.Sprint("client-", i)).Chain()...))
		require.NoError(t, err)
	}
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.other.NewClient("mallory").Chain()...))
	require.ErrorIs(t, err, ErrUntrusted)
	es := entries(m.state.Load().cache)
	require.Len(t, es, cacheWays)
	for _, e := range es {
		assert.NoError(t, e.err, "only acceptances are kept")
	}
}

// reparsed returns the same chain as new certificate objects: another connection presenting the
// same bytes.
func reparsed(t *testing.T, chain []*x509.Certificate) []*x509.Certificate {
	t.Helper()
	out := make([]*x509.Certificate, len(chain))
	for i, c := range chain {
		var err error
		out[i], err = x509.ParseCertificate(bytes.Clone(c.Raw))
		require.NoError(t, err)
	}
	return out
}

// TestCacheFastPath: the certificate objects of a connection that hit an accepted entry are
// recognised by identity afterwards, and only while that entry is live and still stored; other
// objects with the same bytes go through the byte comparison; refusals, and chains too long, never
// take the fast path.
func TestCacheFastPath(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	c := newCache(1, 1<<20) // one set: filling it evicts
	chain := p.alice.Chain()
	slot := c.recentSlot(chain)
	require.NotNil(t, slot)
	accept := func(until time.Time) func() (*Identity, time.Time, error) {
		return func() (*Identity, time.Time, error) { return &Identity{Chain: chain}, until, nil }
	}

	k, e := c.lookupChain(chain, now)
	require.Nil(t, e)
	_, err := fillChain(c, k, chain, now, accept(now.Add(time.Hour)))
	require.NoError(t, err)
	assert.Nil(t, c.recentLookup(slot, chain, now), "a fill does not take the slot")
	_, e = c.lookupChain(chain, now)
	require.NotNil(t, e)
	assert.Same(t, e, c.recentLookup(slot, chain, now), "a hit by bytes takes the slot")
	_, again := c.lookupChain(chain, now)
	assert.Same(t, e, again)

	other := reparsed(t, chain)
	assert.Nil(t, c.recentLookup(c.recentSlot(other), other, now), "same bytes, other objects: not by identity")
	_, byBytes := c.lookupChain(other, now)
	assert.Same(t, e, byBytes, "but by bytes")
	otherSlot := c.recentSlot(other)
	assert.Same(t, e, c.recentLookup(otherSlot, other, now), "and then by identity too")
	if otherSlot == slot {
		_, _ = c.lookupChain(chain, now) // the two connections shared a slot: take it back
	}
	require.Same(t, e, c.recentLookup(slot, chain, now))

	assert.Nil(t, c.recentLookup(slot, chain, now.Add(time.Hour)), "expired")
	_, gone := c.lookupChain(chain, now.Add(time.Hour))
	assert.Nil(t, gone)

	for i := range cacheWays { // evict e: every way taken by a later-expiring entry
		c.put(&entry{key: uint64(100 + i), material: fmt.Sprint(i), expires: now.Add(2 * time.Hour)}, now)
	}
	require.Nil(t, c.find(k, now, func(*entry) bool { return true }, nil), "evicted")
	assert.Nil(t, c.recentLookup(slot, chain, now), "the slot does not outlive the cache's entry")
	_, gone = c.lookupChain(chain, now)
	assert.Nil(t, gone)

	refused := newCache(16, 1<<20)
	k, _ = refused.lookupChain(chain, now)
	_, err = fillChain(refused, k, chain, now, func() (*Identity, time.Time, error) {
		return nil, now.Add(time.Minute), ErrUntrusted
	})
	require.ErrorIs(t, err, ErrUntrusted)
	_, e = refused.lookupChain(chain, now)
	require.NotNil(t, e)
	assert.Nil(t, refused.recent[0].Load(), "a refusal takes no slot")
	for i := range refused.recent {
		assert.Nil(t, refused.recent[i].Load())
	}

	long := slices.Repeat(chain, 3)
	assert.Nil(t, c.recentSlot(long), "longer than the fast path takes")
	assert.Nil(t, newCache(-1, 1<<20).recentSlot(chain), "no cache, no fast path")
}

// TestFastPathKeepsPerRequestChecks: requests of one connection taking the fast path still get
// the per-request steps: the deny list, and a reload's new trust.
func TestFastPathKeepsPerRequestChecks(t *testing.T) {
	p := newPKI(t)
	deny := NewDenyList()
	m, err := New(Config{RootCAs: p.root.Pool(), Revocation: &RevocationConfig{DenyList: deny}})
	require.NoError(t, err)
	r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...)
	for range 3 {
		_, err := m.Authenticate(r)
		require.NoError(t, err)
	}
	st := m.state.Load()
	require.NotNil(t, st.cache.recentLookup(st.cache.recentSlot(r.TLS.PeerCertificates), r.TLS.PeerCertificates, time.Now()), "on the fast path")
	deny.Set(DenyCertificate(sha256.Sum256(p.alice.Certificate.Raw)))
	_, err = m.Authenticate(r)
	require.ErrorIs(t, err, ErrRevoked)
}

// TestFastPathOverRealConnections: net/http hands the requests of one keep-alive connection the
// same certificate objects, so the second and later requests take the fast path; a new
// connection with the same certificate is recognised by its bytes, then by its own objects.
func TestFastPathOverRealConnections(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	var mu sync.Mutex
	var fast []bool
	var seen [][]*x509.Certificate
	srv, serverCA := tlsServer(t, m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := m.state.Load().cache
		certs := r.TLS.PeerCertificates
		mu.Lock()
		defer mu.Unlock()
		fast = append(fast, c.recentLookup(c.recentSlot(certs), certs, time.Now()) != nil)
		seen = append(seen, certs)
	}))
	get := func(client *http.Client) {
		res, err := client.Get(srv.URL)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, res.Body)
		require.NoError(t, res.Body.Close())
		require.Equal(t, http.StatusOK, res.StatusCode)
	}
	first := clientFor(serverCA, p.alice)
	for range 3 {
		get(first)
	}
	second := clientFor(serverCA, p.alice)
	for range 2 {
		get(second)
	}
	mu.Lock()
	defer mu.Unlock()
	// The handler runs after the lookup: the first request of a connection finds the slot
	// taken only once its chain hit by bytes (the second request of the first connection, the
	// first of the second connection).
	assert.Equal(t, []bool{false, true, true, true, true}, fast)
	assert.Same(t, seen[0][0], seen[2][0], "one connection, one set of objects")
	assert.NotSame(t, seen[0][0], seen[3][0], "another connection, its own objects")
}

// TestCachedIdentitiesShareCAs: cached identities keep a leaf of their own bytes only, and share
// one copy of each CA certificate, up to the intern bound; the chain a request presented is not
// touched.
func TestCachedIdentitiesShareCAs(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	inPlace := func(leaf *mtlstest.Leaf) []*x509.Certificate { // parsed in one buffer, as crypto/tls does
		msg := append(bytes.Clone(leaf.Certificate.Raw), p.issuing.Certificate.Raw...)
		l, err := x509.ParseCertificate(msg[:len(leaf.Certificate.Raw)])
		require.NoError(t, err)
		i, err := x509.ParseCertificate(msg[len(leaf.Certificate.Raw):])
		require.NoError(t, err)
		return []*x509.Certificate{l, i}
	}
	a, b := inPlace(p.alice), inPlace(p.issuing.NewClient("bob"))
	idA, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", a...))
	require.NoError(t, err)
	idB, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", b...))
	require.NoError(t, err)

	require.Len(t, idA.Chain, 3)
	assert.Same(t, idA.Chain[1], idB.Chain[1], "one intermediate")
	assert.Same(t, idA.Chain[2], idB.Chain[2], "one root")
	assert.Equal(t, len(idA.Leaf.Raw), cap(idA.Leaf.Raw), "the leaf keeps its own bytes only")
	assert.Equal(t, len(idA.Chain[1].Raw), cap(idA.Chain[1].Raw))
	assert.Equal(t, a[0].Raw, idA.Leaf.Raw)
	assert.Greater(t, cap(a[0].Raw), len(a[0].Raw), "the presented chain is left as it was")

	c := newCache(16, 1<<20)
	for i := range maxInterned + 10 {
		c.intern(p.issuing.NewClient(fmt.Sprint(i)).Certificate)
	}
	assert.Len(t, c.cas, maxInterned)
	extra := p.issuing.NewClient("extra").Certificate
	assert.Same(t, extra, c.intern(extra), "past the bound: not interned")
	assert.Same(t, idA.Chain[1], m.state.Load().cache.intern(b[1]))
}

// TestFastPathKeepsNothingAlive: a slot holds the certificates of a connection weakly, so once
// the connection is gone they (and the handshake message they were parsed in) are collected; a
// failed handshake that hit the cache pins nothing.
func TestFastPathKeepsNothingAlive(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	c := newCache(16, 1<<20)
	chain := p.alice.Chain()
	k, _ := c.lookupChain(chain, now)
	_, err := fillChain(c, k, chain, now, func() (*Identity, time.Time, error) { return &Identity{Chain: chain}, now.Add(time.Hour), nil })
	require.NoError(t, err)

	var slot *atomic.Pointer[recentHit]
	func() {
		conn := reparsed(t, chain) // another connection's objects, gone when this returns
		slot = c.recentSlot(conn)
		_, e := c.lookupChain(conn, now)
		require.NotNil(t, e)
		require.Same(t, e, c.recentLookup(slot, conn, now))
	}()
	runtime.GC()
	r := slot.Load()
	require.NotNil(t, r)
	for i := range r.n {
		assert.Nil(t, r.certs[i].Value(), "certificate %d collected", i)
	}
	assert.NotNil(t, r.e.Value(), "the entry lives on in the cache")
	runtime.KeepAlive(c)
}

// TestCacheTwoChoices: entries whose keys share a first set spread over their second sets, so a
// table takes as many of them as it has slots; past that, the one that expires first of both
// sets makes room.
func TestCacheTwoChoices(t *testing.T) {
	c := newCache(2*cacheWays, 1<<20) // two sets
	require.Len(t, c.sets, 2)
	now := time.Now()
	key := uint64(1)<<32 | 0 // first set 0, second set 1
	stored := func(m string) bool {
		return c.find(key, now, func(e *entry) bool { return e.material == m }, func() string { return m }) != nil
	}
	for i := range 2 * cacheWays {
		c.put(&entry{key: key, material: fmt.Sprint("m", i), expires: now.Add(time.Duration(i+1) * time.Hour), size: 1}, now)
	}
	assert.Equal(t, 2*cacheWays, c.len(), "both sets filled")
	for i := range 2 * cacheWays {
		assert.True(t, stored(fmt.Sprint("m", i)), i)
	}
	c.put(&entry{key: key, material: "late", expires: now.Add(time.Hour + time.Minute), size: 1}, now)
	assert.True(t, stored("late"))
	assert.False(t, stored("m0"), "the entry of both sets that expired first made room")
	for i := 1; i < 2*cacheWays; i++ {
		assert.True(t, stored(fmt.Sprint("m", i)), i)
	}

	one := newCache(cacheWays, 1<<20)
	sets, n := one.setsOf(key)
	assert.Equal(t, 1, n, "a table of one set has one choice")
	assert.Same(t, &one.sets[0], sets[0])
	sets, n = c.setsOf(0) // both choices in set 0: the second is the other set
	assert.Equal(t, 2, n)
	assert.NotSame(t, sets[0], sets[1])
}

// TestCacheKeepsNoCopyOfAcceptedChains: an accepted chain's entry holds the presented DER as the
// identity's certificates hold it, not a copy, in slice headers of its own: a handler that
// rewrites the fields of its (shared) identity does not change what the entry matches.
func TestCacheKeepsNoCopyOfAcceptedChains(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	chain := p.alice.Chain()
	id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", chain...))
	require.NoError(t, err)
	es := entries(m.state.Load().cache)
	require.Len(t, es, 1)
	e := es[0]
	assert.Empty(t, e.material)
	require.Len(t, e.chain, len(chain))
	for i := range chain {
		assert.Equal(t, chain[i].Raw, e.chain[i])
		assert.Same(t, &id.Chain[i].Raw[0], &e.chain[i][0], "shared with the identity's certificate")
	}

	mallory := p.other.NewClient("mallory")
	id.Chain[0], id.Leaf = mallory.Certificate, mallory.Certificate
	id.Chain = id.Chain[:1]
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", mallory.Chain()...))
	require.ErrorIs(t, err, ErrUntrusted)
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", reparsed(t, chain)...))
	require.NoError(t, err, "alice still hits")
}

// TestCacheBytesBoundUnderConcurrentPuts: puts racing for the last bytes never together pass the
// bound, and the count stays the sum of what is stored.
func TestCacheBytesBoundUnderConcurrentPuts(t *testing.T) {
	const size, room = 100, 10
	now := time.Now()
	for round := range 20 {
		c := newCache(1024, size*room)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 50 {
					k := uint64(round<<20 | g<<10 | i)
					c.put(&entry{key: k, material: fmt.Sprint(k), expires: now.Add(time.Hour), size: size}, now)
				}
			})
		}
		wg.Wait()
		var stored int64
		for _, e := range entries(c) {
			stored += e.size
		}
		require.Equal(t, stored, c.bytes.Load())
		require.LessOrEqual(t, stored, int64(size*room))
	}
}
