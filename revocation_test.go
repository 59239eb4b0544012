package mtls

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/mtls/internal/crl"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/ocsp"
)

// revClock is a clock the test moves by hand.
type revClock struct {
	mu sync.Mutex
	t  time.Time
}

func newRevClock() *revClock { return &revClock{t: time.Now()} }

func (c *revClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *revClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// revPKI is root -> issuing CA -> clients, with a clock.
type revPKI struct {
	root, issuing *mtlstest.CA
	clock         *revClock
}

func newRevPKI() *revPKI {
	root := mtlstest.NewRootCA("Rev Root CA")
	return &revPKI{root: root, issuing: root.NewIntermediate("Rev Issuing CA"), clock: newRevClock()}
}

func (p *revPKI) middleware(t testing.TB, rc *RevocationConfig) *Middleware {
	t.Helper()
	m, err := New(Config{RootCAs: p.root.Pool(), Now: p.clock.Now, Revocation: rc})
	require.NoError(t, err)
	return m
}

// revAuthn runs the middleware on a request presenting leaf's chain.
func revAuthn(m *Middleware, leaf *mtlstest.Leaf) (*Identity, error) {
	return m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...))
}

func requireRevRefused(t *testing.T, err error, kind error) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, kind)
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.NotNil(t, e.Leaf)
	status, reason := StatusAndReason(err)
	switch kind {
	case ErrRevoked:
		assert.Equal(t, http.StatusUnauthorized, status)
		assert.Equal(t, ReasonCertificateRevoked, reason)
	case ErrRevocationUnavailable:
		assert.Equal(t, http.StatusServiceUnavailable, status)
		assert.Equal(t, ReasonRevocationUnavailable, reason)
	}
}

// revResponder serves whatever answer returns; it counts requests and remembers methods.
type revResponder struct {
	srv     *httptest.Server
	calls   atomic.Int64
	mu      sync.Mutex
	methods []string
}

func newRevResponder(t testing.TB, answer func(w http.ResponseWriter, r *http.Request)) *revResponder {
	rf := &revResponder{}
	rf.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rf.calls.Add(1)
		rf.mu.Lock()
		rf.methods = append(rf.methods, r.Method)
		rf.mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(rf.srv.Close)
	return rf
}

// serving answers every request with der.
func serving(der []byte) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(der) }
}

func TestOCSPHostileMatrix(t *testing.T) {
	p := newRevPKI()
	other := p.root.NewIntermediate("Other Issuing CA")
	sameName := p.root.NewIntermediate("Rev Issuing CA")
	leaf := p.issuing.NewClient("alice")
	goodSigner := p.issuing.NewOCSPSigner("Rev OCSP")
	noEKU := p.issuing.NewOCSPSigner("Rev OCSP without EKU", mtlstest.WithExtKeyUsage(x509.ExtKeyUsageClientAuth))
	foreignSigner := other.NewOCSPSigner("Foreign OCSP")
	expiredSigner := p.issuing.NewOCSPSigner("Expired OCSP", mtlstest.WithValidity(time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)))
	now := p.clock.Now()

	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hang := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
	mint := func(a mtlstest.OCSPAnswer) func(http.ResponseWriter, *http.Request) {
		return serving(p.issuing.NewOCSPResponse(leaf.Certificate, a))
	}
	tests := []struct {
		name   string
		answer func(http.ResponseWriter, *http.Request)
		want   error // nil: accepted
	}{
		{"good", mint(mtlstest.OCSPAnswer{}), nil},
		{"good from a delegated responder", mint(mtlstest.OCSPAnswer{Signer: goodSigner}), nil},
		{"no nextUpdate", mint(mtlstest.OCSPAnswer{NoNextUpdate: true}), nil},
		{"revoked", mint(mtlstest.OCSPAnswer{Status: ocsp.Revoked}), ErrRevoked},
		{"revoked by a delegated responder", mint(mtlstest.OCSPAnswer{Status: ocsp.Revoked, Signer: goodSigner}), ErrRevoked},
		{"unknown", mint(mtlstest.OCSPAnswer{Status: ocsp.Unknown}), ErrRevocationUnavailable},
		{"expired response", mint(mtlstest.OCSPAnswer{ThisUpdate: now.Add(-3 * time.Hour), NextUpdate: now.Add(-time.Hour)}), ErrRevocationUnavailable},
		{"thisUpdate in the future", mint(mtlstest.OCSPAnswer{ThisUpdate: now.Add(time.Hour)}), ErrRevocationUnavailable},
		{"delegated responder without the EKU", mint(mtlstest.OCSPAnswer{Signer: noEKU}), ErrRevocationUnavailable},
		{"delegated responder of another CA", mint(mtlstest.OCSPAnswer{Signer: foreignSigner}), ErrRevocationUnavailable},
		{"delegated responder expired", mint(mtlstest.OCSPAnswer{Signer: expiredSigner}), ErrRevocationUnavailable},
		{"signed by the wrong key", func(w http.ResponseWriter, _ *http.Request) {
			// The CertID names the right issuer, but a same-named impostor signs.
			der, err := ocsp.CreateResponse(p.issuing.Certificate, sameName.Certificate,
				ocsp.Response{Status: ocsp.Good, SerialNumber: leaf.Certificate.SerialNumber,
					ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}, sameName.Key)
			require.NoError(t, err)
			_, _ = w.Write(der)
		}, ErrRevocationUnavailable},
		{"answer about another issuer's certificate with the same serial", func(w http.ResponseWriter, _ *http.Request) {
			twin := other.NewClient("twin", mtlstest.WithSerial(leaf.Certificate.SerialNumber))
			der, err := ocsp.CreateResponse(other.Certificate, p.issuing.Certificate,
				ocsp.Response{Status: ocsp.Good, SerialNumber: twin.Certificate.SerialNumber,
					ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}, p.issuing.Key)
			require.NoError(t, err)
			_, _ = w.Write(der)
		}, ErrRevocationUnavailable},
		{"tryLater", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(ocsp.TryLaterErrorResponse) }, ErrRevocationUnavailable},
		{"garbage", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>proxy error</html>")) }, ErrRevocationUnavailable},
		{"HTTP 500", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusInternalServerError) }, ErrRevocationUnavailable},
		{"oversized body", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write(bytes.Repeat([]byte{0x30}, 2<<20))
		}, ErrRevocationUnavailable},
		{"oversized body without length", func(w http.ResponseWriter, _ *http.Request) {
			for range 64 {
				_, _ = w.Write(bytes.Repeat([]byte{0x30}, 32<<10))
				w.(http.Flusher).Flush()
			}
		}, ErrRevocationUnavailable},
		// Answers only once the query was given up (Timeout) or the test ends.
		{"responder timeout", hang, ErrRevocationUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rf := newRevResponder(t, tt.answer)
			rc := &RevocationConfig{OCSP: &OCSPConfig{Responder: rf.srv.URL}}
			if tt.name == "responder timeout" {
				rc.Timeout = 100 * time.Millisecond
			}
			m := p.middleware(t, rc)
			id, err := revAuthn(m, leaf)
			if tt.want == nil {
				require.NoError(t, err)
				assert.False(t, id.Revocation.Degraded())
				return
			}
			requireRevRefused(t, err, tt.want)
			assert.Nil(t, id)
		})
	}
}

func TestOCSPUsesAIAAndGETForSmallRequests(t *testing.T) {
	p := newRevPKI()
	resp := mtlstest.NewOCSPResponder(p.issuing)
	t.Cleanup(resp.Close)
	leaf := p.issuing.NewClient("alice", mtlstest.WithOCSPServer("ldap://ignored.example", resp.URL))
	m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{}})
	_, err := revAuthn(m, leaf)
	require.NoError(t, err)
	assert.Equal(t, 1, resp.Requests())

	revoked := p.issuing.NewClient("mallory", mtlstest.WithOCSPServer(resp.URL))
	resp.Revoke(revoked.Certificate.SerialNumber)
	_, err = revAuthn(m, revoked)
	requireRevRefused(t, err, ErrRevoked)

	none := p.issuing.NewClient("no-aia")
	_, err = revAuthn(m, none)
	requireRevRefused(t, err, ErrRevocationUnavailable)
}

func TestOCSPPostForLongRequests(t *testing.T) {
	p := newRevPKI()
	leaf := p.issuing.NewClient("alice")
	der := p.issuing.NewOCSPResponse(leaf.Certificate, mtlstest.OCSPAnswer{})
	rf := newRevResponder(t, serving(der))
	long := rf.srv.URL + "/" + strings.Repeat("a", 200)
	short := rf.srv.URL

	for _, u := range []string{short, long} {
		m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: u}})
		_, err := revAuthn(m, leaf)
		require.NoError(t, err)
	}
	rf.mu.Lock()
	defer rf.mu.Unlock()
	assert.Equal(t, []string{http.MethodGet, http.MethodPost}, rf.methods)
}

func TestOCSPCacheRefreshAndStaleIfError(t *testing.T) {
	p := newRevPKI()
	leaf := p.issuing.NewClient("alice")
	var failing atomic.Bool
	rf := newRevResponder(t, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		now := p.clock.Now()
		_, _ = w.Write(p.issuing.NewOCSPResponse(leaf.Certificate, mtlstest.OCSPAnswer{ThisUpdate: now, NextUpdate: now.Add(time.Hour)}))
	})
	var logs bytes.Buffer
	m, err := New(Config{RootCAs: p.root.Pool(), Now: p.clock.Now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Revocation: &RevocationConfig{
			OCSP:         &OCSPConfig{Responder: rf.srv.URL},
			StaleIfError: 10 * time.Minute,
		}})
	require.NoError(t, err)

	id, err := revAuthn(m, leaf)
	require.NoError(t, err)
	require.EqualValues(t, 1, rf.calls.Load())

	t.Run("cached until the refresh point", func(t *testing.T) {
		p.clock.Advance(30 * time.Minute)
		for range 10 {
			_, err := revAuthn(m, leaf)
			require.NoError(t, err)
		}
		assert.EqualValues(t, 1, rf.calls.Load())
	})
	t.Run("refreshed in the background before nextUpdate", func(t *testing.T) {
		p.clock.Advance(20 * time.Minute) // 50 min: past 3/4 of the hour
		_, err := revAuthn(m, leaf)
		require.NoError(t, err)
		// Done once the refresh has stored its answer and given back its slot, not merely once
		// the responder was called: the next step makes the responder fail.
		require.Eventually(t, func() bool { return rf.calls.Load() == 2 && len(m.revoc.sem) == 0 }, 30*time.Second, 5*time.Millisecond)
	})
	t.Run("stale answer within the budget while the responder fails", func(t *testing.T) {
		failing.Store(true)
		p.clock.Advance(65 * time.Minute) // 5 min past the refreshed answer's nextUpdate
		got, err := revAuthn(m, leaf)
		require.NoError(t, err)
		assert.True(t, got.Revocation.Stale)
		assert.True(t, got.Revocation.Degraded())
		assert.Error(t, got.Revocation.Err)
		assert.NotSame(t, id, got, "a flagged identity is a copy")
		again, err := revAuthn(m, leaf)
		require.NoError(t, err)
		assert.True(t, again.Revocation.Stale)
		assert.False(t, id.Revocation.Degraded(), "the cached identity is never changed")
		assert.Contains(t, logs.String(), "accepting on the stale answer")
		assert.NotContains(t, logs.String(), "request accepted without fresh revocation status", "Authenticate reports nothing")
		m.Handler(echoIdentity).ServeHTTP(httptest.NewRecorder(), mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...))
		assert.Contains(t, logs.String(), "request accepted without fresh revocation status", "the handler's observer does")
	})
	t.Run("refused past the budget", func(t *testing.T) {
		p.clock.Advance(6 * time.Minute)
		_, err := revAuthn(m, leaf)
		requireRevRefused(t, err, ErrRevocationUnavailable)
	})
	t.Run("recovers when the responder does", func(t *testing.T) {
		failing.Store(false)
		p.clock.Advance(retryBackoff)
		got, err := revAuthn(m, leaf)
		require.NoError(t, err)
		assert.False(t, got.Revocation.Degraded())
	})
}

