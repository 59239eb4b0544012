package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certgate/mtls"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scrape fetches url and parses the text exposition.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	require.NoError(t, err)
	return fams
}

// sample returns the metric of family name whose labels are exactly labels.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	fam, ok := fams[name]
	require.True(t, ok, "no family %s", name)
	for _, m := range fam.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if fmt.Sprint(got) == fmt.Sprint(labels) {
			return m
		}
	}
	require.Failf(t, "no sample", "%s%v in %v", name, labels, fam)
	return nil
}

// value is the value of a counter or gauge sample.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	m := sample(t, fams, name, labels)
	if m.Counter != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func TestMetricsEndToEnd(t *testing.T) {
	s, err := start("127.0.0.1:0", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	var out bytes.Buffer
	require.NoError(t, s.callAll(&out))
	for _, want := range []string{"alice", "carol (expires in a week)"} {
		assert.Contains(t, out.String(), fmt.Sprintf("%-26s 200 hello", want))
	}

	fams := scrape(t, s.metricsURL)
	for _, c := range []struct {
		result, reason string
		want           float64
	}{
		{"accepted", "", 2},
		{"refused", "certificate_revoked", 1},
		{"refused", "certificate_required", 1},
		{"refused", "certificate_untrusted", 1},
	} {
		assert.Equal(t, c.want, value(t, fams, "mtls_decisions_total",
			map[string]string{"result": c.result, "reason": c.reason, "source": "tls"}), "%s %s", c.result, c.reason)
	}
	h := sample(t, fams, "mtls_decision_duration_seconds", map[string]string{"source": "tls"}).GetHistogram()
	assert.Equal(t, uint64(5), h.GetSampleCount())
	assert.Equal(t, 1.0, value(t, fams, "mtls_accepted_expiring_soon_total", map[string]string{}))

	carol := s.clients[1].cert.Certificate
	assert.Equal(t, float64(carol.NotAfter.Unix()), value(t, fams, "mtls_client_cert_soonest_expiry_timestamp_seconds",
		map[string]string{"issuer": carol.Issuer.String()}))
	assert.Len(t, fams["mtls_client_cert_soonest_expiry_timestamp_seconds"].GetMetric(), 1, "refused certificates' issuers do not count")

	crl := map[string]string{"source": filepath.Join(s.dir, "clients.crl")}
	assert.Equal(t, 1.0, value(t, fams, "mtls_revocation_source_up", crl))
	assert.Positive(t, value(t, fams, "mtls_revocation_crl_next_update_timestamp_seconds", crl))
	assert.Positive(t, value(t, fams, "mtls_revocation_crl_this_update_timestamp_seconds", crl))

	files := map[string]string{"source": "files"}
	assert.Equal(t, 1.0, value(t, fams, "mtls_reload_up", files))
	assert.Equal(t, 1.0, value(t, fams, "mtls_reload_successes_total", files))
	assert.Positive(t, value(t, fams, "mtls_reload_last_success_timestamp_seconds", files))

	// A good reload counts; a bad one turns the source down and keeps the last success.
	require.NoError(t, s.mw.Reload())
	fams = scrape(t, s.metricsURL)
	assert.Equal(t, 2.0, value(t, fams, "mtls_reload_successes_total", files))
	last := value(t, fams, "mtls_reload_last_success_timestamp_seconds", files)
	require.NoError(t, os.WriteFile(filepath.Join(s.dir, "clients-ca.pem"), []byte("not a certificate"), 0o600))
	require.Error(t, s.mw.Reload())
	fams = scrape(t, s.metricsURL)
	assert.Equal(t, 0.0, value(t, fams, "mtls_reload_up", files))
	assert.Equal(t, 2.0, value(t, fams, "mtls_reload_successes_total", files))
	assert.Equal(t, last, value(t, fams, "mtls_reload_last_success_timestamp_seconds", files))
}

func TestRunStopsWhenDone(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	require.NoError(t, run(ctx, &out, 0, 0))
	assert.Contains(t, out.String(), "mTLS service https://127.0.0.1:")
	assert.Contains(t, out.String(), "metrics      http://127.0.0.1:")
	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	assert.Empty(t, left, "temporary files left behind")
}

// TestMainSignal runs the command itself and stops it with SIGINT and SIGTERM once it serves: it
// exits 0 and leaves no temporary directory behind.
func TestMainSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			tmp := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp, runAsMain+"=-port 0 -metrics-port 0")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			lines := bufio.NewScanner(stdout)
			for lines.Scan() && !strings.HasPrefix(lines.Text(), "try: curl") {
			}
			require.NoError(t, lines.Err())
			require.NoError(t, cmd.Process.Signal(sig))
			_, _ = io.Copy(io.Discard, stdout)
			require.NoError(t, cmd.Wait(), "stderr: %s", &stderr)
			left, err := os.ReadDir(tmp)
			require.NoError(t, err)
			assert.Empty(t, left, "temporary files left behind")
		})
	}
}

func cert(issuer string, notAfter time.Time) *x509.Certificate {
	return &x509.Certificate{RawIssuer: []byte(issuer), Issuer: pkix.Name{CommonName: issuer}, NotAfter: notAfter}
}

