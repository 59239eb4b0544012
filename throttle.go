package mtls

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/mtls/internal/certfile"
	"github.com/certgate/mtls/internal/jsondoc"
	"golang.org/x/time/rate"
)

// Throttling tiers. An accepted identity (after principal and policy) is limited by the token
// bucket of its tier: a Tier names a rate and a burst, a TierResolver (such as a TierStore file)
// names the tier of an identity, and the throttle keeps one bucket per principal, or per
// certificate for identities without a principal. A request over its bucket is refused with 429
// "rate_limited" and a Retry-After header; the next handler is not called.

// Tier is a class of service: how many requests an identity of the tier may make.
type Tier struct {
	// Rate is the sustained number of requests a second, refilled continuously. It must be
	// greater than zero: a tier that refuses everything is a policy, not a rate. math.Inf(1)
	// makes the tier unlimited (WSO2's Unlimited): its identities are let through without a
	// bucket, and Burst is not used.
	Rate float64
	// Burst is how many requests may be made at once after an idle time: the size of the
	// bucket, which starts full. At least 1, unless Rate is math.Inf(1).
	Burst int
}

// TierResolver names the tier of an accepted identity ([ThrottleConfig.Resolver]). It is asked
// after the principal mapping and the policy, so id.Principal is set when [Config.Principals]
// resolved one. Implementations must be safe for concurrent use and must not modify id.
type TierResolver interface {
	// ResolveTier returns the name of the tier of id, one of [ThrottleConfig.Tiers], or "" for
	// no tier of its own ([ThrottleConfig.Default] applies). An error, or a name that is not a
	// configured tier, refuses the request (403 "policy_denied"), as an error of
	// [Config.Principals] does: return one only when the answer cannot be decided.
	ResolveTier(id *Identity) (string, error)
}

// TierResolverFunc adapts a function to [TierResolver].
type TierResolverFunc func(id *Identity) (string, error)

// ResolveTier calls f(id).
func (f TierResolverFunc) ResolveTier(id *Identity) (string, error) { return f(id) }

// ThrottleConfig turns on per-principal throttling ([Config.Throttle]).
//
// Each accepted identity that has a tier gets a token bucket of that tier's rate and burst, kept
// across requests: by its principal ([Identity.Principal]) when it has one, so that every
// certificate of one account shares one bucket, and otherwise by its certificate's SHA-256
// fingerprint. A request finding its bucket empty is refused with 429 "rate_limited"
// ([ErrRateLimited]) and a Retry-After header, before the next handler runs. When a reload
// moves a principal to another tier, its bucket keeps its tokens and takes the new rate and
// burst at the principal's next request (the time since its previous request refills at the old
// rate, at most up to the old burst, and the tokens are then at most the new burst); a bucket
// that was full under the old tier (idle for at least its Burst/Rate) is a full bucket of the
// new one, as it would be had it been forgotten.
//
// Only certificate identities are throttled: with [Middleware.Either], a request that
// authenticated by credentials alone is not (limit those by their principal in the handler).
// With [Middleware.Both] the bucket is taken before the credentials are checked, so that
// guessing passwords behind one certificate is limited too.
//
// Each bucket keeps the time of its last request ([Config.Now]): a clock set back by less than
// the tier's Burst/Rate refills nothing when it comes forward again; set back by more, or
// stepped forward and then corrected, the bucket starts again full (at most one burst more),
// rather than refusing everything until the clock has caught up.
//
// Memory is bounded by MaxTracked buckets, split in up to 32 shards by a keyed hash of the key,
// each with its own lock, its part of MaxTracked and its own sweep: a request waits for the
// sweep of one shard at most. A bucket that would be full again (idle for at least Burst/Rate)
// is forgotten without changing behaviour; such buckets are swept now and then, on the request
// path (no goroutine). When a shard's buckets are all in use, an identity without a bucket there
// is refused with 429 until one is idle, rather than evicting a bucket in use: an eviction would
// give the evicted principal a full bucket again, so that cycling through keys would undo the
// limit. Buckets by certificate, which a client multiplies by getting certificates, hold at most
// half of each shard; principals, which the operator sets, may fill it. So a client holding
// many accepted certificates without a principal, each kept busy, never keeps principals out;
// only as many busy principals as MaxTracked keep out the identities that have no bucket yet
// (those with one are not affected). Keys spread over the shards unevenly: set MaxTracked to
// twice the number of principals and certificates active within a Burst/Rate window, and watch
// for "rate_limited" refusals whose detail says "none idle". Principals taken from a
// certificate field the client chooses (a subject CN, under a CA that signs what it is asked)
// multiply as certificates do: bind certificates to principals ([BindingStore]) instead.
type ThrottleConfig struct {
	// Tiers are the tiers by name. Required: at least one; names are non-empty.
	Tiers map[string]Tier
	// Default is the tier of identities that the Resolver gives no tier ("" answers: a
	// principal a TierStore does not name, an identity without a principal), and of every
	// identity when Resolver is nil. Required, one of Tiers: an identity is never let through
	// unlimited for want of a tier. To leave such identities unlimited on purpose, name a tier
	// of Rate math.Inf(1) (such as "unlimited"); with Resolver nil, Default must be limited.
	Default string
	// Resolver names the tier of each identity. A [*TierStore] set here is read again by
	// [Middleware.Reload] with the other files, and its tier names are checked against Tiers at
	// every load: a file naming an unknown tier fails New, or the reload (which then keeps
	// everything in force). A TierStore looks identities up by principal, so it needs
	// [Config.Principals] (New refuses it without). A TierStore inside another resolver is not
	// found, and is read only by NewTierStore. Default nil: every identity gets Default.
	Resolver TierResolver
	// MaxTracked bounds the buckets kept, and so the memory (about 230 bytes a bucket, beside
	// the principal's name, which the bindings hold already), at most half of them by
	// certificate. Default 100,000; it cannot be turned off.
	MaxTracked int
}

