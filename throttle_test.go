package mtls

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// throttleKit is a PKI whose clients' CN is their principal, a clock moved by hand, and the
// handler calls counted.
type throttleKit struct {
	p     *pki
	clock *revClock
	calls int
	mu    sync.Mutex
	next  http.Handler
}

func newThrottleKit(t *testing.T) *throttleKit {
	k := &throttleKit{p: newPKI(t), clock: newRevClock()}
	k.next = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.mu.Lock()
		k.calls++
		k.mu.Unlock()
	})
	return k
}

// config is a configuration of k's trust and clock, principals from the CN, and th.
func (k *throttleKit) config(th *ThrottleConfig) Config {
	return Config{RootCAs: k.p.root.Pool(), Now: k.clock.Now, Principals: must(PrincipalFromSubject("cn")), Throttle: th}
}

// do sends a request with leaf's chain through h and returns the response.
func (k *throttleKit) do(h http.Handler, leaf *mtlstest.Leaf) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...))
	return w
}

// statuses sends n requests with leaf and returns their statuses.
func (k *throttleKit) statuses(h http.Handler, leaf *mtlstest.Leaf, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = k.do(h, leaf).Code
	}
	return out
}

// tierStore writes tiers to a file of a temporary folder and loads it.
func tierStore(t *testing.T, tiers map[string]string) (string, *TierStore) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "tiers.json")
	writeTiers(t, file, tiers)
	store, err := NewTierStore(file)
	require.NoError(t, err)
	return file, store
}

func writeTiers(t *testing.T, path string, tiers map[string]string) {
	t.Helper()
	b, err := json.Marshal(tiers)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

func repeat(status, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = status
	}
	return out
}

var goldBronze = map[string]Tier{"gold": {Rate: 10, Burst: 5}, "bronze": {Rate: 1, Burst: 2}}

// TestThrottleTierOfAPartner: a partner bound to a tier of 10 requests a second, burst 5, gets
// exactly 5 requests through, then 429 with Retry-After, and one more 100 ms later.
func TestThrottleTierOfAPartner(t *testing.T) {
	k := newThrottleKit(t)
	_, store := tierStore(t, map[string]string{"partner-a": "gold"})
	m, err := New(k.config(&ThrottleConfig{Tiers: goldBronze, Resolver: store, Default: "bronze"}))
	require.NoError(t, err)
	h := m.Handler(k.next)
	partner := k.p.issuing.NewClient("partner-a")

	require.Equal(t, repeat(http.StatusOK, 5), k.statuses(h, partner, 5))
	w := k.do(h, partner)
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "1", w.Header().Get("Retry-After"))
	assert.Contains(t, w.Body.String(), `"reason":"rate_limited"`)
	assert.Equal(t, 5, k.calls, "the handler is not called for a throttled request")

	k.clock.Advance(100 * time.Millisecond)
	assert.Equal(t, []int{http.StatusOK, http.StatusTooManyRequests}, k.statuses(h, partner, 2))
	assert.Equal(t, 6, k.calls)
}

// TestThrottleTierSources: where an identity's tier comes from, and what its bucket is keyed by.
func TestThrottleTierSources(t *testing.T) {
	k := newThrottleKit(t)
	_, store := tierStore(t, map[string]string{"alice": "bronze"})
	alice, bob := k.p.issuing.NewClient("alice"), k.p.issuing.NewClient("bob")
	alice2 := k.p.issuing.NewClient("alice") // another certificate of the same principal
	byCN := TierResolverFunc(func(id *Identity) (string, error) {
		if id.Principal == "alice" {
			return "bronze", nil
		}
		return "", nil
	})
	withUnlimited := map[string]Tier{"gold": goldBronze["gold"], "bronze": goldBronze["bronze"], "unlimited": {Rate: math.Inf(1)}}
	tests := []struct {
		name        string
		th          ThrottleConfig
		noPrincipal bool
		// Statuses of alice, alice's other certificate, then bob.
		alice, alice2, bob []int
	}{
		{"tier store, default unlimited", ThrottleConfig{Tiers: withUnlimited, Resolver: store, Default: "unlimited"},
			false, []int{200, 200}, []int{429}, []int{200, 200, 200, 200, 200, 200, 200}},
		{"tier store and default", ThrottleConfig{Tiers: goldBronze, Resolver: store, Default: "gold"},
			false, []int{200, 200}, []int{429}, []int{200, 200, 200, 200, 200, 429}},
		{"resolver", ThrottleConfig{Tiers: withUnlimited, Resolver: byCN, Default: "unlimited"},
			false, []int{200, 200}, []int{429}, []int{200, 200, 200, 200, 200, 200, 200}},
		{"default only", ThrottleConfig{Tiers: goldBronze, Default: "bronze"},
			false, []int{200, 200}, []int{429}, []int{200, 200, 429}},
		{"no principal: by certificate", ThrottleConfig{Tiers: goldBronze, Default: "bronze"},
			true, []int{200, 200, 429}, []int{200, 200, 429}, []int{200, 200, 429}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := k.config(&tt.th)
			if tt.noPrincipal {
				cfg.Principals = nil
			}
			m, err := New(cfg)
			require.NoError(t, err)
			h := m.Handler(k.next)
			assert.Equal(t, tt.alice, k.statuses(h, alice, len(tt.alice)), "alice")
			assert.Equal(t, tt.alice2, k.statuses(h, alice2, len(tt.alice2)), "alice's other certificate")
			assert.Equal(t, tt.bob, k.statuses(h, bob, len(tt.bob)), "bob")
		})
	}
}

