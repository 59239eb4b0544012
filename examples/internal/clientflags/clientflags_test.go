package clientflags

import (
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCRLSchemeIsCaseInsensitive: -crl HTTPS://... is a URL, not a file name, and a -crl that is
// a URL of another scheme is refused without its secrets rather than read as a file.
func TestCRLSchemeIsCaseInsensitive(t *testing.T) {
	tests := []struct {
		name, crl string
		url       bool
		err       string
	}{
		{"lower case", "https://crl:pa55@127.0.0.1:1/a.crl?sig=s3cret", true, ""},
		{"upper case", "HTTPS://crl:pa55@127.0.0.1:1/a.crl?sig=s3cret", true, ""},
		{"mixed case", "Http://127.0.0.1:1/a.crl", true, ""},
		{"file", "testdata/a.crl", false, ""},
		{"other scheme", "ftp://crl:pa55@127.0.0.1:1/a.crl?sig=s3cret", false, "-crl ftp://127.0.0.1:1/a.crl?sig=REDACTED: only http and https URLs are fetched"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Revocation
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			r.Register(fs)
			require.NoError(t, fs.Parse([]string{"-crl", tt.crl}))
			err := r.Check()
			if tt.err != "" {
				require.EqualError(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			rc := r.Config()
			require.NotNil(t, rc)
			if tt.url {
				assert.Equal(t, []string{tt.crl}, rc.CRL.URLs)
				assert.Empty(t, rc.CRL.Files)
			} else {
				assert.Equal(t, []string{tt.crl}, rc.CRL.Files)
				assert.Empty(t, rc.CRL.URLs)
			}
		})
	}
}
