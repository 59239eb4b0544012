package mtls

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// newTarpit returns a server that never answers: each request is announced on entered, then
// held until the client gives up or the test ends.
func newTarpit(t *testing.T, entered chan<- string) *httptest.Server {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		entered <- r.Host + r.URL.Path
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	return srv
}

// TestCRLDistributionPointTarpitsDoNotStarveOthers: one certificate whose distribution points
// are on hosts that never answer (a CA-signed certificate of an attacker, or a partner whose
// points are blackholed) starts downloads that hold their slots; a certificate with a good
// distribution point still gets its CRL, and the configured CRLs are still refreshed.
func TestCRLDistributionPointTarpitsDoNotStarveOthers(t *testing.T) {
	p := newRevPKI()
	other := p.root.NewIntermediate("Other Issuing CA")
	entered := make(chan string, 2*maxDPPerCertificate)
	var dps []string
	for i := range maxDPPerCertificate {
		dps = append(dps, fmt.Sprintf("%s/%d.crl", newTarpit(t, entered).URL, i)) // a host each
	}
	good := newRevCRLServer(t, p.issuing.NewCRL(mtlstest.CRL{}))
	configured := newRevCRLServer(t, other.NewCRL(mtlstest.CRL{}))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	m := p.middleware(t, &RevocationConfig{Context: ctx, Timeout: 20 * time.Second, CRL: &CRLConfig{
		DistributionPoints: true, URLs: []string{configured.srv.URL + "/other.crl"},
		RefreshInterval: time.Minute, FetchTimeout: time.Hour}})
	for _, src := range m.revoc.crl.configured {
		awaitLoad(src)
	}
	require.EqualValues(t, 1, configured.calls.Load())

	mallory := p.issuing.NewClient("mallory", mtlstest.WithCRLDistributionPoints(dps...))
	rctx, rcancel := context.WithCancel(context.Background())
	rcancel() // the request gives up at once: its downloads go on without it
	_, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", mallory.Chain()...).WithContext(rctx))
	require.Error(t, err)
	for range dps {
		select {
		case <-entered:
		case <-time.After(10 * time.Second): // guards a broken build only
			t.Fatal("the downloads of the distribution points did not start")
		}
	}

	alice := p.issuing.NewClient("alice", mtlstest.WithCRLDistributionPoints(good.srv.URL+"/issuing.crl"))
	id, err := revAuthn(m, alice)
	require.NoError(t, err, "a good distribution point is downloaded while the others hang")
	assert.False(t, id.Revocation.Degraded())

	p.clock.Advance(2 * time.Minute) // the configured CRL is due for a refresh
	_, err = revAuthn(m, other.NewClient("bob"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return configured.calls.Load() == 2 }, 10*time.Second, 5*time.Millisecond,
		"the configured CRL is refreshed while the distribution points hang")
}

// TestCRLDistributionPointDownloadNobodyWaitsForEndsWithTheRevocationTimeout: the first download
// of a distribution point that nobody waits for holds its slot for the revocation timeout, not
// for the fetch timeout.
func TestCRLDistributionPointDownloadNobodyWaitsForEndsWithTheRevocationTimeout(t *testing.T) {
	p := newRevPKI()
	const u = "http://tarpit.test/a.crl"
	rt := newRevTransport()
	rt.set(u, nil, true)
	m := p.fakeMiddleware(t, rt, &RevocationConfig{Timeout: 50 * time.Millisecond,
		CRL: &CRLConfig{DistributionPoints: true, FetchTimeout: time.Hour}})
	leaf := p.issuing.NewClient("mallory", mtlstest.WithCRLDistributionPoints(u))
	rctx, rcancel := context.WithCancel(context.Background())
	rcancel()
	_, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...).WithContext(rctx))
	requireRevRefused(t, err, ErrRevocationUnavailable)
	src := m.revoc.crl.dpSource(u, p.clock.Now(), false)
	require.NotNil(t, src)
	done := make(chan struct{})
	go func() { awaitLoad(src); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second): // the fetch timeout is an hour
		t.Fatal("the download outlived the revocation timeout")
	}
	require.Eventually(t, func() bool { return len(m.revoc.dpSem) == 0 }, 10*time.Second, time.Millisecond)
	assert.ErrorIs(t, src.err(), errCRLDownloadCut)
}