// TestThrottleReload: a rewritten tier file takes effect with Reload, the bucket keeping its
// tokens and taking the new rate; a bad file, or one naming an unknown tier, keeps everything.
func TestThrottleReload(t *testing.T) {
	k := newThrottleKit(t)
	file, store := tierStore(t, map[string]string{"alice": "gold"})
	var events []Event
	cfg := k.config(&ThrottleConfig{Tiers: goldBronze, Resolver: store, Default: "bronze"})
	cfg.OnDecision = func(_ context.Context, ev Event) { events = append(events, ev) }
	m, err := New(cfg)
	require.NoError(t, err)
	h := m.Handler(k.next)
	alice := k.p.issuing.NewClient("alice")

	require.Equal(t, repeat(200, 5), k.statuses(h, alice, 5))
	require.Equal(t, 429, k.do(h, alice).Code)
	assert.Equal(t, "gold", events[0].Tier)

	// bronze: 1 a second. 100 ms later gold would have a token; bronze has 0.1.
	writeTiers(t, file, map[string]string{"alice": "bronze"})
	require.NoError(t, m.Reload())
	assert.Equal(t, 1, store.Len())
	w := k.do(h, alice)
	require.Equal(t, 429, w.Code, "the bucket kept its (no) tokens")
	assert.Equal(t, "1", w.Header().Get("Retry-After"))
	k.clock.Advance(100 * time.Millisecond)
	require.Equal(t, 429, k.do(h, alice).Code, "the bucket refills at bronze's rate")
	assert.Equal(t, "bronze", events[len(events)-1].Tier)
	assert.Equal(t, Throttled, events[len(events)-1].Result)
	k.clock.Advance(900 * time.Millisecond)
	require.Equal(t, []int{200, 429}, k.statuses(h, alice, 2))

	bad := []struct {
		name, doc, want string
	}{
		{"not JSON", `{"alice": `, "tiers"},
		{"unknown tier", `{"alice": "platinum"}`, `tier "platinum" is not one of Throttle.Tiers`},
		{"duplicate key", `{"alice": "gold", "alice": "gold"}`, "duplicate"},
		{"not a name", `{"alice": 3}`, "expected a tier name"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(file, []byte(tt.doc), 0o600))
			err := m.Reload()
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, "Throttle.Resolver", ce.Field)
			assert.ErrorContains(t, err, tt.want)
			k.clock.Advance(time.Second)
			assert.Equal(t, []int{200, 429}, k.statuses(h, alice, 2), "bronze stays in force")
			assert.Equal(t, "bronze", events[len(events)-1].Tier)
		})
	}

	_, err = New(k.config(&ThrottleConfig{Tiers: goldBronze, Resolver: store, Default: "bronze"}))
	var ce *ConfigError
	require.ErrorAs(t, err, &ce, "New reads the file again, and refuses its unknown tier")
	assert.Equal(t, "Throttle.Resolver", ce.Field)
}

// TestThrottleTierChange: a bucket moved to another tier gets the same whether or not a sweep
// forgot it meanwhile: one idle long enough to be full under its old tier is a full bucket of
// the new one; one in use keeps its tokens, within the new burst.
func TestThrottleTierChange(t *testing.T) {
	tiers := map[string]Tier{"bronze": {Rate: 1, Burst: 2}, "gold": {Rate: 1, Burst: 50}, "platinum": {Rate: 100, Burst: 100}}
	tests := []struct {
		name     string
		from, to string
		taken    int           // requests made under from
		idle     time.Duration // before the requests under to
		want     int           // requests let through under to, at once
	}{
		{"idle bronze to gold", "bronze", "gold", 1, 5 * time.Second, 50},
		{"bronze in use to gold", "bronze", "gold", 2, 500 * time.Millisecond, 0},
		{"bronze half full to gold", "bronze", "gold", 2, 1500 * time.Millisecond, 1},
		{"full platinum to bronze", "platinum", "bronze", 1, 10 * time.Second, 2},
		{"platinum in use to bronze", "platinum", "bronze", 50, 0, 2},
	}
	for _, tt := range tests {
		for _, swept := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/swept=%v", tt.name, swept), func(t *testing.T) {
				th := compileThrottle(&problems{}, &ThrottleConfig{Tiers: tiers, Default: "bronze"}, true)
				id, now := &Identity{Principal: "p"}, time.Unix(1e9, 0)
				for range tt.taken {
					require.Nil(t, th.take(id, th.tiers[tt.from], now))
				}
				now = now.Add(tt.idle)
				if swept {
					th.sweepAll(now)
				}
				n := 0
				for range 200 {
					if th.take(id, th.tiers[tt.to], now) == nil {
						n++
					}
				}
				assert.Equal(t, tt.want, n)
			})
		}
	}
}

