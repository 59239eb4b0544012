package mtls

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/maphash"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Slowing of refused clients. A client that presents the same certificate again and again and
// is refused each time (a misconfigured job polling with an expired certificate, a revoked
// certificate still in use, a script retrying an untrusted one) is answered 429
// "too_many_refusals" once it was refused Limit times within Window, before its certificate is
// screened, looked up or verified, until the window ends. The table of refusals belongs to the
// state (reload.go): a reload that swaps the trust starts an empty one, a failed reload keeps it.

// RefusalThrottleConfig turns on the slowing of refused clients ([Config.RefusalThrottle]): once
// the same presented certificate has been refused Limit times within Window for a fault of its
// own, its further requests are answered 429 "too_many_refusals" ([ErrTooManyRefusals]) with a
// Retry-After header, without being screened, looked up in the cache or verified (from a proxy,
// its header values are at most decoded, to find the leaf), until Window has passed since the
// first of those refusals; then it is judged again.
//
// What counts: the refusals that are the certificate's own fault (certificate_required,
// certificate_untrusted, certificate_expired, certificate_not_yet_valid,
// certificate_wrong_usage, certificate_revoked, header_malformed). Not counted:
// revocation_unavailable (the responder's fault, not the client's), policy_denied and the
// principal mapping's refusals (a client may be allowed on one route and denied on another, and
// must not be slowed on the first), misdirected_request, credentials_required, and the 429s
// themselves (so that a client polling while slowed is judged again once the window ends). An
// acceptance does not clear the count: a client alternating an accepted request with refused
// ones would otherwise never reach the limit. Refusals at the claim step itself (a proxy's header
// sent twice, or too large) cost nothing to repeat and are not counted, nor are refusals at the
// TLS handshake ([RejectAtHandshake]). A certificate is counted and slowed by every entry point,
// [Middleware.Authenticate] included; [Middleware.Either] with
// [DangerouslyFallBackOnInvalidCertificate] lets the credentials decide a slowed certificate's
// request as it does a refused one's.
//
// What the key is: the SHA-256 of the leaf's DER, on a TLS connection as presented, and from a
// trusted proxy (header mode) as decoded from the certificate header values (decoded, not
// parsed): one certificate is one key however the proxy wrote it (another chain beside it,
// earlier XFCC elements, another proxy's encoding) and whether it came through a proxy or
// directly. Header values that do not decode are keyed by their own SHA-256 (their refusal
// costs no verification); values that say "no certificate" are not counted, and neither is the
// proxy's address, which carries every client behind it. With no certificate on a TLS
// connection (or no TLS), the key is the address of the connection's peer, which [ConnContext]
// records (else r.RemoteAddr, if it is "ip:port" as net/http sets it), and only for the
// refusals of [Middleware.Handler] and [Middleware.Both] ([Middleware.Either] hands such a
// request to the credentials, and [Middleware.Authenticate] to its caller); a peer within
// [HeaderConfig.TrustedProxies] is never keyed by its address. The table holds the keys
// themselves (128 bits of the SHA-256), never an accepted client's: a client whose certificate
// is accepted is slowed only by refusals of that very certificate. A direct client of a
// service whose proxies are trusted by their certificate ([HeaderConfig.ProxyPolicy]) is
// slowed before its chain is verified as a proxy's.
//
// What it costs: while no key is at its limit, one atomic load a request. While one is, a
// request that is not slowed costs, over TLS, a maphash of its leaf and a bit test; from a
// proxy, a maphash of the header values and a look-up of what they decode to (the table
// remembers it for a few thousand values; values it does not know yet are decoded, a few
// microseconds). A slowed request costs about what a cached refusal does.
//
// The table is bounded: it holds at most MaxTracked keys, apart from the verification cache
// (nothing is inserted into or evicted from the cache for it), in maps that grow to that bound
// and no further, about 100 bytes a key, however many distinct keys pass through it (a map is
// made anew once it deleted as many keys as it holds); the header values it remembers take at
// most 256 KiB more. When it is full, a new key takes the place of one of a few keys sampled at
// random: one whose window has passed, else the one with the fewest refusals below the limit; a
// key at its limit within its window is never replaced, so that a flood of one-off
// certificates cannot push out a repeat offender. If every sampled key is at its limit, the new
// key is not tracked: its refusal is not counted.
//
// It is off by default (a nil [Config.RefusalThrottle]): a refusal is already cheap to repeat
// (refusals are cached for a minute, and screened before any signature is checked), a 429
// changes what clients and monitors see for a certificate that is refused anyway, and a client
// minting a new certificate for each request is not slowed by it. Turn it on to spare the
// verification of chains that clients keep presenting after they were refused, and to tell them
// to back off.
type RefusalThrottleConfig struct {
	// Limit is how many refusals of one key within Window are judged; the next ones are
	// answered 429 until Window has passed since the first. Lower slows sooner, and lets a
	// client whose certificate was briefly refused (not yet valid, then valid) wait longer.
	// Default 20, at most 1,048,576.
	Limit int
	// Window is the period over which refusals are counted, from a key's first refusal; it is
	// also the longest a key is slowed, and so the longest Retry-After. Default 1 minute, at
	// most 24 hours.
	Window time.Duration
	// MaxTracked bounds the keys the table holds, and so its memory: 96 bytes a key, measured
	// with a flood of 3 million distinct keys through the default table (6.3 MB, the same as
	// when it was first full). Past it, new keys replace the weakest (see above) or are not
	// counted: a flood of distinct certificates costs no more memory and slows no one else.
	// Default 65,536, at most 16,777,216.
	MaxTracked int
}

