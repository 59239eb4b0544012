// Package redact keeps the secrets a URL may carry (user information, query values, fragment)
// out of what is printed: errors, logs, status reports. The root package and the example
// commands share it, so that a URL is shown the same way everywhere.
package redact

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"regexp"
	"strings"
	"syscall"
)

// Redacted stands for what URL leaves out of a URL.
const Redacted = "REDACTED"

// Invalid is how URL shows a URL that does not parse: the parser's error quotes parts of it,
// a password among them.
const Invalid = "(an invalid URL)"

// URL returns raw without its user information and fragment, every value of its query (a
// signature, a token) replaced by REDACTED, and an opaque part replaced by REDACTED. The scheme,
// host, path and query keys stay, to tell sources apart: the path is shown as written.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return Invalid
	}
	u.User, u.Fragment, u.RawFragment = nil, "", ""
	if u.Opaque != "" {
		u.Opaque = Redacted
	}
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, part := range parts {
			if k, _, ok := strings.Cut(part, "="); ok {
				parts[i] = k + "=" + Redacted
			} else if part != "" {
				parts[i] = Redacted // a value without a key
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	return u.String()
}

// IsHTTP reports whether s is written as an http or https URL, the scheme in any case (RFC 3986
// 3.1: schemes are case-insensitive).
func IsHTTP(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	return ok && (strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https"))
}

// LooksLikeURL reports whether s is written as scheme://..., whatever the scheme.
func LooksLikeURL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	return ok && schemePattern.MatchString(scheme)
}

// schemePattern is a URL scheme (RFC 3986 3.1).
var schemePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.\-]*$`)

// urlPattern finds what looks like an absolute URL in a text.
var urlPattern = regexp.MustCompile(`(?i)[a-z][a-z0-9+.\-]*://[^\s"'<>]*`)

// Text returns s with everything in it that looks like an absolute URL shown as URL shows it.
func Text(s string) string {
	return urlPattern.ReplaceAllStringFunc(s, URL)
}

// Error is the text of an error about fetching a URL, safe to print.
type Error struct {
	text  string
	cause error // context.Canceled or context.DeadlineExceeded, for errors.Is; else nil
}

func (e *Error) Error() string { return e.text }

// Unwrap returns the context error the fetch ended on, if any.
func (e *Error) Unwrap() error { return e.cause }

// FetchError maps an error of url.Parse, http.NewRequest or an http.Client (or of reading a
// response body) to text that carries no part of a URL: their messages quote the URL, a
// redirect's Location, or the part of a URL that does not parse (a password, say). What stays
// is the class of the failure: the URL does not parse, an invalid redirect, a timeout, a TLS
// failure, a refused connection, a failed DNS lookup, a network error; any other message is
// kept with whatever looks like a URL in it shown as URL shows it. The caller names the URL
// with URL. A nil error stays nil.
func FetchError(err error) error {
	if err == nil {
		return nil
	}
	inner := err
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Op == "parse" {
			return &Error{text: "the URL does not parse"}
		}
		inner = ue.Err
	}
	if inner == nil {
		return &Error{text: "the request failed"}
	}
	var (
		dnsErr  *net.DNSError
		opErr   *net.OpError
		netErr  net.Error
		verify  *tls.CertificateVerificationError
		record  tls.RecordHeaderError
		alert   tls.AlertError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
	)
	text := inner.Error()
	switch {
	case strings.HasPrefix(text, "failed to parse Location header"):
		return &Error{text: "invalid redirect: its Location is not a URL"}
	case errors.Is(inner, context.Canceled):
		return &Error{text: "canceled", cause: context.Canceled}
	case errors.Is(inner, context.DeadlineExceeded):
		return &Error{text: "timeout", cause: context.DeadlineExceeded}
	case errors.As(inner, &netErr) && netErr.Timeout():
		return &Error{text: "timeout"}
	case errors.As(inner, &verify) || errors.As(inner, &unknown) || errors.As(inner, &host) ||
		errors.As(inner, &invalid):
		return &Error{text: "TLS failure: the server's certificate does not verify"}
	case errors.As(inner, &record) || errors.As(inner, &alert) || strings.Contains(text, "tls: "):
		return &Error{text: "TLS failure: the handshake failed"}
	case errors.Is(inner, syscall.ECONNREFUSED):
		return &Error{text: "connection refused"}
	case errors.Is(inner, syscall.ECONNRESET):
		return &Error{text: "connection reset"}
	case errors.As(inner, &dnsErr):
		if dnsErr.IsNotFound {
			return &Error{text: "DNS lookup failed: no such host"}
		}
		return &Error{text: "DNS lookup failed"}
	case errors.As(inner, &opErr):
		return &Error{text: "network error: " + opErr.Op + " failed"}
	}
	return &Error{text: Text(text)}
}