func TestOCSPFailOpenIsFlagged(t *testing.T) {
	p := newRevPKI()
	leaf := p.issuing.NewClient("alice")
	rf := newRevResponder(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusServiceUnavailable) })
	var logs bytes.Buffer
	m, err := New(Config{RootCAs: p.root.Pool(), Now: p.clock.Now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Revocation: &RevocationConfig{
			OCSP:                &OCSPConfig{Responder: rf.srv.URL},
			DangerouslyFailOpen: true,
		}})
	require.NoError(t, err)
	id, err := revAuthn(m, leaf)
	require.NoError(t, err)
	assert.True(t, id.Revocation.FailOpen)
	assert.False(t, id.Revocation.Stale)
	assert.Contains(t, logs.String(), "DangerouslyFailOpen")

	// Fail-open never turns "revoked" into "accepted".
	der := p.issuing.NewOCSPResponse(leaf.Certificate, mtlstest.OCSPAnswer{Status: ocsp.Revoked})
	rf2 := newRevResponder(t, serving(der))
	m2 := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: rf2.srv.URL}, DangerouslyFailOpen: true})
	_, err = revAuthn(m2, leaf)
	requireRevRefused(t, err, ErrRevoked)
}

func TestOCSPConcurrentQueriesDeduplicated(t *testing.T) {
	p := newRevPKI()
	leaf := p.issuing.NewClient("alice")
	der := p.issuing.NewOCSPResponse(leaf.Certificate, mtlstest.OCSPAnswer{})
	release := make(chan struct{})
	rf := newRevResponder(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = w.Write(der)
	})
	m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: rf.srv.URL}})
	const n = 1000
	// The responder answers once every caller waits for an answer: none can have been served
	// by the query of another before it joined.
	waiting := newWaitingContext(n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...).WithContext(waiting))
		}()
	}
	select {
	case <-waiting.all:
		close(release)
	case <-time.After(time.Minute): // a bound, not a measure: the callers are stuck
		close(release)
		t.Fatal("the callers did not all wait for one query")
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	assert.EqualValues(t, 1, rf.calls.Load())
	assert.EqualValues(t, 1, m.revoc.ocsp.queries.Load())
}

func TestOCSPCallerContextCancelled(t *testing.T) {
	p := newRevPKI()
	leaf := p.issuing.NewClient("alice")
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The caller gives up once its query reached the responder, which never answers before the
	// test ends; the query's own Timeout is far away. Only the caller's cancellation can end
	// its wait.
	var answered atomic.Bool
	rf := newRevResponder(t, func(w http.ResponseWriter, r *http.Request) {
		cancel()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		answered.Store(true)
	})
	t.Cleanup(func() { close(release) }) // before the responder closes, which waits for it
	m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: rf.srv.URL}, Timeout: time.Hour})
	_, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...).WithContext(ctx))
	requireRevRefused(t, err, ErrRevocationUnavailable)
	assert.False(t, answered.Load(), "the caller waited for the responder")
	assert.EqualValues(t, 1, rf.calls.Load())
}

// waitingContext counts the callers waiting on it (those that asked for its Done channel) and
// closes all when n of them do. The OCSP step asks for Done only while it waits for a query.
type waitingContext struct {
	context.Context
	n, waiting int64
	mu         sync.Mutex
	all        chan struct{}
}

func newWaitingContext(n int64) *waitingContext {
	return &waitingContext{Context: context.Background(), n: n, all: make(chan struct{})}
}

func (c *waitingContext) Done() <-chan struct{} {
	c.mu.Lock()
	if c.waiting++; c.waiting == c.n {
		close(c.all)
	}
	c.mu.Unlock()
	return c.Context.Done()
}

func TestOCSPCacheBounded(t *testing.T) {
	p := newRevPKI()
	resp := mtlstest.NewOCSPResponder(p.issuing)
	t.Cleanup(resp.Close)
	m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: resp.URL, CacheSize: 3}})
	for i := range 10 {
		_, err := revAuthn(m, p.issuing.NewClient(fmt.Sprint("c", i)))
		require.NoError(t, err)
	}
	m.revoc.ocsp.mu.RLock()
	defer m.revoc.ocsp.mu.RUnlock()
	assert.LessOrEqual(t, len(m.revoc.ocsp.entries), 3)
}

func TestRevocationPinnedLeafAndChainMode(t *testing.T) {
	p := newRevPKI()
	leaf := p.issuing.NewClient("alice")
	// The root revokes the issuing CA.
	crlFile := mtlstest.WriteFile(t.TempDir(), "root.crl", p.root.NewCRL(mtlstest.CRL{Revoked: []*big.Int{p.issuing.Certificate.SerialNumber}}))
	issuingCRL := mtlstest.WriteFile(t.TempDir(), "issuing.crl", p.issuing.NewCRL(mtlstest.CRL{}))

	leafOnly := p.middleware(t, &RevocationConfig{CRL: &CRLConfig{Files: []string{crlFile, issuingCRL}}})
	_, err := revAuthn(leafOnly, leaf)
	require.NoError(t, err)

	chain := p.middleware(t, &RevocationConfig{CRL: &CRLConfig{Files: []string{crlFile, issuingCRL}}, CheckChain: true})
	_, err = revAuthn(chain, leaf)
	requireRevRefused(t, err, ErrRevoked)

	// A pinned leaf has no verified issuer: only the deny list applies.
	self := mtlstest.NewSelfSigned("partner")
	deny := NewDenyList()
	m, err := New(Config{PinnedSHA256: []string{self.SHA256()}, Now: p.clock.Now,
		Revocation: &RevocationConfig{OCSP: &OCSPConfig{Responder: "http://127.0.0.1:1/never"}, DenyList: deny}})
	require.NoError(t, err)
	_, err = revAuthn(m, self)
	require.NoError(t, err)
	deny.Set(DenyCertificate(sha256.Sum256(self.Certificate.Raw)))
	_, err = revAuthn(m, self)
	requireRevRefused(t, err, ErrRevoked)
}

func TestCRLHostileMatrix(t *testing.T) {
	p := newRevPKI()
	other := p.root.NewIntermediate("Other Issuing CA")
	sameName := p.root.NewIntermediate("Rev Issuing CA")
	serial := big.NewInt(0x1234567)
	leaf := p.issuing.NewClient("alice", mtlstest.WithSerial(serial))
	otherLeaf := other.NewClient("bob", mtlstest.WithSerial(serial))
	twinLeaf := sameName.NewClient("eve", mtlstest.WithSerial(serial))
	good := p.issuing.NewClient("carol")
	now := p.clock.Now()

	revokes := p.issuing.NewCRL(mtlstest.CRL{Revoked: []*big.Int{serial, big.NewInt(7)}})
	otherEmpty := other.NewCRL(mtlstest.CRL{})
	sameNameEmpty := sameName.NewCRL(mtlstest.CRL{})
	idp := func(der []byte) pkix.Extension {
		return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 28}, Critical: true, Value: der}
	}
	tests := []struct {
		name  string
		files [][]byte
		leaf  *mtlstest.Leaf
		stale time.Duration
		want  error
	}{
		{"not listed", [][]byte{revokes}, good, 0, nil},
		{"listed", [][]byte{revokes}, leaf, 0, ErrRevoked},
		{"PEM", [][]byte{mtlstest.CRLPEM(revokes)}, leaf, 0, ErrRevoked},
		{"no CRL for the issuer", [][]byte{otherEmpty}, leaf, 0, ErrRevocationUnavailable},
		{"bad signature", [][]byte{p.issuing.NewCRL(mtlstest.CRL{SignWith: other.Key})}, good, 0, ErrRevocationUnavailable},
		{"bad signature listing the serial", [][]byte{p.issuing.NewCRL(mtlstest.CRL{Revoked: []*big.Int{serial}, SignWith: other.Key})}, leaf, 0, ErrRevocationUnavailable},
		{"stale", [][]byte{p.issuing.NewCRL(mtlstest.CRL{ThisUpdate: now.Add(-48 * time.Hour), NextUpdate: now.Add(-time.Hour)})}, good, 0, ErrRevocationUnavailable},
		{"stale within the budget", [][]byte{p.issuing.NewCRL(mtlstest.CRL{ThisUpdate: now.Add(-48 * time.Hour), NextUpdate: now.Add(-time.Minute * 5)})}, good, time.Hour, nil},
		{"stale still revokes", [][]byte{p.issuing.NewCRL(mtlstest.CRL{Revoked: []*big.Int{serial}, ThisUpdate: now.Add(-48 * time.Hour), NextUpdate: now.Add(-time.Hour)})}, leaf, 0, ErrRevoked},
		{"another issuer lists the same serial", [][]byte{revokes, otherEmpty}, otherLeaf, 0, nil},
		{"a same-named issuer lists the same serial", [][]byte{revokes, sameNameEmpty}, twinLeaf, 0, nil},
		{"a same-named issuer's CRL only", [][]byte{revokes}, twinLeaf, 0, ErrRevocationUnavailable},
		{"only CA certificates", [][]byte{p.issuing.NewCRL(mtlstest.CRL{ExtraExtensions: []pkix.Extension{idp([]byte{0x30, 0x03, 0x82, 0x01, 0xff})}})}, good, 0, ErrRevocationUnavailable},
		{"only user certificates", [][]byte{p.issuing.NewCRL(mtlstest.CRL{ExtraExtensions: []pkix.Extension{idp([]byte{0x30, 0x03, 0x81, 0x01, 0xff})}})}, good, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var files []string
			for i, der := range tt.files {
				files = append(files, mtlstest.WriteFile(t.TempDir(), fmt.Sprint(i, ".crl"), der))
			}
			m := p.middleware(t, &RevocationConfig{CRL: &CRLConfig{Files: files}, StaleIfError: tt.stale})
			id, err := revAuthn(m, tt.leaf)
			if tt.want == nil {
				require.NoError(t, err)
				assert.Equal(t, tt.stale > 0, id.Revocation.Stale)
				return
			}
			requireRevRefused(t, err, tt.want)
		})
	}
}