// ErrTooManyRefusals: the certificate (or, without one, the peer address) was refused too often
// within the window of [Config.RefusalThrottle]; the request was answered 429 without being
// verified.
var ErrTooManyRefusals = errors.New("mtls: too many refusals")

// ReasonTooManyRefusals is the reason code of [ErrTooManyRefusals].
const ReasonTooManyRefusals = "too_many_refusals"

// Defaults of RefusalThrottleConfig.
const (
	defaultRefusalLimit      = 20
	defaultRefusalWindow     = time.Minute
	defaultRefusalMaxTracked = 1 << 16
)

// Upper bounds of RefusalThrottleConfig: a count that fits its int32, a Retry-After a client may
// be told, and a table whose bound is memory a process has.
const (
	maxRefusalLimit      = 1 << 20
	maxRefusalWindow     = 24 * time.Hour
	maxRefusalMaxTracked = 1 << 24
)

// refusalConfig is a RefusalThrottleConfig checked by New.
type refusalConfig struct {
	limit      int
	window     time.Duration
	maxTracked int
}

// compileRefusals checks cfg; nil (off) for a nil cfg.
func compileRefusals(p *problems, cfg *RefusalThrottleConfig) *refusalConfig {
	if cfg == nil {
		return nil
	}
	rc := &refusalConfig{
		limit:      number(p, "RefusalThrottle.Limit", cfg.Limit, defaultRefusalLimit, false),
		window:     number(p, "RefusalThrottle.Window", cfg.Window, defaultRefusalWindow, false),
		maxTracked: number(p, "RefusalThrottle.MaxTracked", cfg.MaxTracked, defaultRefusalMaxTracked, false),
	}
	if rc.limit > maxRefusalLimit {
		p.addf("RefusalThrottle.Limit", "%d is more than %d", rc.limit, maxRefusalLimit)
		rc.limit = defaultRefusalLimit
	}
	if rc.window > maxRefusalWindow {
		p.addf("RefusalThrottle.Window", "%v is more than %v", rc.window, maxRefusalWindow)
		rc.window = defaultRefusalWindow
	}
	if rc.maxTracked > maxRefusalMaxTracked {
		p.addf("RefusalThrottle.MaxTracked", "%d is more than %d", rc.maxTracked, maxRefusalMaxTracked)
		rc.maxTracked = defaultRefusalMaxTracked
	}
	return rc
}

// refusalKey is what refusals are counted by: the kind of key and 128 bits of it.
type refusalKey struct {
	kind byte // 0: not computed; refusalKeyLeaf, refusalKeyValues, refusalKeyAddr, refusalKeyNone
	sum  [16]byte
}

const (
	// sum: the first 16 bytes of the SHA-256 of the leaf's DER, as presented on the connection or
	// as decoded from a proxy's header: one certificate is one key, however it came.
	refusalKeyLeaf   = 'c'
	refusalKeyValues = 'h' // sum: of the SHA-256 of header values that do not decode (valuesKey)
	refusalKeyAddr   = 'a' // sum: the peer's address, As16
	refusalKeyNone   = '-' // nothing to count by
)

