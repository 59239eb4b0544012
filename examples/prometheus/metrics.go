package main

import (
	"context"
	"crypto/x509"
	"sync"
	"time"

	"github.com/certgate/mtls"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics turns the middleware's decisions ([mtls.Event]) into Prometheus metrics:
//
//	mtls_decisions_total{result,reason,source}                  counter
//	mtls_decision_duration_seconds{source}                      histogram of Event.Duration
//	mtls_accepted_expiring_soon_total                           accepted requests whose certificate ExpiresSoon
//	mtls_throttled_total{tier}                                  requests refused with 429, by tier ("" for too_many_refusals)
//	mtls_client_cert_soonest_expiry_timestamp_seconds{issuer}   gauge, see below
//
// result is an [mtls.Result], reason the stable reason code of a refusal (empty when accepted),
// source the certificate's [mtls.Source] (empty when none spoke): every label takes a few
// values only, and so does tier, one of the configured [mtls.ThrottleConfig] tiers. Subjects, serials and fingerprints are never labels; they belong in logs.
//
// The expiry gauge is, per issuer, the soonest NotAfter among the client certificates accepted
// in the last one to two days: time is cut into windows of a day, and a certificate counts while
// it was seen in the current window or the one before, so that a renewed certificate stops
// dragging the value down within two days of its last use. Alert on it minus time() falling
// under a week or so. Only accepted certificates count (their issuers are the configured CAs',
// not a stranger's), and at most 256 issuers (maxIssuers) are kept: past that, the one seen least
// recently is dropped.
//
// Register it once, pass [Metrics.OnDecision] as [mtls.Config.OnDecision]. It is safe for
// concurrent use.
type Metrics struct {
	decisions    *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	expiringSoon prometheus.Counter
	throttled    *prometheus.CounterVec
	expiryDesc   *prometheus.Desc
	expiry       expiryTracker
}

// NewMetrics builds the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtls_decisions_total",
			Help: "Decisions of the mTLS middleware, by result, refusal reason code and certificate source.",
		}, []string{"result", "reason", "source"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mtls_decision_duration_seconds",
			Help: "Time the mTLS middleware took to decide a request.",
			// 100ns (a cached outcome) to 100ms (a revocation fetch), two buckets a decade.
			Buckets: prometheus.ExponentialBucketsRange(100e-9, 0.1, 13),
		}, []string{"source"}),
		expiringSoon: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mtls_accepted_expiring_soon_total",
			Help: "Accepted requests whose client certificate expires within the configured warning.",
		}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mtls_throttled_total",
			Help: "Requests refused with 429: by the tier of their principal (rate_limited), or with tier \"\" (too_many_refusals).",
		}, []string{"tier"}),
		expiryDesc: prometheus.NewDesc("mtls_client_cert_soonest_expiry_timestamp_seconds",
			"Soonest NotAfter among the client certificates of each issuer accepted in the last one to two days.",
			[]string{"issuer"}, nil),
	}
	reg.MustRegister(m)
	return m
}

// OnDecision counts ev; it is an [mtls.Config.OnDecision] hook.
func (m *Metrics) OnDecision(_ context.Context, ev mtls.Event) {
	source := string(ev.Source)
	m.decisions.WithLabelValues(string(ev.Result), ev.Reason, source).Inc()
	m.duration.WithLabelValues(source).Observe(ev.Duration.Seconds())
	if ev.Result == mtls.Throttled {
		m.throttled.WithLabelValues(ev.Tier).Inc()
	}
	if ev.Result == mtls.Refused || ev.Result == mtls.Throttled || ev.Leaf == nil {
		return
	}
	if ev.ExpiresSoon {
		m.expiringSoon.Inc()
	}
	m.expiry.see(ev.Leaf, time.Now())
}

// Describe implements [prometheus.Collector].
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.decisions.Describe(ch)
	m.duration.Describe(ch)
	m.expiringSoon.Describe(ch)
	m.throttled.Describe(ch)
	ch <- m.expiryDesc
}

// Collect implements [prometheus.Collector].
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.decisions.Collect(ch)
	m.duration.Collect(ch)
	m.expiringSoon.Collect(ch)
	m.throttled.Collect(ch)
	for issuer, t := range m.expiry.soonest(time.Now()) {
		ch <- prometheus.MustNewConstMetric(m.expiryDesc, prometheus.GaugeValue, seconds(t), issuer)
	}
}

// maxIssuers bounds the issuers of the expiry gauge; expiryWindow is its window.
const (
	maxIssuers   = 256
	expiryWindow = 24 * time.Hour
)

// expiryTracker keeps, per issuer, the soonest NotAfter seen in the current window and in the
// one before (see [Metrics]).
type expiryTracker struct {
	mu      sync.Mutex
	start   time.Time                // of the current window; zero before the first certificate
	issuers map[string]*issuerExpiry // by raw issuer name (DER), which costs nothing to look up
}

type issuerExpiry struct {
	name      string    // RFC 2253
	cur, prev time.Time // soonest NotAfter in the current and the previous window; zero: none
	seen      time.Time // when a certificate of the issuer was last seen
}

// see records the certificate leaf, seen at now.
func (t *expiryTracker) see(leaf *x509.Certificate, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rotate(now)
	e, ok := t.issuers[string(leaf.RawIssuer)]
	if !ok {
		if len(t.issuers) >= maxIssuers {
			t.dropLeastRecent()
		}
		e = &issuerExpiry{name: leaf.Issuer.String()}
		t.issuers[string(leaf.RawIssuer)] = e
	}
	e.seen = now
	if e.cur.IsZero() || leaf.NotAfter.Before(e.cur) {
		e.cur = leaf.NotAfter
	}
}

// soonest returns the soonest NotAfter of each issuer at now, by RFC 2253 name.
func (t *expiryTracker) soonest(now time.Time) map[string]time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rotate(now)
	out := make(map[string]time.Time, len(t.issuers))
	for _, e := range t.issuers {
		v := e.cur
		if v.IsZero() || !e.prev.IsZero() && e.prev.Before(v) {
			v = e.prev
		}
		// Two encodings of one name are one label.
		if old, ok := out[e.name]; !ok || v.Before(old) {
			out[e.name] = v
		}
	}
	return out
}

// rotate moves to the window of now: what is older than the previous window is forgotten, and
// so are the issuers left with nothing.
func (t *expiryTracker) rotate(now time.Time) {
	if t.issuers == nil {
		t.issuers, t.start = map[string]*issuerExpiry{}, now
	}
	n := now.Sub(t.start) / expiryWindow
	if n <= 0 {
		return
	}
	t.start = t.start.Add(n * expiryWindow)
	for k, e := range t.issuers {
		e.prev, e.cur = e.cur, time.Time{}
		if n > 1 {
			e.prev = time.Time{}
		}
		if e.prev.IsZero() {
			delete(t.issuers, k)
		}
	}
}

// dropLeastRecent forgets the issuer seen least recently.
func (t *expiryTracker) dropLeastRecent() {
	var oldest string
	var at time.Time
	for k, e := range t.issuers {
		if at.IsZero() || e.seen.Before(at) {
			oldest, at = k, e.seen
		}
	}
	delete(t.issuers, oldest)
}
