package mtls

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"golang.org/x/sync/singleflight"
)

// cache remembers verification outcomes, keyed by what a claim presents: the whole chain of a
// TLS connection, or the raw values of a proxy's certificate headers.
//
// An accepted outcome keeps that material as one string, and every hit is confirmed by comparing
// it byte for byte, so neither a hash collision nor a header value that happens to equal a DER
// chain can hand one client another's outcome. A refusal keeps only the SHA-256 digest of the
// material: what a refused client sent is not held in memory. The table is set-associative with a
// fixed number of slots, each key having two sets to choose from: reads are lock-free (one atomic
// load per way, no shared counter to contend on), an insert goes to the set with more room, and
// an insert into two full sets replaces the entry of either that expires first, so short-lived
// refusals make room before acceptances. The bytes held are bounded too: an outcome
// that does not fit is returned but not stored. Entries expire at the earliest NotAfter of the
// verified chain, or soon for refusals. A trust change replaces the whole cache. Concurrent misses
// for the same material run the verification once.
type cache struct {
	seed     maphash.Seed
	sets     []cacheSet // empty: the cache stores nothing
	mask     uint64
	maxBytes int64
	bytes    atomic.Int64 // sum of the sizes of the stored entries

	flight singleflight.Group

	// recent is the per-connection fast path of lookupChain: a slot per recently seen
	// presented chain, holding weak pointers to the very certificate objects presented and to
	// the accepted entry they hit. net/http hands every request of one connection the same
	// parsed certificates, so a repeat request is recognised by comparing pointers instead of
	// hashing and comparing the chain's bytes. A weak pointer yields its object only while the
	// object lives, so no other object, even one later at the same address, ever matches, and a
	// slot keeps nothing alive: not a closed connection's certificates (nor the handshake message
	// they were parsed in), not an evicted entry. A slot answers only while its entry is the one
	// stored in the cache, so eviction, expiry and reloads behave exactly as without it.
	recent     []atomic.Pointer[recentHit]
	recentMask uint64

	// cas interns the CA certificates of verified chains by their DER, so that the identities
	// of many clients of one intermediate share one parsed copy of it rather than each keeping
	// the copy its connection parsed. Only certificates of verified chains are interned, and at
	// most maxInterned of them.
	casMu sync.RWMutex
	cas   map[string]*x509.Certificate // by DER; at most maxInterned
}

// maxInterned bounds the CA certificates a cache interns: more than any deployment's
// intermediates and roots; past it, identities keep their own copies.
const maxInterned = 256

// recentHit is one slot of cache.recent; immutable once stored.
type recentHit struct {
	certs [maxRecentChain]weak.Pointer[x509.Certificate]
	n     int
	e     weak.Pointer[entry]
}

// Bounds of the fast path: chains of at most maxRecentChain presented certificates, and at
// most maxRecentSlots slots (never more than the cache has entries).
const (
	maxRecentChain = 4
	maxRecentSlots = 1024
)

const cacheWays = 4

type cacheSet [cacheWays]atomic.Pointer[entry]

// entry is immutable once stored.
type entry struct {
	key uint64
	// material is what was presented, as chainMaterial or valuesMaterial encode it (accepted
	// header values), or, with digest set, its SHA-256 digest (a refusal); empty for an accepted
	// chain, which keeps chain instead.
	material string
	digest   bool
	// chain is an accepted chain as presented: the DER of each certificate, in the order of the
	// handshake, sharing the bytes of the identity's own certificates, so that what was presented
	// is not kept twice. The slice headers are the entry's own: an identity's Chain or Raw fields
	// replaced by a handler do not change what the entry matches.
	chain [][]byte
	// loose marks an accepted chain entry whose presented certificates are not all vouched for
	// (part of the verified path, or CA certificates that verify up to a root): the client could
	// vary them at will, each variation an acceptance. A leaf has at most one loose entry, under
	// looseKeyOf, each replacing the one before, so that varying them mints no entries, while a
	// client that sends the same extras on every connection is verified once.
	loose   bool
	id      *Identity
	err     error
	expires time.Time
	size    int64
}