// claimKey is a claim's key among refusals, with what the gate and the event need of it,
// computed once per request and only when needed.
type claimKey struct {
	key refusalKey
	// fp is the key's bit in the table's filter (hotFilter): the maphash of the leaf's DER, or
	// of the header values that do not decode; hashed says it is computed (before key, over TLS).
	hashed bool
	fp     uint64
	sum    [sha256.Size]byte // the SHA-256 of the leaf's DER (refusalKeyLeaf)
}

// refusalCount is one key's window.
type refusalCount struct {
	start int64 // when the window began, UnixNano
	n     int32 // refusals within it
}

// refusalShards is the most maps the table is split into, each with its own lock.
const refusalShards = 32

// refusalSample is how many keys a full map looks at to find one to replace.
const refusalSample = 8

// refusalMemo is the room for the header values the table remembers the key of
// (refusalShard.memo), in all its shards: as many as the verification cache holds entries by
// default. Each shard's map holds 7/8 of its share, the most a map holds before it grows: 3,584
// values, about 256 KiB.
const refusalMemo = 4096

// refusalTable counts the refusals of keys under one state.
type refusalTable struct {
	cfg   refusalConfig
	seed  maphash.Seed // picks a key's shard; the fingerprints of the filter and the memo
	seed2 maphash.Seed // the memo's second 64 bits of header values
	// hot is the end of the latest window of a key at its limit (UnixNano): before it, a claim
	// is looked up; after it, no key can be slowed and the check costs one atomic load.
	hot     atomic.Int64
	filter  hotFilter
	per     int // keys per shard
	memoPer int // remembered header values per shard
	shards  []refusalShard
}

type refusalShard struct {
	mu sync.Mutex
	m  map[refusalKey]refusalCount
	// deleted counts the keys deleted from m since it was made: a Go map keeps the room of what
	// it deleted, so m is made anew once they are as many as it may hold (room).
	deleted int
	// memo is what header values decode to (their key), by 128 bits of maphash of the values:
	// the gate of a request from a proxy while a key is slowed costs a look-up here rather than
	// a decoding. Emptied when full.
	memo map[[2]uint64]claimKey
	_    [32]byte // a shard's lock off its neighbours' cache line
}

// newTable returns an empty table, nil when slowing is off.
func (cfg *refusalConfig) newTable() *refusalTable {
	if cfg == nil {
		return nil
	}
	n := refusalShards
	for n > 1 && cfg.maxTracked/n < 64 {
		n /= 2
	}
	t := &refusalTable{cfg: *cfg, seed: maphash.MakeSeed(), seed2: maphash.MakeSeed(), per: cfg.maxTracked / n,
		memoPer: refusalMemo / n * 7 / 8, shards: make([]refusalShard, n)}
	t.filter.init(cfg.maxTracked)
	return t
}

// shard returns the shard of k.
func (t *refusalTable) shard(k *refusalKey) *refusalShard {
	return &t.shards[maphash.Comparable(t.seed, *k)%uint64(len(t.shards))]
}

// len is the number of keys held.
func (t *refusalTable) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// hotAt says whether a key may be at its limit at now.
func (t *refusalTable) hotAt(now time.Time) bool { return now.UnixNano() < t.hot.Load() }

// ofLeaf fills ck with the key of the leaf of DER der.
func (t *refusalTable) ofLeaf(der []byte, ck *claimKey) {
	if !ck.hashed {
		ck.fp, ck.hashed = maphash.Bytes(t.seed, der), true
	}
	ck.sum = sha256.Sum256(der)
	ck.key.kind = refusalKeyLeaf
	copy(ck.key.sum[:], ck.sum[:])
}

// slowed is the gate of the pipeline: it answers a claim whose key is at its limit with
// ErrTooManyRefusals, before anything else is done with it; ck receives what was computed of the
// claim's key. While no key is at its limit it costs one atomic load. While one is, over TLS a
// maphash of the leaf and a bit of the filter; from a proxy, a maphash of the header values and
// a look-up of their key (a decoding of the values, not a parse, the first time).
func (m *Middleware) slowed(st *state, c *claim, ck *claimKey, now time.Time) error {
	t := st.refusals
	if t == nil || !t.hotAt(now) {
		return nil
	}
	if c.source == SourceHeader {
		m.headerKey(t, c, ck, nil)
		if ck.key.kind == refusalKeyNone || !t.filter.has(ck.fp) {
			return nil
		}
	} else {
		der := c.certs[0].Raw
		ck.fp, ck.hashed = maphash.Bytes(t.seed, der), true
		if !t.filter.has(ck.fp) {
			return nil
		}
		t.ofLeaf(der, ck)
	}
	e := t.check(&ck.key, now)
	if e == nil {
		return nil
	}
	if c.source == SourceTLS {
		e.Leaf = c.certs[0] // parsed by crypto/tls: its names are the client's word, as for any refusal
	}
	return e
}