// TestThrottlePolls: ReloadInterval watches the tier file with the others.
func TestThrottleWatched(t *testing.T) {
	k := newThrottleKit(t)
	file, store := tierStore(t, map[string]string{"alice": "gold"})
	m, err := New(k.config(&ThrottleConfig{Tiers: goldBronze, Resolver: store, Default: "bronze"}))
	require.NoError(t, err)
	assert.Contains(t, m.ReloadStatus().Files.Sources, file)
}

// TestThrottleConfigErrors: New refuses a throttle that is wrong, or that would let identities
// through unlimited without saying so: a TierStore without principals to look up, a Resolver
// without a Default, a configuration that limits no one.
func TestThrottleConfigErrors(t *testing.T) {
	k := newThrottleKit(t)
	_, store := tierStore(t, map[string]string{"partner-a": "bronze"})
	var nilStore *TierStore
	anyTier := TierResolverFunc(func(*Identity) (string, error) { return "", nil })
	inf := math.Inf(1)
	tests := []struct {
		name         string
		th           ThrottleConfig
		noPrincipals bool
		field        string
	}{
		{"no tiers", ThrottleConfig{Default: "x"}, false, "Throttle.Tiers"},
		{"zero rate", ThrottleConfig{Tiers: map[string]Tier{"gold": {Burst: 1}}, Default: "gold"}, false, `Throttle.Tiers["gold"].Rate`},
		{"negative rate", ThrottleConfig{Tiers: map[string]Tier{"gold": {Rate: -1, Burst: 1}}, Default: "gold"}, false, `Throttle.Tiers["gold"].Rate`},
		{"NaN rate", ThrottleConfig{Tiers: map[string]Tier{"gold": {Rate: math.NaN(), Burst: 1}}, Default: "gold"}, false, `Throttle.Tiers["gold"].Rate`},
		{"negative infinite rate", ThrottleConfig{Tiers: map[string]Tier{"gold": {Rate: math.Inf(-1), Burst: 1}}, Default: "gold"}, false, `Throttle.Tiers["gold"].Rate`},
		{"zero burst", ThrottleConfig{Tiers: map[string]Tier{"gold": {Rate: 1}}, Default: "gold"}, false, `Throttle.Tiers["gold"].Burst`},
		{"empty name", ThrottleConfig{Tiers: map[string]Tier{"": {Rate: 1, Burst: 1}}, Resolver: anyTier, Default: ""}, false, `Throttle.Tiers[""]`},
		{"unknown default", ThrottleConfig{Tiers: goldBronze, Default: "platinum"}, false, "Throttle.Default"},
		{"nothing limited", ThrottleConfig{Tiers: goldBronze}, false, "Throttle.Default"},
		{"resolver without default", ThrottleConfig{Tiers: goldBronze, Resolver: anyTier}, false, "Throttle.Default"},
		{"tier store without default", ThrottleConfig{Tiers: goldBronze, Resolver: store}, false, "Throttle.Default"},
		{"tier store without principals", ThrottleConfig{Tiers: goldBronze, Resolver: store, Default: "bronze"}, true, "Throttle.Resolver"},
		{"unlimited default, no resolver", ThrottleConfig{Tiers: map[string]Tier{"gold": {Rate: 1, Burst: 1}, "unlimited": {Rate: inf}}, Default: "unlimited"}, false, "Throttle.Default"},
		{"every tier unlimited", ThrottleConfig{Tiers: map[string]Tier{"unlimited": {Rate: inf}}, Resolver: anyTier, Default: "unlimited"}, false, "Throttle.Tiers"},
		{"nil store", ThrottleConfig{Tiers: goldBronze, Resolver: nilStore, Default: "gold"}, false, "Throttle.Resolver"},
		{"negative bound", ThrottleConfig{Tiers: goldBronze, Default: "gold", MaxTracked: -1}, false, "Throttle.MaxTracked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := k.config(&tt.th)
			if tt.noPrincipals {
				cfg.Principals = nil
			}
			_, err := New(cfg)
			require.Error(t, err)
			assert.Contains(t, configFields(t, err), tt.field, "%v", err)
		})
	}
}

