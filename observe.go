package mtls

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The one place that reports decisions: each decision of the middleware's handlers, and each
// refusal at the TLS handshake (handshake.go), becomes one [Event], handed to OnDecision and the
// logger; refusals then go to the error handler; shadow
// policy outcomes go to OnShadow; the outcomes of reloads go to the logger and ReloadStatus.
// Only the middleware's handlers and [Middleware.Decide] observe; [Middleware.Authenticate]
// returns its decision and reports nothing.

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
	c := callOf(r)
	m.slowNoCertificate(&c, d)
	m.note(&c, d, start)
	if d.err != nil {
		m.errorHandler(w, r, d.err)
	}
}

// note reports the decision d on c, begun at start: the shadow policy's outcome, then the event.
func (m *Middleware) note(c *Call, d *decision, start time.Time) {
	shadowErr := m.judgeShadow(c, d)
	m.emit(c, d, shadowErr, since(start))
}

// since is the time taken from start, a time clock returned: zero when it read no clock.
func since(start time.Time) time.Duration {
	if start.IsZero() {
		return 0
	}
	return time.Since(start)
}

// judgeShadow reports the outcome of the shadow policy on d, and returns its refusal.
func (m *Middleware) judgeShadow(c *Call, d *decision) error {
	if m.policies.shadow != nil && d.evaluated != nil {
		return m.reportShadow(c, m.policies.shadow, d.evaluated, d.enforced)
	}
	return nil
}

// emit reports the event of d on c, taken in duration, if anyone is listening: OnDecision, or a
// logger that records something of d (logged).
func (m *Middleware) emit(c *Call, d *decision, shadowErr error, duration time.Duration) {
	if m.onDecision != nil || m.logged(c.ctx(), d) {
		ev := m.event(d, shadowErr, duration)
		ev.Transport, ev.Method = clip(c.Transport), clip(c.Method) // the client's to choose
		m.report(c.ctx(), &ev)
	}
}

// emitFor is emit for the decision d on r.
func (m *Middleware) emitFor(r *http.Request, d *decision, shadowErr error, duration time.Duration) {
	c := callOf(r)
	m.emit(&c, d, shadowErr, duration)
}

// Route policies. A Require or Shadow below a handler judges a request that the handler accepted,
// under the state that verified it; the request must still make one decision, one event. So the
// handlers place their acceptance in the request's context (proceed), pending: it is the context
// value that carries the identity, so it costs no more than the identity alone. Once a route
// policy of the middleware was built and an event is built for each decision, the acceptance is
// reported when it is final: when the next handler first writes the response header (or
// flushes, hijacks, writes the body) or returns, whichever comes first; a route policy that
// refuses before that reports the refusal in its place. Otherwise the acceptance is reported at
// once, before the next handler runs. Either way a request is reported once: a route policy that
// refuses an acceptance reported already (a route built while the request was served, a route
// below http.TimeoutHandler that outlived it, or one below a handler that wrote the header) hands
// its refusal to the error handler and reports nothing more.

// pendingKey is the context key of the acceptance of a request by a handler of m: one key per
// middleware, so that the handler of another middleware in between hides nothing.
type pendingKey struct{ m *Middleware }

// pending is an acceptance by a handler of m, and the state it was decided under. It is the
// context next sees: it answers the identity (ctxKey), the credentials' principal
// (credentialsKey) and itself (m's pendingKey), and asks its parent for anything else. mu makes
// sure the request is reported once whatever goroutine the route policies run in.
type pending struct {
	context.Context               // the context of the request as the handler received it
	m               *Middleware   //
	r               *http.Request // the request as the handler received it, for the report
	d               decision      // read-only once placed in the context
	took            time.Duration // the time the handler took to decide
	credentials     any           // d.credentials as the context answers it; nil: none
	wr              pendingWriter // the writer next gets while the acceptance waits

	done      atomic.Bool // the event was reported (or is not waited for)
	mu        sync.Mutex  // guards shadowErr, and done's setting
	shadowErr error       // of ShadowPolicy, or else of the first route Shadow that refused
}