func TestCRLRefusedAtLoad(t *testing.T) {
	p := newRevPKI()
	crit := pkix.Extension{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Critical: true, Value: []byte{5, 0}}
	delta := pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 27}, Critical: true, Value: []byte{2, 1, 1}}
	indirect := pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 28}, Critical: true, Value: []byte{0x30, 0x03, 0x84, 0x01, 0xff}}
	future := p.clock.Now().Add(time.Hour)
	tests := []struct {
		name string
		der  []byte
		want string
	}{
		{"unknown critical extension", p.issuing.NewCRL(mtlstest.CRL{ExtraExtensions: []pkix.Extension{crit}}), "unsupported critical extension"},
		{"delta CRL", p.issuing.NewCRL(mtlstest.CRL{ExtraExtensions: []pkix.Extension{delta}}), "delta CRLs"},
		{"indirect CRL", p.issuing.NewCRL(mtlstest.CRL{ExtraExtensions: []pkix.Extension{indirect}}), "indirect CRLs"},
		{"thisUpdate in the future", p.issuing.NewCRL(mtlstest.CRL{ThisUpdate: future, NextUpdate: future.Add(time.Hour)}), "future"},
		{"garbage", []byte("not a CRL"), "malformed"},
		{"truncated", p.issuing.NewCRL(mtlstest.CRL{})[:100], "malformed"},
		{"no CRL number", p.issuing.NewCRL(mtlstest.CRL{OmitNumber: true}), "no cRLNumber"},
		{"critical CRL number", p.issuing.NewCRL(mtlstest.CRL{CriticalNumber: true}), "cRLNumber extension is marked critical"},
		{"negative CRL number", p.issuing.NewCRL(mtlstest.CRL{Number: big.NewInt(-1)}), "malformed cRLNumber"},
		{"two CRL numbers", p.issuing.NewCRL(mtlstest.CRL{ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 20}, Value: []byte{2, 1, 2}}}}), "more than one cRLNumber"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{RootCAs: p.root.Pool(), Now: p.clock.Now,
				Revocation: &RevocationConfig{CRL: &CRLConfig{Files: []string{mtlstest.WriteFile(t.TempDir(), "x.crl", tt.der)}}}})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "mtls: "), err.Error())
		})
	}
}

// revCRLServer serves whatever CRL is current.
type revCRLServer struct {
	srv   *httptest.Server
	der   atomic.Pointer[[]byte]
	calls atomic.Int64
}

func newRevCRLServer(t testing.TB, der []byte) *revCRLServer {
	s := &revCRLServer{}
	s.set(der)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		der := *s.der.Load()
		if der == nil {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		_, _ = w.Write(der)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *revCRLServer) set(der []byte) { s.der.Store(&der) }

func TestCRLFromURLRefreshKeepsLastGood(t *testing.T) {
	p := newRevPKI()
	leaf := p.issuing.NewClient("alice")
	now := p.clock.Now()
	v1 := p.issuing.NewCRL(mtlstest.CRL{ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(4 * time.Hour), Number: big.NewInt(1)})
	srv := newRevCRLServer(t, v1)
	m := p.middleware(t, &RevocationConfig{CRL: &CRLConfig{URLs: []string{srv.srv.URL + "/issuing.crl"}}, StaleIfError: 30 * time.Minute})

	_, err := revAuthn(m, leaf)
	require.NoError(t, err)
	require.EqualValues(t, 1, srv.calls.Load())

	t.Run("refreshed at the interval and a revocation is seen", func(t *testing.T) {
		srv.set(p.issuing.NewCRL(mtlstest.CRL{ThisUpdate: p.clock.Now(), NextUpdate: now.Add(4 * time.Hour),
			Number: big.NewInt(2), Revoked: []*big.Int{leaf.Certificate.SerialNumber}}))
		p.clock.Advance(61 * time.Minute)
		_, _ = revAuthn(m, leaf) // starts the background refresh
		require.Eventually(t, func() bool {
			_, err := revAuthn(m, leaf)
			return errors.Is(err, ErrRevoked)
		}, 5*time.Second, 5*time.Millisecond)
	})
	good := p.issuing.NewClient("carol")
	t.Run("a replayed older CRL is refused", func(t *testing.T) {
		srv.set(v1)
		calls := srv.calls.Load()
		p.clock.Advance(61 * time.Minute)
		_, _ = revAuthn(m, good)
		require.Eventually(t, func() bool { return srv.calls.Load() > calls && m.revoc.crl.configured[0].loading.Load() == nil }, 5*time.Second, 5*time.Millisecond)
		_, err := revAuthn(m, leaf)
		requireRevRefused(t, err, ErrRevoked)
	})
	t.Run("a bad refresh keeps the last good CRL", func(t *testing.T) {
		srv.set([]byte("garbage"))
		p.clock.Advance(time.Hour) // 3h: still before nextUpdate
		_, err := revAuthn(m, good)
		require.NoError(t, err)
		_, err = revAuthn(m, leaf)
		requireRevRefused(t, err, ErrRevoked)
		require.Eventually(t, func() bool {
			err := m.CRLStatus()[0].Err
			return err != nil && strings.Contains(err.Error(), "malformed")
		}, 5*time.Second, 5*time.Millisecond)
		st := m.CRLStatus()
		require.Len(t, st, 1)
		assert.True(t, st[0].Loaded)
		assert.Equal(t, "CN=Rev Issuing CA", st[0].Issuer)
		assert.Equal(t, 1, st[0].Entries)
		assert.False(t, st[0].DistributionPoint)
	})
	t.Run("stale within the budget, then refused", func(t *testing.T) {
		p.clock.Advance(time.Hour + 10*time.Minute) // 10 min past nextUpdate
		id, err := revAuthn(m, good)
		require.NoError(t, err)
		assert.True(t, id.Revocation.Stale)
		assert.Equal(t, now.Add(4*time.Hour).Truncate(time.Second).UTC(), id.Revocation.NextUpdate.UTC())
		p.clock.Advance(30 * time.Minute)
		_, err = revAuthn(m, good)
		requireRevRefused(t, err, ErrRevocationUnavailable)
	})
}

func TestCRLDistributionPoints(t *testing.T) {
	p := newRevPKI()
	srv := newRevCRLServer(t, nil)
	url := srv.srv.URL + "/issuing.crl"
	leaf := p.issuing.NewClient("alice", mtlstest.WithCRLDistributionPoints("ldap://ignored", url))
	good := p.issuing.NewClient("carol", mtlstest.WithCRLDistributionPoints(url))
	srv.set(p.issuing.NewCRL(mtlstest.CRL{Revoked: []*big.Int{leaf.Certificate.SerialNumber}}))
	m := p.middleware(t, &RevocationConfig{CRL: &CRLConfig{DistributionPoints: true}})
	_, err := revAuthn(m, leaf)
	requireRevRefused(t, err, ErrRevoked)
	_, err = revAuthn(m, good)
	require.NoError(t, err)
	assert.EqualValues(t, 1, srv.calls.Load())
	st := m.CRLStatus()
	require.Len(t, st, 1)
	assert.Equal(t, url, st[0].Source)
	assert.True(t, st[0].DistributionPoint)
	assert.True(t, st[0].Loaded)
	assert.NoError(t, st[0].Err)
	assert.Nil(t, p.middleware(t, &RevocationConfig{DenyList: NewDenyList()}).CRLStatus())

	noDP := p.issuing.NewClient("dave")
	_, err = revAuthn(m, noDP)
	requireRevRefused(t, err, ErrRevocationUnavailable)

	// A distribution point serving another CA's CRL says nothing for this one.
	other := p.root.NewIntermediate("Other Issuing CA")
	srv2 := newRevCRLServer(t, other.NewCRL(mtlstest.CRL{}))
	wrong := p.issuing.NewClient("erin", mtlstest.WithCRLDistributionPoints(srv2.srv.URL))
	_, err = revAuthn(m, wrong)
	requireRevRefused(t, err, ErrRevocationUnavailable)
}

func TestOCSPThenCRL(t *testing.T) {
	p := newRevPKI()
	leaf := p.issuing.NewClient("alice")
	good := p.issuing.NewClient("carol")
	down := newRevResponder(t, func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", http.StatusBadGateway) })
	crlFile := mtlstest.WriteFile(t.TempDir(), "i.crl", p.issuing.NewCRL(mtlstest.CRL{Revoked: []*big.Int{leaf.Certificate.SerialNumber}}))
	m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: down.srv.URL}, CRL: &CRLConfig{Files: []string{crlFile}}})
	_, err := revAuthn(m, leaf)
	requireRevRefused(t, err, ErrRevoked)
	id, err := revAuthn(m, good)
	require.NoError(t, err)
	assert.False(t, id.Revocation.Degraded())

	// Both unavailable: the error names both.
	otherCRL := mtlstest.WriteFile(t.TempDir(), "o.crl", p.root.NewCRL(mtlstest.CRL{}))
	m2 := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: down.srv.URL}, CRL: &CRLConfig{Files: []string{otherCRL}}})
	_, err = revAuthn(m2, good)
	requireRevRefused(t, err, ErrRevocationUnavailable)
	assert.Contains(t, err.Error(), "OCSP")
	assert.Contains(t, err.Error(), "CRL")
}

func TestDenyList(t *testing.T) {
	p := newRevPKI()
	alice := p.issuing.NewClient("alice")
	bob := p.issuing.NewClient("bob")
	carol := p.issuing.NewClient("carol")
	dave := p.issuing.NewClient("dave")
	deny := NewDenyList()
	m := p.middleware(t, &RevocationConfig{DenyList: deny})
	for _, l := range []*mtlstest.Leaf{alice, bob, carol, dave} {
		_, err := revAuthn(m, l)
		require.NoError(t, err)
	}
	issuerSPKI := SPKISHA256(p.issuing.Certificate)
	list := fmt.Sprintf("# revoked at once\nsha256 %s\nspki-sha256 %X\n\nserial %x 0x%s\n",
		colonUpper(alice.SHA256()), SPKISHA256(bob.Certificate), issuerSPKI, carol.Certificate.SerialNumber.Text(16))
	file := mtlstest.WriteFile(t.TempDir(), "deny.txt", []byte(list))
	require.NoError(t, deny.LoadFile(file))
	assert.Equal(t, 3, deny.Len())
	for _, l := range []*mtlstest.Leaf{alice, bob, carol} {
		_, err := revAuthn(m, l)
		requireRevRefused(t, err, ErrRevoked)
	}
	_, err := revAuthn(m, dave)
	require.NoError(t, err)

	// The same serial under another issuer is not denied.
	other := p.root.NewIntermediate("Other Issuing CA")
	twin := other.NewClient("twin", mtlstest.WithSerial(carol.Certificate.SerialNumber))
	_, err = revAuthn(m, twin)
	require.NoError(t, err)

	// A bad file keeps the list in force.
	require.NoError(t, os.WriteFile(file, []byte("sha256 nothex\n"), 0o600))
	err = deny.LoadFile(file)
	require.ErrorContains(t, err, "line 1")
	assert.Equal(t, 3, deny.Len())
	deny.Set()
	_, err = revAuthn(m, alice)
	require.NoError(t, err)
}

