package mtls

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
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
// Retry-After header, without being screened, looked up in the cache or verified, until Window
// has passed since the first of those refusals; then it is judged again.
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
// What the key is: on a TLS connection, the SHA-256 of the leaf's DER as presented; with no
// certificate on a TLS connection (or no TLS), the address of the connection's peer, which
// [ConnContext] records (else r.RemoteAddr, if it is "ip:port" as net/http sets it), and only
// for the refusals of [Middleware.Handler] and [Middleware.Both] ([Middleware.Either] hands such
// a request to the credentials, and [Middleware.Authenticate] to its caller); from a trusted
// proxy (header mode), the SHA-256 of the certificate header values as the proxy forwarded them,
// before they are decoded: never the proxy's address, which carries every client behind it, and
// nothing at all when the proxy forwarded no certificate. A peer within
// [HeaderConfig.TrustedProxies] is never keyed by its address either. The table holds the keys
// themselves (128 bits of the SHA-256), never an accepted client's: a client whose certificate is
// accepted is slowed only by refusals of that very certificate.
//
// The table is bounded: it holds at most MaxTracked keys, apart from the verification cache
// (nothing is inserted into or evicted from the cache for it), in maps that grow to that bound
// and no further, about 100 bytes a key, however many distinct keys pass through it (a map is
// made anew once it deleted as many keys as it holds). When it is full, a new key takes the place of one of a
// few keys sampled at random: one whose window has passed, else the one with the fewest
// refusals below the limit; a key at its limit within its window is never replaced, so that a
// flood of one-off certificates cannot push out a repeat offender. If every sampled key is at
// its limit, the new key is not tracked: its refusal is not counted.
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
	kind byte // 0: not computed; refusalKeyLeaf, refusalKeyValues, refusalKeyAddr
	sum  [16]byte
}

const (
	refusalKeyLeaf   = 'c' // sum: the first 16 bytes of the SHA-256 of the leaf's DER
	refusalKeyValues = 'h' // sum: of the SHA-256 of the header values (refusalKeyOf)
	refusalKeyAddr   = 'a' // sum: the peer's address, As16
	refusalKeyNone   = '-' // nothing to count by
)

// refusalCount is one key's window.
type refusalCount struct {
	start int64 // when the window began, UnixNano
	n     int32 // refusals within it
}

// refusalShards is the most maps the table is split into, each with its own lock.
const refusalShards = 32

// refusalSample is how many keys a full map looks at to find one to replace.
const refusalSample = 8

// refusalTable counts the refusals of keys under one state.
type refusalTable struct {
	cfg  refusalConfig
	seed maphash.Seed // picks a key's shard
	// hot is the end of the latest window of a key at its limit (UnixNano): before it, a claim
	// is looked up; after it, no key can be slowed and the check costs one atomic load.
	hot    atomic.Int64
	per    int // keys per shard
	shards []refusalShard
}

type refusalShard struct {
	mu sync.Mutex
	m  map[refusalKey]refusalCount
	// deleted counts the keys deleted from m since it was made: a Go map keeps the room of what
	// it deleted, so m is made anew once they are as many as it may hold (room).
	deleted int
	_       [40]byte // a shard's lock off its neighbours' cache line
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
	return &refusalTable{cfg: *cfg, seed: maphash.MakeSeed(), per: cfg.maxTracked / n, shards: make([]refusalShard, n)}
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

// keyOf fills k with the key of a claim that presents something, once.
func keyOf(c *claim, k *refusalKey) {
	if k.kind != 0 {
		return
	}
	switch {
	case c.source == SourceHeader:
		h := sha256.New()
		var n [4]byte
		for _, v := range c.headerValues() {
			binary.BigEndian.PutUint32(n[:], uint32(len(v)))
			h.Write(n[:])
			_, _ = io.WriteString(h, v)
		}
		var sum [sha256.Size]byte
		k.kind = refusalKeyValues
		copy(k.sum[:], h.Sum(sum[:0]))
	case len(c.certs) > 0:
		sum := sha256.Sum256(c.certs[0].Raw)
		k.kind = refusalKeyLeaf
		copy(k.sum[:], sum[:])
	default:
		k.kind = refusalKeyNone
	}
}

// gate answers a claim whose key is at its limit with ErrTooManyRefusals, before anything else
// is done with it; k receives the claim's key if it was computed. Without a key at its limit
// (hot), it costs one atomic load.
func (t *refusalTable) gate(c *claim, k *refusalKey, now time.Time) error {
	if t == nil || now.UnixNano() >= t.hot.Load() {
		return nil
	}
	keyOf(c, k)
	e := t.check(k, now)
	if e != nil && c.source == SourceTLS {
		e.Leaf = c.certs[0] // parsed by crypto/tls: its names are the client's word, as for any refusal
	}
	return nilIfNone(e)
}

// nilIfNone keeps a nil *Error from becoming a non-nil error.
func nilIfNone(e *Error) error {
	if e == nil {
		return nil
	}
	return e
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
	end := windowEnd(rc.start, t.cfg.window)
	if !ok || int(rc.n) < t.cfg.limit || now.UnixNano() >= end || now.UnixNano() < rc.start {
		return nil
	}
	wait := time.Duration(end - now.UnixNano())
	e := newError(ErrTooManyRefusals, fmt.Sprintf("%s was refused %d times within %v; it is answered 429 without being verified "+
		"for %v more, when the window that began at its first refusal ends (Config.RefusalThrottle: Limit %d, Window %v)",
		k.String(), rc.n, t.cfg.window, wait.Round(time.Millisecond), t.cfg.limit, t.cfg.window), nil)
	e.Step, e.RetryAfter = stepClaim, wait
	return e
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
	switch k.kind {
	case refusalKeyAddr:
		return "a request without a certificate from " + netip.AddrFrom16(k.sum).Unmap().String()
	case refusalKeyValues:
		return "the certificate header values of SHA-256 " + hex.EncodeToString(k.sum[:8]) + "..."
	}
	return "the certificate of SHA-256 " + hex.EncodeToString(k.sum[:8]) + "..."
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

// count records the refusal err of a claim, if it counts; k is the claim's key, computed here if
// the gate did not.
func (t *refusalTable) count(c *claim, k *refusalKey, err error, now time.Time) {
	if t == nil || !counted(err) {
		return
	}
	keyOf(c, k)
	t.record(k, now)
}

// record counts one refusal of k at now.
func (t *refusalTable) record(k *refusalKey, now time.Time) {
	if k.kind == refusalKeyNone {
		return
	}
	at := now.UnixNano()
	s := t.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	rc, ok := s.m[*k]
	switch {
	case ok && at >= rc.start && at < windowEnd(rc.start, t.cfg.window):
		if int(rc.n) < t.cfg.limit {
			rc.n++
		}
	case !ok && !s.room(t, at):
		return // every key sampled is at its limit: this one is not tracked
	default: // a new key, or a window that passed (or a clock set back): a new window
		rc = refusalCount{start: at, n: 1}
	}
	if s.m == nil {
		s.m = make(map[refusalKey]refusalCount)
	}
	s.m[*k] = rc
	if int(rc.n) >= t.cfg.limit {
		end := windowEnd(rc.start, t.cfg.window)
		for {
			hot := t.hot.Load()
			if end <= hot || t.hot.CompareAndSwap(hot, end) {
				break
			}
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
	k := refusalKey{kind: refusalKeyAddr, sum: addr.As16()}
	t := d.st.refusals
	if d.now.UnixNano() < t.hot.Load() {
		if e := t.check(&k, d.now); e != nil {
			d.err = e
			return
		}
	}
	t.record(&k, d.now)
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