func TestExpiryForgetsOldCertificates(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	old, renewed := t0.Add(3*24*time.Hour), t0.Add(365*24*time.Hour)
	var x expiryTracker
	x.see(cert("ca", renewed), t0)
	x.see(cert("ca", old), t0.Add(time.Hour))
	assert.Equal(t, map[string]time.Time{"CN=ca": old}, x.soonest(t0.Add(2*time.Hour)))

	// Only the renewed certificate is seen from now on: the old one counts for the window it
	// was seen in and the next, then is forgotten.
	x.see(cert("ca", renewed), t0.Add(25*time.Hour))
	assert.Equal(t, map[string]time.Time{"CN=ca": old}, x.soonest(t0.Add(47*time.Hour)))
	assert.Equal(t, map[string]time.Time{"CN=ca": renewed}, x.soonest(t0.Add(48*time.Hour)))
	// An issuer not seen for two windows is gone.
	assert.Empty(t, x.soonest(t0.Add(72*time.Hour)))
	x.see(cert("ca", old), t0.Add(73*time.Hour))
	assert.Empty(t, x.soonest(t0.Add(200*time.Hour)))
}

func TestExpiryBoundsIssuers(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var x expiryTracker
	for i := range maxIssuers + 1 {
		x.see(cert(fmt.Sprint("ca", i), t0.Add(time.Hour)), t0.Add(time.Duration(i)*time.Second))
	}
	got := x.soonest(t0.Add(time.Hour))
	assert.Len(t, got, maxIssuers)
	assert.NotContains(t, got, "CN=ca0", "the issuer seen least recently is dropped")
	assert.Contains(t, got, fmt.Sprint("CN=ca", maxIssuers))
}

// TestStartPortBusy occupies one of the two ports first: the example reports the listen error
// (no panic) and leaves no temporary directory behind.
func TestStartPortBusy(t *testing.T) {
	for _, tt := range []struct {
		name string
		busy func(taken string) (api, metrics string)
	}{
		{name: "service port", busy: func(taken string) (string, string) { return taken, "127.0.0.1:0" }},
		{name: "metrics port", busy: func(taken string) (string, string) { return "127.0.0.1:0", taken }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			t.Cleanup(func() { _ = ln.Close() })
			taken := ln.Addr().String()
			api, metrics := tt.busy(taken)

			var s *service
			require.NotPanics(t, func() { s, err = start(api, metrics) })
			require.Nil(t, s)
			require.ErrorContains(t, err, "listen tcp "+taken+": bind: address already in use")
			left, err := os.ReadDir(tmp)
			require.NoError(t, err)
			assert.Empty(t, left, "temporary files left behind")
		})
	}
}

// TestMainPortBusy runs the command itself (this test binary, re-executed as main) with the
// service's port taken: it exits 1 with the listen error on stderr, without a panic, and leaves no
// temporary directory behind.
func TestMainPortBusy(t *testing.T) {
	tmp := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, runAsMain+"=-port "+strconv.Itoa(port)+" -metrics-port 0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "stdout: %s\nstderr: %s", &stdout, &stderr)
	assert.Equal(t, 1, exit.ExitCode())
	assert.Equal(t, fmt.Sprintf("prometheus: listen tcp 127.0.0.1:%d: bind: address already in use\n", port), stderr.String())
	assert.NotContains(t, stdout.String()+stderr.String(), "panic")
	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	assert.Empty(t, left, "temporary files left behind")
}

// runAsMain names the environment variable under which the test binary runs main with the
// variable's value as its arguments.
const runAsMain = "MTLS_PROMETHEUS_RUN_AS_MAIN"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(runAsMain); ok {
		os.Args = append(os.Args[:1], strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestThrottledByTier: throttled decisions count by tier, and their certificates do not count
// towards the expiry gauge.
func TestThrottledByTier(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	leaf := &x509.Certificate{RawIssuer: []byte("i"), NotAfter: time.Now().Add(time.Hour)}
	for _, ev := range []mtls.Event{
		{Result: mtls.Throttled, Tier: "gold", Status: 429, Reason: mtls.ReasonRateLimited, Leaf: leaf},
		{Result: mtls.Throttled, Tier: "gold", Status: 429, Reason: mtls.ReasonRateLimited, Leaf: leaf},
		{Result: mtls.Throttled, Tier: "bronze", Status: 429, Reason: mtls.ReasonRateLimited, Leaf: leaf},
		{Result: mtls.Accepted, Tier: "gold"},
	} {
		m.OnDecision(context.Background(), ev)
	}
	fams, err := reg.Gather()
	require.NoError(t, err)
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	assert.Equal(t, 2.0, value(t, byName, "mtls_throttled_total", map[string]string{"tier": "gold"}))
	assert.Equal(t, 1.0, value(t, byName, "mtls_throttled_total", map[string]string{"tier": "bronze"}))
	assert.Equal(t, 3.0, value(t, byName, "mtls_decisions_total", map[string]string{"result": "throttled", "reason": "rate_limited", "source": ""}))
	assert.Empty(t, m.expiry.soonest(time.Now()), "throttled certificates do not count towards expiry")
}