func TestRevocationConfigErrors(t *testing.T) {
	p := newRevPKI()
	tests := []struct {
		name  string
		rc    RevocationConfig
		field string
		want  string
	}{
		{"nothing to check", RevocationConfig{}, "Revocation", "set OCSP, CRL, DenyList, DenyListFile or DenyListURL"},
		{"bad responder", RevocationConfig{OCSP: &OCSPConfig{Responder: "ftp://x"}}, "Revocation.OCSP.Responder", "not an absolute http"},
		{"negative cache", RevocationConfig{OCSP: &OCSPConfig{CacheSize: -1}}, "Revocation.OCSP.CacheSize", "negative"},
		{"no CRL source", RevocationConfig{CRL: &CRLConfig{}}, "Revocation.CRL", "set Files, URLs or DistributionPoints"},
		{"missing file", RevocationConfig{CRL: &CRLConfig{Files: []string{"/nonexistent.crl"}}}, "Revocation.CRL.Files[0]", "nonexistent.crl"},
		{"bad URL", RevocationConfig{CRL: &CRLConfig{URLs: []string{"https://crl.test/a.crl", "file:///etc/passwd"}}}, "Revocation.CRL.URLs[1]", "not an absolute http"},
		{"negative skew", RevocationConfig{OCSP: &OCSPConfig{}, ClockSkew: -1}, "Revocation.ClockSkew", "negative"},
		{"negative timeout", RevocationConfig{OCSP: &OCSPConfig{}, Timeout: -1}, "Revocation.Timeout", "negative"},
		{"negative distribution point bound", RevocationConfig{CRL: &CRLConfig{DistributionPoints: true, DistributionPointMaxBytes: -1}}, "Revocation.CRL.DistributionPointMaxBytes", "negative"},
		{"negative refresh interval", RevocationConfig{CRL: &CRLConfig{DistributionPoints: true, RefreshInterval: -1}}, "Revocation.CRL.RefreshInterval", "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := tt.rc
			_, err := New(Config{RootCAs: p.root.Pool(), Revocation: &rc})
			require.ErrorContains(t, err, tt.want)
			assert.Equal(t, []string{tt.field}, configFields(t, err))
		})
	}
	t.Run("negative means off where something can be off", func(t *testing.T) {
		_, err := New(Config{RootCAs: p.root.Pool(), Revocation: &RevocationConfig{
			OCSP: &OCSPConfig{MaxAge: -1}, StaleIfError: -1}})
		require.NoError(t, err)
	})
}

func TestRevocationWarmPathAllocations(t *testing.T) {
	p := newRevPKI()
	resp := mtlstest.NewOCSPResponder(p.issuing)
	t.Cleanup(resp.Close)
	leaf := p.issuing.NewClient("alice")
	crlFile := mtlstest.WriteFile(t.TempDir(), "i.crl", p.issuing.NewCRL(mtlstest.CRL{Revoked: []*big.Int{big.NewInt(3)}}))
	rootCRL := mtlstest.WriteFile(t.TempDir(), "r.crl", p.root.NewCRL(mtlstest.CRL{}))
	configs := map[string]*RevocationConfig{
		"OCSP":      {OCSP: &OCSPConfig{Responder: resp.URL}},
		"CRL":       {CRL: &CRLConfig{Files: []string{crlFile}}},
		"OCSP+CRL":  {OCSP: &OCSPConfig{Responder: resp.URL}, CRL: &CRLConfig{Files: []string{crlFile}}},
		"chain":     {CRL: &CRLConfig{Files: []string{crlFile, rootCRL}}, CheckChain: true},
		"deny list": {DenyList: NewDenyList(DenyKey([32]byte{1}), DenySerial([32]byte{2}, big.NewInt(1)))},
	}
	for name, rc := range configs {
		t.Run(name, func(t *testing.T) {
			m := p.middleware(t, rc)
			h := m.Handler(noop)
			r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...)
			w := &discardWriter{h: http.Header{}}
			_, err := m.Authenticate(r)
			require.NoError(t, err)
			h.ServeHTTP(w, r)
			allocs := testing.AllocsPerRun(200, func() { h.ServeHTTP(w, r) })
			base, err := New(Config{RootCAs: p.root.Pool()})
			require.NoError(t, err)
			hb := base.Handler(noop)
			hb.ServeHTTP(w, r)
			baseline := testing.AllocsPerRun(200, func() { hb.ServeHTTP(w, r) })
			assert.Equal(t, baseline, allocs, "revocation adds no allocation on the warm path")
			assert.LessOrEqual(t, allocs, 3.0)
		})
	}
}

func TestRevocationContextStopsBackgroundRefresh(t *testing.T) {
	p := newRevPKI()
	leaf := p.issuing.NewClient("alice")
	var block atomic.Bool
	cancelled := make(chan struct{}, 1)
	rf := newRevResponder(t, func(w http.ResponseWriter, r *http.Request) {
		if block.Load() {
			<-r.Context().Done()
			cancelled <- struct{}{}
			return
		}
		now := p.clock.Now()
		_, _ = w.Write(p.issuing.NewOCSPResponse(leaf.Certificate, mtlstest.OCSPAnswer{ThisUpdate: now, NextUpdate: now.Add(time.Hour)}))
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: rf.srv.URL}, Timeout: time.Minute, Context: ctx})
	_, err := revAuthn(m, leaf)
	require.NoError(t, err)

	block.Store(true)
	p.clock.Advance(50 * time.Minute)
	_, err = revAuthn(m, leaf) // starts a background refresh, which hangs
	require.NoError(t, err)
	require.Eventually(t, func() bool { return rf.calls.Load() == 2 }, 5*time.Second, 5*time.Millisecond)
	cancel()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the background query was not cancelled")
	}
	// No new background work once the Context is done; the request path still answers.
	assert.False(t, m.revoc.background(func(context.Context) {}))
	_, err = revAuthn(m, leaf)
	require.NoError(t, err)
}

func TestRevocationChainWithoutIssuerIsNotGood(t *testing.T) {
	// A client certificate configured among the roots (not pinned) verifies as a chain of one:
	// there is no issuer to ask about it. "Could not check" must not pass.
	p := newRevPKI()
	self := mtlstest.NewSelfSigned("partner")
	roots := p.root.Pool()
	roots.AddCert(self.Certificate)
	crlFile := mtlstest.WriteFile(t.TempDir(), "issuing.crl", p.issuing.NewCRL(mtlstest.CRL{}))
	for _, failOpen := range []bool{false, true} {
		m, err := New(Config{RootCAs: roots, Now: p.clock.Now,
			Revocation: &RevocationConfig{CRL: &CRLConfig{Files: []string{crlFile}}, DangerouslyFailOpen: failOpen}})
		require.NoError(t, err)
		id, err := revAuthn(m, self)
		if !failOpen {
			requireRevRefused(t, err, ErrRevocationUnavailable)
			continue
		}
		require.NoError(t, err)
		require.Len(t, id.Chain, 1)
		assert.False(t, id.Pinned)
		assert.True(t, id.Revocation.FailOpen, "accepted without a status: must be flagged")
	}
}

func TestOCSPOlderResponseDoesNotReplaceNewer(t *testing.T) {
	// An attacker on the path to a plain-http responder replays a "good" response captured
	// before the revocation, still within its validity: the revoked answer in force must stay.
	p := newRevPKI()
	leaf := p.issuing.NewClient("alice")
	now := p.clock.Now()
	oldGood := p.issuing.NewOCSPResponse(leaf.Certificate, mtlstest.OCSPAnswer{ThisUpdate: now.Add(-30 * time.Minute), NextUpdate: now.Add(6 * time.Hour)})
	revoked := p.issuing.NewOCSPResponse(leaf.Certificate, mtlstest.OCSPAnswer{Status: ocsp.Revoked, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(10 * time.Minute)})
	var replay atomic.Bool
	rf := newRevResponder(t, func(w http.ResponseWriter, _ *http.Request) {
		if replay.Load() {
			_, _ = w.Write(oldGood)
			return
		}
		_, _ = w.Write(revoked)
	})
	m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: rf.srv.URL}})
	_, err := revAuthn(m, leaf)
	requireRevRefused(t, err, ErrRevoked)

	replay.Store(true)
	p.clock.Advance(15 * time.Minute) // past the revoked answer's nextUpdate: a new query
	_, err = revAuthn(m, leaf)
	requireRevRefused(t, err, ErrRevoked)
	assert.GreaterOrEqual(t, rf.calls.Load(), int64(2))
}

func TestDenySerialLongerThanCRLLimit(t *testing.T) {
	issuer := mtlstest.NewRootCA("Deny CA").Certificate
	serial := new(big.Int).Lsh(big.NewInt(1), 8*crl.MaxSerialLen+4) // parses, but over 64 octets
	leaf := &x509.Certificate{SerialNumber: serial, Raw: []byte("leaf"), RawSubjectPublicKeyInfo: []byte("leaf key")}
	id := &Identity{Leaf: leaf, Chain: []*x509.Certificate{leaf, issuer}}
	entries, err := ParseDenyList([]byte(fmt.Sprintf("serial %x %#x\n", SPKISHA256(issuer), serial)))
	require.NoError(t, err)
	d := NewDenyList(entries...)
	assert.NotEmpty(t, d.match(id, false), "a listed serial must be denied whatever its length")
	other := &x509.Certificate{SerialNumber: new(big.Int).Add(serial, big.NewInt(1)), Raw: []byte("other")}
	assert.Empty(t, d.match(&Identity{Leaf: other, Chain: []*x509.Certificate{other, issuer}}, false))
}

func TestCRLReplayAfterAnotherIssuerIsRefused(t *testing.T) {
	// An attacker on the path to a CRL URL serves, in turn, another CA's (genuine) CRL and then an
	// old CRL of the right CA, from before the leaf's revocation and still within its validity.
	// Switching issuers in between must not reset the replay check.
	p := newRevPKI()
	other := p.root.NewIntermediate("Other Issuing CA")
	leaf := p.issuing.NewClient("alice")
	now := p.clock.Now()
	before := p.issuing.NewCRL(mtlstest.CRL{ThisUpdate: now.Add(-2 * time.Hour), NextUpdate: now.Add(24 * time.Hour), Number: big.NewInt(1)})
	after := p.issuing.NewCRL(mtlstest.CRL{ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(24 * time.Hour), Number: big.NewInt(2),
		Revoked: []*big.Int{leaf.Certificate.SerialNumber}})
	srv := newRevCRLServer(t, after)
	m := p.middleware(t, &RevocationConfig{CRL: &CRLConfig{URLs: []string{srv.srv.URL}}})
	src := m.revoc.crl.configured[0]
	_, err := revAuthn(m, leaf)
	requireRevRefused(t, err, ErrRevoked)

	for _, der := range [][]byte{other.NewCRL(mtlstest.CRL{}), before} {
		srv.set(der)
		_ = src.refresh(context.Background(), nil)
	}
	_, err = revAuthn(m, leaf)
	require.Error(t, err, "the replayed CRL must not clear the revocation")
}

