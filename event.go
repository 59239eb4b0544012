package mtls

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net/http"
	"net/netip"
	"time"
)

// Result says how the middleware decided a request.
type Result string

const (
	// Accepted: the request went on, with an identity or (in optional mode) without one.
	Accepted Result = "accepted"
	// AcceptedDegraded: the request went on, but on less than the configuration asks for: a
	// stale or missing revocation answer ([RevocationStatus]), a shadow policy that would have
	// refused it, or credentials that stood in for a refused certificate
	// ([DangerouslyFallBackOnInvalidCertificate]).
	AcceptedDegraded Result = "accepted_degraded"
	// Refused: the request was refused through the error handler.
	Refused Result = "refused"
	// Throttled: the request was refused with 429 through the error handler: its principal
	// exceeded its tier ([Config.Throttle], reason "rate_limited"), or its certificate (or,
	// without one, its address) was refused too often and it was not judged
	// ([Config.RefusalThrottle], reason "too_many_refusals").
	Throttled Result = "throttled"
)

// Event is one decision of the middleware, for logs, metrics and traces ([Config.OnDecision]).
// Every request through [Middleware.Handler], [Middleware.Either] or [Middleware.Both], and every
// call of [Middleware.Decide], yields exactly one (for Either and Both, once the credentials had their say), with the request's
// final outcome: a refusal by a [Middleware.Require] of the same middleware below them is that
// event, with the route's step and rule, and a refusal a [Middleware.Shadow] below them would
// make is its ShadowErr, while the acceptance waits (see [Config.OnDecision] for how long). A
// refusal of Require below no handler of its middleware is an event of its own, and so is every
// connection refused at the TLS handshake (Handshake set). Its fields
// are for operators: never send them to the client.
type Event struct {
	Result Result
	// Status is the HTTP status of a refusal; zero when accepted (the next handler answers) and
	// for a refusal at the handshake (no response is sent).
	Status int
	// Reason is the stable reason code of a refusal (see [StatusAndReason]); empty when accepted.
	Reason string
	// Step is the pipeline step that refused (see [Error.Step]); empty when accepted.
	Step string
	// Err is the full reason of a refusal (an [*Error], whose Detail names the likely fix).
	Err error

	// Source and Format say where the certificate came from; Proxy is the address of the
	// trusted proxy that forwarded it (header mode). Source is empty when no source spoke.
	Source Source
	Format string
	Proxy  netip.Addr

	// Leaf is the client certificate, when one was parsed; SHA256 (lowercase hex of the SHA-256
	// of its DER) and NotAfter are taken from it, and so are the methods Subject, Issuer and
	// Serial. All are zero when no certificate was parsed, but for the SHA256 of a 429
	// "too_many_refusals" from a proxy: that of the leaf decoded from its header, which is not
	// parsed then ([Config.RefusalThrottle]).
	Leaf     *x509.Certificate
	SHA256   string
	NotAfter time.Time
	// ExpiresSoon: the verified leaf expires within [Config.ExpiryWarning] of the decision (never
	// set for a certificate refused before it was verified: its names are the client's word).
	ExpiresSoon bool

	// Principal is the account the certificate stands for, when a mapping resolved one.
	Principal string
	// Rule is, for a policy refusal, the rule that refused.
	Rule string
	// Tier is the throttling tier applied to the identity ([Config.Throttle]), on acceptances
	// and on refusals by the throttle; empty when the identity has no tier or throttling is off.
	Tier string

	// Revocation says whether the request was accepted on degraded revocation answers;
	// RevocationSource names the source of the oldest answer used ("OCSP", "CRL", empty when
	// revocation was not checked) and RevocationAge its age (now minus its thisUpdate).
	Revocation       RevocationStatus
	RevocationSource string
	RevocationAge    time.Duration
	// ShadowErr is the refusal a shadow policy would have made (see [Config.ShadowPolicy]).
	ShadowErr error

	// Credentials is the principal the credential check of [Middleware.Either] or
	// [Middleware.Both] returned, when the request passed it; CertificateErr is the refusal of the
	// certificate that [DangerouslyFallBackOnInvalidCertificate] let the credentials stand in for
	// (the request is then AcceptedDegraded, or Refused by the credentials).
	Credentials    string
	CertificateErr error

	// Duration is the time the middleware took to decide.
	Duration time.Duration

	// Handshake: the decision was made during the TLS handshake (see [Middleware.TLSConfig]),
	// which it refused: no request was made, so Status is zero and the client got a TLS alert.
	// Only refusals are made there; a connection that passes the handshake gets its events from
	// its requests.
	Handshake bool

	// Transport and Method are those of the [Call] that [Middleware.Decide] judged, such as
	// "grpc" and "/pkg.Service/Method"; both are empty for net/http's requests and for the
	// handshake. Status and Reason are the HTTP status and reason code whatever the transport:
	// a transport of another kind maps the reason code to its own status.
	Transport string
	Method    string
}

