package mtls

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The proxy probe through the real proxies: each shipped configuration of examples/proxies
// passes, on both listeners, with and without a client certificate; a configuration that copies
// the client's own header fails, naming it.

// probeClient is a client of the proxies of the integration tests: it trusts their server CA,
// presents leaf when not nil, and connects to 127.0.0.1 whatever "localhost" resolves to.
func probeClient(k *proxyKit, leaf *mtlstest.Leaf) *http.Client {
	cfg := &tls.Config{RootCAs: k.serverCA.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if leaf != nil {
		cfg.Certificates = []tls.Certificate{leaf.TLSCertificate()}
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: cfg,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return dialer.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", port))
		},
	}}
}

// probeThrough runs ProbeProxy through the proxy listening on port.
func probeThrough(t *testing.T, k *proxyKit, port int, opts ...ProbeOption) (*ProbeReport, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts = append([]ProbeOption{ProbeWithCertificate(probeClient(k, k.alice))}, opts...)
	return ProbeProxy(ctx, probeClient(k, nil), fmt.Sprintf("https://localhost:%d%s", port, testProbePath), opts...)
}

func withProbe(cfg *Config) { cfg.Header.ProbePath = testProbePath }

func TestProbeIntegrationShippedProxies(t *testing.T) {
	for _, pc := range integrationProxies() {
		t.Run(pc.name, func(t *testing.T) {
			k, _, verifyPort, forwardPort := startProxy(t, pc, filepath.Join("examples", "proxies", pc.name, pc.template), withProbe)
			for _, l := range []struct {
				name string
				port int
			}{{"verifying listener", verifyPort}, {"forwarding listener", forwardPort}} {
				t.Run(l.name, func(t *testing.T) {
					rep, err := probeThrough(t, k, l.port)
					require.NoError(t, err, "arrived: %v", rep.Arrived())
					for _, r := range rep.Results {
						// The verifying listener refuses a client without a certificate before
						// the service; every other request reaches the probe.
						refused := l.name == "verifying listener" && r.Client == "without certificate"
						assert.Equal(t, !refused, r.Answered, "%s, %s: status %d, %v", r.Client, r.Spelling, r.Status, r.Err)
					}
				})
			}
		})
	}
}

func TestProbeIntegrationWrongNginx(t *testing.T) {
	pc := integrationProxies()[0]
	require.Equal(t, "nginx", pc.name)
	k, _, verifyPort, forwardPort := startProxy(t, pc, filepath.Join("testdata", "proxies", "nginx-forwards-client-header.conf.template"), withProbe)
	// The companion headers that proxies set beside the certificate are forged too, from the
	// library's own list: this configuration removes none of them.
	companions := MustHeaderFormat("nginx").(companionHeaders).CompanionHeaders()
	require.Contains(t, companions, "X-Ssl-Client-Verify")
	for _, port := range []int{verifyPort, forwardPort} {
		rep, err := probeThrough(t, k, port)
		require.ErrorIs(t, err, ErrProbeForwarded)
		assert.NotErrorIs(t, err, ErrProbeInconclusive)
		for _, n := range append([]string{"X-Ssl-Client-Cert"}, companions...) {
			assert.Contains(t, rep.Arrived(), n)
			assert.Contains(t, err.Error(), n)
		}
	}
}
