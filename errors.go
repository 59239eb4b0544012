package mtls

import (
	"crypto/x509"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Sentinel errors, one per class of refusal. Every error returned by [Middleware.Authenticate]
// matches exactly one of them with [errors.Is], and is an [*Error] with [errors.As].
var (
	// ErrNoCertificate: no client certificate was presented (or none by a trusted proxy).
	ErrNoCertificate = errors.New("mtls: no client certificate")
	// ErrUntrusted: the certificate does not chain to a configured root and is not pinned.
	ErrUntrusted = errors.New("mtls: certificate not trusted")
	// ErrExpired: the certificate, or a certificate of its chain, has expired.
	ErrExpired = errors.New("mtls: certificate expired")
	// ErrNotYetValid: the NotBefore of the certificate, or of a certificate of its chain, lies in
	// the future.
	ErrNotYetValid = errors.New("mtls: certificate not yet valid")
	// ErrWrongUsage: the certificate is not meant for client authentication (no clientAuth
	// extended key usage, or it is a CA certificate).
	ErrWrongUsage = errors.New("mtls: certificate not valid for client authentication")
	// ErrRevoked: the certificate, or a CA of its chain, is revoked.
	ErrRevoked = errors.New("mtls: certificate revoked")
	// ErrRevocationUnavailable: the revocation status could not be established and the
	// configuration does not allow accepting the certificate without it.
	ErrRevocationUnavailable = errors.New("mtls: revocation status unavailable")
	// ErrMalformedHeader: a trusted proxy sent a certificate header that cannot be decoded
	// completely (duplicate, oversized, garbage).
	ErrMalformedHeader = errors.New("mtls: malformed certificate header")
	// ErrDenied: the certificate is valid but a policy refuses it.
	ErrDenied = errors.New("mtls: denied by policy")
	// ErrMisdirected: the request's Host names another server than the TLS handshake did, or a
	// port that is not digits, or its HTTP/2 host field another authority than :authority (see
	// [Config.DangerouslyAllowHostMismatch]).
	ErrMisdirected = errors.New("mtls: request misdirected")
	// ErrCredentials: the service's own credentials were missing or refused by the check of
	// [Middleware.Either] or [Middleware.Both].
	ErrCredentials = errors.New("mtls: credentials refused")
	// ErrRateLimited: the identity's bucket of its throttling tier is empty ([Config.Throttle]),
	// or no bucket could be made for it; [Error.RetryAfter] says when to try again.
	ErrRateLimited = errors.New("mtls: rate limited")
)

// Reason codes sent to clients. They are stable: clients and dashboards may depend on them.
const (
	ReasonCertificateRequired   = "certificate_required"
	ReasonCertificateUntrusted  = "certificate_untrusted"
	ReasonCertificateExpired    = "certificate_expired"
	ReasonCertificateNotYet     = "certificate_not_yet_valid"
	ReasonCertificateUsage      = "certificate_wrong_usage"
	ReasonCertificateRevoked    = "certificate_revoked"
	ReasonRevocationUnavailable = "revocation_unavailable"
	ReasonMalformedHeader       = "header_malformed"
	ReasonPolicyDenied          = "policy_denied"
	ReasonMisdirected           = "misdirected_request"
	ReasonCredentialsRequired   = "credentials_required"
	ReasonRateLimited           = "rate_limited"
)

// class ties a sentinel to what a client may learn about it.
type class struct {
	status int
	reason string
}

var classes = map[error]class{
	ErrNoCertificate:         {http.StatusUnauthorized, ReasonCertificateRequired},
	ErrUntrusted:             {http.StatusUnauthorized, ReasonCertificateUntrusted},
	ErrExpired:               {http.StatusUnauthorized, ReasonCertificateExpired},
	ErrNotYetValid:           {http.StatusUnauthorized, ReasonCertificateNotYet},
	ErrWrongUsage:            {http.StatusUnauthorized, ReasonCertificateUsage},
	ErrRevoked:               {http.StatusUnauthorized, ReasonCertificateRevoked},
	ErrRevocationUnavailable: {http.StatusServiceUnavailable, ReasonRevocationUnavailable},
	ErrMalformedHeader:       {http.StatusBadRequest, ReasonMalformedHeader},
	ErrDenied:                {http.StatusForbidden, ReasonPolicyDenied},
	ErrMisdirected:           {http.StatusMisdirectedRequest, ReasonMisdirected},
	ErrCredentials:           {http.StatusUnauthorized, ReasonCredentialsRequired},
	ErrRateLimited:           {http.StatusTooManyRequests, ReasonRateLimited},
	ErrTooManyRefusals:       {http.StatusTooManyRequests, ReasonTooManyRefusals},
}

// classOrder is the order in which an error that is not an *Error is matched against the
// sentinels: a policy's own error that wraps both ErrRevoked and ErrDenied is a revocation.
var classOrder = []error{ErrRevoked, ErrRevocationUnavailable, ErrExpired, ErrNotYetValid, ErrWrongUsage, ErrUntrusted,
	ErrMalformedHeader, ErrMisdirected, ErrNoCertificate, ErrCredentials, ErrRateLimited, ErrTooManyRefusals, ErrDenied}

// Error is the structured error behind every refusal. Kind is one of the sentinels above, Detail
// says what exactly was wrong (for logs, never for clients) and Err is the underlying cause, such
// as an [x509.UnknownAuthorityError] or an [x509.CertificateInvalidError]. Both Kind and Err are
// reachable with [errors.Is] and [errors.As].
type Error struct {
	Kind   error
	Detail string
	Err    error
	// Leaf is the refused client certificate, when one was presented and could be parsed.
	Leaf *x509.Certificate
	// Step is the step of the pipeline that refused (see the package doc): "claim", "screen",
	// "parse", "verify", "revocation", "principal" or "policy"; "credentials" for the credential
	// check of [Middleware.Either] and [Middleware.Both]; empty for an error built outside the
	// pipeline. "throttle" for the tiers of [Config.Throttle]. A refusal of [ErrTooManyRefusals]
	// is of the claim: nothing after it ran.
	Step string
	// RetryAfter is how long the client should wait before trying again: for [ErrRateLimited],
	// until the identity's bucket holds a token again; for [ErrTooManyRefusals], until its
	// window ends. [WriteError] sends it, and a 429 of any kind, as a Retry-After header in whole
	// seconds rounded up (at least 1, at most 86400: a day); a custom error handler should send
	// it too. Zero for other refusals.
	RetryAfter time.Duration
}

// The steps of the pipeline, as [Error.Step] names them.
const (
	stepClaim      = "claim"
	stepScreen     = "screen"
	stepParse      = "parse"
	stepVerify     = "verify"
	stepRevocation = "revocation"
	stepPrincipal  = "principal"
	stepPolicy     = "policy"
	stepThrottle   = "throttle"
	// stepCredentials is not a step of the pipeline: the credential check that may follow it.
	stepCredentials = "credentials"
)

// newError builds an *Error; cause may be nil.
func newError(kind error, detail string, cause error) *Error {
	return &Error{Kind: kind, Detail: detail, Err: cause}
}

// setStep records in err, if it is an *Error that names no step yet, the step that refused.
func setStep(err error, step string) {
	if e, ok := err.(*Error); ok && e.Step == "" {
		e.Step = step
	}
}

// Error returns the sentinel's message, the detail and the cause: the full reason, for logs.
func (e *Error) Error() string {
	msg := e.Kind.Error()
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the sentinel and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// Status is the HTTP status for the error: 401, 403, 400, 421, 429 or 503.
func (e *Error) Status() int { return classOf(e).status }

// Reason is the stable reason code for the error, the only detail a client is told.
func (e *Error) Reason() string { return classOf(e).reason }

func classOf(err error) class {
	var e *Error
	if errors.As(err, &e) {
		if c, ok := classes[e.Kind]; ok {
			return c
		}
	}
	for _, kind := range classOrder { // in a fixed order: an error may match several
		if errors.Is(err, kind) {
			return classes[kind]
		}
	}
	return class{http.StatusUnauthorized, ReasonCertificateUntrusted}
}

// StatusAndReason returns the HTTP status and the stable reason code for any error returned by
// [Middleware.Authenticate] or by a policy. It is what a custom error handler should send.
func StatusAndReason(err error) (status int, reason string) {
	c := classOf(err)
	return c.status, c.reason
}

// WriteError writes the default refusal: an RFC 9457 application/problem+json body with the
// status, its title and the stable reason code, and nothing more specific about the certificate.
// A 429, or any refusal with an [Error.RetryAfter], gets a Retry-After header.
func WriteError(w http.ResponseWriter, _ *http.Request, err error) {
	status, reason := StatusAndReason(err)
	h := w.Header()
	if s := retryAfter(err, status); s != "" {
		h.Set("Retry-After", s)
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// Every field is a constant of ours, so the body is assembled without an encoder.
	body := `{"type":"about:blank","title":` + strconv.Quote(http.StatusText(status)) +
		`,"status":` + strconv.Itoa(status) + `,"reason":"` + reason + `"}` + "\n"
	_, _ = w.Write([]byte(body))
}

// retryAfter is the Retry-After value for err refused with status: the whole seconds of its
// RetryAfter, rounded up, at least 1 and at most a day (maxRetryAfter); empty when err sets none
// and status is not 429.
func retryAfter(err error, status int) string {
	var d time.Duration
	if e := (*Error)(nil); errors.As(err, &e) {
		d = e.RetryAfter
	}
	if d <= 0 && status != http.StatusTooManyRequests {
		return ""
	}
	s := d / time.Second // not (d+time.Second-1)/time.Second, which overflows near the longest duration
	if d%time.Second > 0 {
		s++
	}
	return strconv.FormatInt(int64(min(max(1, s), maxRetryAfter/time.Second)), 10)
}