// Material tags keep the two sources' encodings apart.
const (
	tagChain  = 't'
	tagValues = 'h'
	tagLoose  = 'l' // of keys only: a leaf's loose entry (looseKeyOf)
)

// Sizes counted for an entry besides its material: the entry itself, and for an acceptance the
// identity and its leaf, a parsed certificate keeping its DER and the structures parsed from it
// (about five times the DER, as BenchmarkCacheMemory measures). Interned CA certificates are
// shared and not counted.
const (
	entryOverhead     = 256
	identityOverhead  = 1536
	certOverheadRatio = 5
)

// newCache returns a cache holding at least size entries (rounded up to a power of two) and about
// maxBytes bytes; size <= 0 stores nothing.
func newCache(size int, maxBytes int64) *cache {
	c := &cache{seed: maphash.MakeSeed(), maxBytes: maxBytes}
	if size > 0 && maxBytes > 0 {
		n := 1
		for n*cacheWays < size {
			n <<= 1
		}
		c.sets = make([]cacheSet, n)
		c.mask = uint64(n - 1)
		r := min(n*cacheWays, maxRecentSlots) // both powers of two
		c.recent = make([]atomic.Pointer[recentHit], r)
		c.recentMask = uint64(r - 1)
	}
	return c
}

// recentSlot is the fast-path slot of a presented chain, nil when the chain cannot take it.
func (c *cache) recentSlot(presented []*x509.Certificate) *atomic.Pointer[recentHit] {
	if len(c.recent) == 0 || len(presented) == 0 || len(presented) > maxRecentChain {
		return nil
	}
	return &c.recent[maphash.Comparable(c.seed, presented[0])&c.recentMask]
}

// recentLookup returns the accepted entry the very same certificate objects hit before, if it
// is live and still the cache's.
func (c *cache) recentLookup(slot *atomic.Pointer[recentHit], presented []*x509.Certificate, now time.Time) *entry {
	r := slot.Load()
	if r == nil || r.n != len(presented) {
		return nil
	}
	for i, cert := range presented {
		if r.certs[i].Value() != cert {
			return nil
		}
	}
	e := r.e.Value()
	if e == nil || !now.Before(e.expires) {
		return nil
	}
	sets, nsets := c.setsOf(e.key)
	for _, set := range sets[:nsets] {
		for i := range set {
			if set[i].Load() == e {
				return e
			}
		}
	}
	return nil
}

// remember puts an accepted entry that presented hit in the fast-path slot.
func (c *cache) remember(slot *atomic.Pointer[recentHit], presented []*x509.Certificate, e *entry) {
	r := &recentHit{n: len(presented), e: weak.Make(e)}
	for i, cert := range presented {
		r.certs[i] = weak.Make(cert)
	}
	slot.Store(r)
}

// lookupChain returns the key of a presented chain and its live entry, if any: through the
// fast path for the certificate objects of a connection seen before, else by the chain's bytes.
func (c *cache) lookupChain(presented []*x509.Certificate, now time.Time) (uint64, *entry) {
	slot := c.recentSlot(presented)
	if slot != nil {
		if e := c.recentLookup(slot, presented, now); e != nil {
			return e.key, e
		}
	}
	k, e := c.lookupChainBytes(presented, now)
	if slot != nil && e != nil && e.err == nil {
		c.remember(slot, presented, e)
	}
	return k, e
}

func (c *cache) lookupChainBytes(presented []*x509.Certificate, now time.Time) (uint64, *entry) {
	k := c.chainKeyOf(presented)
	material := func() string { return chainMaterial(presented) }
	e := c.find(k, now, matchChain(presented), material)
	if e == nil && len(presented) > 1 {
		e = c.find(c.looseKeyOf(presented[0].Raw), now, matchChain(presented), material)
	}
	return k, e
}