// slowedPeer says whether the leaf of a direct connection is slowed: a proxy trusted by its
// certificate is not verified as one then (trustedPeer), and the claim's gate answers it.
func (m *Middleware) slowedPeer(st *state, certs []*x509.Certificate, now time.Time) bool {
	var ck claimKey
	return m.slowed(st, &claim{source: SourceTLS, certs: certs}, &ck, now) != nil
}

// countRefusal records the refusal err of a claim, if it counts; ck is what the gate computed of
// the claim's key, completed here.
func (m *Middleware) countRefusal(st *state, c *claim, ck *claimKey, err error, now time.Time) {
	t := st.refusals
	if t == nil || !counted(err) {
		return
	}
	switch {
	case ck.key.kind != 0:
	case c.source == SourceHeader:
		m.headerKey(t, c, ck, err)
	default:
		t.ofLeaf(c.certs[0].Raw, ck)
	}
	t.record(ck, now)
}

// headerKey fills ck with the key of header claim c, once: as remembered for the same values,
// else of the leaf they decode to (the refused leaf of err when it has one, which was decoded
// from them), else, for values that do not decode, of the values themselves (valuesKey).
func (m *Middleware) headerKey(t *refusalTable, c *claim, ck *claimKey, err error) {
	if ck.key.kind != 0 {
		return
	}
	tag := t.tagOf(c.headerValues())
	s := &t.shards[tag[0]%uint64(len(t.shards))]
	s.mu.Lock()
	known, ok := s.memo[tag]
	s.mu.Unlock()
	if ok {
		*ck = known
		return
	}
	var e *Error
	if errors.As(err, &e) && e.Leaf != nil {
		t.ofLeaf(e.Leaf.Raw, ck)
	} else {
		own := *c // a claim handed to the format escapes: a copy, made here only, keeps the caller's on its stack
		switch ders, _, err := m.decodeHeader(&own); {
		case err != nil:
			valuesKey(c.headerValues(), &ck.key)
			ck.fp, ck.hashed = tag[0], true
		case len(ders) == 0:
			ck.key.kind = refusalKeyNone
		default:
			t.ofLeaf(ders[0], ck)
		}
	}
	s.mu.Lock()
	if len(s.memo) >= t.memoPer {
		clear(s.memo) // a map emptied by clear keeps no room of what it held
	}
	if s.memo == nil {
		s.memo = make(map[[2]uint64]claimKey)
	}
	s.memo[tag] = *ck
	s.mu.Unlock()
}

// tagOf is 128 bits of maphash of header values, under two seeds, by which the memo knows them.
func (t *refusalTable) tagOf(values []string) [2]uint64 {
	var tag [2]uint64
	for _, v := range values {
		tag[0] = maphash.Comparable(t.seed, [2]uint64{tag[0], maphash.String(t.seed, v)})
		tag[1] = maphash.Comparable(t.seed2, [2]uint64{tag[1], maphash.String(t.seed2, v)})
	}
	return tag
}

// valuesKey fills k with the key of header values that do not decode: the SHA-256 of the values
// themselves. A client can vary them at will, but their refusal costs no verification.
func valuesKey(values []string, k *refusalKey) {
	h := sha256.New()
	var n [4]byte
	for _, v := range values {
		binary.BigEndian.PutUint32(n[:], uint32(len(v)))
		h.Write(n[:])
		_, _ = io.WriteString(h, v)
	}
	var sum [sha256.Size]byte
	k.kind = refusalKeyValues
	copy(k.sum[:], h.Sum(sum[:0]))
}

// check returns the refusal of a request with key k at now if k is at its limit within its
// window, else nil.
func (t *refusalTable) check(k *refusalKey, now time.Time) *Error {
	if k.kind == refusalKeyNone {
		return nil
	}
	s := t.shard(k)
	s.mu.Lock()
	rc, ok := s.m[*k]
	s.mu.Unlock()
	at := now.UnixNano()
	end := windowEnd(rc.start, t.cfg.window)
	if !ok || int(rc.n) < t.cfg.limit || at >= end || at < rc.start {
		return nil
	}
	wait := time.Duration(end - at)
	e := newError(ErrTooManyRefusals, t.detail(k, rc.n, wait), nil)
	e.Step, e.RetryAfter = stepClaim, wait
	return e
}