// Value answers what the handler placed in the context: the identity, the credentials' principal,
// and the pending acceptance itself for m's route policies.
func (pd *pending) Value(key any) any {
	switch k := key.(type) {
	case ctxKey:
		if pd.d.id != nil {
			return pd.d.id
		}
	case credentialsKey:
		if pd.credentials != nil {
			return pd.credentials
		}
	case pendingKey:
		if k.m == pd.m {
			return pd
		}
	}
	return pd.Context.Value(key)
}

// settle marks the request reported, and returns the shadow refusal to report with it; ok is
// false if it was reported already.
func (pd *pending) settle() (shadowErr error, ok bool) {
	pd.mu.Lock()
	defer pd.mu.Unlock()
	if pd.done.Load() {
		return nil, false
	}
	pd.done.Store(true)
	return pd.shadowErr, true
}

// shadowed records the refusal a route's Shadow would make, unless one is recorded already or
// the request was reported.
func (pd *pending) shadowed(err error) {
	pd.mu.Lock()
	defer pd.mu.Unlock()
	if pd.shadowErr == nil && !pd.done.Load() {
		pd.shadowErr = err
	}
}

// flush reports the acceptance, unless it was reported, or a route policy reported a refusal
// instead.
func (pd *pending) flush() {
	if pd.done.Load() {
		return
	}
	if shadowErr, ok := pd.settle(); ok {
		pd.m.emitFor(pd.r, &pd.d, shadowErr, pd.took)
	}
}

// proceed reports the acceptance d of r, begun at start, and calls next in a context carrying
// the acceptance (see pending): with the request as accepted (acceptedIn), or with r itself in
// that context if guarded, when r is the accepted request already.
func (m *Middleware) proceed(w http.ResponseWriter, r *http.Request, guarded bool, d *decision, start time.Time, next http.Handler) {
	pd := &pending{Context: r.Context(), m: m, r: r, d: *d}
	if d.credentials != "" {
		pd.credentials = d.credentials // converted once, not on each look-up
	}
	var rn *http.Request // as next sees it
	if guarded {
		rn = r.WithContext(pd)
	} else {
		rn = m.acceptedIn(r, d.id, pd)
	}
	c := callOf(r)
	if !m.watching || !m.routes.Load() {
		pd.done.Store(true)
		m.note(&c, d, start)
		next.ServeHTTP(w, rn)
		return
	}
	pd.shadowErr = m.judgeShadow(&c, d)
	pd.took = time.Since(start)
	pd.wr = pendingWriter{ResponseWriter: w, pd: pd}
	defer pd.flush() // also when next panics: the request was accepted
	next.ServeHTTP(pd.wr.shaped(), rn)
}

// pendingWriter is the writer of a request whose acceptance waits: the first write of the
// response header reports it. It unwraps for [http.ResponseController]; shaped gives next the
// optional interfaces (Flusher, Hijacker, ReaderFrom, Pusher, CloseNotifier) of the writer below,
// and only those, so that a handler's type assertions answer as they would without it.
type pendingWriter struct {
	http.ResponseWriter
	pd *pending
}