// looseKeyOf is the key of the loose entry of a leaf: an acceptance of a presented chain with
// certificates that nothing vouches for (see entry.loose). It depends on the leaf alone, so that
// each loose acceptance of a leaf replaces the previous one.
func (c *cache) looseKeyOf(leaf []byte) uint64 {
	return c.chainKey(tagLoose, maphash.Bytes(c.seed, leaf))
}

// chainKeyOf is the key of a presented chain: of its leaf, and of the certificates after it as a
// set, so that one chain presented in any order is one entry (the order of the candidates does
// not change the outcome: admit does not depend on it). The set's hash is the sum of its members'
// hashes, which no order changes.
func (c *cache) chainKeyOf(presented []*x509.Certificate) uint64 {
	k := uint64(tagChain)
	if len(presented) == 0 {
		return k
	}
	k = c.chainKey(k, maphash.Bytes(c.seed, presented[0].Raw))
	if len(presented) > 1 {
		var sum uint64
		for _, cert := range presented[1:] {
			sum += maphash.Bytes(c.seed, cert.Raw)
		}
		k = c.chainKey(k, sum)
	}
	return k
}

// matchChain confirms an accepted chain entry for presented, byte for byte: the same leaf, and
// the same other certificates in any order (sameChain).
func matchChain(presented []*x509.Certificate) func(*entry) bool {
	return func(e *entry) bool {
		if len(e.chain) != len(presented) || len(presented) == 0 {
			return false
		}
		for i, cert := range presented { // the chain in the same order, as one client presents it
			if !bytes.Equal(cert.Raw, e.chain[i]) {
				return i > 0 && sameChain(presented, e.chain, rawOf)
			}
		}
		return true
	}
}

func rawOf(c *x509.Certificate) []byte { return c.Raw }

// sameChain says whether the presented chains a (whose DER raw returns) and b are one chain: of
// the same length, the same leaf first, and after it the same certificates, each as often, in
// any order. The certificates in the same place, as when one client presents its chain again,
// are compared first, each once.
func sameChain[T any](a []T, b [][]byte, raw func(T) []byte) bool {
	n := len(a)
	if n != len(b) || n == 0 || n > 64 || !bytes.Equal(raw(a[0]), b[0]) {
		return false
	}
	var used uint64 // the certificates of b matched so far
next:
	for i := 1; i < n; i++ {
		x := raw(a[i])
		if bytes.Equal(x, b[i]) {
			used |= 1 << i
			continue
		}
		for j := 1; j < n; j++ {
			if used&(1<<j) == 0 && !bytes.Equal(raw(a[j]), b[j]) && bytes.Equal(x, b[j]) {
				used |= 1 << j
				continue next
			}
		}
		return false
	}
	return true
}

// matchValues confirms an accepted header values entry for values, byte for byte.
func matchValues(values []string) func(*entry) bool {
	return func(e *entry) bool {
		m := e.material
		if e.chain != nil || len(m) == 0 || m[0] != tagValues {
			return false
		}
		m = m[1:]
		for _, v := range values {
			var ok bool
			if m, ok = cutPiece(m, v); !ok {
				return false
			}
		}
		return len(m) == 0
	}
}

// presentedChain returns the chain entry of an identity verified for presented: each presented
// certificate's DER, as the identity's chain holds it, or a copy for one the chain does not use
// (see entrySize).
func presentedChain(presented []*x509.Certificate) func(*Identity) [][]byte {
	return func(id *Identity) [][]byte {
		out := make([][]byte, len(presented))
		for i, p := range presented {
			for _, cert := range id.Chain {
				if bytes.Equal(cert.Raw, p.Raw) {
					out[i] = cert.Raw[:len(cert.Raw):len(cert.Raw)]
					break
				}
			}
			if out[i] == nil {
				out[i] = bytes.Clone(p.Raw)
			}
		}
		return out
	}
}

// lookupValues returns the key of raw header values and their live entry, if any.
func (c *cache) lookupValues(values []string, now time.Time) (uint64, *entry) {
	k := uint64(tagValues)
	for _, v := range values {
		k = c.chainKey(k, maphash.String(c.seed, v))
	}
	return k, c.find(k, now, matchValues(values), func() string { return valuesMaterial(values) })
}