// TestThrottleUnlimitedTier: a tier of an infinite rate lets its identities through without a
// bucket; the Default names it to leave the principals a file does not name unlimited, on
// purpose.
func TestThrottleUnlimitedTier(t *testing.T) {
	k := newThrottleKit(t)
	_, store := tierStore(t, map[string]string{"partner-a": "bronze", "partner-b": "unlimited"})
	var events []Event
	cfg := k.config(&ThrottleConfig{
		Tiers:    map[string]Tier{"bronze": {Rate: 1, Burst: 2}, "unlimited": {Rate: math.Inf(1)}},
		Resolver: store,
		Default:  "unlimited",
	})
	cfg.OnDecision = func(_ context.Context, ev Event) { events = append(events, ev) }
	m, err := New(cfg)
	require.NoError(t, err)
	h := m.Handler(k.next)
	assert.Equal(t, repeat(200, 50), k.statuses(h, k.p.issuing.NewClient("partner-b"), 50), "named unlimited")
	assert.Equal(t, repeat(200, 50), k.statuses(h, k.p.issuing.NewClient("partner-c"), 50), "not in the file: the default")
	assert.Equal(t, "unlimited", events[len(events)-1].Tier)
	assert.Zero(t, m.throttle.tracked(), "an unlimited tier keeps no bucket")
	assert.Equal(t, []int{200, 200, 429}, k.statuses(h, k.p.issuing.NewClient("partner-a"), 3))
	assert.Equal(t, 1, m.throttle.tracked())
}

// TestThrottleSpellingsGetTheDefault: a principal spelled otherwise than in the tier file (case,
// a look-alike letter) is another principal, and gets the Default, which is required: it is not
// let through unlimited.
func TestThrottleSpellingsGetTheDefault(t *testing.T) {
	k := newThrottleKit(t)
	_, store := tierStore(t, map[string]string{"partner-a": "gold"})
	m, err := New(k.config(&ThrottleConfig{Tiers: goldBronze, Resolver: store, Default: "bronze"}))
	require.NoError(t, err)
	h := m.Handler(k.next)
	for _, cn := range []string{"Partner-A", "PARTNER-A", "partner-\u0430"} {
		t.Run(cn, func(t *testing.T) {
			assert.Equal(t, []int{200, 200, 429}, k.statuses(h, k.p.issuing.NewClient(cn), 3))
		})
	}
}

// TestThrottleResolverRefuses: a resolver's error, or a name that is no tier, refuses the
// request as a principal mapping's error does.
func TestThrottleResolverRefuses(t *testing.T) {
	k := newThrottleKit(t)
	tests := []struct {
		name   string
		answer string
		err    error
	}{
		{"error", "", errors.New("directory down")},
		{"unknown tier", "platinum", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(k.config(&ThrottleConfig{Tiers: goldBronze, Default: "bronze", Resolver: TierResolverFunc(func(*Identity) (string, error) {
				return tt.answer, tt.err
			})}))
			require.NoError(t, err)
			_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", k.p.alice.Chain()...))
			require.ErrorIs(t, err, ErrDenied)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, "throttle", e.Step)
			assert.Equal(t, 403, e.Status())
		})
	}
}

// TestThrottleEntryPoints: Authenticate, Either and Both throttle certificate identities; a
// request that Either let in by credentials alone is not throttled.
func TestThrottleEntryPoints(t *testing.T) {
	k := newThrottleKit(t)
	m, err := New(k.config(&ThrottleConfig{Tiers: goldBronze, Default: "bronze"}))
	require.NoError(t, err)
	check := CredentialCheck(func(*http.Request) (string, error) { return "svc", nil })
	req := func(leaf *mtlstest.Leaf) *http.Request {
		if leaf == nil {
			return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/")
		}
		return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...)
	}

	a := k.p.issuing.NewClient("a")
	for range 2 {
		_, err := m.Authenticate(req(a))
		require.NoError(t, err)
	}
	_, err = m.Authenticate(req(a))
	require.ErrorIs(t, err, ErrRateLimited)
	status, reason := StatusAndReason(err)
	assert.Equal(t, 429, status)
	assert.Equal(t, ReasonRateLimited, reason)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, time.Second, e.RetryAfter)
	assert.Equal(t, "throttle", e.Step)
	assert.Contains(t, e.Error(), `principal "a" over tier "bronze" (1/s, burst 2)`)

	for _, mw := range []struct {
		name string
		h    http.Handler
	}{
		{"Either", m.Either(check)(k.next)},
		{"Both", m.Both(check)(k.next)},
	} {
		t.Run(mw.name, func(t *testing.T) {
			leaf := k.p.issuing.NewClient(mw.name)
			assert.Equal(t, []int{200, 200, 429}, k.statuses(mw.h, leaf, 3))
		})
	}
	either := m.Either(check)(k.next)
	for i := range 5 {
		w := httptest.NewRecorder()
		either.ServeHTTP(w, req(nil))
		assert.Equal(t, 200, w.Code, "credentials only, request %d", i)
	}
}