func TestOCSPQueriesOfOppositeSerialsAreNotShared(t *testing.T) {
	// Serials 5 and -5 (accepted with GODEBUG=x509negativeserial=1) are different certificates:
	// one's query must not answer for the other.
	p := newRevPKI()
	release := make(chan struct{})
	arrived := make(chan struct{}, 2)
	rf := newRevResponder(t, func(w http.ResponseWriter, _ *http.Request) {
		arrived <- struct{}{}
		<-release
		http.Error(w, "down", http.StatusBadGateway)
	})
	m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: rf.srv.URL}})
	o := m.revoc.ocsp
	issuer := p.issuing.Certificate
	pos := &x509.Certificate{SerialNumber: big.NewInt(5), Signature: []byte("pos")}
	neg := &x509.Certificate{SerialNumber: big.NewInt(-5), Signature: []byte("neg")}
	done := make(chan *ocspEntry, 2)
	go func() { done <- o.fetch(context.Background(), o.key(pos, issuer), pos, issuer, time.Time{}) }()
	<-arrived // the query for 5 is under way
	var got *ocspEntry
	// -5's caller waits for an answer, its own query or (wrongly) 5's, before 5's is given.
	waiting := newWaitingContext(1)
	go func() {
		e := o.fetch(waiting, o.key(neg, issuer), neg, issuer, time.Time{})
		got = e
		done <- e
	}()
	<-waiting.all
	close(release)
	<-done
	<-done
	require.NotNil(t, got)
	require.NotNil(t, got.serial)
	assert.Zero(t, got.serial.Cmp(neg.SerialNumber), "the entry for -5 is about %v", got.serial)
}

func TestCRLDistributionPointsIdleOnesMakeRoom(t *testing.T) {
	// Distribution points come and go (partitioned CRLs, CA rotations): once the table is full of
	// points nobody uses any more, a new point must still be checked, not refused forever.
	p := newRevPKI()
	srv := newRevCRLServer(t, nil)
	srv.set(p.issuing.NewCRL(mtlstest.CRL{ThisUpdate: p.clock.Now().Add(-time.Minute), NextUpdate: p.clock.Now().Add(30 * 24 * time.Hour)}))
	m := p.middleware(t, &RevocationConfig{CRL: &CRLConfig{DistributionPoints: true}})
	for i := range maxDPSources {
		leaf := p.issuing.NewClient(fmt.Sprint("c", i), mtlstest.WithCRLDistributionPoints(fmt.Sprintf("%s/p%d.crl", srv.srv.URL, i)))
		_, err := revAuthn(m, leaf)
		require.NoError(t, err)
	}
	newcomer := p.issuing.NewClient("new", mtlstest.WithCRLDistributionPoints(srv.srv.URL+"/new.crl"))
	_, err := revAuthn(m, newcomer)
	requireRevRefused(t, err, ErrRevocationUnavailable) // every point is in use: no room yet

	p.clock.Advance(2 * time.Hour) // nobody used the old points meanwhile
	_, err = revAuthn(m, newcomer)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(m.CRLStatus()), maxDPSources)
}

func TestOCSPResponseJustPastNextUpdateIsNotRefetchedPerRequest(t *testing.T) {
	// The responder's clock lags: its answers expire within the clock skew tolerance. They are
	// accepted (as CRLs are), and do not make every request query the responder again.
	p := newRevPKI()
	leaf := p.issuing.NewClient("alice")
	rf := newRevResponder(t, func(w http.ResponseWriter, _ *http.Request) {
		now := p.clock.Now()
		_, _ = w.Write(p.issuing.NewOCSPResponse(leaf.Certificate, mtlstest.OCSPAnswer{ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(-30 * time.Second)}))
	})
	m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: rf.srv.URL}, StaleIfError: -1})
	for range 20 {
		id, err := revAuthn(m, leaf)
		require.NoError(t, err)
		assert.False(t, id.Revocation.Degraded())
	}
	assert.LessOrEqual(t, rf.calls.Load(), int64(2))
}

// revTransport answers CRL downloads from memory, by URL: a CRL, nothing until the request's
// context is done (a blackholed address), or at once an error (a refused connection). It
// counts the requests and reports each on entered.
type revTransport struct {
	mu      sync.Mutex
	crls    map[string][]byte
	holes   map[string]bool
	calls   map[string]int
	entered chan string
}

func newRevTransport() *revTransport {
	return &revTransport{crls: map[string][]byte{}, holes: map[string]bool{}, calls: map[string]int{},
		entered: make(chan string, 100)}
}

func (rt *revTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	u := r.URL.String()
	rt.mu.Lock()
	rt.calls[u]++
	der, hole := rt.crls[u], rt.holes[u]
	rt.mu.Unlock()
	select {
	case rt.entered <- u:
	default:
	}
	switch {
	case hole:
		<-r.Context().Done()
		return nil, r.Context().Err()
	case der == nil:
		return nil, errors.New("connection refused")
	}
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Body: io.NopCloser(bytes.NewReader(der)),
		ContentLength: int64(len(der)), Request: r}, nil
}

func (rt *revTransport) set(u string, der []byte, hole bool) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.crls[u], rt.holes[u] = der, hole
}

func (rt *revTransport) callsTo(u string) int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.calls[u]
}

// waitCalls returns once u was asked for n times (the guard only keeps a broken build from
// hanging).
func (rt *revTransport) waitCalls(t *testing.T, u string, n int) {
	t.Helper()
	for rt.callsTo(u) < n {
		select {
		case <-rt.entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s was asked for %d times, not %d", u, rt.callsTo(u), n)
		}
	}
}

// revWaits replaces the revocation step's timer: it records how long requests were willing to
// wait, and ends every wait at once.
type revWaits struct {
	mu sync.Mutex
	ds []time.Duration
}

func recordWaits(m *Middleware) *revWaits {
	w := &revWaits{}
	m.revoc.after = func(d time.Duration) <-chan time.Time {
		w.mu.Lock()
		w.ds = append(w.ds, d)
		w.mu.Unlock()
		ch := make(chan time.Time)
		close(ch)
		return ch
	}
	return w
}

func (w *revWaits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.ds...)
}

// revFakeMiddleware builds a middleware whose CRL downloads go through rt and whose background
// work stops with the test.
func (p *revPKI) fakeMiddleware(t *testing.T, rt *revTransport, rc *RevocationConfig) *Middleware {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rc.Context = ctx
	rc.HTTPClient = &http.Client{Transport: rt}
	return p.middleware(t, rc)
}

// awaitLoad waits for the download under way at src, if any.
func awaitLoad(src *crlSource) {
	if l := src.loading.Load(); l != nil {
		<-l.done
	}
}

func TestCRLUnreachableURLDoesNotStallOtherIssuers(t *testing.T) {
	// Three configured URLs: the first CA's, one that never answers and one that refuses
	// connections. Clients of the first CA never wait for the others; a client of a CA without
	// a known CRL waits for the first downloads only, and only the revocation timeout.
	p := newRevPKI()
	other := p.root.NewIntermediate("Other Issuing CA")
	const good, hole, refused = "http://crl.test/good.crl", "http://crl.test/hole.crl", "http://crl.test/refused.crl"
	rt := newRevTransport()
	rt.set(good, p.issuing.NewCRL(mtlstest.CRL{}), false)
	rt.set(hole, nil, true)
	m := p.fakeMiddleware(t, rt, &RevocationConfig{CRL: &CRLConfig{URLs: []string{good, hole, refused}, FetchTimeout: time.Hour}})
	waits := recordWaits(m)
	srcs := m.revoc.crl.configured
	for _, u := range []string{good, hole, refused} {
		rt.waitCalls(t, u, 1) // downloaded from New, before any request
	}
	awaitLoad(srcs[0])
	awaitLoad(srcs[2])
	require.NotNil(t, srcs[0].cur.Load())
	require.Error(t, srcs[2].err())

	alice, bob := p.issuing.NewClient("alice"), other.NewClient("bob")
	_, err := revAuthn(m, alice)
	require.NoError(t, err)
	assert.Empty(t, waits.all(), "a client whose CRL is loaded waits for nothing")

	_, err = revAuthn(m, bob)
	requireRevRefused(t, err, ErrRevocationUnavailable)
	assert.Equal(t, []time.Duration{defaultRevocationWait}, waits.all(),
		"only the first download still under way is waited for, for the revocation timeout")
	assert.Equal(t, 1, rt.callsTo(hole), "no second download of the silent URL")

	p.clock.Advance(defaultRevocationWait)
	_, err = revAuthn(m, bob)
	requireRevRefused(t, err, ErrRevocationUnavailable)
	assert.Len(t, waits.all(), 1, "a download older than the revocation timeout is not waited for")

	awaitLoad(srcs[2]) // a retry that request started has ended, and set its back-off
	p.clock.Advance(retryBackoff)
	calls := rt.callsTo(refused)
	for _, id := range []*mtlstest.Leaf{alice, bob} {
		_, _ = revAuthn(m, id)
	}
	rt.waitCalls(t, refused, calls+1) // retried in the background
	assert.Len(t, waits.all(), 1, "after the back-off, a failed URL is retried without anyone waiting")
	_, err = revAuthn(m, alice)
	require.NoError(t, err)
}

func TestCRLFailingSourceIsNotWaitedFor(t *testing.T) {
	// The issuer's own CRL expires while its URL is down: requests wait for one download at
	// most; once it failed, they do not wait again, after any number of back-offs.
	p := newRevPKI()
	const u = "http://crl.test/issuing.crl"
	now := p.clock.Now()
	rt := newRevTransport()
	rt.set(u, p.issuing.NewCRL(mtlstest.CRL{ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(time.Hour)}), false)
	m := p.fakeMiddleware(t, rt, &RevocationConfig{CRL: &CRLConfig{URLs: []string{u}}, StaleIfError: -1})
	src := m.revoc.crl.configured[0]
	awaitLoad(src)
	alice := p.issuing.NewClient("alice")
	_, err := revAuthn(m, alice)
	require.NoError(t, err)
	waits := recordWaits(m)

	rt.set(u, nil, false)          // connections refused from now on
	p.clock.Advance(2 * time.Hour) // expired
	_, err = revAuthn(m, alice)
	requireRevRefused(t, err, ErrRevocationUnavailable)
	awaitLoad(src)
	waited := waits.all()
	assert.LessOrEqual(t, len(waited), 1, "one download is waited for at most")
	calls := rt.callsTo(u)
	for i := range 3 {
		p.clock.Advance(retryBackoff)
		_, err = revAuthn(m, alice)
		requireRevRefused(t, err, ErrRevocationUnavailable)
		awaitLoad(src)
		assert.Equal(t, calls+i+1, rt.callsTo(u), "retried once per back-off")
	}
	assert.Equal(t, waited, waits.all(), "a failing source is retried in the background, not waited for")
}