// chainMaterial and valuesMaterial encode what was presented: a tag, then each piece prefixed by
// its length. It keys concurrent verifications and a refusal's digest; accepted header values
// are compared against it, accepted chains against their entry's chain (matchChain). A chain's
// leaf comes first, the other certificates after it in the order of their bytes, so that one
// chain in any order is one material (see chainKeyOf).
func chainMaterial(presented []*x509.Certificate) string {
	b := []byte{tagChain}
	if len(presented) == 0 {
		return string(b)
	}
	b = appendPiece(b, presented[0].Raw)
	rest := slices.Clone(presented[1:])
	slices.SortFunc(rest, func(x, y *x509.Certificate) int { return bytes.Compare(x.Raw, y.Raw) })
	for _, cert := range rest {
		b = appendPiece(b, cert.Raw)
	}
	return string(b)
}

func valuesMaterial(values []string) string {
	b := []byte{tagValues}
	for _, v := range values {
		b = appendPiece(b, []byte(v))
	}
	return string(b)
}

func appendPiece(b, piece []byte) []byte {
	n := len(piece)
	return append(append(b, byte(n), byte(n>>8), byte(n>>16), byte(n>>24)), piece...)
}

// cutPiece checks that m starts with piece in appendPiece's encoding and returns the rest.
func cutPiece(m, piece string) (string, bool) {
	if len(m) < 4 {
		return m, false
	}
	n := int(m[0]) | int(m[1])<<8 | int(m[2])<<16 | int(m[3])<<24
	m = m[4:]
	if n != len(piece) || len(m) < n || m[:n] != piece {
		return m, false
	}
	return m[n:], true
}

// chainKey extends the key k of a sequence of pieces by the hash of one more piece. Each piece
// is hashed in one call (maphash.Bytes and maphash.String hash a long input in one pass, its
// length included), and the sequence by hashing the pair: the order and the boundaries of the
// pieces count. A key only chooses a set; a hit is confirmed byte for byte.
func (c *cache) chainKey(k, piece uint64) uint64 {
	return maphash.Comparable(c.seed, [2]uint64{k, piece})
}

func digestOf(material string) string {
	sum := sha256.Sum256([]byte(material))
	return string(sum[:])
}

// find returns the live entry with key k that match confirms. A refusal's digest is compared with
// the digest of material(), computed only when such an entry has the key.
func (c *cache) find(k uint64, now time.Time, match func(*entry) bool, material func() string) *entry {
	if len(c.sets) == 0 {
		return nil
	}
	sets, nsets := c.setsOf(k)
	var digest string
	for _, set := range sets[:nsets] {
		for i := range set {
			e := set[i].Load()
			if e == nil || e.key != k || !now.Before(e.expires) {
				continue
			}
			if !e.digest {
				if match(e) {
					return e
				}
				continue
			}
			if digest == "" {
				digest = digestOf(material())
			}
			if e.material == digest {
				return e
			}
		}
	}
	return nil
}

// setsOf returns the sets an entry of key k may be stored in: two, chosen by different bits of k
// (one in a table of one set). With two choices, and each insert going to the set with more room,
// as many entries as the table has slots nearly all find one; with a single choice, about a third
// of them would collide out of a full set while other sets stay part empty.
func (c *cache) setsOf(k uint64) (sets [2]*cacheSet, n int) {
	i := k & c.mask
	sets[0] = &c.sets[i]
	if c.mask == 0 {
		return sets, 1
	}
	j := (k >> 32) & c.mask
	if j == i {
		j = i ^ 1
	}
	sets[1] = &c.sets[j]
	return sets, 2
}