// detail is the detail of the refusal of k, refused n times and slowed for wait more, written
// into one buffer.
func (t *refusalTable) detail(k *refusalKey, n int32, wait time.Duration) string {
	var b strings.Builder
	b.Grow(320)
	k.writeTo(&b)
	b.WriteString(" was refused ")
	b.WriteString(strconv.Itoa(int(n)))
	b.WriteString(" times within ")
	b.WriteString(t.cfg.window.String())
	b.WriteString("; it is answered 429 without being verified for ")
	b.WriteString(wait.Round(time.Millisecond).String())
	b.WriteString(" more, when the window that began at its first refusal ends (Config.RefusalThrottle: Limit ")
	b.WriteString(strconv.Itoa(t.cfg.limit))
	b.WriteString(", Window ")
	b.WriteString(t.cfg.window.String())
	b.WriteString(")")
	return b.String()
}

// windowEnd is when the window that began at start ends, UnixNano, at most math.MaxInt64.
func windowEnd(start int64, window time.Duration) int64 {
	if start > math.MaxInt64-int64(window) {
		return math.MaxInt64
	}
	return start + int64(window)
}

// String names k for a log: the prefix of a fingerprint (of the leaf's DER, as Event.SHA256
// has it in full, or of the header values), or an address.
func (k *refusalKey) String() string {
	var b strings.Builder
	k.writeTo(&b)
	return b.String()
}

func (k *refusalKey) writeTo(b *strings.Builder) {
	var hexed [16]byte
	switch k.kind {
	case refusalKeyAddr:
		b.WriteString("a request without a certificate from ")
		b.WriteString(netip.AddrFrom16(k.sum).Unmap().String())
		return
	case refusalKeyValues:
		b.WriteString("the certificate header values (which do not decode) of SHA-256 ")
	default:
		b.WriteString("the certificate of SHA-256 ")
	}
	hex.Encode(hexed[:], k.sum[:8])
	b.Write(hexed[:])
	b.WriteString("...")
}

// counted says whether err is a refusal that is the certificate's own fault, which counts
// toward slowing its key. What is not counted is ruled out first: an error that wraps both
// kinds is not counted.
func counted(err error) bool {
	if err == nil {
		return false
	}
	for _, kind := range []error{ErrTooManyRefusals, ErrRateLimited, ErrRevocationUnavailable, ErrDenied, ErrMisdirected, ErrCredentials} {
		if errors.Is(err, kind) {
			return false
		}
	}
	for _, kind := range []error{ErrNoCertificate, ErrUntrusted, ErrExpired, ErrNotYetValid, ErrWrongUsage, ErrRevoked, ErrMalformedHeader} {
		if errors.Is(err, kind) {
			return true
		}
	}
	return false
}

// record counts one refusal of ck's key at now; a key that reaches its limit gets its bit in
// the filter, and makes the table hot until its window ends.
func (t *refusalTable) record(ck *claimKey, now time.Time) {
	k := &ck.key
	if k.kind == refusalKeyNone {
		return
	}
	at := now.UnixNano()
	s := t.shard(k)
	s.mu.Lock()
	rc, ok := s.m[*k]
	switch {
	case ok && at >= rc.start && at < windowEnd(rc.start, t.cfg.window):
		if int(rc.n) < t.cfg.limit {
			rc.n++
		}
	case !ok && !s.room(t, at):
		s.mu.Unlock()
		return // every key sampled is at its limit: this one is not tracked
	default: // a new key, or a window that passed (or a clock set back): a new window
		rc = refusalCount{start: at, n: 1}
	}
	if s.m == nil {
		s.m = make(map[refusalKey]refusalCount)
	}
	s.m[*k] = rc
	s.mu.Unlock()
	if int(rc.n) < t.cfg.limit {
		return
	}
	if ck.hashed {
		t.filter.add(ck.fp, at, t.cfg.window) // before hot: a gate that sees the table hot sees the bit
	}
	end := windowEnd(rc.start, t.cfg.window)
	for {
		hot := t.hot.Load()
		if end <= hot || t.hot.CompareAndSwap(hot, end) {
			break
		}
	}
}

