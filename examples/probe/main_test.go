package main

import (
	"bytes"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const probePath = "/.well-known/mtls-probe"

// setup starts a service in header mode behind a TLS proxy that applies rewrite, and writes the
// proxy's CA and a client certificate to files.
func setup(t *testing.T, probe string, rewrite func(*httputil.ProxyRequest)) (frontURL string, files map[string]string) {
	t.Helper()
	root := mtlstest.NewRootCA("Clients CA")
	alice := root.NewClient("alice")
	m, err := mtls.New(mtls.Config{RootCAs: root.Pool(), Header: &mtls.HeaderConfig{
		Format:         mtls.MustHeaderFormat("haproxy"),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		ProbePath:      probe,
	}})
	require.NoError(t, err)
	backend := httptest.NewServer(m.Handler(http.NotFoundHandler()))
	t.Cleanup(backend.Close)
	target, _ := url.Parse(backend.URL)
	front := httptest.NewUnstartedServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		rewrite(pr)
	}})
	serverCA := mtlstest.NewRootCA("Proxy CA")
	front.TLS = &tls.Config{Certificates: []tls.Certificate{serverCA.NewServer("127.0.0.1").TLSCertificate()}, ClientAuth: tls.RequestClientCert}
	front.Config.ErrorLog = log.New(io.Discard, "", 0)
	front.StartTLS()
	t.Cleanup(front.Close)
	dir := t.TempDir()
	return front.URL + probePath, map[string]string{
		"ca":   mtlstest.WriteFile(dir, "proxy-ca.pem", serverCA.CertPEM()),
		"cert": mtlstest.WriteFile(dir, "alice.pem", alice.ChainPEM()),
		"key":  mtlstest.WriteFile(dir, "alice-key.pem", alice.KeyPEM()),
	}
}

// allowOnly forwards only a few ordinary headers, as a careful proxy does.
func allowOnly(pr *httputil.ProxyRequest) {
	out := http.Header{}
	for _, k := range []string{"Accept", "Accept-Encoding", "User-Agent"} {
		if v, ok := pr.In.Header[k]; ok {
			out[k] = v
		}
	}
	pr.Out.Header = out
}

func TestProbeCommand(t *testing.T) {
	for _, tc := range []struct {
		name    string
		probe   string
		rewrite func(*httputil.ProxyRequest)
		extra   []string
		code    int
		out     []string
	}{
		{"a proxy that forwards every header", probePath, func(*httputil.ProxyRequest) {}, []string{"-header", "X-Tenant"}, exitForwarded,
			[]string{"arrived X-Ssl-Client-Cert: without certificate/canonical, without certificate/lower-case, with certificate/canonical",
				"arrived X_ssl_client_cert: without certificate/underscore", "arrived X-Tenant:", "FAILED: mtls: the proxy forwarded headers the client forged: "}},
		{"a proxy that forwards only what it knows", probePath, allowOnly, nil, exitPassed, []string{"passed: ", " requests, none let a forged header through"}},
		{"the service does not answer the probe", "", allowOnly, nil, exitInconclusive,
			[]string{"not answered without certificate/canonical, batch 1: mtls: proxy probe: status 401", "FAILED: mtls: proxy probe inconclusive"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, f := setup(t, tc.probe, tc.rewrite)
			var stdout, stderr bytes.Buffer
			args := append([]string{"-url", u, "-ca", f["ca"], "-cert", f["cert"], "-key", f["key"], "-timeout", "20s"}, tc.extra...)
			code := run(args, &stdout, &stderr)
			assert.Equal(t, tc.code, code, "stdout: %s\nstderr: %s", &stdout, &stderr)
			for _, s := range tc.out {
				assert.Contains(t, stdout.String(), s)
			}
			lines := 0
			for _, l := range strings.Split(stdout.String(), "\n") {
				if strings.HasPrefix(l, "arrived X-Ssl-Client-Cert:") {
					lines++
				}
			}
			if tc.code == exitForwarded {
				assert.Equal(t, 1, lines, "one line per header")
			}
		})
	}
}

func TestProbeCommandUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{"no url", nil, "-url is required"},
		{"cert without key", []string{"-url", "https://127.0.0.1/p", "-cert", "c.pem"}, "-cert and -key go together"},
		{"unreadable ca", []string{"-url", "https://127.0.0.1/p", "-ca", filepath.Join(dir, "missing.pem")}, "missing.pem"},
		{"not a URL", []string{"-url", "ftp://127.0.0.1/p"}, "is not an http(s) URL"},
		{"invalid header name", []string{"-url", "https://127.0.0.1/p", "-header", "X Bad"}, "invalid header name"},
		{"stray argument", []string{"-url", "https://127.0.0.1/p", "extra"}, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			assert.Equal(t, exitUsage, run(tc.args, &stdout, &stderr))
			assert.Contains(t, stderr.String(), tc.err)
			assert.Empty(t, stdout.String())
		})
	}
}
