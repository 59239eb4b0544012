package mtls

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSoak mixes valid, invalid, revoked, denied and spoofed requests, over TLS and from a trusted
// proxy, with reloads that swap the roots, pins, policy, bindings and deny list, and CRL files
// rewritten under the refreshes that read them. It is bounded in requests and reloads, and meant
// for -race. It checks that no answer is wrong (each request gets an outcome its client may
// have under one generation of the files, never a mix), that every retired generation is freed,
// and that the heap and the goroutines do not grow with the work done.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test")
	}
	const (
		workers  = 4
		phases   = 3
		reloads  = 12  // per phase
		requests = 600 // per worker per phase
	)
	s := newSoak(t)
	goroutinesBefore := runtime.NumGoroutine()
	m, err := New(s.config())
	require.NoError(t, err)

	var retired []weak.Pointer[state]
	var heap [phases]uint64
	var wrong atomic.Int64
	var firstWrong atomic.Value
	for phase := range phases {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range requests {
					c := s.cases[(w*7+i)%len(s.cases)]
					id, err := m.Authenticate(c.request())
					if msg := c.judge(id, err); msg != "" {
						wrong.Add(1)
						firstWrong.CompareAndSwap(nil, c.name+": "+msg)
					}
				}
			})
		}
		for range reloads {
			retired = append(retired, weak.Make(m.state.Load()))
			s.nextGeneration(t)
			require.NoError(t, m.Reload())
			s.clock.Advance(2 * time.Minute) // past the CRL refresh interval: requests re-read the CRL files
		}
		wg.Wait()
		require.Zero(t, wrong.Load(), "wrong answers, the first: %v", firstWrong.Load())
		heap[phase] = heapAfterGC()
	}

	// The CRL files were read again while the requests ran.
	for _, c := range m.CRLStatus() {
		assert.True(t, c.Loaded, c.Source)
		assert.NoError(t, c.Err, c.Source)
		assert.True(t, c.ThisUpdate.After(s.start), "%s: no CRL written after the start was read", c.Source)
	}
	// Every generation but the one in force is unreachable: nothing keeps an old trust, cache
	// or deny list alive.
	runtime.GC()
	runtime.GC()
	live := 0
	for _, p := range retired {
		if p.Value() != nil {
			live++
		}
	}
	assert.Zero(t, live, "of %d retired generations", len(retired))
	// The work of the last phases did not grow the heap: the caches are bounded and outcomes of
	// old generations are gone. The bound (1 MiB) is about a hundred times the growth seen, and
	// below what 200 bytes leaked per request, or 30 KiB per reload, would leave.
	const slack = 1 << 20
	t.Logf("heap after each phase: %v bytes; %d retired generations", heap, len(retired))
	assert.Less(t, heap[phases-1], heap[0]+slack, "heap after each phase: %v", heap)

	require.NoError(t, m.Close())
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= goroutinesBefore+2 },
		10*time.Second, 10*time.Millisecond, "goroutines: %d before New", goroutinesBefore) // a bound, not a measure
}

func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// soak is the PKI, the files and the clients of TestSoak. Generation g of the files trusts root
// A always and root B in odd generations; binds the good client, B's client and the pinned
// partner to principals suffixed with g's parity, which the policy of g alone admits; and denies
// one client by its fingerprint in even generations and by its key in odd ones. The CRLs of both
// issuers list the revoked client in every generation.
type soak struct {
	dir                 string
	clock               *revClock
	start               time.Time
	rootA, issuing      *mtlstest.CA
	rootB               *mtlstest.CA
	good, rotating      *mtlstest.Leaf
	revoked, denied     *mtlstest.Leaf
	expired, stranger   *mtlstest.Leaf
	partner             *mtlstest.Leaf
	generation          int
	roots, pins, policy string
	bindings, deny      string
	crlIssuing, crlB    string
	cases               []soakCase
}

func newSoak(t *testing.T) *soak {
	dir := t.TempDir()
	rootA := mtlstest.NewRootCA("Soak Root A")
	issuing := rootA.NewIntermediate("Soak Issuing CA")
	rootB := mtlstest.NewRootCA("Soak Root B")
	clock := newRevClock()
	past := clock.Now().Add(-48 * time.Hour)
	s := &soak{
		dir: dir, clock: clock, start: clock.Now(),
		rootA: rootA, issuing: issuing, rootB: rootB,
		good:     issuing.NewClient("good"),
		rotating: rootB.NewClient("rotating"),
		revoked:  issuing.NewClient("revoked"),
		denied:   issuing.NewClient("denied"),
		expired:  issuing.NewClient("expired", mtlstest.WithValidity(past.Add(-time.Hour), past)),
		stranger: mtlstest.NewRootCA("Soak Stranger CA").NewClient("good"),
		partner:  mtlstest.NewSelfSigned("partner"),
	}
	for name, field := range map[string]*string{
		"roots.pem": &s.roots, "pins.txt": &s.pins, "policy.json": &s.policy, "bindings.json": &s.bindings,
		"deny.txt": &s.deny, "issuing.crl": &s.crlIssuing, "b.crl": &s.crlB,
	} {
		*field = filepath.Join(dir, name)
	}
	s.writeGeneration(t)
	s.cases = s.newCases()
	return s
}

func (s *soak) config() Config {
	store, err := NewBindingStore(s.bindings)
	if err != nil {
		panic(err)
	}
	return Config{
		RootCAFiles:       []string{s.roots},
		PinnedSHA256Files: []string{s.pins},
		PolicyFiles:       []string{s.policy},
		Principals:        store,
		Now:               s.clock.Now,
		Header: &HeaderConfig{
			Format:         MustHeaderFormat("rfc9440"),
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		},
		Revocation: &RevocationConfig{
			CRL:          &CRLConfig{Files: []string{s.crlIssuing, s.crlB}, RefreshInterval: time.Minute},
			DenyListFile: s.deny,
		},
	}
}

