package mtls

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// The one place that reports decisions: each decision of the middleware's handlers, and each
// refusal at the TLS handshake (handshake.go), becomes one [Event], handed to OnDecision and the
// logger; refusals then go to the error handler; shadow
// policy outcomes go to OnShadow; the outcomes of reloads go to the logger and ReloadStatus.
// Only the middleware's handlers observe; [Middleware.Authenticate] returns its decision and
// reports nothing.

// clock is when a decision begins, for its event's Duration; zero when no event is built.
func (m *Middleware) clock() time.Time {
	if m.watching {
		return time.Now()
	}
	return time.Time{}
}

// observe reports the decision d on r, begun at start, and writes a refusal through the error
// handler.
func (m *Middleware) observe(w http.ResponseWriter, r *http.Request, d *decision, start time.Time) {
	m.note(r, d, start)
	if d.err != nil {
		m.errorHandler(w, r, d.err)
	}
}

// note reports the decision d on r, begun at start: the shadow policy's outcome, then the event.
func (m *Middleware) note(r *http.Request, d *decision, start time.Time) {
	shadowErr := m.judgeShadow(r, d)
	if m.watching {
		m.emit(r, d, shadowErr, time.Since(start))
	}
}

// judgeShadow reports the outcome of the shadow policy on d, and returns its refusal.
func (m *Middleware) judgeShadow(r *http.Request, d *decision) error {
	if m.policies.shadow != nil && d.evaluated != nil {
		return m.reportShadow(r, m.policies.shadow, d.evaluated, d.enforced)
	}
	return nil
}

// emit reports the event of d, taken in duration, if anyone is listening.
func (m *Middleware) emit(r *http.Request, d *decision, shadowErr error, duration time.Duration) {
	if m.watching && (m.onDecision != nil || m.logged(r.Context(), d)) {
		ev := m.event(d, shadowErr, duration)
		m.report(r.Context(), &ev)
	}
}

// Route policies. A Require or Shadow below a handler judges a request that the handler accepted;
// the request must still make one decision, one event. So once a route policy was built that
// reports through the event (an observer is set) or holds policy files, the handlers do not
// report an acceptance at once: proceed places it in the request's context, pending; a route
// policy that refuses reports the refusal in its place, and otherwise the acceptance is reported
// when the request returns from the handler. Without route policies, nothing waits.

// pendingKey is the context key of a request's pending acceptance.
type pendingKey struct{}

// pending is an acceptance waiting for the route policies, and the state it was decided under.
// The route policies run before the handler returns, usually in its goroutine; mu makes sure the
// request is reported once even where they do not (a route below http.TimeoutHandler that
// outlives it).
type pending struct {
	m    *Middleware
	d    decision      // read-only once placed in the context
	took time.Duration // the time the handler took to decide

	mu        sync.Mutex
	shadowErr error // of ShadowPolicy, or else of the first route Shadow that refused
	done      bool  // the event was reported
}

// settle marks the request reported, and returns the shadow refusal to report with it; ok is
// false if it was reported already.
func (pd *pending) settle() (shadowErr error, ok bool) {
	pd.mu.Lock()
	defer pd.mu.Unlock()
	if pd.done {
		return nil, false
	}
	pd.done = true
	return pd.shadowErr, true
}

// shadowed records the refusal a route's Shadow would make, unless one is recorded already.
func (pd *pending) shadowed(err error) {
	pd.mu.Lock()
	defer pd.mu.Unlock()
	if pd.shadowErr == nil {
		pd.shadowErr = err
	}
}

// proceed reports the acceptance d of r, begun at start, and calls next with rn, the request as
// next sees it; with route policies, the report waits for them (see pending).
func (m *Middleware) proceed(w http.ResponseWriter, r, rn *http.Request, d *decision, start time.Time, next http.Handler) {
	if !m.routes.Load() {
		m.note(r, d, start)
		next.ServeHTTP(w, rn)
		return
	}
	pd := &pending{m: m, d: *d, shadowErr: m.judgeShadow(r, d)}
	if m.watching {
		pd.took = time.Since(start)
	}
	defer pd.flush(r) // also when next panics: the request was accepted
	next.ServeHTTP(w, rn.WithContext(context.WithValue(rn.Context(), pendingKey{}, pd)))
}

