package mtls

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"hash/maphash"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// cache remembers verification outcomes, keyed by the whole presented chain.
//
// The map key is a seeded maphash of the chain (fast, unpredictable to clients); every hit is
// confirmed by comparing the stored chain byte for byte, so a hash collision can never hand one
// client another's identity. Entries expire at the earliest NotAfter of the verified chain (or
// soon, for refusals); when the cache is full an arbitrary entry makes room, preferring expired
// ones. A trust change replaces the whole cache. Concurrent misses for one chain verify once.
type cache struct {
	max  int // <0: nothing is stored
	seed maphash.Seed

	mu      sync.RWMutex
	entries map[uint64]*entry

	flight singleflight.Group
	// flightStrings de-duplicates misses of the header-mode path (keyed by raw header values).
	flightStrings singleflight.Group
}

type entry struct {
	chain   [][]byte // DER of the presented chain, leaf first
	raw     []string // header mode: the raw header values (chain is nil)
	id      *Identity
	err     error
	expires time.Time
}

func newCache(max int) *cache {
	return &cache{max: max, seed: maphash.MakeSeed(), entries: map[uint64]*entry{}}
}

// key hashes the presented chain, each certificate prefixed by its length.
func (c *cache) key(presented []*x509.Certificate) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	var n [8]byte
	for _, cert := range presented {
		binary.LittleEndian.PutUint64(n[:], uint64(len(cert.Raw)))
		_, _ = h.Write(n[:])
		_, _ = h.Write(cert.Raw)
	}
	return h.Sum64()
}

// get returns the live entry for presented, if any.
func (c *cache) get(k uint64, presented []*x509.Certificate, now time.Time) (*entry, bool) {
	c.mu.RLock()
	e := c.entries[k]
	c.mu.RUnlock()
	if e == nil || !now.Before(e.expires) || len(e.chain) != len(presented) {
		return nil, false
	}
	for i, cert := range presented {
		if !bytes.Equal(e.chain[i], cert.Raw) {
			return nil, false
		}
	}
	return e, true
}

// fill runs verify once for all concurrent callers with the same chain and stores the outcome.
// verify returns the identity or the refusal, and until when that outcome may be reused.
func (c *cache) fill(k uint64, presented []*x509.Certificate, now time.Time,
	verify func() (*Identity, time.Time, error)) (*Identity, error) {
	var flightKey []byte
	for _, cert := range presented {
		flightKey = binary.LittleEndian.AppendUint64(flightKey, uint64(len(cert.Raw)))
		flightKey = append(flightKey, cert.Raw...)
	}
	v, _, _ := c.flight.Do(string(flightKey), func() (any, error) {
		// Another flight may have filled the entry between our miss and now.
		if e, ok := c.get(k, presented, now); ok {
			return e, nil
		}
		id, until, err := verify()
		e := &entry{id: id, err: err, expires: until}
		for _, cert := range presented {
			e.chain = append(e.chain, cert.Raw)
		}
		c.put(k, e, now)
		return e, nil
	})
	e := v.(*entry)
	return e.id, e.err
}

func (c *cache) put(k uint64, e *entry, now time.Time) {
	if c.max < 0 || !now.Before(e.expires) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		c.evict(now)
	}
	c.entries[k] = e
}

// evict removes expired entries among a few visited ones, or else the first visited (map
// iteration order is random). Called with mu held.
func (c *cache) evict(now time.Time) {
	const visits = 8
	var first uint64
	removed, i := false, 0
	for k, e := range c.entries {
		if i == 0 {
			first = k
		}
		if !now.Before(e.expires) {
			delete(c.entries, k)
			removed = true
		}
		if i++; i == visits {
			break
		}
	}
	if !removed {
		delete(c.entries, first)
	}
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// keyStrings hashes the raw header values of header mode, each prefixed by its length.
func (c *cache) keyStrings(values []string) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	_ = h.WriteByte('h')
	var n [8]byte
	for _, v := range values {
		binary.LittleEndian.PutUint64(n[:], uint64(len(v)))
		_, _ = h.Write(n[:])
		_, _ = h.WriteString(v)
	}
	return h.Sum64()
}

// getStrings returns the live entry for the raw header values, if any, confirmed by comparing
// the stored values exactly.
func (c *cache) getStrings(k uint64, values []string, now time.Time) (*entry, bool) {
	c.mu.RLock()
	e := c.entries[k]
	c.mu.RUnlock()
	if e == nil || !now.Before(e.expires) || e.chain != nil || len(e.raw) != len(values) {
		return nil, false
	}
	for i, v := range values {
		if e.raw[i] != v {
			return nil, false
		}
	}
	return e, true
}

// fillStrings is fill for header mode: verify runs once for all concurrent callers with the same
// raw header values, which the cache keeps (values must not be modified afterwards).
func (c *cache) fillStrings(k uint64, values []string, now time.Time,
	verify func() (*Identity, time.Time, error)) (*Identity, error) {
	var flightKey []byte
	for _, v := range values {
		flightKey = binary.LittleEndian.AppendUint64(flightKey, uint64(len(v)))
		flightKey = append(flightKey, v...)
	}
	r, _, _ := c.flightStrings.Do(string(flightKey), func() (any, error) {
		if e, ok := c.getStrings(k, values, now); ok {
			return e, nil
		}
		id, until, err := verify()
		e := &entry{raw: values, id: id, err: err, expires: until}
		c.put(k, e, now)
		return e, nil
	})
	e := r.(*entry)
	return e.id, e.err
}