// TestThrottleEvents: the observer sees the tier on acceptances and Throttled refusals, logged
// like refusals.
func TestThrottleEvents(t *testing.T) {
	k := newThrottleKit(t)
	var events []Event
	var logs bytes.Buffer
	cfg := k.config(&ThrottleConfig{Tiers: goldBronze, Default: "bronze"})
	cfg.OnDecision = func(_ context.Context, ev Event) { events = append(events, ev) }
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	m, err := New(cfg)
	require.NoError(t, err)
	h := m.Handler(k.next)
	require.Equal(t, []int{200, 200, 429, 429}, k.statuses(h, k.p.alice, 4))
	require.Len(t, events, 4)
	assert.Equal(t, Accepted, events[0].Result)
	assert.Equal(t, "bronze", events[0].Tier)
	ev := events[2]
	assert.Equal(t, Throttled, ev.Result)
	assert.Equal(t, 429, ev.Status)
	assert.Equal(t, ReasonRateLimited, ev.Reason)
	assert.Equal(t, "throttle", ev.Step)
	assert.Equal(t, "alice", ev.Principal)
	assert.Equal(t, "bronze", ev.Tier)
	assert.Equal(t, k.p.alice.SHA256(), ev.SHA256)
	assert.Equal(t, 1, bytes.Count(logs.Bytes(), []byte(`msg="mtls: request throttled"`)), "one record at Info a minute per certificate and reason:\n%s", logs.String())
	assert.Contains(t, logs.String(), "tier=bronze")
	assert.Contains(t, logs.String(), "result=throttled")
}

// TestThrottleConcurrent: principals throttled from many goroutines at once each get exactly
// their burst on a stopped clock.
func TestThrottleConcurrent(t *testing.T) {
	k := newThrottleKit(t)
	m, err := New(k.config(&ThrottleConfig{Tiers: map[string]Tier{"t": {Rate: 1, Burst: 10}}, Default: "t"}))
	require.NoError(t, err)
	h := m.Handler(k.next)
	leaves := []*mtlstest.Leaf{k.p.issuing.NewClient("p0"), k.p.issuing.NewClient("p1"), k.p.issuing.NewClient("p2"), k.p.issuing.NewClient("p3")}
	var mu sync.Mutex
	ok := map[string]int{}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				leaf := leaves[(g+i)%len(leaves)]
				if k.do(h, leaf).Code == 200 {
					mu.Lock()
					ok[leaf.Certificate.Subject.CommonName]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, map[string]int{"p0": 10, "p1": 10, "p2": 10, "p3": 10}, ok)
}

// TestThrottleMaxTracked: ten times MaxTracked principals keep the table within it; those
// without room are refused, none throttled is forgotten; once idle, the buckets are swept.
func TestThrottleMaxTracked(t *testing.T) {
	k := newThrottleKit(t)
	const max = 16
	m, err := New(k.config(&ThrottleConfig{Tiers: map[string]Tier{"t": {Rate: 10, Burst: 1}}, Default: "t", MaxTracked: max}))
	require.NoError(t, err)
	id := func(i int) *Identity {
		return &Identity{Principal: fmt.Sprintf("p%d", i)}
	}
	refused := 0
	for i := range 10 * max {
		if e := m.throttle.take(id(i), m.throttle.def, k.clock.Now()); e != nil {
			refused++
			assert.ErrorIs(t, e, ErrRateLimited)
			assert.Contains(t, e.Detail, "none idle")
		}
		require.LessOrEqual(t, m.throttle.tracked(), max)
	}
	assert.Equal(t, 9*max, refused)
	// p0 is throttled, and was not evicted to make room.
	assert.NotNil(t, m.throttle.take(id(0), m.throttle.def, k.clock.Now()))

	// A second later every bucket is full again (burst 1 at 10/s): the full table is swept, and
	// new principals find room.
	k.clock.Advance(time.Second)
	for i := range max {
		require.Nil(t, m.throttle.take(id(1000+i), m.throttle.def, k.clock.Now()), "principal %d", i)
	}
	assert.LessOrEqual(t, m.throttle.tracked(), max)
}

// TestThrottleCertificateKeysShare: identities without a principal, keyed by certificate, take
// at most half of the table: a client holding many accepted certificates, each kept busy, leaves
// room for the principals the operator set.
func TestThrottleCertificateKeysShare(t *testing.T) {
	k := newThrottleKit(t)
	const max = 16
	cfg := k.config(&ThrottleConfig{Tiers: map[string]Tier{"slow": {Rate: 0.01, Burst: 1}}, Default: "slow", MaxTracked: max})
	cfg.Principals = PrincipalResolverFunc(func(id *Identity) (string, error) {
		if cn := id.Leaf.Subject.CommonName; strings.HasPrefix(cn, "partner") {
			return cn, nil
		}
		return "", nil // keyed by certificate
	})
	m, err := New(cfg)
	require.NoError(t, err)
	h := m.Handler(k.next)
	bots := make([]*mtlstest.Leaf, max)
	for i := range bots {
		bots[i] = k.p.issuing.NewClient(fmt.Sprintf("bot-%d", i))
	}
	// Rounds of 90 s: one request per certificate a round keeps each bucket in use (100 s to
	// refill); a new partner comes each round.
	var partners []int
	for round := range 5 {
		for _, l := range bots {
			k.do(h, l)
		}
		partners = append(partners, k.do(h, k.p.issuing.NewClient(fmt.Sprintf("partner-%d", round))).Code)
		k.clock.Advance(90 * time.Second)
	}
	assert.Equal(t, repeat(200, 5), partners, "new partners find room beside the certificates")
	assert.LessOrEqual(t, m.throttle.tracked(), max)

	w := k.do(h, k.p.issuing.NewClient("bot-new"))
	require.Equal(t, 429, w.Code)
	assert.Equal(t, "1", w.Header().Get("Retry-After"))
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", k.p.issuing.NewClient("bot-new2").Chain()...))
	require.ErrorIs(t, err, ErrRateLimited)
	assert.ErrorContains(t, err, "none idle")
}

