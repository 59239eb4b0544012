package mtls

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const base64URLAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// nonCanonical returns x5t with the unused low bits of its last character set: the same digest
// to a lenient decoder.
func nonCanonical(x5t string) string {
	i := strings.IndexByte(base64URLAlphabet, x5t[len(x5t)-1])
	return x5t[:len(x5t)-1] + string(base64URLAlphabet[i|1])
}

// standardOnly returns a digest whose standard base64 encoding differs from its base64url one.
func standardOnly() string {
	sum := sha256.Sum256(nil)
	for !strings.ContainsAny(base64.RawStdEncoding.EncodeToString(sum[:]), "+/") {
		sum = sha256.Sum256(sum[:])
	}
	return base64.RawStdEncoding.EncodeToString(sum[:])
}

func TestConfirmX5tS256(t *testing.T) {
	p := newPKI(t)
	id := newIdentity(p.alice.Chain(), false) // as the pipeline builds it
	sum := sha256.Sum256(p.alice.Certificate.Raw)
	x5t := base64.RawURLEncoding.EncodeToString(sum[:])
	require.Equal(t, x5t, id.X5tS256)
	other := sha256.Sum256(p.issuing.Certificate.Raw)
	std := standardOnly()

	tests := []struct {
		name string
		id   *Identity
		v    string
		want error // nil: confirmed
	}{
		{"match", id, x5t, nil},
		{"match, identity built by hand", &Identity{Leaf: p.alice.Certificate}, x5t, nil},
		{"another certificate", id, base64.RawURLEncoding.EncodeToString(other[:]), ErrTokenCertificateMismatch},
		{"no identity", nil, x5t, ErrTokenCertificateMismatch},
		{"identity without a certificate", &Identity{}, x5t, ErrTokenCertificateMismatch},
		{"missing", id, "", ErrUnboundToken},
		{"padded", id, x5t + "=", ErrMalformedX5tS256},
		{"padding only", id, "=", ErrMalformedX5tS256},
		{"padding inside", id, x5t[:42] + "=", ErrMalformedX5tS256},
		{"standard alphabet", id, std, ErrMalformedX5tS256},
		{"standard alphabet, padded", id, std + "=", ErrMalformedX5tS256},
		{"hex fingerprint", id, id.SHA256, ErrMalformedX5tS256},
		{"short", id, x5t[:42], ErrMalformedX5tS256},
		{"long", id, x5t + "A", ErrMalformedX5tS256},
		{"huge", id, strings.Repeat("A", 1<<20), ErrMalformedX5tS256},
		{"newline inside, which encoding/base64 skips", id, x5t[:20] + "\n" + x5t[20:42], ErrMalformedX5tS256},
		{"space", id, " " + x5t[1:], ErrMalformedX5tS256},
		{"non-canonical last character", id, nonCanonical(x5t), ErrMalformedX5tS256},
		{"SHA-1 sized", id, base64.RawURLEncoding.EncodeToString(sum[:20]), ErrMalformedX5tS256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.id.ConfirmX5tS256(tt.v)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "mtls: "), err.Error())
			for _, sentinel := range []error{ErrUnboundToken, ErrTokenCertificateMismatch, ErrMalformedX5tS256} {
				assert.Equal(t, sentinel == tt.want, errors.Is(err, sentinel), "exactly one sentinel: %v", sentinel)
			}
		})
	}
}

// FuzzConfirmX5tS256: only the exact encoding of the identity's digest is confirmed, and every
// refusal is one of the three sentinels.
func FuzzConfirmX5tS256(f *testing.F) {
	leaf := newPKI(f).alice.Certificate
	id := &Identity{Leaf: leaf}
	sum := sha256.Sum256(leaf.Raw)
	x5t := base64.RawURLEncoding.EncodeToString(sum[:])
	for _, seed := range []string{x5t, "", x5t + "=", nonCanonical(x5t), standardOnly(), x5t[:42], x5t[:20] + "\r\n" + x5t[22:]} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		err := id.ConfirmX5tS256(v)
		if (err == nil) != (v == x5t) {
			t.Fatalf("%q: %v", v, err)
		}
		if err != nil && !errors.Is(err, ErrUnboundToken) && !errors.Is(err, ErrTokenCertificateMismatch) && !errors.Is(err, ErrMalformedX5tS256) {
			t.Fatalf("%q: unclassified error %v", v, err)
		}
		if other, err := decodeX5tS256(v); err == nil && base64.RawURLEncoding.EncodeToString(other[:]) != v {
			t.Fatalf("%q decodes but is not canonical", v)
		}
	})
}
