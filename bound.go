package mtls

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Certificate-bound access tokens (RFC 8705 section 3): an authorization server that saw the
// client's certificate puts the SHA-256 thumbprint of that certificate in the token, as the
// "x5t#S256" member of its "cnf" (confirmation) claim; a resource server accepts the token only
// on a connection authenticated by that same certificate, so that a stolen token is of no use
// without the client's private key.

// Errors of [Identity.ConfirmX5tS256]. A caller refuses the token on any of them; the
// distinction is for logs and for deployments that still accept unbound tokens.
var (
	// ErrUnboundToken: the token carries no x5t#S256 confirmation.
	ErrUnboundToken = errors.New("mtls: access token not bound to a certificate")
	// ErrTokenCertificateMismatch: the token is bound to another certificate than the client's.
	ErrTokenCertificateMismatch = errors.New("mtls: access token bound to another certificate")
	// ErrMalformedX5tS256: the x5t#S256 value is not the unpadded base64url encoding of 32 bytes.
	ErrMalformedX5tS256 = errors.New("mtls: malformed x5t#S256 confirmation")
)

// x5tS256Len is the length of an unpadded base64url SHA-256 digest.
var x5tS256Len = base64.RawURLEncoding.EncodedLen(sha256.Size)

// ConfirmX5tS256 checks that an access token whose "cnf" claim holds the "x5t#S256" value
// x5tS256 is bound to the identity's certificate (RFC 8705 section 3.1): x5tS256 must be the
// base64url encoding, without padding, of the SHA-256 digest of the leaf certificate's DER. The
// digests are compared in constant time. Pass the claim's value as the token holds it, or "" when
// the token has none.
//
// It returns nil on a match; [ErrUnboundToken] for ""; [ErrMalformedX5tS256] for a value that is
// padded, in the standard base64 alphabet, of another length or not canonical (no value but the
// exact encoding is accepted); [ErrTokenCertificateMismatch] for another certificate's digest, and for an
// identity without a certificate. Check the token's signature, issuer, audience and expiry
// first, with the JWT or introspection library of your choice: this is the binding alone.
func (id *Identity) ConfirmX5tS256(x5tS256 string) error {
	got, err := decodeX5tS256(x5tS256)
	if err != nil {
		return err
	}
	if id == nil || id.Leaf == nil {
		return fmt.Errorf("%w: no client certificate", ErrTokenCertificateMismatch)
	}
	want := id.sum
	if want == ([sha256.Size]byte{}) { // an identity not built by the middleware (NewContext)
		want = sha256.Sum256(id.Leaf.Raw)
	}
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return ErrTokenCertificateMismatch
	}
	return nil
}

// decodeX5tS256 decodes a confirmation value, refusing one that is missing or not exactly 43
// base64url characters encoding 32 bytes. It looks at no more than that many characters.
func decodeX5tS256(v string) (sum [sha256.Size]byte, err error) {
	switch {
	case v == "":
		return sum, ErrUnboundToken
	case strings.HasSuffix(v, "="):
		return sum, fmt.Errorf("%w: padded (RFC 8705 uses base64url without padding)", ErrMalformedX5tS256)
	case len(v) != x5tS256Len:
		return sum, fmt.Errorf("%w: %d bytes, want %d", ErrMalformedX5tS256, len(v), x5tS256Len)
	}
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case c == '+' || c == '/':
			return sum, fmt.Errorf("%w: standard base64 alphabet (RFC 8705 uses base64url)", ErrMalformedX5tS256)
		default:
			// encoding/base64 would skip '\r' and '\n': refused here, so only one spelling matches.
			return sum, fmt.Errorf("%w: byte %d is not base64url", ErrMalformedX5tS256, i)
		}
	}
	// Strict: the unused low bits of the last character must be zero, so that only one
	// spelling of a digest matches.
	if n, err := base64.RawURLEncoding.Strict().Decode(sum[:], []byte(v)); err != nil || n != sha256.Size {
		return sum, fmt.Errorf("%w: not the encoding of a SHA-256 digest", ErrMalformedX5tS256)
	}
	return sum, nil
}