func TestRevocationFetchesDoNotFollowRedirects(t *testing.T) {
	p := newRevPKI()
	resp := mtlstest.NewOCSPResponder(p.issuing)
	t.Cleanup(resp.Close)
	rf := newRevResponder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, resp.URL, http.StatusFound)
	})
	leaf := p.issuing.NewClient("alice")
	m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: rf.srv.URL}})
	_, err := revAuthn(m, leaf)
	requireRevRefused(t, err, ErrRevocationUnavailable)
	assert.Zero(t, resp.Requests(), "the redirect target was never asked")
}

func TestOCSPMaxAgeSeesRevocationBeforeNextUpdate(t *testing.T) {
	p := newRevPKI()
	leaf := p.issuing.NewClient("alice")
	var revoked, failing atomic.Bool
	rf := newRevResponder(t, func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		now := p.clock.Now()
		answer := mtlstest.OCSPAnswer{ThisUpdate: now, NextUpdate: now.Add(7 * 24 * time.Hour)}
		if revoked.Load() {
			answer.Status = ocsp.Revoked
			answer.RevokedAt = now.Add(-time.Minute)
		}
		_, _ = w.Write(p.issuing.NewOCSPResponse(leaf.Certificate, answer))
	})
	m, err := New(Config{RootCAs: p.root.Pool(), Now: p.clock.Now,
		Revocation: &RevocationConfig{OCSP: &OCSPConfig{Responder: rf.srv.URL, MaxAge: 10 * time.Minute}}})
	require.NoError(t, err)
	_, err = revAuthn(m, leaf)
	require.NoError(t, err)

	t.Run("an outage past MaxAge still serves the valid answer", func(t *testing.T) {
		failing.Store(true)
		p.clock.Advance(11 * time.Minute)
		got, err := revAuthn(m, leaf)
		require.NoError(t, err)
		assert.False(t, got.Revocation.Degraded())
		require.Eventually(t, func() bool { return rf.calls.Load() == 2 }, 5*time.Second, 5*time.Millisecond)
		failing.Store(false)
	})
	t.Run("a revocation is seen after MaxAge, days before nextUpdate", func(t *testing.T) {
		revoked.Store(true)
		p.clock.Advance(retryBackoff + time.Second)
		_, _ = revAuthn(m, leaf) // starts the background refresh
		require.Eventually(t, func() bool {
			_, err := revAuthn(m, leaf)
			return errors.Is(err, ErrRevoked)
		}, 5*time.Second, 5*time.Millisecond)
	})
}

func TestCRLEntryWithGeneralizedTimeRevocationDate(t *testing.T) {
	// RFC 5280 encodes dates from 2050 as GeneralizedTime; such an entry must not make the whole
	// CRL unreadable.
	p := newRevPKI()
	leaf := p.issuing.NewClient("alice")
	good := p.issuing.NewClient("carol")
	in2051 := time.Date(2051, 3, 1, 12, 0, 0, 0, time.UTC)
	now := p.clock.Now()
	stdlib, err := x509.CreateRevocationList(nil, &x509.RevocationList{
		Number:     big.NewInt(1),
		ThisUpdate: now.Add(-time.Hour),
		NextUpdate: now.Add(24 * time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{
			{SerialNumber: big.NewInt(99), RevocationTime: now.Add(-2 * time.Hour)},
			{SerialNumber: leaf.Certificate.SerialNumber, RevocationTime: in2051},
		},
	}, p.issuing.Certificate, p.issuing.Key)
	require.NoError(t, err)
	tests := []struct {
		name string
		der  []byte
	}{
		{"x509.CreateRevocationList", stdlib},
		{"built by hand", p.issuing.NewCRL(mtlstest.CRL{Revoked: []*big.Int{leaf.Certificate.SerialNumber}, RevokedAt: in2051})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := p.middleware(t, &RevocationConfig{CRL: &CRLConfig{Files: []string{mtlstest.WriteFile(t.TempDir(), "i.crl", tt.der)}}})
			_, err := revAuthn(m, leaf)
			requireRevRefused(t, err, ErrRevoked)
			_, err = revAuthn(m, good)
			require.NoError(t, err)
		})
	}
}

func TestRevocationLoadedCRLRevokedWinsOverOCSPGood(t *testing.T) {
	// OCSP says good, a loaded CRL lists the certificate: refused, whichever answers first.
	p := newRevPKI()
	resp := mtlstest.NewOCSPResponder(p.issuing)
	t.Cleanup(resp.Close)
	srv := newRevCRLServer(t, nil)
	leaf := p.issuing.NewClient("alice", mtlstest.WithCRLDistributionPoints(srv.srv.URL))
	good := p.issuing.NewClient("carol", mtlstest.WithCRLDistributionPoints(srv.srv.URL))
	revokes := p.issuing.NewCRL(mtlstest.CRL{Revoked: []*big.Int{leaf.Certificate.SerialNumber}})
	srv.set(revokes)

	t.Run("configured file", func(t *testing.T) {
		m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: resp.URL},
			CRL: &CRLConfig{Files: []string{mtlstest.WriteFile(t.TempDir(), "i.crl", revokes)}}})
		_, err := revAuthn(m, leaf)
		requireRevRefused(t, err, ErrRevoked)
		assert.Contains(t, err.Error(), "CRL")
		_, err = revAuthn(m, good)
		require.NoError(t, err)
	})
	t.Run("distribution point loaded earlier", func(t *testing.T) {
		m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: resp.URL},
			CRL: &CRLConfig{DistributionPoints: true}})
		calls := srv.calls.Load()
		_, err := revAuthn(m, good)
		require.NoError(t, err)
		assert.Equal(t, calls, srv.calls.Load(), "OCSP answered: no CRL is downloaded")
		// OCSP fails once: the distribution point is downloaded and its CRL loaded.
		m.revoc.ocsp.responder = "http://127.0.0.1:1"
		_, err = revAuthn(m, leaf)
		requireRevRefused(t, err, ErrRevoked)
		m.revoc.ocsp.responder = resp.URL
		p.clock.Advance(retryBackoff + time.Second)
		_, err = revAuthn(m, leaf)
		requireRevRefused(t, err, ErrRevoked)
		assert.NotZero(t, resp.Requests())
	})
}

func TestCRLDistributionPointBadSignatureIsNotSwappedIn(t *testing.T) {
	p := newRevPKI()
	other := p.root.NewIntermediate("Other Issuing CA")
	const u = "http://crl.test/issuing.crl"
	rt := newRevTransport()
	leaf := p.issuing.NewClient("alice", mtlstest.WithCRLDistributionPoints(u))
	good := p.issuing.NewClient("carol", mtlstest.WithCRLDistributionPoints(u))
	now := p.clock.Now()
	forged := p.issuing.NewCRL(mtlstest.CRL{SignWith: other.Key, ThisUpdate: now, NextUpdate: now.Add(48 * time.Hour), Number: big.NewInt(9)})

	t.Run("first download", func(t *testing.T) {
		rt.set(u, forged, false)
		m := p.fakeMiddleware(t, rt, &RevocationConfig{CRL: &CRLConfig{DistributionPoints: true}})
		_, err := revAuthn(m, good)
		requireRevRefused(t, err, ErrRevocationUnavailable)
		st := m.CRLStatus()
		require.Len(t, st, 1)
		assert.False(t, st[0].Loaded, "a CRL that does not verify is not swapped in")
		require.Error(t, st[0].Err)
		assert.Contains(t, st[0].Err.Error(), "signature")
	})
	t.Run("refresh", func(t *testing.T) {
		rt.set(u, p.issuing.NewCRL(mtlstest.CRL{ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(24 * time.Hour),
			Revoked: []*big.Int{leaf.Certificate.SerialNumber}}), false)
		m := p.fakeMiddleware(t, rt, &RevocationConfig{CRL: &CRLConfig{DistributionPoints: true}})
		_, err := revAuthn(m, leaf)
		requireRevRefused(t, err, ErrRevoked)
		rt.set(u, forged, false)
		p.clock.Advance(61 * time.Minute)
		_, err = revAuthn(m, good) // starts the refresh
		require.NoError(t, err)
		src := m.revoc.crl.dp[u]
		awaitLoad(src)
		_, err = revAuthn(m, leaf)
		requireRevRefused(t, err, ErrRevoked)
		st := m.CRLStatus()
		require.Len(t, st, 1)
		assert.True(t, st[0].Loaded)
		assert.Equal(t, 1, st[0].Entries, "the CRL in force is the good one")
		require.Error(t, st[0].Err, "the refused CRL is reported")
		assert.Contains(t, st[0].Err.Error(), "signature")
	})
}

// TestCRLWithoutNumberIsNotUsed: a downloaded CRL without a cRLNumber, or with a critical one
// (RFC 5280 5.2.3), is refused like any malformed CRL: the certificates it would clear are not
// good, and the CRL in force stays.
func TestCRLWithoutNumberIsNotUsed(t *testing.T) {
	p := newRevPKI()
	const u = "http://crl.test/issuing.crl"
	good := p.issuing.NewClient("carol", mtlstest.WithCRLDistributionPoints(u))
	now := p.clock.Now()
	tests := []struct {
		name string
		spec mtlstest.CRL
		want string
	}{
		{"no CRL number", mtlstest.CRL{OmitNumber: true}, "no cRLNumber"},
		{"critical CRL number", mtlstest.CRL{CriticalNumber: true}, "cRLNumber extension is marked critical"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := tt.spec
			spec.ThisUpdate, spec.NextUpdate, spec.Number = now, now.Add(24*time.Hour), big.NewInt(5)
			bad := p.issuing.NewCRL(spec)
			for _, rc := range []*RevocationConfig{
				{CRL: &CRLConfig{DistributionPoints: true}},
				{CRL: &CRLConfig{URLs: []string{u}}},
			} {
				rt := newRevTransport()
				rt.set(u, bad, false)
				m := p.fakeMiddleware(t, rt, rc)
				for _, src := range m.revoc.crl.configured {
					awaitLoad(src)
				}
				_, err := revAuthn(m, good)
				requireRevRefused(t, err, ErrRevocationUnavailable)
				st := m.CRLStatus()
				require.Len(t, st, 1)
				assert.False(t, st[0].Loaded)
				require.Error(t, st[0].Err)
				assert.Contains(t, st[0].Err.Error(), tt.want)
			}
		})
	}
}