func (w *pendingWriter) WriteHeader(code int) {
	if code < 100 || code > 199 || code == http.StatusSwitchingProtocols { // not an interim response
		w.pd.flush()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *pendingWriter) Write(b []byte) (int, error) {
	w.pd.flush()
	return w.ResponseWriter.Write(b)
}

// WriteString passes io.WriteString on to the writer below.
func (w *pendingWriter) WriteString(s string) (int, error) {
	w.pd.flush()
	return io.WriteString(w.ResponseWriter, s)
}

// FlushError is what [http.ResponseController] calls to flush.
func (w *pendingWriter) FlushError() error {
	w.pd.flush()
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap returns the writer below, for [http.ResponseController].
func (w *pendingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// shaped returns w with the optional interfaces of the writer below: those of net/http's HTTP/1
// and HTTP/2 writers, or Flusher alone, or none. Each shape is a pointer-sized value, so that
// passing it as an http.ResponseWriter allocates nothing.
func (w *pendingWriter) shaped() http.ResponseWriter {
	rw := w.ResponseWriter
	_, flusher := rw.(http.Flusher)
	_, notifier := rw.(http.CloseNotifier) //nolint:staticcheck // passed on for the handlers that use it
	_, hijacker := rw.(http.Hijacker)
	_, readerFrom := rw.(io.ReaderFrom)
	_, pusher := rw.(http.Pusher)
	switch {
	case flusher && notifier && hijacker && readerFrom:
		return http1Writer{w}
	case flusher && notifier && pusher:
		return http2Writer{w}
	case flusher:
		return flushWriter{w}
	}
	return w
}

// flushWriter is a pendingWriter over a writer that flushes.
type flushWriter struct{ *pendingWriter }

func (w flushWriter) Flush() { _ = w.FlushError() }

// http1Writer is a pendingWriter over net/http's HTTP/1 writer, or one like it.
type http1Writer struct{ *pendingWriter }

func (w http1Writer) Flush() { _ = w.FlushError() }

func (w http1Writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.pd.flush()
	return w.ResponseWriter.(http.Hijacker).Hijack()
}

// ReadFrom lets io.Copy use the writer below's own copy (sendfile).
func (w http1Writer) ReadFrom(src io.Reader) (int64, error) {
	w.pd.flush()
	return w.ResponseWriter.(io.ReaderFrom).ReadFrom(src)
}

func (w http1Writer) CloseNotify() <-chan bool {
	return w.ResponseWriter.(http.CloseNotifier).CloseNotify() //nolint:staticcheck // passed on
}

// http2Writer is a pendingWriter over net/http's HTTP/2 writer, or one like it.
type http2Writer struct{ *pendingWriter }

func (w http2Writer) Flush() { _ = w.FlushError() }

func (w http2Writer) Push(target string, opts *http.PushOptions) error {
	return w.ResponseWriter.(http.Pusher).Push(target, opts)
}

func (w http2Writer) CloseNotify() <-chan bool {
	return w.ResponseWriter.(http.CloseNotifier).CloseNotify() //nolint:staticcheck // passed on
}

// pendingOf returns the acceptance of r by a handler of m; nil if no handler of m accepted it.
func (m *Middleware) pendingOf(r *http.Request) *pending {
	pd, _ := r.Context().Value(pendingKey{m}).(*pending)
	return pd
}

// refuseRoute reports the refusal e of r by a route policy and hands it to the error handler: in
// place of pd, the acceptance it overrides, while that waits; with no event when pd was reported
// already; as a refusal of its own when no handler of m accepted r.
func (m *Middleware) refuseRoute(w http.ResponseWriter, r *http.Request, pd *pending, e *Error) {
	if pd == nil {
		m.refuse(w, r, e)
		return
	}
	if shadowErr, ok := pd.settle(); ok {
		d := pd.d // what the handler established (source, revocation, credentials), refused
		d.err = e
		m.emitFor(r, &d, shadowErr, pd.took)
	} else if !m.watching {
		// No event was built for the acceptance, which did not wait: the refusal is reported to
		// the default logger, which gets refusals only.
		d := pd.d
		d.err = e
		m.emitFor(r, &d, nil, 0)
	}
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
// acceptance at Debug. Without Config.Logger, the default logger records refusals and warnings
// only, and nothing when its handler is not enabled for their level: an acceptance builds no
// event.
func (m *Middleware) logged(ctx context.Context, d *decision) bool {
	if m.logger == nil {
		switch {
		case d.err != nil:
			return slog.Default().Enabled(ctx, slog.LevelInfo)
		case d.id != nil && (d.id.ExpiresSoon || d.id.Revocation.Degraded()):
			return slog.Default().Enabled(ctx, slog.LevelWarn)
		}
		return false
	}
	if d.err != nil || d.certErr != nil || d.id != nil && (d.id.ExpiresSoon || d.id.Revocation.Degraded()) {
		return true
	}
	return m.logger.Enabled(ctx, slog.LevelDebug)
}

// decisionLogger returns the logger of the decisions' records: Config.Logger, or slog.Default()
// as it is at the time of logging (a program may set it after New), which then gets only the
// records that warn (quiet): refusals within their budget, the count of those suppressed, degraded
// acceptances and warnings of expiry; no acceptance, no repeated or suppressed refusal at Debug.
func (m *Middleware) decisionLogger() (lg *slog.Logger, quiet bool) {
	if m.logger != nil {
		return m.logger, false
	}
	return slog.Default(), true
}

// report hands ev to OnDecision and the logger.
func (m *Middleware) report(ctx context.Context, ev *Event) {
	if m.onDecision != nil {
		m.onDecision(ctx, *ev)
	}
	lg, quiet := m.decisionLogger()
	level, msg := m.record(ctx, lg, quiet, ev)
	if (!quiet || level >= slog.LevelInfo) && lg.Enabled(ctx, level) {
		lg.LogAttrs(ctx, level, msg, eventAttrs(ev, m.watching)...)
	}
	if ev.ExpiresSoon && ev.Result != Refused && ev.Result != Throttled && ev.Leaf != nil && m.expiryWarned.due(ev.SHA256, m.now(), 24*time.Hour) {
		lg.LogAttrs(ctx, slog.LevelWarn, "mtls: client certificate expires soon",
			slog.String("subject", clip(ev.Subject())), slog.String("issuer", clip(ev.Issuer())), slog.String("serial", ev.Serial()),
			slog.String("sha256", ev.SHA256), slog.Time("not_after", ev.NotAfter),
			slog.Duration("remaining", ev.NotAfter.Sub(m.now())))
	}
}

// record returns the level and message of ev's record in lg (quiet: the default logger, see
// decisionLogger).
func (m *Middleware) record(ctx context.Context, lg *slog.Logger, quiet bool, ev *Event) (slog.Level, string) {
	refused := ev.Result == Refused || ev.Result == Throttled
	switch {
	case refused && (ev.SHA256 == "" || m.refusalLogged.due(ev.SHA256+" "+ev.Reason, m.now(), negativeTTL)):
		return m.refusalLevel(ctx, lg), refusalMessage(ev, "")
	case refused:
		// The same certificate refused for the same reason within the minute its refusal is
		// cached: a client repeating a refused request costs a log record at Debug only.
		return slog.LevelDebug, refusalMessage(ev, " again")
	case ev.CertificateErr != nil:
		if quiet { // an acceptance, on every such request
			return slog.LevelDebug, "mtls: certificate refused, the credentials decide"
		}
		return slog.LevelInfo, "mtls: certificate refused, the credentials decide"
	case ev.Revocation.Degraded() && m.degradedLogDue():
		return slog.LevelWarn, "mtls: request accepted without fresh revocation status"
	}
	return slog.LevelDebug, "mtls: request accepted"
}

// refusalMessage is the message of a refusal's record, with suffix (" again" for a repeated one).
func refusalMessage(ev *Event, suffix string) string {
	switch {
	case ev.Handshake:
		return "mtls: handshake refused" + suffix
	case ev.Result == Throttled:
		return "mtls: request throttled" + suffix
	}
	return "mtls: request refused" + suffix
}

// refusalLevel is the level of a refusal's first record: Info within the budget, after a record
// of the ones suppressed before it if any; beyond the budget Debug, so that a client varying its
// certificate (or presenting none) costs no more Info records than refusalLogRate.
func (m *Middleware) refusalLevel(ctx context.Context, lg *slog.Logger) slog.Level {
	if !lg.Enabled(ctx, slog.LevelInfo) {
		return slog.LevelInfo
	}
	logged, suppressed := m.refusalBudget.take(m.now())
	if suppressed > 0 {
		lg.LogAttrs(ctx, slog.LevelWarn, "mtls: refusal records suppressed",
			slog.Int("suppressed", suppressed), slog.Float64("per_second", refusalLogRate))
	}
	if !logged {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// maxLogValue bounds each string attribute of a decision's record, before the handler's own
// escaping (which at most quadruples it): the errors and names in it come from what a client
// presented, from a credential check or a policy of the program, and its detail is clipped where
// it is built (clip); this is the bound for all of them, whatever a cause or a check wrote.
const maxLogValue = 2 << 10

// clipLog cuts s to maxLogValue bytes for a log record, at a rune boundary as clip does, and
// says how much it cut.
func clipLog(s string) string {
	if len(s) <= maxLogValue {
		return s
	}
	n := runeCut(s, maxLogValue)
	return s[:n] + "...(" + strconv.Itoa(len(s)-n) + " bytes cut)"
}

// eventAttrs are the fields of ev worth a log record: those that are set, and its duration when
// timed (when no clock was read for the decision, its Duration is zero and says nothing). Every
// string is cut to maxLogValue bytes (clipLog).
func eventAttrs(ev *Event, timed bool) []slog.Attr {
	attrs := make([]slog.Attr, 0, 20)
	add := func(key, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(key, clipLog(v)))
		}
	}
	addErr := func(key string, err error) {
		if err != nil {
			attrs = append(attrs, slog.String(key, clipLog(err.Error())))
		}
	}
	add("result", string(ev.Result))
	add("transport", ev.Transport) // set for Decide's calls only, as is method
	add("method", ev.Method)
	if ev.Handshake {
		attrs = append(attrs, slog.Bool("handshake", true))
	}
	if ev.Status != 0 {
		attrs = append(attrs, slog.Int("status", ev.Status))
	}
	add("reason", ev.Reason)
	add("step", ev.Step)
	addErr("error", ev.Err)
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
	addErr("certificate_error", ev.CertificateErr)
	add("rule", ev.Rule)
	add("tier", ev.Tier)
	if s := ev.Revocation; s.Degraded() {
		attrs = append(attrs, slog.Bool("revocation_stale", s.Stale), slog.Bool("revocation_fail_open", s.FailOpen))
		if s.Stale {
			attrs = append(attrs, slog.Time("revocation_next_update", s.NextUpdate))
		}
		addErr("revocation_error", s.Err)
	}
	if ev.RevocationSource != "" {
		add("revocation_source", ev.RevocationSource)
		attrs = append(attrs, slog.Duration("revocation_age", ev.RevocationAge))
	}
	addErr("shadow_error", ev.ShadowErr)
	if timed {
		attrs = append(attrs, slog.Duration("duration", ev.Duration))
	}
	return attrs
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
func (m *Middleware) reportShadow(c *Call, shadow Policy, id *Identity, enforced error) error {
	res := ShadowResult{Identity: id, Err: shadow.Check(id), Enforced: enforced}
	switch {
	case c.req != nil && m.policies.onShadow != nil:
		m.policies.onShadow(c.req, res)
	case c.req == nil && c.OnShadow != nil:
		c.OnShadow(c.ctx(), res)
	}
	if m.logger == nil || (res.Err == nil && enforced == nil) {
		return res.Err
	}
	msg := "mtls: shadow policy would deny"
	attrs := []slog.Attr{slog.Bool("enforced_allowed", enforced == nil)}
	if res.Err == nil {
		msg = "mtls: shadow policy would allow"
	} else {
		attrs = append(attrs, slog.String("shadow_reason", clipLog(res.Err.Error())))
	}
	attrs = append(attrs, slog.String("remote", c.remote()), slog.String("sha256", id.SHA256))
	if id.Leaf != nil {
		attrs = append(attrs, slog.String("subject", clip(id.Leaf.Subject.String())))
	}
	if id.Principal != "" {
		attrs = append(attrs, slog.String("principal", clipLog(id.Principal)))
	}
	if c.Method != "" {
		attrs = append(attrs, slog.String("method", clipLog(c.Method)))
	}
	m.logger.LogAttrs(c.ctx(), slog.LevelInfo, msg, attrs...)
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

// The budget of refusal records at Info, for all refusals of a middleware together:
// refusalLogBurst at once, then refusalLogRate a second. Each middleware has its own, on its own
// clock (Config.Now), also when several log to slog.Default(): one bucket on the clocks of
// several would starve a middleware whose clock is behind. The events ([Config.OnDecision]) are
// not limited.
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

// String names the context as the context package names its own.
func (pd *pending) String() string { return fmt.Sprint(pd.Context) + ".WithValue(mtls identity)" }
