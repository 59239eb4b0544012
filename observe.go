package mtls

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
)

// The one place that reports decisions: refusals to the logger and the error handler, shadow
// policy outcomes to OnShadow and the logger; and the outcomes of reloads, to the logger and
// ReloadStatus. Only the middleware's handlers observe;
// [Middleware.Authenticate] returns its decision and reports nothing.

// observe reports the decision d on r and, for a refusal, writes it through the error handler.
func (m *Middleware) observe(w http.ResponseWriter, r *http.Request, d *decision) {
	if m.policies.shadow != nil && d.evaluated != nil {
		m.reportShadow(r, m.policies.shadow, d.evaluated, d.enforced)
	}
	if d.err != nil {
		m.refuse(w, r, d.err)
		return
	}
	if d.id != nil && d.id.Revocation.Degraded() {
		m.logDegraded(r.Context(), d.id)
	}
}

// refuse logs err and hands it to the error handler.
func (m *Middleware) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if m.logger != nil {
		status, reason := StatusAndReason(err)
		attrs := []slog.Attr{
			slog.Int("status", status),
			slog.String("reason", reason),
			slog.String("remote", r.RemoteAddr),
			slog.String("error", err.Error()),
		}
		var e *Error
		if errors.As(err, &e) && e.Leaf != nil {
			attrs = append(attrs, slog.String("subject", e.Leaf.Subject.String()),
				slog.String("issuer", e.Leaf.Issuer.String()))
		}
		m.logger.LogAttrs(r.Context(), slog.LevelInfo, "mtls: request refused", attrs...)
	}
	m.errorHandler(w, r, err)
}

// reportShadow evaluates a shadow policy and reports the outcome. Agreeing allowances are not
// logged, so that the hot path stays quiet and allocation-free.
func (m *Middleware) reportShadow(r *http.Request, shadow Policy, id *Identity, enforced error) {
	res := ShadowResult{Identity: id, Err: shadow.Check(id), Enforced: enforced}
	if m.policies.onShadow != nil {
		m.policies.onShadow(r, res)
	}
	if m.logger == nil || (res.Err == nil && enforced == nil) {
		return
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

// logDegraded records, at most every degradedLogEvery, a request accepted on degraded answers.
func (m *Middleware) logDegraded(ctx context.Context, id *Identity) {
	if m.logger == nil {
		return
	}
	now := m.now().UnixNano()
	last := m.lastDegradedLog.Load()
	if now-last < int64(degradedLogEvery) || !m.lastDegradedLog.CompareAndSwap(last, now) {
		return
	}
	s := id.Revocation
	attrs := []slog.Attr{
		slog.String("subject", id.Leaf.Subject.String()),
		slog.String("issuer", id.Leaf.Issuer.String()),
		slog.Bool("stale", s.Stale),
		slog.Bool("fail_open", s.FailOpen),
	}
	if s.Stale {
		attrs = append(attrs, slog.Time("next_update", s.NextUpdate))
	}
	if s.Err != nil {
		attrs = append(attrs, slog.String("error", s.Err.Error()))
	}
	m.logger.LogAttrs(ctx, slog.LevelWarn, "mtls: request accepted without fresh revocation status", attrs...)
}
