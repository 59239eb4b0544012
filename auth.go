package mtls

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Certificate authentication combined with the service's own credentials (a password, a bearer
// token, an API key), as API gateways offer it. Three compositions, each a middleware of the same
// shape as [Middleware.Handler], each running the one pipeline (pipeline.go) and reporting through
// the one observer (observe.go):
//
//	certificate only               Handler                a certificate is required
//	certificate or credentials     Either(check, ...)     the certificate if one is presented,
//	                                                      else the credentials
//	certificate and credentials    Both(check)            a certificate is required, then the
//	                                                      credentials are checked too
//
// Whichever way a request authenticated, the certificate headers of header mode are removed from
// the request the next handler (and the check) sees, unless the identity came from them.

// CredentialCheck authenticates a request by credentials of the service's own, such as HTTP Basic
// authentication or a bearer token, and returns the principal they stand for. An error, or an
// empty principal, refuses the request with 401 "credentials_required" ([ErrCredentials]): the
// error goes to [Config.ErrorHandler] and the logger, never to the client, so it may say exactly
// what was wrong. Being logged (by default through [slog.Default]), it must not contain the
// credential: say "wrong password for alice", never the password or token itself.
//
// The check writes nothing: a challenge such as WWW-Authenticate belongs to the error handler,
// which can tell a credential refusal by errors.Is(err, [ErrCredentials]) (see
// [Middleware.Either]'s example). It runs in the request path, must be safe for concurrent use,
// and should compare secrets in constant time ([crypto/subtle]).
type CredentialCheck func(r *http.Request) (principal string, err error)

// EitherOption adjusts [Middleware.Either].
type EitherOption func(*eitherOptions)

type eitherOptions struct{ fallBack bool }

// DangerouslyFallBackOnInvalidCertificate makes [Middleware.Either] check the credentials of a
// request whose certificate is refused (untrusted, expired, revoked, revocation unknown, a
// malformed proxy header, a misdirected Host), instead of refusing the request. The refusal of
// the certificate is still logged. A certificate that verifies but that the principal mapping,
// the policy or its throttling tier ([Config.Throttle]) refuses is refused all the same: that is
// a decision about a known client, which no password overrides.
//
// It is off by default because refusing is the safer behaviour, though not because a client with
// good credentials could otherwise be kept out (it can always leave its certificate out):
//   - one request, one way in: a request whose certificate was refused does not get a silent
//     second try with other credentials, so every refusal of a certificate is a refusal the client
//     sees and the logs record, not an acceptance that hides it;
//   - a revoked certificate marks a compromised or retired client; credentials that travel with
//     it, from the same machine, are suspect too, and refusing them makes the compromise show;
//   - a legitimate client with an expired or wrongly issued certificate is noticed at once,
//     instead of running on the weaker factor until someone looks;
//   - code after the middleware that reads r.TLS.PeerCertificates itself, rather than
//     [FromContext], would see a certificate that was refused on a request that was accepted.
//
// Turn it on for clients that cannot control what certificate they send (browsers offering
// whatever certificate the user has installed), and then read identities only from the context.
func DangerouslyFallBackOnInvalidCertificate() EitherOption {
	return func(o *eitherOptions) { o.fallBack = true }
}

