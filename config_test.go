package mtls

import (
	"errors"
	"net/http"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// configFields lists the fields named by the *ConfigErrors joined in err.
func configFields(t *testing.T, err error) []string {
	t.Helper()
	var joined interface{ Unwrap() []error }
	require.True(t, errors.As(err, &joined), "New joins its problems: %v", err)
	var fields []string
	for _, e := range joined.Unwrap() {
		var ce *ConfigError
		require.True(t, errors.As(e, &ce), "every problem is a *ConfigError: %v", e)
		fields = append(fields, ce.Field)
	}
	return fields
}

// TestConfigErrorsNameTheirFields: every problem is reported at once, each under the path of its
// field, with one meaning of zero and negative values.
func TestConfigErrorsNameTheirFields(t *testing.T) {
	p := newPKI(t)
	_, err := New(Config{
		RootCAs:       p.root.Pool(),
		RootCAFiles:   []string{filepath.Join(t.TempDir(), "missing.pem")},
		PinnedSHA256:  []string{"abc"},
		MaxChainDepth: -1,
		CacheSize:     -1, // off: allowed
		CacheMaxBytes: -1, // off: allowed
		OnShadow:      func(*http.Request, ShadowResult) {},
		Header: &HeaderConfig{
			Format:         MustHeaderFormat("nginx"),
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::/0"), {}},
			MaxBytes:       -1,
		},
	})
	require.Error(t, err)
	assert.ElementsMatch(t, []string{
		"MaxChainDepth", "RootCAFiles[0]", "PinnedSHA256[0]", "OnShadow",
		"Header.MaxBytes", "Header.TrustedProxies[1]", "Header.TrustedProxies[2]",
	}, configFields(t, err))
	assert.ErrorContains(t, err, "mtls: Header.TrustedProxies[1]: ::/0 would trust every peer")

	_, err = New(Config{RootCAs: p.root.Pool(), MaxChainDepth: 16})
	assert.Equal(t, []string{"MaxChainDepth"}, configFields(t, err), "deeper than a header can carry")
}
