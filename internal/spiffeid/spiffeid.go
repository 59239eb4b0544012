// Package spiffeid checks the syntax of SPIFFE IDs, as the SPIFFE ID specification defines it
// (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md).
package spiffeid

import (
	"errors"
	"strings"
)

// Limits of the specification: a SPIFFE ID is at most 2048 bytes, its trust domain at most 255.
const (
	maxLength            = 2048
	maxTrustDomainLength = 255
)

var (
	errScheme      = errors.New("spiffeid: not a spiffe:// URI (the scheme must be lowercase)")
	errLength      = errors.New("spiffeid: longer than 2048 bytes")
	errTrustDomain = errors.New("spiffeid: trust domain must be 1 to 255 lowercase letters, digits, '.', '-' or '_'")
	errSegment     = errors.New("spiffeid: path segments must be letters, digits, '.', '-' or '_'; not empty, \".\" or \"..\"")
)

// Validate returns nil if id is a SPIFFE ID: "spiffe://", a trust domain of lowercase ASCII
// letters, digits, '.', '-' and '_', then optionally a path of segments, each '/' followed by
// ASCII letters, digits, '.', '-' and '_', none empty, "." or "..". Everything else is refused:
// upper case in the scheme or trust domain, a trailing '/', percent-encoding, user info, a port,
// a query, a fragment, and IDs longer than 2048 bytes or trust domains longer than 255. The trust domain's own ID ("spiffe://example.org") is valid.
func Validate(id string) error {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return errScheme
	}
	if len(id) > maxLength {
		return errLength
	}
	td, path, _ := strings.Cut(rest, "/")
	if td == "" || len(td) > maxTrustDomainLength {
		return errTrustDomain
	}
	for i := 0; i < len(td); i++ {
		if c := td[i]; !(c >= 'a' && c <= 'z' || isDigitOrPunct(c)) {
			return errTrustDomain
		}
	}
	if len(td) == len(rest) {
		return nil
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errSegment
		}
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigitOrPunct(c)) {
				return errSegment
			}
		}
	}
	return nil
}

func isDigitOrPunct(c byte) bool { return c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' }