// Either returns middleware that authenticates a request by its client certificate or, when it
// presents none, by check: certificate OR credentials.
//
//   - A certificate that passes the pipeline (verification, revocation, principal mapping,
//     policy) authenticates the request; check is not called, whatever credentials the request
//     also carries. [FromContext] returns the identity.
//   - No certificate (none on the TLS connection, or a trusted proxy that forwarded none): check
//     decides, whether or not [Config.Optional] is set. On success [CredentialsFromContext]
//     returns the principal and FromContext returns false; otherwise the request is refused with
//     401 "credentials_required".
//   - A certificate that is presented and refused refuses the request, with the certificate's
//     reason, unless [DangerouslyFallBackOnInvalidCertificate] is given (read why it is off).
//
// Handlers take the principal from the context, never from the credentials in the request: a
// request authenticated by its certificate may carry an Authorization header nobody checked.
// [Middleware.Require] below Either refuses requests that authenticated by credentials. Either
// panics if check is nil, as a programming error found when the routes are built.
func (m *Middleware) Either(check CredentialCheck, opts ...EitherOption) func(http.Handler) http.Handler {
	if check == nil {
		panic("mtls: Either called with a nil credential check")
	}
	var o eitherOptions
	for _, opt := range opts {
		opt(&o)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if m.probing(w, r) {
				return
			}
			start := m.clock()
			d := m.authenticate(r)
			switch {
			case d.id != nil: // the certificate authenticates
			case d.err == nil || isKind(d.err, ErrNoCertificate):
				d.err = nil
				m.checkCredentials(w, m.accepted(r, nil), &d, start, check, next)
				return
			case o.fallBack && !isKind(d.err, ErrDenied) && !isKind(d.err, ErrRateLimited):
				d.certErr, d.err = d.err, nil // reported with the credentials' outcome
				m.checkCredentials(w, m.accepted(r, nil), &d, start, check, next)
				return
			}
			if d.err != nil {
				m.observe(w, r, &d, start)
				return
			}
			m.proceed(w, r, false, &d, start, next)
		})
	}
}

// Both returns middleware that requires a client certificate that passes the pipeline and then
// check too: certificate AND credentials, whether or not [Config.Optional] is set.
//
// The certificate is established first, so that a client without an acceptable one is refused
// (with the certificate's reason) before check runs: it can neither try passwords nor make the
// service spend a password hash's cost. check sees the request with the identity in its context,
// so that it can bind the credentials to the certificate (see [Identity.ConfirmX5tS256] for
// certificate-bound tokens). A refusal by check is 401 "credentials_required", the certificate
// named in the log. The next handler finds both the identity ([FromContext]) and the principal
// ([CredentialsFromContext]). Both panics if check is nil.
func (m *Middleware) Both(check CredentialCheck) func(http.Handler) http.Handler {
	if check == nil {
		panic("mtls: Both called with a nil credential check")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if m.probing(w, r) {
				return
			}
			start := m.clock()
			d := m.authenticate(r)
			if d.err == nil && d.id == nil { // optional mode
				d.err = newError(ErrNoCertificate, "the route requires a client certificate and credentials", nil)
				setStep(d.err, stepClaim)
			}
			if d.err != nil {
				m.observe(w, r, &d, start)
				return
			}
			m.checkCredentials(w, m.accepted(r, d.id), &d, start, check, next)
		})
	}
}

// checkCredentials runs check on r and calls next with the principal in the context, or refuses
// the request; either way it reports the request's one decision, d (whose certificate part the
// pipeline decided, begun at start) with the credentials' outcome.
func (m *Middleware) checkCredentials(w http.ResponseWriter, r *http.Request, d *decision, start time.Time, check CredentialCheck, next http.Handler) {
	principal, err := check(r)
	if err != nil || principal == "" {
		e := newError(ErrCredentials, "", err)
		e.Step = stepCredentials
		if err == nil {
			e.Detail = "the credential check returned no principal"
		}
		if d.id != nil {
			e.Leaf = d.id.Leaf
		}
		d.err = e
		m.observe(w, r, d, start)
		return
	}
	d.credentials = principal             // in proceed's context
	m.proceed(w, r, true, d, start, next) // r: accepted by the caller
}

type credentialsKey struct{}

// CredentialsFromContext returns the principal that the credential check of [Middleware.Either]
// or [Middleware.Both] returned for the request. ok is false when the request authenticated by
// its certificate alone, or did not pass through Either or Both.
func CredentialsFromContext(ctx context.Context) (principal string, ok bool) {
	principal, ok = ctx.Value(credentialsKey{}).(string)
	return principal, ok && principal != ""
}

// isKind says whether err is an [*Error] of the given kind (its cause does not count: a policy's
// reason that wraps ErrNoCertificate is still a policy's refusal).
func isKind(err, kind error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == kind
}
