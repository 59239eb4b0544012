package mtls

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestScaleOutOCSPQueries runs replicas as they are deployed behind a load balancer: each its own
// middleware, sharing nothing, in front of one OCSP responder. However many requests each gets,
// concurrently, the responder is asked at most once per certificate per replica per refresh
// interval (OCSPConfig.MaxAge): N replicas make at most N queries per certificate per interval.
func TestScaleOutOCSPQueries(t *testing.T) {
	const (
		replicas  = 4
		clients   = 3
		perClient = 20 // concurrent requests per client per replica in each burst
		maxAge    = 10 * time.Minute
	)
	p := newRevPKI()
	responder := mtlstest.NewOCSPResponder(p.issuing)
	t.Cleanup(responder.Close)
	responder.SetValidity(24 * time.Hour)
	leaves := make([]*mtlstest.Leaf, clients)
	for i := range leaves {
		leaves[i] = p.issuing.NewClient("client")
	}
	ms := make([]*Middleware, replicas)
	for i := range ms {
		ms[i] = p.middleware(t, &RevocationConfig{OCSP: &OCSPConfig{Responder: responder.URL, MaxAge: maxAge}})
		t.Cleanup(func() { _ = ms[i].Close() })
	}
	burst := func(t *testing.T) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, replicas*clients*perClient)
		for _, m := range ms {
			for _, leaf := range leaves {
				for range perClient {
					wg.Go(func() {
						_, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...))
						errs <- err
					})
				}
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	}
	queries := func() (perCert []int) {
		for _, leaf := range leaves {
			perCert = append(perCert, responder.RequestsFor(leaf.Certificate.SerialNumber))
		}
		return perCert
	}
	each := func(n int) []int {
		want := make([]int, clients)
		for i := range want {
			want[i] = n
		}
		return want
	}

	burst(t)
	assert.Equal(t, each(replicas), queries(), "one query per certificate per replica")
	p.clock.Advance(maxAge / 2)
	burst(t)
	assert.Equal(t, each(replicas), queries(), "within the interval: answered from each replica's cache")

	p.clock.Advance(maxAge/2 + time.Second)
	burst(t) // past the interval: each replica refreshes each certificate once, in the background
	require.Eventually(t, func() bool {
		for _, n := range queries() {
			if n < 2*replicas {
				return false
			}
		}
		return true
	}, 30*time.Second, 5*time.Millisecond) // a bound, not a measure
	burst(t)
	assert.Equal(t, each(2*replicas), queries(), "one refresh per certificate per replica")
	assert.Equal(t, 2*replicas*clients, responder.Requests())
}
