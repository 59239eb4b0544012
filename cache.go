package mtls

import (
	"crypto/x509"
	"hash/maphash"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// cache remembers verification outcomes, keyed by what the client presented: the whole chain of
// a TLS connection, or the raw values of a proxy's certificate headers.
//
// Each entry keeps that material as one string, and every hit is confirmed by comparing it byte
// for byte, so neither a hash collision nor a header value that happens to equal a DER chain can
// hand one client another's outcome. The table is set-associative with a fixed number of slots:
// reads are lock-free (one atomic load per way, no shared counter to contend on), and an insert
// into a full set replaces the entry that expires first, so short-lived refusals make room before
// acceptances. Entries expire at the earliest NotAfter of the verified chain, or soon for
// refusals. A trust change replaces the whole cache. Concurrent misses for the same material run
// the verification once.
type cache struct {
	seed maphash.Seed
	sets []cacheSet // empty: the cache stores nothing
	mask uint64

	flight singleflight.Group
}

const cacheWays = 4

type cacheSet [cacheWays]atomic.Pointer[entry]

// entry is immutable once stored.
type entry struct {
	key      uint64
	material string
	id       *Identity
	err      error
	expires  time.Time
}

// Material tags keep the two sources' encodings apart.
const (
	tagChain  = 't'
	tagValues = 'h'
)

// newCache returns a cache holding at least size entries (rounded up to a power of two); size <= 0
// stores nothing.
func newCache(size int) *cache {
	c := &cache{seed: maphash.MakeSeed()}
	if size > 0 {
		n := 1
		for n*cacheWays < size {
			n <<= 1
		}
		c.sets = make([]cacheSet, n)
		c.mask = uint64(n - 1)
	}
	return c
}

// lookupChain returns the key of a presented chain and its live entry, if any.
func (c *cache) lookupChain(presented []*x509.Certificate, now time.Time) (uint64, *entry) {
	var h maphash.Hash
	h.SetSeed(c.seed)
	_ = h.WriteByte(tagChain)
	for _, cert := range presented {
		writeLen(&h, len(cert.Raw))
		_, _ = h.Write(cert.Raw)
	}
	k := h.Sum64()
	return k, c.find(k, now, func(m string) bool {
		if len(m) == 0 || m[0] != tagChain {
			return false
		}
		m = m[1:]
		for _, cert := range presented {
			var ok bool
			if m, ok = cutPiece(m, cert.Raw); !ok {
				return false
			}
		}
		return len(m) == 0
	})
}

// lookupValues returns the key of raw header values and their live entry, if any.
func (c *cache) lookupValues(values []string, now time.Time) (uint64, *entry) {
	var h maphash.Hash
	h.SetSeed(c.seed)
	_ = h.WriteByte(tagValues)
	for _, v := range values {
		writeLen(&h, len(v))
		_, _ = h.WriteString(v)
	}
	k := h.Sum64()
	return k, c.find(k, now, func(m string) bool {
		if len(m) == 0 || m[0] != tagValues {
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
	})
}

// chainMaterial and valuesMaterial encode what lookupChain and lookupValues compare against:
// a tag, then each piece prefixed by its length.
func chainMaterial(presented []*x509.Certificate) string {
	b := []byte{tagChain}
	for _, cert := range presented {
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

// cutPiece checks that m starts with piece in appendPiece's encoding and returns the rest. The
// comparison converts nothing: string(piece) in a comparison does not copy.
func cutPiece[P string | []byte](m string, piece P) (string, bool) {
	if len(m) < 4 {
		return m, false
	}
	n := int(m[0]) | int(m[1])<<8 | int(m[2])<<16 | int(m[3])<<24
	m = m[4:]
	if n != len(piece) || len(m) < n || m[:n] != string(piece) {
		return m, false
	}
	return m[n:], true
}

func writeLen(h *maphash.Hash, n int) {
	_, _ = h.Write([]byte{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)})
}

// find returns the live entry with key k whose material satisfies match.
func (c *cache) find(k uint64, now time.Time, match func(material string) bool) *entry {
	if len(c.sets) == 0 {
		return nil
	}
	set := &c.sets[k&c.mask]
	for i := range set {
		if e := set[i].Load(); e != nil && e.key == k && now.Before(e.expires) && match(e.material) {
			return e
		}
	}
	return nil
}

// fill runs verify once for all concurrent callers presenting the same material, stores the
// outcome and returns it. verify returns the identity or the refusal, and until when that outcome
// may be reused.
func (c *cache) fill(k uint64, material string, now time.Time,
	verify func() (*Identity, time.Time, error)) (*Identity, error) {
	v, _, _ := c.flight.Do(material, func() (any, error) {
		// Another flight may have stored the outcome between our miss and now.
		if e := c.find(k, now, func(m string) bool { return m == material }); e != nil {
			return e, nil
		}
		id, until, err := verify()
		e := &entry{key: k, material: material, id: id, err: err, expires: until}
		c.put(e, now)
		return e, nil
	})
	e := v.(*entry)
	return e.id, e.err
}

// put stores e in its set, in the first empty, expired or same-material way, or else in place of
// the entry that expires first. Concurrent puts may overwrite each other's choice, which only
// costs a later verification.
func (c *cache) put(e *entry, now time.Time) {
	if len(c.sets) == 0 || !now.Before(e.expires) {
		return
	}
	set := &c.sets[e.key&c.mask]
	victim, soonest := 0, time.Time{}
	for i := range set {
		old := set[i].Load()
		if old == nil || !now.Before(old.expires) || old.material == e.material {
			victim = i
			break
		}
		if i == 0 || old.expires.Before(soonest) {
			victim, soonest = i, old.expires
		}
	}
	set[victim].Store(e)
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