// TierStore maps principals to tiers from a JSON file, as an API gateway assigns each
// application (alias) a subscription tier:
//
//	{"partner-a": "gold", "partner-b": "bronze"}
//
// Keys are principals ([Identity.Principal], so set [Config.Principals]), each a plain account
// name as [NewBindings] requires; values are tier names. The file is read as a binding file is:
// at most 1 MiB, UTF-8, no duplicate key. Principals are compared as spelled ("Partner-A" is not
// "partner-a"): an identity whose principal is not in the file (or that has none) gets no tier
// from it, and so [ThrottleConfig.Default]. Set it as [ThrottleConfig.Resolver]: [Middleware.Reload] (and
// [Config.ReloadInterval]) then reads it again together with the other files of the
// configuration, all or nothing, and a request takes its tier from the file loaded with the
// trust that verified it. It has no Reload of its own: its tier names are checked against the
// middleware's tiers at each load.
type TierStore struct {
	path string
	cur  atomic.Pointer[tierMap] // the map last installed (or loaded by NewTierStore)
}

// tierMap is one load of a TierStore's file: principal -> tier name.
type tierMap struct{ tiers map[string]string }

// NewTierStore loads the tier file at path.
func NewTierStore(path string) (*TierStore, error) {
	t, err := loadTierFile(path)
	if err != nil {
		return nil, err
	}
	s := &TierStore{path: path}
	s.cur.Store(t)
	return s, nil
}

var errNilTierStore = errors.New("mtls: nil tier store (was an error from NewTierStore ignored?)")

// ResolveTier answers the tier of id's principal in the file last loaded, or "".
func (s *TierStore) ResolveTier(id *Identity) (string, error) {
	if s == nil {
		return "", errNilTierStore
	}
	return s.cur.Load().lookup(id), nil
}

// Len is the number of principals the file in force assigns a tier; 0 for a nil or zero
// TierStore.
func (s *TierStore) Len() int {
	if s == nil {
		return 0
	}
	return s.cur.Load().len()
}

func (t *tierMap) len() int {
	if t == nil {
		return 0
	}
	return len(t.tiers)
}

func (t *tierMap) lookup(id *Identity) string {
	if t == nil || id == nil || id.Principal == "" {
		return ""
	}
	return t.tiers[id.Principal]
}

func loadTierFile(path string) (*tierMap, error) {
	doc, err := certfile.Read(path, maxBindingFile)
	if err != nil {
		return nil, fmt.Errorf("mtls: tiers: %w", err)
	}
	return parseTierJSON(path, doc)
}

