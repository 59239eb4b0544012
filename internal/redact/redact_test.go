package redact

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIsHTTP(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"http://h/a.crl", true}, {"HTTPS://h/a.crl", true}, {"HtTp://h", true},
		{"ftp://h/a.crl", false}, {"/tmp/https://x", false}, {"a.crl", false}, {"https:/h", false},
	} {
		t.Run(tt.in, func(t *testing.T) { assert.Equal(t, tt.want, IsHTTP(tt.in)) })
	}
}

func TestText(t *testing.T) {
	assert.Equal(t, `get "https://h.test/a?sig=REDACTED": EOF`, Text(`get "https://u:pw@h.test/a?sig=s3cret#f": EOF`))
	assert.Equal(t, "nothing here", Text("nothing here"))
}

// TestFetchErrorCarriesNoURL: whatever the HTTP client or the URL parser says, the text keeps the
// class of the failure and no part of the URL.
func TestFetchErrorCarriesNoURL(t *testing.T) {
	const secret = "s3cret"
	badLocation := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Location", "https://cdn.test/a%zz?sig="+secret)
		w.WriteHeader(http.StatusFound)
	}))
	t.Cleanup(badLocation.Close)
	stop := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(stop) })
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(tlsSrv.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	get := func(client *http.Client, u string) error {
		_, err := client.Get(u)
		require.Error(t, err)
		return err
	}
	_, parseErr := url.Parse("https://crl:" + secret + "/x@h.test/a.crl")
	require.Error(t, parseErr)
	tests := []struct {
		name string
		err  error
		want string
		is   error
	}{
		{"URL does not parse", parseErr, "the URL does not parse", nil},
		{"Location does not parse", get(&http.Client{}, badLocation.URL+"/?sig="+secret), "invalid redirect: its Location is not a URL", nil},
		{"timeout", get(&http.Client{Timeout: 50 * time.Millisecond}, slow.URL+"/?sig="+secret), "timeout", nil},
		{"TLS", get(&http.Client{}, tlsSrv.URL+"/?sig="+secret), "TLS failure: the server's certificate does not verify", nil},
		{"refused", get(&http.Client{}, closedURL+"/?sig="+secret), "connection refused", nil},
		{"canceled", &url.Error{Op: "Get", URL: "https://h/?sig=" + secret, Err: context.Canceled}, "canceled", context.Canceled},
		{"deadline", &url.Error{Op: "Get", URL: "https://h/?sig=" + secret, Err: context.DeadlineExceeded}, "timeout", context.DeadlineExceeded},
		{"errno", &url.Error{Op: "Get", URL: "https://h/?sig=" + secret, Err: syscall.ECONNREFUSED}, "connection refused", nil},
		{"other", &url.Error{Op: "Get", URL: "https://h/?sig=" + secret, Err: errors.New("proxy https://p/?k=" + secret + " said no")}, "proxy https://p/?k=REDACTED said no", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FetchError(tt.err)
			assert.NotContains(t, tt.err.Error()+"", "REDACTED")
			assert.Equal(t, tt.want, got.Error())
			assert.NotContains(t, got.Error(), secret)
			if tt.is != nil {
				assert.ErrorIs(t, got, tt.is)
			}
		})
	}
	assert.NoError(t, FetchError(nil))
}

// FuzzURL: whatever the input, URL shows no password, fragment or query value of it, and Text
// runs on any text.
func FuzzURL(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw string) {
		got := URL(raw)
		_ = Text(raw)
		u, err := url.Parse(raw)
		if err != nil {
			require.Equal(t, Invalid, got)
			return
		}
		if pw, ok := u.User.Password(); ok && len(pw) > 3 && !strings.Contains(u.Host+u.Path+u.Scheme+Redacted, pw) {
			require.NotContains(t, got, pw)
		}
		back, err := url.Parse(got)
		require.NoError(t, err, "the shown URL parses: %q", got)
		require.Nil(t, back.User)
		require.Empty(t, back.Fragment)
		for _, vs := range back.Query() {
			for _, v := range vs {
				require.Contains(t, []string{"", Redacted}, v)
			}
		}
	})
}