// TestThrottleShards: the table is split in shards, each with its own lock, bound and sweep, so
// that a sweep looks at no more than a shard (at most 3,125 buckets at the default MaxTracked);
// the bounds add up to MaxTracked.
func TestThrottleShards(t *testing.T) {
	tests := []struct {
		max, shards int
	}{
		{1, 1}, {16, 1}, {1000, 1}, {4096, 4}, {defaultMaxTracked, 32}, {1 << 20, 32},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.max), func(t *testing.T) {
			th := compileThrottle(&problems{}, &ThrottleConfig{Tiers: goldBronze, Default: "gold", MaxTracked: tt.max}, true)
			require.Len(t, th.shards, tt.shards)
			total, most := 0, 0
			for i := range th.shards {
				s := &th.shards[i]
				total += s.max
				most = max(most, s.max)
				assert.GreaterOrEqual(t, s.maxCerts, 1)
				assert.LessOrEqual(t, s.maxCerts, max(1, s.max/2))
			}
			assert.Equal(t, tt.max, total)
			assert.LessOrEqual(t, most, (tt.max+tt.shards-1)/tt.shards)
		})
	}
	// Keys spread over the shards, and a full shard refuses on its own.
	th := compileThrottle(&problems{}, &ThrottleConfig{Tiers: map[string]Tier{"t": {Rate: 0.001, Burst: 1}}, Default: "t", MaxTracked: 4096}, true)
	now := time.Unix(1e9, 0)
	refused := 0
	for i := range 4096 {
		if th.take(&Identity{Principal: fmt.Sprintf("p%d", i)}, th.def, now) != nil {
			refused++
		}
	}
	for i := range th.shards {
		assert.Positive(t, len(th.shards[i].table), "shard %d", i)
	}
	assert.Equal(t, 4096-refused, th.tracked())
	assert.Less(t, refused, 4096/8, "no shard is much fuller than the others")
}

// TestThrottleSweepsIdle: idle buckets are forgotten as new ones are added, well before the
// table is full.
func TestThrottleSweepsIdle(t *testing.T) {
	k := newThrottleKit(t)
	m, err := New(k.config(&ThrottleConfig{Tiers: map[string]Tier{"t": {Rate: 10, Burst: 5}}, Default: "t", MaxTracked: 40}))
	require.NoError(t, err)
	th := m.throttle
	for i := range 10 {
		require.Nil(t, th.take(&Identity{Principal: fmt.Sprintf("old%d", i)}, th.def, k.clock.Now()))
	}
	busy := &Identity{Principal: "busy"}
	for range 5 {
		require.Nil(t, th.take(busy, th.def, k.clock.Now()))
	}
	k.clock.Advance(100 * time.Millisecond) // old ones: 5 tokens, full again; busy: 1 of 5
	require.Nil(t, th.take(busy, th.def, k.clock.Now()))
	for i := range 10 {
		require.Nil(t, th.take(&Identity{Principal: fmt.Sprintf("new%d", i)}, th.def, k.clock.Now()))
	}
	// A sweep ran when the eleventh bucket was added: it dropped the old ones, kept busy's.
	assert.Less(t, th.tracked(), 21)
	kept := th.holds(throttleKey{principal: "busy"})
	old := th.holds(throttleKey{principal: "old0"})
	assert.True(t, kept, "a bucket in use is kept")
	assert.False(t, old, "an idle bucket is forgotten")
	require.NotNil(t, th.take(busy, th.def, k.clock.Now()), "busy kept its (empty) bucket")
}

// holds says whether th keeps a bucket for k.
func (th *throttle) holds(k throttleKey) bool {
	s := th.shardOf(&k)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.table[k] != nil
}

// sweepAll sweeps every shard of th at now, as requests adding buckets would in time.
func (th *throttle) sweepAll(now time.Time) {
	for i := range th.shards {
		s := &th.shards[i]
		s.mu.Lock()
		s.sweep(now)
		s.mu.Unlock()
	}
}