// parseTierJSON reads a tier file: an object of principal to tier name.
func parseTierJSON(path string, doc []byte) (*tierMap, error) {
	v, err := jsondoc.Decode(doc, maxBindingDepth)
	if err != nil {
		return nil, fmt.Errorf("mtls: tiers %s: %w", path, err)
	}
	if v.Kind != jsondoc.Object {
		return nil, fmt.Errorf("mtls: tiers %s: $: expected an object of principal to tier name, found %s", path, v.TypeName())
	}
	t := &tierMap{tiers: make(map[string]string, len(v.Keys))}
	for i, principal := range v.Keys {
		at := jsondoc.KeyPath("$", principal)
		if !plainPrincipal(principal) {
			return nil, fmt.Errorf("mtls: tiers %s: %s: principal is empty or holds %s", path, at, errPrincipalText)
		}
		val := v.Vals[i]
		if val.Kind != jsondoc.String || val.Str == "" {
			return nil, fmt.Errorf("mtls: tiers %s: %s: expected a tier name, found %s", path, at, val.TypeName())
		}
		t.tiers[principal] = val.Str
	}
	return t, nil
}

// checkTiers says which tier of t is not one of th's, if any.
func (th *throttle) checkTiers(path string, t *tierMap) error {
	for principal, name := range t.tiers {
		if _, ok := th.tiers[name]; !ok {
			return fmt.Errorf("mtls: tiers %s: %s: tier %q is not one of Throttle.Tiers", path, jsondoc.KeyPath("$", principal), clip(name))
		}
	}
	return nil
}

const (
	defaultMaxTracked = 100_000
	// maxThrottleShards and minThrottleShard: the table is split in up to 32 shards of at least
	// 1,024 buckets, so that a sweep (one look at each bucket of a shard) holds one shard's lock
	// for at most MaxTracked/32 looks at the default.
	maxThrottleShards = 32
	minThrottleShard  = 1024
	// throttleSweepPause: with the table full, it is swept at most this often (on the clock of
	// Config.Now), so that identities refused for want of room cost no more than a look-up.
	throttleSweepPause = time.Second
	// maxRetryAfter bounds the Retry-After of a refusal (a tier of a very low rate, a long
	// RefusalThrottle.Window): the header never says more than a day.
	maxRetryAfter = 24 * time.Hour
)

// tierDef is a compiled tier; the throttle's tiers never change after New.
type tierDef struct {
	name      string
	rate      rate.Limit
	burst     int
	unlimited bool          // Rate +Inf: no bucket
	refill    time.Duration // Burst/Rate: the time an empty bucket takes to be full again
}

// throttleKey is the key of a bucket: the principal, or else the leaf's fingerprint (principal
// empty), so that a principal spelled like a fingerprint is not that certificate.
type throttleKey struct {
	principal string
	sum       [32]byte
}

// bucket is the state of one key.
type bucket struct {
	lim  *rate.Limiter
	tier *tierDef  // the tier lim's rate and burst are set for
	last time.Time // the latest time the bucket was taken from: a clock set back refills nothing
}

// stale says whether b, last taken from at b.last, is ahead of now by more than its tier's
// refill time: the clock was set back, or had been stepped forward and was corrected. Such a
// bucket starts again full at now (the client gets at most one burst more), as the clock it was
// kept on is gone; otherwise every request would be refused until the clock caught up.
func (b *bucket) stale(now time.Time) bool { return b.last.Sub(now) > b.tier.refill }

// throttle is the compiled ThrottleConfig and its table of buckets.
type throttle struct {
	tiers    map[string]*tierDef
	def      *tierDef // the tier of identities the resolver gives none
	resolver TierResolver
	store    *TierStore // resolver, when it is one: answered from the state's load
	max      int

	seed   maphash.Seed    // picks a key's shard
	shards []throttleShard // a power of two of them
}

// throttleShard is one shard of the table of buckets: the keys whose hash picks it.
type throttleShard struct {
	mu         sync.Mutex // guards what follows, and every bucket of the shard
	table      map[throttleKey]*bucket
	max        int       // the bound of table: the shard's part of MaxTracked
	maxCerts   int       // the bound of the buckets keyed by certificate: half of max
	certs      int       // buckets keyed by certificate
	swept      time.Time // when the shard was last swept
	sinceSweep int       // buckets added since
}