func (s *soak) nextGeneration(t *testing.T) {
	s.generation++
	s.writeGeneration(t)
}

func (s *soak) parity() string { return []string{"even", "odd"}[s.generation%2] }

// writeGeneration writes the files of the current generation, each replaced at once.
func (s *soak) writeGeneration(t *testing.T) {
	roots := s.rootA.CertPEM()
	if s.generation%2 == 1 {
		roots = append(roots, s.rootB.CertPEM()...)
	}
	p := s.parity()
	spki := sha256.Sum256(s.denied.Certificate.RawSubjectPublicKeyInfo)
	deny := "sha256 " + Fingerprint(s.denied.Certificate) + "\n"
	if s.generation%2 == 1 {
		deny = "spki-sha256 " + hex.EncodeToString(spki[:]) + "\n"
	}
	now := s.clock.Now()
	crl := func(ca *mtlstest.CA) []byte {
		return mtlstest.CRLPEM(ca.NewCRL(mtlstest.CRL{
			ThisUpdate: now, NextUpdate: now.Add(24 * time.Hour),
			Number:  big.NewInt(int64(s.generation + 1)),
			Revoked: []*big.Int{s.revoked.Certificate.SerialNumber},
		}))
	}
	files := []struct {
		name string
		data []byte
	}{
		{s.roots, roots},
		{s.pins, []byte("# the partner\n" + s.partner.SHA256() + "\n")},
		{s.policy, []byte(fmt.Sprintf(`{"principal": ["good-%s", "rotating-%s", "partner-%s"]}`, p, p, p))},
		{s.bindings, []byte(fmt.Sprintf(`{"good-%s": [%q], "rotating-%s": [%q], "partner-%s": [%q]}`,
			p, Fingerprint(s.good.Certificate), p, Fingerprint(s.rotating.Certificate), p, Fingerprint(s.partner.Certificate)))},
		{s.deny, []byte(deny)},
		{s.crlIssuing, crl(s.issuing)},
		{s.crlB, crl(s.rootB)},
	}
	for _, f := range files {
		tmp := f.name + ".tmp"
		require.NoError(t, os.WriteFile(tmp, f.data, 0o600))
		require.NoError(t, os.Rename(tmp, f.name))
	}
}

// soakCase is a kind of request and the outcomes it may have.
type soakCase struct {
	name    string
	request func() *http.Request
	judge   func(id *Identity, err error) string // "" when the outcome is a right one
}

func (s *soak) newCases() []soakCase {
	tls := func(l *mtlstest.Leaf) func() *http.Request {
		return func() *http.Request {
			return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", l.Chain()...)
		}
	}
	proxy := mtlstest.Proxy{Format: MustHeaderFormat("rfc9440"), Addr: "10.1.2.3:4000"}
	header := func(l *mtlstest.Leaf) func() *http.Request {
		return func() *http.Request {
			return proxy.NewRequest(http.MethodGet, "https://api.example.test/", l.Chain()...)
		}
	}
	// A peer outside TrustedProxies sends the good client's header: over plain HTTP, and over
	// TLS presenting the stranger's certificate.
	spoofed := mtlstest.Proxy{Format: MustHeaderFormat("rfc9440"), Addr: "192.0.2.7:4000"}
	spoofPlain := func() *http.Request {
		return spoofed.NewRequest(http.MethodGet, "https://api.example.test/", s.good.Chain()...)
	}
	spoofTLS := func() *http.Request {
		r := tls(s.stranger)()
		r.RemoteAddr = spoofed.Addr
		for k, v := range spoofPlain().Header {
			r.Header[k] = v
		}
		return r
	}
	accepted := func(principal string, src Source) func(*Identity, error) string {
		return func(id *Identity, err error) string {
			switch {
			case err != nil:
				return fmt.Sprintf("refused: %v", err)
			case id.Principal != principal+"-even" && id.Principal != principal+"-odd":
				return fmt.Sprintf("principal %q", id.Principal)
			case id.Source != src:
				return fmt.Sprintf("source %q", id.Source)
			}
			return ""
		}
	}
	refused := func(kinds ...error) func(*Identity, error) string {
		return func(id *Identity, err error) string {
			for _, k := range kinds {
				if errors.Is(err, k) {
					return ""
				}
			}
			return fmt.Sprintf("got %v, %v; want one of %v", id, err, kinds)
		}
	}
	rotating := func(src Source) func(*Identity, error) string {
		ok := accepted("rotating", src)
		return func(id *Identity, err error) string {
			if errors.Is(err, ErrUntrusted) { // a generation without root B
				return ""
			}
			return ok(id, err)
		}
	}
	return []soakCase{
		{"good over TLS", tls(s.good), accepted("good", SourceTLS)},
		{"good from the proxy", header(s.good), accepted("good", SourceHeader)},
		{"partner, pinned", tls(s.partner), accepted("partner", SourceTLS)},
		{"rotating root", tls(s.rotating), rotating(SourceTLS)},
		{"rotating root from the proxy", header(s.rotating), rotating(SourceHeader)},
		{"revoked", tls(s.revoked), refused(ErrRevoked)},
		{"revoked from the proxy", header(s.revoked), refused(ErrRevoked)},
		{"denied", tls(s.denied), refused(ErrRevoked)},
		{"expired", tls(s.expired), refused(ErrExpired)},
		{"stranger", tls(s.stranger), refused(ErrUntrusted)},
		{"spoofed header, no TLS", spoofPlain, refused(ErrNoCertificate)},
		{"spoofed header over TLS", spoofTLS, refused(ErrUntrusted)},
	}
}