// TestThrottleClock: each bucket keeps its own last time. A clock set back by less than
// Burst/Rate refills nothing when it comes forward again; set back by more (or stepped forward
// and then corrected), the bucket starts again full at the new time, rather than freezing until
// the clock has caught up: at most one burst more.
func TestThrottleClock(t *testing.T) {
	type step struct {
		at time.Duration // from the first request
		ok bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"set back a little", []step{{0, true}, {-500 * time.Millisecond, false}, {500 * time.Millisecond, false}, {time.Second, true}}},
		{"set back an hour", []step{{0, true}, {-time.Hour, true}, {-time.Hour, false}, {-time.Hour + time.Second, true}}},
		{"stepped forward, then corrected", []step{{0, true}, {time.Hour, true},
			{time.Minute, true}, {2 * time.Minute, true}, {3 * time.Minute, true}, {3 * time.Minute, false}, {30 * time.Minute, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newThrottleKit(t)
			m, err := New(k.config(&ThrottleConfig{Tiers: map[string]Tier{"t": {Rate: 1, Burst: 1}}, Default: "t"}))
			require.NoError(t, err)
			th, id, t0 := m.throttle, &Identity{Principal: "p"}, k.clock.Now()
			other := &Identity{Principal: "q"}
			require.Nil(t, th.take(other, th.def, t0), "a bucket on the clock as it was")
			for i, st := range tt.steps {
				e := th.take(id, th.def, t0.Add(st.at))
				assert.Equal(t, st.ok, e == nil, "request %d at %v: %v", i, st.at, e)
			}
			assert.Nil(t, th.take(other, th.def, t0.Add(time.Second)), "another bucket is not held back by p's clock")
		})
	}

	// A bucket whose time is ahead of the clock by more than Burst/Rate would start again: the
	// sweep forgets it.
	k := newThrottleKit(t)
	m, err := New(k.config(&ThrottleConfig{Tiers: map[string]Tier{"t": {Rate: 1, Burst: 1}}, Default: "t"}))
	require.NoError(t, err)
	th, t0 := m.throttle, k.clock.Now()
	require.Nil(t, th.take(&Identity{Principal: "p"}, th.def, t0.Add(time.Hour)))
	th.sweepAll(t0.Add(time.Minute))
	assert.Zero(t, th.tracked())
}

// TestThrottleOverTLS: the 429 and its Retry-After on the wire.
func TestThrottleOverTLS(t *testing.T) {
	k := newThrottleKit(t)
	m, err := New(k.config(&ThrottleConfig{Tiers: map[string]Tier{"slow": {Rate: 0.25, Burst: 1}}, Default: "slow"}))
	require.NoError(t, err)
	srv, serverCA := tlsServer(t, m, k.next)
	c := clientFor(serverCA, k.p.alice)
	res, err := c.Get(srv.URL)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode)
	res, err = c.Get(srv.URL)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	assert.Equal(t, "4", res.Header.Get("Retry-After"))
	assert.Equal(t, ReasonRateLimited, decodeProblem(t, res).Reason)
}

// TestThrottleHotPathAllocations: throttling adds no allocation to a cached acceptance.
func TestThrottleHotPathAllocations(t *testing.T) {
	k := newThrottleKit(t)
	m, err := New(Config{RootCAs: k.p.root.Pool(), Now: k.clock.Now,
		Throttle: &ThrottleConfig{Tiers: map[string]Tier{"t": {Rate: 1e9, Burst: 1 << 30}}, Default: "t"}})
	require.NoError(t, err)
	h := m.Handler(noop)
	r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", k.p.alice.Chain()...)
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, r)
	if allocs := testing.AllocsPerRun(200, func() { h.ServeHTTP(w, r) }); allocs > 3 {
		t.Fatalf("cache-hit request allocates %v times with throttling, budget is 3", allocs)
	}
}

func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"not throttled", newError(ErrDenied, "", nil), ""},
		{"zero", &Error{Kind: ErrRateLimited}, "1"},
		{"under a second", &Error{Kind: ErrRateLimited, RetryAfter: time.Millisecond}, "1"},
		{"a second", &Error{Kind: ErrRateLimited, RetryAfter: time.Second}, "1"},
		{"just over", &Error{Kind: ErrRateLimited, RetryAfter: time.Second + 1}, "2"},
		{"wrapped", fmt.Errorf("x: %w", &Error{Kind: ErrRateLimited, RetryAfter: 3 * time.Second}), "3"},
		{"a day", &Error{Kind: ErrRateLimited, RetryAfter: 24 * time.Hour}, "86400"},
		{"over a day", &Error{Kind: ErrTooManyRefusals, RetryAfter: 24*time.Hour + 1}, "86400"},
		{"longest duration", &Error{Kind: ErrTooManyRefusals, RetryAfter: time.Duration(math.MaxInt64)}, "86400"},
		{"longest duration, not a 429", &Error{Kind: ErrDenied, RetryAfter: time.Duration(math.MaxInt64)}, "86400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _ := StatusAndReason(tt.err)
			assert.Equal(t, tt.want, retryAfter(tt.err, status))
			w := httptest.NewRecorder()
			WriteError(w, nil, tt.err)
			assert.Equal(t, tt.want, w.Header().Get("Retry-After"))
		})
	}
	status, reason := StatusAndReason(ErrRateLimited)
	assert.Equal(t, 429, status)
	assert.Equal(t, ReasonRateLimited, reason)
}