// flush reports the acceptance, unless a route policy reported a refusal instead.
func (pd *pending) flush(r *http.Request) {
	if shadowErr, ok := pd.settle(); ok {
		pd.m.emit(r, &pd.d, shadowErr, pd.took)
	}
}

// pendingOf returns the acceptance of r by a handler of m that waits for the route policies; nil
// if none does.
func (m *Middleware) pendingOf(r *http.Request) *pending {
	if !m.routes.Load() {
		return nil
	}
	pd, _ := r.Context().Value(pendingKey{}).(*pending)
	if pd == nil || pd.m != m {
		return nil
	}
	return pd
}

// refuseRoute reports the refusal e of r by a route policy and hands it to the error handler: in
// place of pd, the acceptance it overrides, when there is one still waiting.
func (m *Middleware) refuseRoute(w http.ResponseWriter, r *http.Request, pd *pending, e *Error) {
	var shadowErr error
	ok := pd != nil
	if ok {
		shadowErr, ok = pd.settle()
	}
	if !ok {
		m.refuse(w, r, e)
		return
	}
	d := pd.d // what the handler established (source, revocation, credentials), refused
	d.err = e
	m.emit(r, &d, shadowErr, pd.took)
	m.errorHandler(w, r, e)
}

// refuse reports err as a refusal of the request (whose identity, if any, is in its context) and
// hands it to the error handler.
func (m *Middleware) refuse(w http.ResponseWriter, r *http.Request, err error) {
	d := decision{err: err, now: m.now()}
	if id, ok := FromContext(r.Context()); ok {
		// The identity the pipeline established, not one to judge again: the shadow policy was
		// reported with the pipeline's decision.
		d.id, d.source, d.proxy = id, id.Source, id.Proxy
	}
	m.observe(w, r, &d, time.Now())
}

// logged says whether the logger records anything of d: a refusal (or a refused certificate the
// credentials stood in for) at Info, a degraded acceptance at Warn, a warning of expiry, or any
// acceptance at Debug.
func (m *Middleware) logged(ctx context.Context, d *decision) bool {
	if m.logger == nil {
		return false
	}
	if d.err != nil || d.certErr != nil || d.id != nil && (d.id.ExpiresSoon || d.id.Revocation.Degraded()) {
		return true
	}
	return m.logger.Enabled(ctx, slog.LevelDebug)
}

// report hands ev to OnDecision and the logger.
func (m *Middleware) report(ctx context.Context, ev *Event) {
	if m.onDecision != nil {
		m.onDecision(ctx, *ev)
	}
	if m.logger == nil {
		return
	}
	level, msg := slog.LevelDebug, "mtls: request accepted"
	switch {
	case ev.Result == Refused && (ev.SHA256 == "" || m.refusalLogged.due(ev.SHA256+" "+ev.Reason, m.now(), negativeTTL)):
		level, msg = slog.LevelInfo, "mtls: request refused"
		if ev.Handshake {
			msg = "mtls: handshake refused"
		}
		// Beyond the budget, a refusal is logged at Debug: a client varying its certificate
		// (or presenting none) costs no more Info records than refusalLogRate.
		if !m.logger.Enabled(ctx, level) {
			break
		}
		logged, suppressed := m.refusalBudget.take(m.now())
		if suppressed > 0 {
			m.logger.LogAttrs(ctx, slog.LevelWarn, "mtls: refusal records suppressed",
				slog.Int("suppressed", suppressed), slog.Float64("per_second", refusalLogRate))
		}
		if !logged {
			level = slog.LevelDebug
		}
	case ev.Result == Refused:
		// The same certificate refused for the same reason within the minute its refusal is
		// cached: a client repeating a refused request costs a log record at Debug only.
		level, msg = slog.LevelDebug, "mtls: request refused again"
		if ev.Handshake {
			msg = "mtls: handshake refused again"
		}
	case ev.CertificateErr != nil:
		level, msg = slog.LevelInfo, "mtls: certificate refused, the credentials decide"
	case ev.Revocation.Degraded() && m.degradedLogDue():
		level, msg = slog.LevelWarn, "mtls: request accepted without fresh revocation status"
	}
	if m.logger.Enabled(ctx, level) {
		m.logger.LogAttrs(ctx, level, msg, eventAttrs(ev)...)
	}
	if ev.ExpiresSoon && ev.Result != Refused && ev.Leaf != nil && m.expiryWarned.due(ev.SHA256, m.now(), 24*time.Hour) {
		m.logger.LogAttrs(ctx, slog.LevelWarn, "mtls: client certificate expires soon",
			slog.String("subject", clip(ev.Subject())), slog.String("issuer", clip(ev.Issuer())), slog.String("serial", ev.Serial()),
			slog.String("sha256", ev.SHA256), slog.Time("not_after", ev.NotAfter),
			slog.Duration("remaining", ev.NotAfter.Sub(m.now())))
	}
}

