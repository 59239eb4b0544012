package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary serve as the server child, as the command itself does.
func TestMain(m *testing.M) {
	if v := os.Getenv(serveEnv); v != "" {
		if err := serve(v, os.Getenv(dirEnv), os.Getenv(profileEnv), os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRun runs every scenario briefly: every request must succeed against both variants (a
// refusal is an error; from a hostile client, an acceptance is), and the report must hold every
// row. The figures themselves are not checked: they depend on the machine.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	profiles := t.TempDir()
	err := run([]string{"-duration", "100ms", "-rounds", "2", "-conns", "2", "-format", "haproxy", "-cpuprofile", profiles}, &out)
	require.NoError(t, err, out.String())
	report := out.String()
	for _, s := range allScenarios {
		for _, v := range []string{s.bare, s.lib} {
			assert.Regexp(t, `(?m)^\s+`+s.name+`\s+`+v+`\s+\d+\s`, report)
		}
	}
	ratios := report[strings.Index(report, "middleware / bare"):]
	written, err := filepath.Glob(filepath.Join(profiles, "*.pprof"))
	require.NoError(t, err)
	assert.Len(t, written, 2*2*len(allScenarios), "a profile per scenario, variant and round")
	for _, s := range allScenarios {
		assert.Regexp(t, `(?m)^\s+`+s.name+`\s+\d+\.\d\dx\s+(\d+\.\d\dx|n/a)$`, ratios)
	}
}

func TestPercentile(t *testing.T) {
	samples := make([]time.Duration, 100)
	for i := range samples {
		samples[i] = time.Duration(i + 1)
	}
	assert.Equal(t, time.Duration(50), percentile(samples, 50))
	assert.Equal(t, time.Duration(99), percentile(samples, 99))
	assert.Equal(t, time.Duration(1), percentile(samples[:1], 99))
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-duration", "1ms"},
		{"-rounds", "0"},
		{"-conns", "1000"},
		{"-max-requests", "1"},
		{"-format", "nope"},
		{"-scenarios", "tls,nope"},
		{"extra"},
	} {
		_, err := parseFlags(args, &bytes.Buffer{})
		assert.Error(t, err, args)
	}
	o, err := parseFlags([]string{"-scenarios", "header, tls,header"}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, []string{"header", "tls"}, o.scenarios)
}

// TestServeRefusesStrangers checks that the middleware variants really authenticate: a request
// without a certificate header gets no "ok".
func TestServeRefusesStrangers(t *testing.T) {
	dir := t.TempDir()
	p, err := newPKI(dir, "nginx")
	require.NoError(t, err)
	s := allScenarios[1] // header
	stranger := &pki{leaf: p.leaf, serverCA: p.serverCA}
	// Run the middleware variant in-process.
	inR, inW, err := os.Pipe()
	require.NoError(t, err)
	outR, outW, err := os.Pipe()
	require.NoError(t, err)
	t.Cleanup(func() { inW.Close(); outR.Close() })
	done := make(chan error, 1)
	go func() {
		err := serve(variantHeaderMiddleware, dir, "", inR, outW)
		outW.Close() // a serve that fails before "listening" ends the read below
		done <- err
	}()
	buf := make([]byte, 256)
	n, err := outR.Read(buf)
	require.NoError(t, err)
	addr, ok := strings.CutPrefix(strings.TrimSpace(string(buf[:n])), "listening ")
	require.True(t, ok, string(buf[:n]))
	url := "http://" + addr + "/"
	client := p.newClient(s, false)
	assert.NoError(t, get(client, url, p, s, false))
	err = get(client, url, stranger, s, false)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "status 401")
	inW.Close()
	require.NoError(t, <-done)
}