// fill runs verify once for all concurrent callers presenting the same material, stores the
// outcome and returns it. verify returns the identity or the refusal, and until when that outcome
// may be reused; a zero time keeps it out of the cache. match confirms an entry for the same
// material, as the look-up that missed did; chainOf, set for a presented chain, gives an
// acceptance's chain entry (see presentedChain). An acceptance that verify says is loose (see
// entry.loose) is stored as its leaf's loose entry, when it is of a presented chain.
func (c *cache) fill(k uint64, material string, match func(*entry) bool, chainOf func(*Identity) [][]byte,
	now time.Time, verify func() (id *Identity, until time.Time, loose bool, err error)) (*Identity, error) {
	v, _, _ := c.flight.Do(material, func() (any, error) {
		// Another flight may have stored the outcome between our miss and now.
		if e := c.find(k, now, match, func() string { return material }); e != nil {
			return e, nil
		}
		id, until, loose, err := verify()
		e := &entry{key: k, material: material, id: id, err: err, expires: until}
		if len(c.sets) == 0 || !now.Before(until) || loose && (err != nil || chainOf == nil) {
			return e, nil // not to be cached
		}
		switch {
		case err != nil:
			e.material, e.digest = digestOf(material), true
		case chainOf != nil:
			if e.chain = chainOf(id); e.chain == nil {
				return e, nil
			}
			e.material = ""
			if loose {
				e.key, e.loose = c.looseKeyOf(e.chain[0]), true
			}
		}
		e.size = c.entrySize(e)
		c.put(e, now)
		return e, nil
	})
	e := v.(*entry)
	return e.id, e.err
}

// same says whether e and o are outcomes of the same material.
func (e *entry) same(o *entry) bool {
	if e.loose || o.loose {
		return e.loose && o.loose && bytes.Equal(e.chain[0], o.chain[0]) // one per leaf
	}
	if e.digest != o.digest || e.material != o.material || len(e.chain) != len(o.chain) {
		return false
	}
	return len(e.chain) == 0 || sameChain(e.chain, o.chain, func(b []byte) []byte { return b })
}

// compact returns a verified chain that keeps no more memory alive than it needs, for an identity
// the cache may hold for the chain's lifetime: a leaf parsed from a larger buffer (crypto/tls
// parses each certificate in place in the handshake message that carried the whole chain) is
// parsed again from a copy of its own bytes, and the CA certificates are shared with every other
// identity under them. chain itself is not modified.
func (c *cache) compact(chain []*x509.Certificate) []*x509.Certificate {
	if len(c.sets) == 0 || len(chain) == 0 {
		return chain
	}
	out := make([]*x509.Certificate, len(chain))
	out[0] = ownBytes(chain[0])
	for i, ca := range chain[1:] {
		out[i+1] = c.intern(ca)
	}
	return out
}

// ownBytes returns cert itself if it holds only its own bytes, else the same certificate parsed
// from a copy of them: a certificate parsed in place keeps alive the whole buffer it points into.
func ownBytes(cert *x509.Certificate) *x509.Certificate {
	if cap(cert.Raw) == len(cert.Raw) {
		return cert
	}
	raw := make([]byte, len(cert.Raw)) // exactly: bytes.Clone may round the capacity up
	copy(raw, cert.Raw)
	if own, err := x509.ParseCertificate(raw); err == nil {
		return own
	}
	return cert
}

// intern returns the shared copy of a CA certificate, making a copy of ca the shared one if there
// is none yet and room for it.
func (c *cache) intern(ca *x509.Certificate) *x509.Certificate {
	c.casMu.RLock()
	shared, ok := c.cas[string(ca.Raw)]
	full := len(c.cas) >= maxInterned
	c.casMu.RUnlock()
	if ok {
		return shared
	}
	ca = ownBytes(ca) // interned or not
	if full {
		return ca
	}
	c.casMu.Lock()
	defer c.casMu.Unlock()
	if shared, ok := c.cas[string(ca.Raw)]; ok {
		return shared
	}
	if len(c.cas) >= maxInterned {
		return ca
	}
	if c.cas == nil {
		c.cas = map[string]*x509.Certificate{}
	}
	c.cas[string(ca.Raw)] = ca
	return ca
}

// shared says whether cert is the interned copy of its certificate.
func (c *cache) shared(cert *x509.Certificate) bool {
	c.casMu.RLock()
	defer c.casMu.RUnlock()
	return c.cas[string(cert.Raw)] == cert
}