// eventAttrs are the fields of ev worth a log record: those that are set.
func eventAttrs(ev *Event) []slog.Attr {
	attrs := make([]slog.Attr, 0, 20)
	add := func(key, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(key, v))
		}
	}
	add("result", string(ev.Result))
	if ev.Handshake {
		attrs = append(attrs, slog.Bool("handshake", true))
	}
	if ev.Status != 0 {
		attrs = append(attrs, slog.Int("status", ev.Status))
	}
	add("reason", ev.Reason)
	add("step", ev.Step)
	if ev.Err != nil {
		attrs = append(attrs, slog.String("error", ev.Err.Error()))
	}
	add("source", string(ev.Source))
	add("format", ev.Format)
	if ev.Proxy.IsValid() {
		attrs = append(attrs, slog.String("proxy", ev.Proxy.String()))
	}
	add("subject", clip(ev.Subject()))
	add("issuer", clip(ev.Issuer()))
	add("serial", ev.Serial())
	add("sha256", ev.SHA256)
	if !ev.NotAfter.IsZero() {
		attrs = append(attrs, slog.Time("not_after", ev.NotAfter))
	}
	if ev.ExpiresSoon {
		attrs = append(attrs, slog.Bool("expires_soon", true))
	}
	add("principal", ev.Principal)
	add("credentials", ev.Credentials)
	if ev.CertificateErr != nil {
		attrs = append(attrs, slog.String("certificate_error", ev.CertificateErr.Error()))
	}
	add("rule", ev.Rule)
	if s := ev.Revocation; s.Degraded() {
		attrs = append(attrs, slog.Bool("revocation_stale", s.Stale), slog.Bool("revocation_fail_open", s.FailOpen))
		if s.Stale {
			attrs = append(attrs, slog.Time("revocation_next_update", s.NextUpdate))
		}
		if s.Err != nil {
			attrs = append(attrs, slog.String("revocation_error", s.Err.Error()))
		}
	}
	if ev.RevocationSource != "" {
		attrs = append(attrs, slog.String("revocation_source", ev.RevocationSource), slog.Duration("revocation_age", ev.RevocationAge))
	}
	if ev.ShadowErr != nil {
		attrs = append(attrs, slog.String("shadow_error", ev.ShadowErr.Error()))
	}
	return append(attrs, slog.Duration("duration", ev.Duration))
}

// degradedLogDue says whether a degraded acceptance is to be logged at level Warn: at most every
// degradedLogEvery, so that a failing responder does not flood the log.
func (m *Middleware) degradedLogDue() bool {
	now := m.now().UnixNano()
	last := m.lastDegradedLog.Load()
	return now-last >= int64(degradedLogEvery) && m.lastDegradedLog.CompareAndSwap(last, now)
}