// defaultExpiryWarning is how long before its leaf expires an identity is flagged.
const defaultExpiryWarning = 14 * 24 * time.Hour

// event builds the event of decision d, taken in duration, at now.
func (m *Middleware) event(d *decision, shadowErr error, duration time.Duration) Event {
	ev := Event{Result: Accepted, Source: d.source, Proxy: d.proxy, Duration: duration, ShadowErr: shadowErr,
		RevocationSource: d.rev.source, Credentials: d.credentials, CertificateErr: d.certErr, Tier: d.tier}
	if d.source == SourceHeader && m.header != nil {
		ev.Format = m.header.formatName
	}
	if !d.rev.thisUpdate.IsZero() {
		ev.RevocationAge = d.now.Sub(d.rev.thisUpdate)
	}
	id := d.id
	if id == nil {
		id = d.evaluated
	}
	if id != nil {
		ev.Leaf, ev.SHA256, ev.Principal, ev.Revocation, ev.ExpiresSoon = id.Leaf, id.SHA256, id.Principal, id.Revocation, id.ExpiresSoon
	}
	if d.err != nil {
		ev.Result, ev.Err = Refused, d.err
		ev.Status, ev.Reason = StatusAndReason(d.err)
		if ev.Status == http.StatusTooManyRequests {
			ev.Result = Throttled
		}
		var e *Error
		if errors.As(d.err, &e) {
			ev.Step = e.Step
			slowed := ""
			if e.Kind == ErrTooManyRefusals {
				slowed = d.slowed // the gate's, of the leaf: from a proxy, decoded and not parsed
			}
			switch {
			case ev.Leaf == nil && e.Leaf != nil:
				ev.Leaf, ev.SHA256 = e.Leaf, slowed
				if ev.SHA256 == "" {
					sum := sha256.Sum256(e.Leaf.Raw)
					ev.SHA256 = hex.EncodeToString(sum[:])
				}
			case ev.SHA256 == "":
				ev.SHA256 = slowed
			}
			if errors.Is(e.Kind, ErrDenied) {
				ev.Rule = e.Detail
			}
			if e.Kind == ErrRateLimited {
				ev.Result = Throttled
			}
		}
	} else if ev.Revocation.Degraded() || shadowErr != nil || d.certErr != nil {
		ev.Result = AcceptedDegraded
	}
	if ev.Leaf != nil {
		ev.NotAfter = ev.Leaf.NotAfter
	}
	return ev
}

// Subject is the leaf's subject name (RFC 2253), empty without a leaf. Like Issuer and Serial,
// it is written on each call, for the hooks that want it.
func (ev *Event) Subject() string {
	if ev.Leaf == nil {
		return ""
	}
	return ev.Leaf.Subject.String()
}

// Issuer is the leaf's issuer name (RFC 2253), empty without a leaf.
func (ev *Event) Issuer() string {
	if ev.Leaf == nil {
		return ""
	}
	return ev.Leaf.Issuer.String()
}

// Serial is the leaf's serial number in the notation of [FormatSerial], empty without a leaf.
func (ev *Event) Serial() string {
	if ev.Leaf == nil {
		return ""
	}
	return FormatSerial(ev.Leaf.SerialNumber)
}

// expiresSoon says whether leaf expires within the warning threshold of now.
func (m *Middleware) expiresSoon(leaf *x509.Certificate, now time.Time) bool {
	return m.expiryWarning > 0 && leaf.NotAfter.Sub(now) < m.expiryWarning
}