// entrySize estimates the bytes an entry keeps alive.
func (c *cache) entrySize(e *entry) int64 {
	n := int64(entryOverhead + len(e.material) + 24*len(e.chain)) // the chain's bytes are its certificates'
	for _, piece := range e.chain {
		if e.id == nil || !slices.ContainsFunc(e.id.Chain, func(c *x509.Certificate) bool { return len(c.Raw) > 0 && len(piece) > 0 && &c.Raw[0] == &piece[0] }) {
			n += int64(len(piece)) // a copy of a presented certificate that the chain does not use
		}
	}
	if e.id != nil {
		n += identityOverhead + int64(e.id.forwardedBytes())
		for _, cert := range e.id.Chain {
			if c.shared(cert) {
				continue
			}
			// cap, not len: a certificate parsed in place keeps alive what it was parsed from.
			n += int64(certOverheadRatio * cap(cert.Raw))
		}
	}
	return n
}

// put stores e in one of its two sets: in place of an entry of the same material, else in an
// empty or expired way of the set with more of them, else in place of the entry of either set
// that expires first, if the bytes bound allows; a refusal never takes the place of a live
// acceptance. Concurrent puts may overwrite each other's choice, which only costs a later
// verification; the byte count stays exact and never passes maxBytes.
func (c *cache) put(e *entry, now time.Time) {
	if len(c.sets) == 0 || !now.Before(e.expires) {
		return
	}
	sets, nsets := c.setsOf(e.key)
	set, victim, old := freeWay(sets[:nsets], e, now)
	if set == nil {
		set, victim, old = soonestWay(sets[:nsets], e)
	}
	if set != nil {
		c.store(set, victim, old, e)
	}
}

// freeWay returns the way for e among sets that holds an entry of the same material, else the
// first empty or expired way of the set with more of them, and what that way held when it was
// read (the CAS expects it); a nil set when none is free.
func freeWay(sets []*cacheSet, e *entry, now time.Time) (set *cacheSet, victim int, old *entry) {
	free := 0
	for _, s := range sets {
		n, first := 0, -1
		var firstOld *entry // what the first free way held when it was read
		for i := range s {
			o := s[i].Load()
			if o != nil && o.same(e) {
				return s, i, o // nothing beats replacing itself
			}
			if o == nil || !now.Before(o.expires) {
				if n++; first < 0 {
					first, firstOld = i, o
				}
			}
		}
		if n > free {
			set, victim, old, free = s, first, firstOld, n
		}
	}
	return set, victim, old
}

// soonestWay returns the way of sets whose entry expires first, and that entry; a refusal never
// takes the place of an acceptance. A nil set when there is none.
func soonestWay(sets []*cacheSet, e *entry) (set *cacheSet, victim int, old *entry) {
	var soonest time.Time
	for _, s := range sets {
		for i := range s {
			o := s[i].Load()
			if o == nil || e.err != nil && o.err == nil {
				continue
			}
			if set == nil || o.expires.Before(soonest) {
				set, victim, soonest, old = s, i, o.expires, o
			}
		}
	}
	return set, victim, old
}

// store puts e in the way victim of set in place of old, if the bytes bound allows and the way
// still holds old.
func (c *cache) store(set *cacheSet, victim int, old, e *entry) {
	freed := int64(0)
	if old != nil {
		freed = old.size
	}
	// Reserve the bytes before storing, so that concurrent puts cannot together pass the bound,
	// and give them back if the way changed meanwhile.
	delta := e.size - freed
	for {
		cur := c.bytes.Load()
		if delta > 0 && cur+delta > c.maxBytes {
			return
		}
		if c.bytes.CompareAndSwap(cur, cur+delta) {
			break
		}
	}
	if !set[victim].CompareAndSwap(old, e) {
		c.bytes.Add(-delta)
	}
}

// len counts stored entries (for tests).
func (c *cache) len() int {
	n := 0
	for i := range c.sets {
		for j := range c.sets[i] {
			if c.sets[i][j].Load() != nil {
				n++
			}
		}
	}
	return n
}