func TestCRLDistributionPointSizeBound(t *testing.T) {
	p := newRevPKI()
	const dp, configured = "http://crl.test/dp.crl", "http://crl.test/configured.crl"
	der := p.issuing.NewCRL(mtlstest.CRL{})
	rt := newRevTransport()
	rt.set(dp, der, false)
	rt.set(configured, der, false)
	leaf := p.issuing.NewClient("alice", mtlstest.WithCRLDistributionPoints(dp))

	m := p.fakeMiddleware(t, rt, &RevocationConfig{CRL: &CRLConfig{DistributionPoints: true}})
	assert.EqualValues(t, 32<<20, m.revoc.crl.dpMaxBytes, "distribution points: 32 MiB by default")
	assert.EqualValues(t, 256<<20, m.revoc.crl.maxBytes, "configured sources: 256 MiB by default")

	bound := &CRLConfig{DistributionPoints: true, DistributionPointMaxBytes: int64(len(der) - 1)}
	m = p.fakeMiddleware(t, rt, &RevocationConfig{CRL: bound})
	_, err := revAuthn(m, leaf)
	requireRevRefused(t, err, ErrRevocationUnavailable)
	require.Error(t, m.CRLStatus()[0].Err)
	assert.Contains(t, m.CRLStatus()[0].Err.Error(), "exceeds the limit")

	bound.URLs = []string{configured} // the same CRL, configured: under MaxBytes
	m = p.fakeMiddleware(t, rt, &RevocationConfig{CRL: bound})
	_, err = revAuthn(m, leaf)
	require.NoError(t, err)
}

func TestCRLIssuerKeyRolloverUnderTheSameName(t *testing.T) {
	// The CA is re-keyed under the same name; both keys are trusted. The configured URL
	// serves the new key's CRL from now on: it must be used without a restart, while replays of
	// the old key's CRLs stay refused.
	p := newRevPKI()
	rolled := p.root.NewIntermediate("Rev Issuing CA") // same name, new key
	const u = "http://crl.test/issuing.crl"
	now := p.clock.Now()
	oldKeyCRL := func(n int64, at time.Time) []byte {
		return p.issuing.NewCRL(mtlstest.CRL{Number: big.NewInt(n), ThisUpdate: at, NextUpdate: now.Add(48 * time.Hour)})
	}
	before := oldKeyCRL(4, now.Add(-2*time.Hour))
	rt := newRevTransport()
	rt.set(u, oldKeyCRL(5, now.Add(-time.Hour)), false)
	m := p.fakeMiddleware(t, rt, &RevocationConfig{CRL: &CRLConfig{URLs: []string{u}}})
	src := m.revoc.crl.configured[0]
	awaitLoad(src)
	alice := p.issuing.NewClient("alice")
	_, err := revAuthn(m, alice)
	require.NoError(t, err)

	bob, eve := rolled.NewClient("bob"), rolled.NewClient("eve")
	rt.set(u, rolled.NewCRL(mtlstest.CRL{Number: big.NewInt(1), ThisUpdate: now, NextUpdate: now.Add(48 * time.Hour),
		Revoked: []*big.Int{eve.Certificate.SerialNumber}}), false)
	p.clock.Advance(61 * time.Minute) // a refresh is due; a client of the old key leads it
	_, _ = revAuthn(m, alice)
	awaitLoad(src)
	p.clock.Advance(retryBackoff)
	_, err = revAuthn(m, bob) // the CRL in force is the old key's: not yet
	requireRevRefused(t, err, ErrRevocationUnavailable)
	awaitLoad(src)
	_, err = revAuthn(m, bob)
	require.NoError(t, err, "the new key's CRL is in force")
	_, err = revAuthn(m, eve)
	requireRevRefused(t, err, ErrRevoked)

	rt.set(u, before, false) // a replay of the old key's CRL
	p.clock.Advance(retryBackoff)
	_, _ = revAuthn(m, alice) // led by a client of the old key
	awaitLoad(src)
	require.Error(t, src.err())
	assert.Contains(t, src.err().Error(), "replayed")
	_, err = revAuthn(m, eve)
	requireRevRefused(t, err, ErrRevoked)
}

func TestCRLRolledOverKeyIsSeenBeforeTheNextRefresh(t *testing.T) {
	// The URL starts serving the new key's CRL just after a refresh: the first client of the new
	// key leads a download, so its clients are not refused until the refresh interval.
	p := newRevPKI()
	rolled := p.root.NewIntermediate("Rev Issuing CA")
	const u = "http://crl.test/issuing.crl"
	rt := newRevTransport()
	rt.set(u, p.issuing.NewCRL(mtlstest.CRL{}), false)
	m := p.fakeMiddleware(t, rt, &RevocationConfig{CRL: &CRLConfig{URLs: []string{u}}})
	src := m.revoc.crl.configured[0]
	awaitLoad(src)
	_, err := revAuthn(m, p.issuing.NewClient("alice"))
	require.NoError(t, err)

	rt.set(u, rolled.NewCRL(mtlstest.CRL{}), false)
	bob := rolled.NewClient("bob")
	_, err = revAuthn(m, bob)
	requireRevRefused(t, err, ErrRevocationUnavailable)
	awaitLoad(src)
	assert.Equal(t, 1, rt.callsTo(u), "not within a back-off of the last download")
	p.clock.Advance(retryBackoff)
	for range 3 {
		_, _ = revAuthn(m, bob)
		awaitLoad(src)
	}
	assert.Equal(t, 2, rt.callsTo(u), "one download, led by the new key's client")
	_, err = revAuthn(m, bob)
	require.NoError(t, err)
}

func TestCRLTrustChangedForgetsTrustedKeys(t *testing.T) {
	// Both keys of a re-keyed CA verified CRLs here; the old one is then removed from the trust.
	// A fresh CRL of the old key must no longer replace the new key's CRL, while replays of the
	// new key's older CRLs stay refused.
	p := newRevPKI()
	rolled := p.root.NewIntermediate("Rev Issuing CA")
	const u = "http://crl.test/issuing.crl"
	now := p.clock.Now()
	crlOf := func(ca *mtlstest.CA, n int64, at time.Time) []byte {
		return ca.NewCRL(mtlstest.CRL{Number: big.NewInt(n), ThisUpdate: at, NextUpdate: now.Add(48 * time.Hour)})
	}
	rt := newRevTransport()
	rt.set(u, crlOf(p.issuing, 1, now.Add(-3*time.Hour)), false)
	m := p.fakeMiddleware(t, rt, &RevocationConfig{CRL: &CRLConfig{URLs: []string{u}}})
	src := m.revoc.crl.configured[0]
	awaitLoad(src)
	alice, bob := p.issuing.NewClient("alice"), rolled.NewClient("bob")
	_, err := revAuthn(m, alice)
	require.NoError(t, err)
	refresh := func(der []byte, leader *mtlstest.CA) error {
		rt.set(u, der, false)
		return src.refresh(context.Background(), leader.Certificate)
	}
	require.NoError(t, refresh(crlOf(rolled, 1, now.Add(-2*time.Hour)), rolled))
	_, err = revAuthn(m, bob)
	require.NoError(t, err)
	require.NoError(t, refresh(crlOf(p.issuing, 2, now.Add(-time.Hour)), rolled), "the old key is trusted: its CRL is taken")
	require.NoError(t, refresh(crlOf(rolled, 2, now.Add(-time.Hour)), p.issuing), "so is the new one's")

	require.NoError(t, m.Reload()) // the old key is no longer trusted
	err = refresh(crlOf(p.issuing, 3, now.Add(-time.Minute)), rolled)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "trusted key")
	err = refresh(crlOf(rolled, 1, now.Add(-2*time.Hour)), rolled)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "replayed")
	_, err = revAuthn(m, bob)
	require.NoError(t, err)
}

// TestCRLConfiguredSourceKeepsItsIssuer: whoever answers on a configured URL cannot replace the
// issuer's CRL with one of another issuer, which would drop the revocations it lists and leave no
// request to ask the source again.
func TestCRLConfiguredSourceKeepsItsIssuer(t *testing.T) {
	p := newRevPKI()
	const u = "http://crl.test/issuing.crl"
	now := p.clock.Now()
	leaf := p.issuing.NewClient("alice")
	revokes := p.issuing.NewCRL(mtlstest.CRL{ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(48 * time.Hour),
		Number: big.NewInt(1), Revoked: []*big.Int{leaf.Certificate.SerialNumber}})
	rt := newRevTransport()
	rt.set(u, revokes, false)
	m := p.fakeMiddleware(t, rt, &RevocationConfig{CRL: &CRLConfig{URLs: []string{u}}})
	src := m.revoc.crl.configured[0]
	awaitLoad(src)
	_, err := revAuthn(m, leaf)
	requireRevRefused(t, err, ErrRevoked)

	evil := mtlstest.NewRootCA("Evil CA")
	rt.set(u, evil.NewCRL(mtlstest.CRL{ThisUpdate: now, NextUpdate: now.Add(48 * time.Hour)}), false)
	err = src.refresh(context.Background(), p.issuing.Certificate)
	require.ErrorContains(t, err, `issued by "CN=Evil CA", not by the issuer of the CRL in force`)
	_, err = revAuthn(m, leaf)
	requireRevRefused(t, err, ErrRevoked)
	require.ErrorContains(t, m.CRLStatus()[0].Err, "Evil CA", "the refusal is reported")
}

// TestOCSPRevocationOutlivesItsCacheEntry: once the entry of a revoked certificate made room for
// others, a response from before the revocation, replayed, does not undo it.
func TestOCSPRevocationOutlivesItsCacheEntry(t *testing.T) {
	p := newRevPKI()
	leaf, other := p.issuing.NewClient("alice"), p.issuing.NewClient("bob")
	now := p.clock.Now()
	oldGood := p.issuing.NewOCSPResponse(leaf.Certificate, mtlstest.OCSPAnswer{ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(7 * 24 * time.Hour)})
	revoked := p.issuing.NewOCSPResponse(leaf.Certificate, mtlstest.OCSPAnswer{Status: ocsp.Revoked, ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)})
	otherGood := p.issuing.NewOCSPResponse(other.Certificate, mtlstest.OCSPAnswer{ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)})
	laterGood := p.issuing.NewOCSPResponse(leaf.Certificate, mtlstest.OCSPAnswer{ThisUpdate: now, NextUpdate: now.Add(time.Hour)})
	var serve atomic.Pointer[[]byte]
	serve.Store(&revoked)
	rf := newRevResponder(t, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(*serve.Load()) })
	m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: rf.srv.URL, CacheSize: 1}})
	_, err := revAuthn(m, leaf)
	requireRevRefused(t, err, ErrRevoked)
	serve.Store(&otherGood)
	_, err = revAuthn(m, other) // takes the only cache entry
	require.NoError(t, err)

	serve.Store(&oldGood) // replayed
	_, err = revAuthn(m, leaf)
	requireRevRefused(t, err, ErrRevocationUnavailable)
	assert.ErrorContains(t, err, "a response not older said revoked")

	p.clock.Advance(time.Minute) // past the back-off
	serve.Store(&laterGood)      // newer than the revocation: a certificate hold released
	_, err = revAuthn(m, leaf)
	require.NoError(t, err)
}