// reportShadow evaluates a shadow policy and reports the outcome; it returns the shadow
// policy's refusal, if any. Agreeing allowances are not logged, so that the hot path stays quiet
// and allocation-free.
func (m *Middleware) reportShadow(r *http.Request, shadow Policy, id *Identity, enforced error) error {
	res := ShadowResult{Identity: id, Err: shadow.Check(id), Enforced: enforced}
	if m.policies.onShadow != nil {
		m.policies.onShadow(r, res)
	}
	if m.logger == nil || (res.Err == nil && enforced == nil) {
		return res.Err
	}
	msg := "mtls: shadow policy would deny"
	attrs := []slog.Attr{slog.Bool("enforced_allowed", enforced == nil)}
	if res.Err == nil {
		msg = "mtls: shadow policy would allow"
	} else {
		attrs = append(attrs, slog.String("shadow_reason", res.Err.Error()))
	}
	attrs = append(attrs, slog.String("remote", r.RemoteAddr), slog.String("sha256", id.SHA256))
	if id.Leaf != nil {
		attrs = append(attrs, slog.String("subject", id.Leaf.Subject.String()))
	}
	if id.Principal != "" {
		attrs = append(attrs, slog.String("principal", id.Principal))
	}
	m.logger.LogAttrs(r.Context(), slog.LevelInfo, msg, attrs...)
	return res.Err
}

// reportLoad records the outcome of a load of one source (the files, or the deny list URL) in
// its status and logs it: Error for a failure (what was loaded before stays in force), Info for
// a success.
func (m *Middleware) reportLoad(s *SourceStatus, what string, err error) {
	now := m.now()
	r := &m.reload
	r.status.Lock()
	s.LastAttempt = now
	if err != nil {
		s.LastError = err.Error()
	} else {
		s.Generation++
		s.LastSuccess, s.LastError = now, ""
	}
	gen := s.Generation
	r.status.Unlock()
	if err != nil {
		m.log(r.ctx, slog.LevelError, "mtls: reload failed, keeping what is in force",
			slog.String("source", what), slog.String("error", err.Error()))
		return
	}
	m.log(r.ctx, slog.LevelInfo, "mtls: reloaded", slog.String("source", what), slog.Uint64("generation", gen))
}

func (m *Middleware) log(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	if m.logger != nil {
		m.logger.LogAttrs(ctx, level, msg, attrs...)
	}
}

// recentKeys remembers which keys were reported, and when, so that each is reported once per
// period. It holds at most maxRecentKeys keys: when full, those reported more than a period ago
// are forgotten, and if that frees nothing, all are (a flood is then reported more often rather
// than growing the memory).
type recentKeys struct {
	mu   sync.Mutex
	last map[string]int64 // key -> when it was reported (UnixNano)
}

const maxRecentKeys = 4096

// due says whether key is to be reported at now, at most once per period, and records it if so.
func (x *recentKeys) due(key string, now time.Time, period time.Duration) bool {
	t := now.UnixNano()
	x.mu.Lock()
	defer x.mu.Unlock()
	if last, ok := x.last[key]; ok && t-last < int64(period) && t >= last {
		return false
	}
	if x.last == nil {
		x.last = make(map[string]int64)
	}
	if len(x.last) >= maxRecentKeys {
		for k, last := range x.last {
			if t-last >= int64(period) {
				delete(x.last, k)
			}
		}
		if len(x.last) >= maxRecentKeys {
			clear(x.last)
		}
	}
	x.last[key] = t
	return true
}

// The budget of refusal records at Info, for all refusals together: refusalLogBurst at once, then
// refusalLogRate a second. The events ([Config.OnDecision]) are not limited.
const (
	refusalLogBurst = 20
	refusalLogRate  = 5.0
)

// logBudget is a token bucket on the clock of [Config.Now]: it bounds the records of one kind, and
// counts those it suppressed until the next it lets through.
type logBudget struct {
	mu         sync.Mutex
	tokens     float64
	last       time.Time // of the last refill; zero: the bucket is full
	suppressed int
}

// take says whether a record may be logged at now, and how many were suppressed since the last
// one that was (to be reported before it).
func (b *logBudget) take(now time.Time) (ok bool, suppressed int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.last.IsZero():
		b.tokens = refusalLogBurst
	case now.After(b.last):
		b.tokens = min(refusalLogBurst, b.tokens+now.Sub(b.last).Seconds()*refusalLogRate)
	}
	if b.last.IsZero() || now.After(b.last) { // a clock set back refills nothing
		b.last = now
	}
	if b.tokens < 1 {
		b.suppressed++
		return false, 0
	}
	b.tokens--
	suppressed, b.suppressed = b.suppressed, 0
	return true, suppressed
}