// TestTierStoreLen: Len of a nil or zero TierStore is 0, as ResolveTier of one answers.
func TestTierStoreLen(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tiers.json")
	writeTiers(t, file, map[string]string{"a": "gold", "b": "bronze"})
	loaded, err := NewTierStore(file)
	require.NoError(t, err)
	var nilStore *TierStore
	tests := []struct {
		name  string
		store *TierStore
		want  int
	}{
		{"nil", nilStore, 0},
		{"zero", new(TierStore), 0},
		{"loaded", loaded, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NotPanics(t, func() { assert.Equal(t, tt.want, tt.store.Len()) })
		})
	}
	tier, err := new(TierStore).ResolveTier(&Identity{Principal: "a"})
	require.NoError(t, err)
	assert.Empty(t, tier)
}

func TestParseTierJSON(t *testing.T) {
	tests := []struct {
		name, doc, err string
		n              int
	}{
		{"empty", `{}`, "", 0},
		{"two", `{"a": "gold", "b": "bronze"}`, "", 2},
		{"list", `["gold"]`, "expected an object", 0},
		{"empty tier", `{"a": ""}`, "expected a tier name", 0},
		{"list tier", `{"a": ["gold"]}`, "expected a tier name", 0},
		{"bad principal", `{" a": "gold"}`, "principal is empty", 0},
		{"duplicate", `{"a": "gold", "a": "bronze"}`, "duplicate", 0},
		{"not UTF-8", "{\"a\xff\": \"gold\"}", "UTF-8", 0},
		{"trailing", `{} {}`, "data after", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseTierJSON("f", []byte(tt.doc))
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Len(t, m.tiers, tt.n)
		})
	}
	_, err := NewTierStore(filepath.Join(t.TempDir(), "missing.json"))
	require.Error(t, err)
	big := filepath.Join(t.TempDir(), "big.json")
	require.NoError(t, os.WriteFile(big, bytes.Repeat([]byte(" "), maxBindingFile+1), 0o600))
	_, err = NewTierStore(big)
	require.ErrorContains(t, err, "larger than")
}

// FuzzParseTierJSON: a tier file either parses to plain principals with tier names, which read
// back the same when written out again, or is refused.
func FuzzParseTierJSON(f *testing.F) {
	f.Add([]byte(`{"partner-a": "gold", "partner-b": "bronze"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"a": "gold", "a": "gold"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseTierJSON("f", data)
		if err != nil {
			return
		}
		for p, tier := range m.tiers {
			if !plainPrincipal(p) || tier == "" {
				t.Fatalf("accepted %q: %q", p, tier)
			}
		}
		again, err := json.Marshal(m.tiers)
		if err != nil {
			t.Fatal(err)
		}
		back, err := parseTierJSON("f", again)
		if err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if len(back.tiers) != len(m.tiers) {
			t.Fatalf("round trip: %d tiers, then %d", len(m.tiers), len(back.tiers))
		}
		for p, tier := range m.tiers {
			if back.tiers[p] != tier {
				t.Fatalf("round trip: %q: %q, then %q", p, tier, back.tiers[p])
			}
		}
	})
}

// BenchmarkThrottleMemory measures the memory of one tracked principal: its bucket, its entry
// in the table (beside the principal's name, which the bindings hold).
func BenchmarkThrottleMemory(b *testing.B) {
	const n = 20_000
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("principal-%06d", i)
	}
	ids := make([]Identity, n)
	for i := range ids {
		ids[i].Principal = names[i]
	}
	now := time.Unix(1e9, 0)
	var perPrincipal float64
	for b.Loop() {
		th := compileThrottle(&problems{}, &ThrottleConfig{Tiers: map[string]Tier{"t": {Rate: 1, Burst: 10}}, Default: "t", MaxTracked: 2 * n}, true) // room to spare: keys spread over shards unevenly
		var before, after runtimeMem
		before.read()
		for i := range ids {
			if e := th.take(&ids[i], th.def, now); e != nil {
				b.Fatal(e)
			}
		}
		after.read()
		runtime.KeepAlive(th)
		if th.tracked() != n {
			b.Fatalf("%d tracked", th.tracked())
		}
		perPrincipal = float64(after.heap-before.heap) / n
	}
	b.ReportMetric(perPrincipal, "B/principal")
}

// runtimeMem is the live heap after a collection.
type runtimeMem struct{ heap uint64 }

func (r *runtimeMem) read() {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.heap = ms.HeapAlloc
}

// TestThrottleNoFallBack: with DangerouslyFallBackOnInvalidCertificate, a throttled certificate
// is refused all the same: its credentials do not stand in for the limit of a known client.
func TestThrottleNoFallBack(t *testing.T) {
	k := newThrottleKit(t)
	m, err := New(k.config(&ThrottleConfig{Tiers: goldBronze, Default: "bronze"}))
	require.NoError(t, err)
	check := CredentialCheck(func(*http.Request) (string, error) { return "svc", nil })
	h := m.Either(check, DangerouslyFallBackOnInvalidCertificate())(k.next)
	assert.Equal(t, []int{200, 200, 429, 429}, k.statuses(h, k.p.alice, 4))
}