// TestOCSPStaleAnswerIsNotWaitedForAgain: once a responder failed and the answer held is stale
// (within StaleIfError), requests get the stale answer at once; the responder is asked in the
// background, not on their path, whenever the back-off ends.
func TestOCSPStaleAnswerIsNotWaitedForAgain(t *testing.T) {
	p := newRevPKI()
	leaf := p.issuing.NewClient("alice")
	now := p.clock.Now()
	good := p.issuing.NewOCSPResponse(leaf.Certificate, mtlstest.OCSPAnswer{ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)})
	const (
		answering = iota
		failing   // an error at once
		hanging   // a blackholed responder: answers only when the query is given up
	)
	var mode atomic.Int32
	hung := make(chan struct{})
	rf := newRevResponder(t, func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load() {
		case failing:
			w.WriteHeader(http.StatusBadGateway)
		case hanging:
			select {
			case <-r.Context().Done():
			case <-hung:
			}
		default:
			_, _ = w.Write(good)
		}
	})
	t.Cleanup(func() { close(hung) }) // before the server closes: it waits for its handlers

	// A request that waited for the responder would wait an hour.
	m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: rf.srv.URL}, Timeout: time.Hour, StaleIfError: time.Hour})
	_, err := revAuthn(m, leaf)
	require.NoError(t, err)

	mode.Store(failing)
	p.clock.Advance(65 * time.Minute) // past nextUpdate and the clock skew
	id, err := revAuthn(m, leaf)
	require.NoError(t, err)
	require.True(t, id.Revocation.Stale)

	mode.Store(hanging)
	for range 3 {
		p.clock.Advance(time.Minute) // past each back-off
		done := make(chan error, 1)
		go func() { _, err := revAuthn(m, leaf); done <- err }()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(time.Minute): // a bound for a hang, not a measure of speed
			t.Fatal("a request waited for the failing responder")
		}
	}
}

// TestRevocationWaitsOnceForTheWholeRequest: the revocation timeout bounds what one request
// waits in all, for every certificate of the chain; with CRLs configured, a responder that does
// not answer takes only half of it, leaving the CRLs the rest.
func TestRevocationWaitsOnceForTheWholeRequest(t *testing.T) {
	p := newRevPKI()
	leaf := p.issuing.NewClient("alice")
	hung := make(chan struct{})
	rf := newRevResponder(t, func(w http.ResponseWriter, r *http.Request) {
		select { // never answers in time
		case <-r.Context().Done():
		case <-hung:
		}
	})
	t.Cleanup(func() { close(hung) }) // before the server closes: it waits for its handlers

	const timeout = 4 * time.Second
	// Each wait of d takes d on the test's clock, and ends at once in real time.
	waited := func(m *Middleware) *time.Duration {
		var total time.Duration
		var mu sync.Mutex
		m.revoc.after = func(d time.Duration) <-chan time.Time {
			mu.Lock()
			total += d
			mu.Unlock()
			p.clock.Advance(d)
			ch := make(chan time.Time)
			close(ch)
			return ch
		}
		return &total
	}

	t.Run("chain", func(t *testing.T) {
		m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: rf.srv.URL}, CheckChain: true, Timeout: timeout})
		total := waited(m)
		_, err := revAuthn(m, leaf)
		requireRevRefused(t, err, ErrRevocationUnavailable)
		assert.Equal(t, timeout, *total, "two certificates, one timeout")
	})
	t.Run("OCSP leaves the CRLs half", func(t *testing.T) {
		rt := newRevTransport()
		const u = "http://crl.test/issuing.crl"
		rt.set(u, nil, true) // never answers either
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		m := p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: rf.srv.URL},
			CRL: &CRLConfig{URLs: []string{u}}, Timeout: timeout, Context: ctx,
			HTTPClient: &http.Client{Transport: crlOnly{rt}}})
		total := waited(m)
		_, err := revAuthn(m, leaf)
		requireRevRefused(t, err, ErrRevocationUnavailable)
		assert.LessOrEqual(t, *total, timeout)
		assert.Greater(t, *total, timeout/2, "the CRL download was waited for too")
	})
}

// crlOnly sends the downloads of crl.test to rt, and everything else to the network (the
// loopback responders of the tests).
type crlOnly struct{ rt *revTransport }

func (c crlOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == "crl.test" {
		return c.rt.RoundTrip(r)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestCRLDistributionPointsPerCertificate: a certificate naming many distribution points makes
// the service download only the first few.
func TestCRLDistributionPointsPerCertificate(t *testing.T) {
	p := newRevPKI()
	var urls []string
	for i := range 10 {
		urls = append(urls, fmt.Sprintf("http://crl.test/%d.crl", i))
	}
	rt := newRevTransport()
	m := p.fakeMiddleware(t, rt, &RevocationConfig{CRL: &CRLConfig{DistributionPoints: true}})
	_, err := revAuthn(m, p.issuing.NewClient("many", mtlstest.WithCRLDistributionPoints(urls...)))
	requireRevRefused(t, err, ErrRevocationUnavailable)
	m.revoc.crl.dpMu.Lock()
	n := len(m.revoc.crl.dp)
	m.revoc.crl.dpMu.Unlock()
	assert.Equal(t, maxDPPerCertificate, n)
}

// blockingTransport holds every request until release is closed, then answers with der; it
// counts the requests in flight and the most seen at once.
type blockingTransport struct {
	der      []byte
	release  chan struct{}
	entered  chan struct{}
	mu       sync.Mutex
	inFlight int
	peak     int
}

func newBlockingTransport(der []byte) *blockingTransport {
	return &blockingTransport{der: der, release: make(chan struct{}), entered: make(chan struct{}, 1000)}
}

func (bt *blockingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	bt.mu.Lock()
	bt.inFlight++
	bt.peak = max(bt.peak, bt.inFlight)
	bt.mu.Unlock()
	defer func() {
		bt.mu.Lock()
		bt.inFlight--
		bt.mu.Unlock()
	}()
	bt.entered <- struct{}{}
	select {
	case <-bt.release:
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Body: io.NopCloser(bytes.NewReader(bt.der)),
		ContentLength: int64(len(bt.der)), Request: r}, nil
}

func (bt *blockingTransport) peakInFlight() int {
	bt.mu.Lock()
	defer bt.mu.Unlock()
	return bt.peak
}

// TestCRLDistributionPointDownloadsAreBounded: requests naming many distinct distribution
// points start no more downloads at once than maxDPDownloads; a request
// that gets no download is answered as for any CRL that cannot be had (refused, or let through
// flagged FailOpen), never as good.
func TestCRLDistributionPointDownloadsAreBounded(t *testing.T) {
	const n = 3 * maxDPDownloads
	for _, failOpen := range []bool{false, true} {
		t.Run(fmt.Sprint("fail open ", failOpen), func(t *testing.T) {
			p := newRevPKI()
			bt := newBlockingTransport(p.issuing.NewCRL(mtlstest.CRL{}))
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			m := p.middleware(t, &RevocationConfig{CRL: &CRLConfig{DistributionPoints: true},
				DangerouslyFailOpen: failOpen, Context: ctx, HTTPClient: &http.Client{Transport: bt}})
			waits := recordWaits(m) // requests do not wait for the downloads they start
			var leaves []*mtlstest.Leaf
			for i := range n {
				leaves = append(leaves, p.issuing.NewClient(fmt.Sprint("c", i),
					mtlstest.WithCRLDistributionPoints(fmt.Sprintf("http://crl%d.test/a.crl", i))))
			}
			busy := 0
			for _, leaf := range leaves {
				id, err := revAuthn(m, leaf)
				if failOpen {
					require.NoError(t, err)
					require.True(t, id.Revocation.FailOpen, "never good without a CRL")
					err = id.Revocation.Err
				} else {
					requireRevRefused(t, err, ErrRevocationUnavailable)
				}
				if errors.Is(err, errCRLDownloadsBusy) {
					busy++
				}
			}
			assert.Equal(t, n-maxDPDownloads, busy, "the requests beyond the bound started no download")
			loading := 0
			for _, src := range m.revoc.crl.sources() {
				if src.loading.Load() != nil {
					loading++
				}
			}
			assert.Equal(t, maxDPDownloads, loading, "downloads under way")
			for range maxDPDownloads {
				select {
				case <-bt.entered:
				case <-time.After(10 * time.Second): // guards a broken build only
					t.Fatal("the downloads did not start")
				}
			}
			assert.Equal(t, maxDPDownloads, bt.peakInFlight())

			close(bt.release)
			for _, src := range m.revoc.crl.sources() {
				awaitLoad(src)
			}
			// Each download gives its slot back just after it ends.
			require.Eventually(t, func() bool { return len(m.revoc.dpSem) == 0 }, 10*time.Second, time.Millisecond)
			m.revoc.after = time.After // the downloads answer at once now: wait for them
			for _, leaf := range leaves {
				id, err := revAuthn(m, leaf)
				require.NoError(t, err)
				assert.False(t, id.Revocation.Degraded(), "a request without a download before gets one now")
			}
			assert.LessOrEqual(t, bt.peakInFlight(), maxDPDownloads)
			assert.NotEmpty(t, waits.all())
		})
	}
}

// TestCRLDistributionPointBusyUsesStaleBudget: a request whose distribution point's CRL has
// expired and that gets no download is answered from the stale CRL within StaleIfError, and
// refused past it.
func TestCRLDistributionPointBusyUsesStaleBudget(t *testing.T) {
	p := newRevPKI()
	const u = "http://crl.test/issuing.crl"
	now := p.clock.Now()
	rt := newRevTransport()
	rt.set(u, p.issuing.NewCRL(mtlstest.CRL{ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(time.Hour)}), false)
	m := p.fakeMiddleware(t, rt, &RevocationConfig{CRL: &CRLConfig{DistributionPoints: true}, StaleIfError: time.Hour})
	alice := p.issuing.NewClient("alice", mtlstest.WithCRLDistributionPoints(u))
	_, err := revAuthn(m, alice)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(m.revoc.dpSem) == 0 }, 10*time.Second, time.Millisecond)
	for range maxDPDownloads { // every slot taken
		m.revoc.dpSem <- struct{}{}
	}
	t.Cleanup(func() {
		for range maxDPDownloads {
			<-m.revoc.dpSem
		}
	})
	calls := rt.callsTo(u)
	p.clock.Advance(90 * time.Minute) // 30 minutes past nextUpdate
	id, err := revAuthn(m, alice)
	require.NoError(t, err)
	assert.True(t, id.Revocation.Stale)
	assert.ErrorIs(t, id.Revocation.Err, errCRLDownloadsBusy)
	p.clock.Advance(time.Hour) // past the budget
	_, err = revAuthn(m, alice)
	requireRevRefused(t, err, ErrRevocationUnavailable)
	assert.ErrorIs(t, err, errCRLDownloadsBusy)
	assert.Equal(t, calls, rt.callsTo(u), "no download without a slot")
}