// TestCRLDistributionPointBackoffDoubles: a distribution point that keeps failing is asked again
// after 5 seconds, then 10, 20... up to 5 minutes; a success starts again from 5 seconds.
func TestCRLDistributionPointBackoffDoubles(t *testing.T) {
	p := newRevPKI()
	const u = "http://down.test/a.crl"
	rt := newRevTransport() // refuses u until set
	m := p.fakeMiddleware(t, rt, &RevocationConfig{CRL: &CRLConfig{DistributionPoints: true}})
	leaf := p.issuing.NewClient("alice", mtlstest.WithCRLDistributionPoints(u))
	backoff := func() time.Duration {
		src := m.revoc.crl.dpSource(u, p.clock.Now(), false)
		require.NotNil(t, src)
		awaitLoad(src)
		if src.failedUntil.Load() == 0 {
			return 0
		}
		return time.Duration(src.failedUntil.Load() - p.clock.Now().UnixNano())
	}
	_, err := revAuthn(m, leaf)
	requireRevRefused(t, err, ErrRevocationUnavailable)
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second,
		80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, w := range want {
		require.Equal(t, w, backoff(), "after failure %d", i+1)
		calls := rt.callsTo(u)
		p.clock.Advance(w - time.Second)
		_, err = revAuthn(m, leaf)
		requireRevRefused(t, err, ErrRevocationUnavailable)
		awaitLoad(m.revoc.crl.dpSource(u, p.clock.Now(), false))
		require.Equal(t, calls, rt.callsTo(u), "not asked within the back-off")
		p.clock.Advance(time.Second)
		_, err = revAuthn(m, leaf)
		requireRevRefused(t, err, ErrRevocationUnavailable)
		require.Eventually(t, func() bool { return rt.callsTo(u) == calls+1 }, 10*time.Second, time.Millisecond)
	}
	rt.set(u, p.issuing.NewCRL(mtlstest.CRL{}), false)
	p.clock.Advance(5 * time.Minute)
	_, _ = revAuthn(m, leaf) // retried in the background
	require.Zero(t, backoff(), "loaded")
	src := m.revoc.crl.dpSource(u, p.clock.Now(), false)
	src.setFailure(fmt.Errorf("down"), p.clock.Now()) // the next failure
	assert.Equal(t, 5*time.Second, time.Duration(src.failedUntil.Load()-p.clock.Now().UnixNano()), "a success starts the back-off afresh")
}

// TestCertificateURLSchemeIsCaseInsensitive: a distribution point or AIA responder written
// HTTP://... is used like http://... (RFC 3986 3.1).
func TestCertificateURLSchemeIsCaseInsensitive(t *testing.T) {
	p := newRevPKI()
	upper := func(u string) string { return strings.Replace(u, "http://", "HTTP://", 1) }
	crlSrv := newRevCRLServer(t, p.issuing.NewCRL(mtlstest.CRL{}))
	dpLeaf := p.issuing.NewClient("dp", mtlstest.WithCRLDistributionPoints(upper(crlSrv.srv.URL+"/issuing.crl")))
	var der []byte
	rf := newRevResponder(t, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(der) })
	aiaLeaf := p.issuing.NewClient("aia", mtlstest.WithOCSPServer(upper(rf.srv.URL+"/ocsp")))
	der = p.issuing.NewOCSPResponse(aiaLeaf.Certificate, mtlstest.OCSPAnswer{})
	tests := []struct {
		name string
		rc   *RevocationConfig
		leaf *mtlstest.Leaf
	}{
		{"distribution point", &RevocationConfig{CRL: &CRLConfig{DistributionPoints: true}}, dpLeaf},
		{"AIA responder", &RevocationConfig{OCSP: &OCSPConfig{}}, aiaLeaf},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := revAuthn(p.middleware(t, tt.rc), tt.leaf)
			require.NoError(t, err)
			assert.False(t, id.Revocation.Degraded())
		})
	}
}

// TestCRLDistributionPointsOfAnUntrustedChainAreNotFetched: a chain that does not verify never
// reaches the revocation step: its distribution points are neither added nor downloaded.
func TestCRLDistributionPointsOfAnUntrustedChainAreNotFetched(t *testing.T) {
	p := newRevPKI()
	rt := newRevTransport()
	m := p.fakeMiddleware(t, rt, &RevocationConfig{CRL: &CRLConfig{DistributionPoints: true}})
	rogue := mtlstest.NewRootCA("Rogue Root").NewIntermediate("Rogue Issuing").NewClient("eve",
		mtlstest.WithCRLDistributionPoints("http://a.test/0.crl", "http://b.test/1.crl"))
	_, err := revAuthn(m, rogue)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrRevocationUnavailable)
	assert.Empty(t, m.CRLStatus())
	assert.Zero(t, rt.callsTo("http://a.test/0.crl")+rt.callsTo("http://b.test/1.crl"))
}