// compileThrottle checks a ThrottleConfig; principals says whether Config.Principals is set.
func compileThrottle(p *problems, cfg *ThrottleConfig, principals bool) *throttle {
	th := &throttle{
		tiers:    make(map[string]*tierDef, len(cfg.Tiers)),
		resolver: cfg.Resolver,
		max:      number(p, "Throttle.MaxTracked", cfg.MaxTracked, defaultMaxTracked, false),
		seed:     maphash.MakeSeed(),
	}
	n := 1
	for n < maxThrottleShards && th.max/(2*n) >= minThrottleShard {
		n *= 2
	}
	th.shards = make([]throttleShard, n)
	for i := range th.shards {
		s := &th.shards[i]
		s.table = map[throttleKey]*bucket{}
		s.max = th.max / n
		if i < th.max%n {
			s.max++
		}
		s.maxCerts = max(1, s.max/2)
	}
	limited := false
	for name, t := range cfg.Tiers {
		field := "Throttle.Tiers[" + strconv.Quote(name) + "]"
		if name == "" {
			p.addf(field, "a tier needs a name")
		}
		def := &tierDef{name: name, rate: rate.Limit(t.Rate), burst: t.Burst, unlimited: math.IsInf(t.Rate, 1)}
		def.refill = time.Duration(min(float64(t.Burst)/t.Rate*float64(time.Second), float64(math.MaxInt64/2)))
		switch {
		case def.unlimited:
		case !(t.Rate > 0) || math.IsInf(t.Rate, 0):
			p.addf(field+".Rate", "%v: want a number of requests a second greater than 0, or math.Inf(1) for unlimited", t.Rate)
		case t.Burst < 1:
			p.addf(field+".Burst", "%d: want at least 1", t.Burst)
		}
		limited = limited || !def.unlimited
		th.tiers[name] = def
	}
	switch {
	case len(cfg.Tiers) == 0:
		p.addf("Throttle.Tiers", "no tier")
	case !limited:
		p.addf("Throttle.Tiers", "every tier is unlimited: no identity would be limited")
	}
	switch {
	case cfg.Default == "":
		p.addf("Throttle.Default", "not set: the tier of identities without one is required (a tier of Rate math.Inf(1) leaves them unlimited)")
	case th.tiers[cfg.Default] == nil:
		p.addf("Throttle.Default", "%q is not one of Throttle.Tiers", clip(cfg.Default))
	default:
		th.def = th.tiers[cfg.Default]
		if th.def.unlimited && cfg.Resolver == nil && limited {
			p.addf("Throttle.Default", "%q is unlimited and no Resolver is set: no identity would be limited", clip(cfg.Default))
		}
	}
	if r, ok := cfg.Resolver.(*TierStore); ok {
		switch {
		case r == nil:
			p.add("Throttle.Resolver", errNilTierStore)
			th.resolver = nil
		case !principals:
			p.addf("Throttle.Resolver", "a TierStore looks identities up by principal, and Config.Principals is not set: its file would never apply")
		default:
			th.store = r
		}
	}
	return th
}

// throttleStep runs the throttle on the accepted identity of d, under the state st: it records
// the tier in d, or refuses.
func (m *Middleware) throttleStep(d *decision, st *state) {
	th := m.throttle
	id := d.id
	t, err := th.tierOf(id, st)
	if err != nil {
		d.id, d.err = nil, deniedError(id, "tier mapping", err)
		setStep(d.err, stepThrottle)
		return
	}
	d.tier = t.name
	if t.unlimited {
		return
	}
	if e := th.take(id, t, d.now); e != nil {
		d.id, d.err = nil, e
	}
}

// tierOf returns the tier of id.
func (th *throttle) tierOf(id *Identity, st *state) (*tierDef, error) {
	if th.resolver == nil {
		return th.def, nil
	}
	var name string
	if th.store != nil {
		name = st.tiers.lookup(id) // the file loaded with the trust that verified id
	} else {
		var err error
		if name, err = th.resolver.ResolveTier(id); err != nil {
			return nil, err
		}
	}
	if name == "" {
		return th.def, nil
	}
	t := th.tiers[name]
	if t == nil {
		return nil, fmt.Errorf("mtls: the tier resolver answered %q, which is not one of Throttle.Tiers", clip(name))
	}
	return t, nil
}