// room makes room for a new key in a full shard, and says whether there is: it looks at a few
// keys (a map's iteration starts at a random place) and removes one whose window has passed,
// else the one with the fewest refusals below the limit. A key at its limit within its window
// stays. Once the shard deleted as many keys as it holds, its map is made anew, at its size.
func (s *refusalShard) room(t *refusalTable, at int64) bool {
	if len(s.m) < t.per {
		return true
	}
	var victim refusalKey
	found, fewest, seen := false, int32(t.cfg.limit), 0
	for k, rc := range s.m {
		if at >= windowEnd(rc.start, t.cfg.window) || at < rc.start {
			victim, found = k, true
			break
		}
		if rc.n < fewest {
			victim, found, fewest = k, true, rc.n
		}
		if seen++; seen >= refusalSample {
			break
		}
	}
	if !found {
		return false
	}
	delete(s.m, victim)
	if s.deleted++; s.deleted >= t.per {
		fresh := make(map[refusalKey]refusalCount, len(s.m)+1)
		for k, rc := range s.m {
			fresh[k] = rc
		}
		s.m, s.deleted = fresh, 0
	}
	return true
}

// hotFilter holds a bit for each key at its limit (its fingerprint, claimKey.fp), so that while
// one is slowed the gate of every other claim costs a bit test rather than a SHA-256 and a
// look-up. Its bits are set in one of two generations of a Window each, and a generation is
// emptied when a third begins: a key's bit stays at least until its window ends (it was set
// within the window). A bit set may be another key's, or outlive its key: the key is then looked
// up in vain. Setting is rare (a key reaching its limit) and locked; reading is two atomic loads.
type hotFilter struct {
	mu    sync.Mutex
	gens  [2][]atomic.Uint64
	cur   int   // the generation bits are set in (mu)
	since int64 // when it began, UnixNano (mu)
	mask  uint64
}

// init sizes the filter for a table of maxTracked keys: four bits a key, from 4,096 to 1,048,576
// bits a generation (32 KiB each at the default).
func (f *hotFilter) init(maxTracked int) {
	words := 64
	for words < 1<<14 && words*16 < maxTracked {
		words *= 2
	}
	f.gens[0], f.gens[1] = make([]atomic.Uint64, words), make([]atomic.Uint64, words)
	f.mask = uint64(words - 1)
}

// has says whether fp's bit is set.
func (f *hotFilter) has(fp uint64) bool {
	i, bit := fp>>6&f.mask, uint64(1)<<(fp&63)
	return f.gens[0][i].Load()&bit != 0 || f.gens[1][i].Load()&bit != 0
}

// add sets fp's bit at at, beginning a new generation when the current one is a window old.
func (f *hotFilter) add(fp uint64, at int64, window time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if at >= windowEnd(f.since, window) || at < f.since {
		f.cur ^= 1
		for i := range f.gens[f.cur] {
			f.gens[f.cur][i].Store(0)
		}
		f.since = at
	}
	f.gens[f.cur][fp>>6&f.mask].Or(uint64(1) << (fp & 63))
}

// slowNoCertificate counts the refusal d of a request that presented no certificate on its
// connection, by the peer's address, and answers it 429 instead once that address is at its
// limit. It runs where a handler refuses (observe): only a request that no certificate and no
// credentials could let through is counted, and there is no verification to save, so the
// check can come last.
func (m *Middleware) slowNoCertificate(c *Call, d *decision) {
	if d.st == nil || d.st.refusals == nil || d.source != SourceTLS || d.id != nil || !errors.Is(d.err, ErrNoCertificate) || !counted(d.err) {
		return
	}
	addr, ok := c.peer()
	if !ok || m.header != nil && m.header.inPrefixes(addr) {
		return // a trusted proxy's address carries everyone behind it
	}
	ck := claimKey{key: refusalKey{kind: refusalKeyAddr, sum: addr.As16()}}
	t := d.st.refusals
	if t.hotAt(d.now) {
		if e := t.check(&ck.key, d.now); e != nil {
			d.err = e
			return
		}
	}
	t.record(&ck, d.now)
}

// peerAddr is the address of the connection's peer: as ConnContext recorded it, else
// r.RemoteAddr when it is "ip:port" as net/http sets it (a bare address is a middleware's
// rewrite from a client-supplied header).
func peerAddr(r *http.Request) (netip.Addr, bool) {
	remote := r.RemoteAddr
	if peer, ok := r.Context().Value(peerKey{}).(net.Addr); ok {
		remote = peer.String()
	}
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap().WithZone(""), true
}

// inPrefixes says whether addr is within the trusted proxies' prefixes.
func (h *headerSource) inPrefixes(addr netip.Addr) bool {
	for _, p := range h.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