// take takes a token from id's bucket of tier t at now, and returns the refusal if there is
// none (nil when the request may proceed).
func (th *throttle) take(id *Identity, t *tierDef, now time.Time) *Error {
	k := throttleKey{principal: id.Principal}
	if k.principal == "" {
		k.sum = id.sum
	}
	s := th.shardOf(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.table[k]
	switch {
	case b == nil:
	case b.stale(now):
		b.lim, b.tier = rate.NewLimiter(t.rate, t.burst), t
	case now.Before(b.last):
		now = b.last // set back a little: no refill, and none when it comes forward again
	}
	if b == nil {
		if b = s.add(k, t, now); b == nil {
			e := newError(ErrRateLimited, fmt.Sprintf("%s: %d keys tracked in its shard of %d (%d by certificate, at most %d), none idle: no room for a bucket of tier %q (%v/s, burst %d)",
				k.String(), len(s.table), s.max, s.certs, s.maxCerts, clip(t.name), float64(t.rate), t.burst), nil)
			e.Leaf, e.Step, e.RetryAfter = id.Leaf, stepThrottle, time.Second
			return e
		}
	} else if b.tier != t {
		if b.lim.TokensAt(now) >= float64(b.tier.burst) {
			// Full under its old tier, so that a sweep could have forgotten it: a new bucket,
			// full of the new tier, whether or not a sweep ran.
			b.lim = rate.NewLimiter(t.rate, t.burst)
		} else {
			b.lim.SetLimitAt(now, t.rate)
			b.lim.SetBurstAt(now, t.burst)
		}
		b.tier = t
	}
	b.last = now
	if b.lim.AllowN(now, 1) {
		return nil
	}
	wait := time.Duration(math.Min((1-b.lim.TokensAt(now))/float64(t.rate)*float64(time.Second), float64(maxRetryAfter)))
	e := newError(ErrRateLimited, fmt.Sprintf("%s over tier %q (%v/s, burst %d)", k.String(), clip(t.name), float64(t.rate), t.burst), nil)
	e.Leaf, e.Step, e.RetryAfter = id.Leaf, stepThrottle, wait
	return e
}

// shardOf is the shard of k's bucket.
func (th *throttle) shardOf(k *throttleKey) *throttleShard {
	var h uint64
	if k.principal != "" {
		h = maphash.String(th.seed, k.principal)
	} else {
		h = maphash.Bytes(th.seed, k.sum[:])
	}
	return &th.shards[h&uint64(len(th.shards)-1)]
}

// String names a bucket's key in the detail of a refusal.
func (k throttleKey) String() string {
	if k.principal != "" {
		return "principal " + strconv.Quote(clip(k.principal))
	}
	return fmt.Sprintf("certificate %x", k.sum)
}

// add makes a full bucket of tier t for k, sweeping the idle ones first when due; nil when the
// shard is full of buckets in use, or k is a certificate and the certificates' half of it is.
// Keys by certificate multiply at the client's will, principals are the operator's: holding at
// most half of the room, certificates never keep principals out. s.mu is held.
func (s *throttleShard) add(k throttleKey, t *tierDef, now time.Time) *bucket {
	cert := k.principal == ""
	full := s.full(cert)
	// Every max/4 additions, a sweep: its cost, one look at each bucket, is then a few looks a
	// request. A full shard is swept at most once every throttleSweepPause.
	if s.sinceSweep >= max(s.max/4, 1) || full && now.Sub(s.swept) >= throttleSweepPause {
		s.sweep(now)
		full = s.full(cert)
	}
	if full {
		return nil
	}
	b := &bucket{lim: rate.NewLimiter(t.rate, t.burst), tier: t}
	s.table[k] = b
	s.sinceSweep++
	if cert {
		s.certs++
	}
	return b
}

// full says whether s has no room for a key, by certificate when cert. s.mu is held.
func (s *throttleShard) full(cert bool) bool {
	return len(s.table) >= s.max || cert && s.certs >= s.maxCerts
}

// sweep forgets the buckets that are full again at now, or stale: forgetting them changes
// nothing, as a new bucket starts full. s.mu is held.
func (s *throttleShard) sweep(now time.Time) {
	for k, b := range s.table {
		if b.stale(now) || b.lim.TokensAt(now) >= float64(b.tier.burst) {
			delete(s.table, k)
			if k.principal == "" {
				s.certs--
			}
		}
	}
	s.swept, s.sinceSweep = now, 0
}

// tracked is the number of buckets kept.
func (th *throttle) tracked() int {
	n := 0
	for i := range th.shards {
		s := &th.shards[i]
		s.mu.Lock()
		n += len(s.table)
		s.mu.Unlock()
	}
	return n
}
