package mtls

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// useDefaultLogger makes h the handler of slog.Default() for the rest of the test.
func useDefaultLogger(t *testing.T, h slog.Handler) {
	saved := slog.Default()
	t.Cleanup(func() { slog.SetDefault(saved) })
	slog.SetDefault(slog.New(h))
}

// jsonRecords parses the records of a JSON handler.
func jsonRecords(t *testing.T, logs string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec))
		out = append(out, rec)
	}
	return out
}

// TestDefaultLoggerRefusals: without Config.Logger, refusals are logged through slog.Default(),
// the one in force when they are made (set after New here), with their reason code and full
// reason; acceptances are not logged, even by a default logger at Debug.
func TestDefaultLoggerRefusals(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	var logs bytes.Buffer
	useDefaultLogger(t, slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	onlyBob := m.Require(Must(RequireSubject(Attributes{"CN": {"bob"}})))

	tests := []struct {
		name   string
		h      http.Handler
		chain  *mtlstest.Leaf
		status int
		reason string // "": nothing logged
		detail string
	}{
		{name: "accepted", h: m.Handler(echoIdentity), chain: p.alice, status: http.StatusOK},
		{name: "accepted again", h: m.Handler(echoIdentity), chain: p.alice, status: http.StatusOK},
		{name: "untrusted", h: m.Handler(echoIdentity), chain: p.other.NewClient("stranger"), status: http.StatusUnauthorized,
			reason: ReasonCertificateUntrusted, detail: "not one this service trusts"},
		{name: "no certificate", h: m.Handler(echoIdentity), status: http.StatusUnauthorized,
			reason: ReasonCertificateRequired, detail: "no client certificate"},
		{name: "refused by a route", h: m.Handler(onlyBob(echoIdentity)), chain: p.alice, status: http.StatusForbidden,
			reason: ReasonPolicyDenied, detail: "bob"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs.Reset()
			r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/")
			if tt.chain != nil {
				r = mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", tt.chain.Chain()...)
			}
			w := httptest.NewRecorder()
			tt.h.ServeHTTP(w, r)
			require.Equal(t, tt.status, w.Code)
			records := jsonRecords(t, logs.String())
			if tt.reason == "" {
				assert.Empty(t, records, "a healthy request logs nothing by default")
				return
			}
			require.Len(t, records, 1)
			rec := records[0]
			assert.Equal(t, "INFO", rec["level"])
			assert.Equal(t, "mtls: request refused", rec["msg"])
			assert.Equal(t, tt.reason, rec["reason"])
			assert.Contains(t, rec["error"], tt.detail)
			assert.NotContains(t, rec, "duration", "no clock was read for the decision")
		})
	}
}

// TestDefaultLoggerSilenced: a logger whose handler discards, as Config.Logger or as the
// default, gets nothing; with the default one, no event is built for a refusal.
func TestDefaultLoggerSilenced(t *testing.T) {
	p := newPKI(t)
	var logs bytes.Buffer
	useDefaultLogger(t, slog.NewTextHandler(&logs, nil))
	quiet, err := New(Config{RootCAs: p.root.Pool(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	stranger := p.other.NewClient("stranger").Chain()
	serve(quiet, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", stranger...))
	assert.Empty(t, logs.String(), "Config.Logger set: the default logger gets nothing")

	slog.SetDefault(slog.New(slog.DiscardHandler))
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", stranger...)
	d := m.authenticate(r)
	require.Error(t, d.err)
	assert.False(t, m.logged(context.Background(), &d), "a discarding default handler: no event is built")
	serve(m, r)
	assert.Empty(t, logs.String())
}

// TestDefaultLoggerBudget: the default logger's refusal records are held to the refusal log
// budget like Config.Logger's; those beyond it are not logged at all (Config.Logger gets them
// at Debug), and a Warn record says how many were suppressed. Each middleware has its own budget.
func TestDefaultLoggerBudget(t *testing.T) {
	p := newPKI(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	useDefaultLogger(t, slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clock := newRevClock()
	m, err := New(Config{RootCAs: p.root.Pool(), Now: clock.Now})
	require.NoError(t, err)
	const n = 3 * refusalLogBurst
	for range n {
		require.Equal(t, http.StatusUnauthorized, serve(m, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/")))
	}
	count := func(s string) int {
		mu.Lock()
		defer mu.Unlock()
		return strings.Count(logs.String(), s)
	}
	assert.Equal(t, refusalLogBurst, count(`level=INFO msg="mtls: request refused"`))
	assert.Zero(t, count("level=DEBUG"), "nothing at Debug by default")
	clock.Advance(time.Second)
	serve(m, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/"))
	assert.Equal(t, refusalLogBurst+1, count(`level=INFO msg="mtls: request refused"`))
	assert.Equal(t, 1, count(`level=WARN msg="mtls: refusal records suppressed" suppressed=`+strconv.Itoa(n-refusalLogBurst)))

	// The budget is per middleware (Config.Logger says so): another one on the same default
	// logger and clock has its own.
	other, err := New(Config{RootCAs: p.root.Pool(), Now: clock.Now})
	require.NoError(t, err)
	for range n {
		serve(other, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/"))
	}
	assert.Equal(t, 2*refusalLogBurst+1, count(`level=INFO msg="mtls: request refused"`))
}

// TestDefaultLoggerExpiry: the default logger warns of a certificate about to expire, once a day,
// and logs nothing else of its acceptances.
func TestDefaultLoggerExpiry(t *testing.T) {
	p := newPKI(t)
	var logs bytes.Buffer
	useDefaultLogger(t, slog.NewTextHandler(&logs, nil))
	now := time.Now()
	leaf := p.issuing.NewClient("renew-me", mtlstest.WithValidity(now.Add(-time.Hour), now.Add(3*24*time.Hour)))
	m, err := New(Config{RootCAs: p.root.Pool(), Now: func() time.Time { return now }})
	require.NoError(t, err)
	for range 3 {
		require.Equal(t, http.StatusOK, serve(m, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...)))
	}
	assert.Equal(t, 1, strings.Count(logs.String(), "\n"), logs.String())
	assert.Contains(t, logs.String(), `level=WARN msg="mtls: client certificate expires soon"`)
	assert.Contains(t, logs.String(), "renew-me")
}

// TestDefaultLoggerHandshake: a refusal at the handshake goes to the default logger too.
func TestDefaultLoggerHandshake(t *testing.T) {
	p := newPKI(t)
	serverCA := mtlstest.NewRootCA("Server CA")
	var logs bytes.Buffer
	var mu sync.Mutex
	useDefaultLogger(t, slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	srv := newHandshakeServer(t, m, m.TLSConfig(&tls.Config{Certificates: []tls.Certificate{serverCA.NewServer("127.0.0.1").TLSCertificate()}}, RejectAtHandshake()))
	mallory := mtlstest.NewSelfSigned("mallory")
	_, _, err = srv.call(t, serverCA, "127.0.0.1", tlsCert(mallory.Key, mallory.Chain()...), 0)
	require.Error(t, err)
	mu.Lock()
	logged := logs.String()
	mu.Unlock()
	assert.Contains(t, logged, `level=INFO msg="mtls: handshake refused" result=refused handshake=true reason=`+ReasonCertificateUntrusted)
	assert.NotContains(t, logged, "duration=")
}

// TestDefaultLoggerRecordSize: what a client sends cannot make a refusal's record large. The
// names of its certificates (self-minted CAs of a subject of 7,700 '"', which escaping by %q and
// by the handler would multiply eightfold) are clipped in the detail, and every string of the
// record (an error a credential check or a policy writes, whatever its length) is cut to
// maxLogValue bytes.
func TestDefaultLoggerRecordSize(t *testing.T) {
	p := newPKI(t)
	quotes := pkix.Name{CommonName: strings.Repeat(`"`, 7700)}
	fakeRoot := mtlstest.NewRootCA("mallory's root")
	fakeCA := func() *x509.Certificate {
		return fakeRoot.NewIntermediate("y", mtlstest.WithSubject(quotes)).Certificate
	}
	longOID := make(asn1.ObjectIdentifier, 3000)
	for i := range longOID {
		longOID[i] = 127
	}
	longOID[0], longOID[1] = 1, 3
	huge := errors.New(strings.Repeat(`"`, 100<<10))
	const names = 4 << 10 // a record whose only long strings are clipped names
	tests := []struct {
		name   string
		h      func(m *Middleware) http.Handler
		chain  []*x509.Certificate
		detail string // in the record
		max    int    // bytes of the whole record
	}{
		{name: "presented CA's subject", h: certOnly, chain: []*x509.Certificate{
			fakeRoot.NewIntermediate("y", mtlstest.WithSubject(quotes)).NewClient("mallory").Certificate, fakeCA()},
			detail: "the chain the client sent ends at", max: names},
		{name: "presented CAs sharing a subject", h: certOnly, chain: []*x509.Certificate{
			fakeRoot.NewIntermediate("y", mtlstest.WithSubject(quotes)).NewClient("mallory").Certificate,
			fakeCA(), fakeCA(), fakeCA(), fakeCA()},
			detail: "4 presented certificates share the subject", max: names},
		{name: "unhandled critical extension", h: certOnly, chain: p.issuing.NewClient("odd",
			mtlstest.WithExtension(pkix.Extension{Id: longOID, Critical: true, Value: []byte{0x05, 0x00}})).Chain(),
			detail: "unhandled critical extension 1.3.127.127", max: names},
		{name: "credential check's error", h: func(m *Middleware) http.Handler {
			return m.Either(func(*http.Request) (string, error) { return "", huge })(noop)
		}, detail: "bytes cut)", max: 2*maxLogValue + 1<<10}, // each '"' escaped as \"
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			useDefaultLogger(t, slog.NewTextHandler(&logs, nil))
			m, err := New(Config{RootCAs: p.root.Pool()})
			require.NoError(t, err)
			w := httptest.NewRecorder()
			tt.h(m).ServeHTTP(w, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", tt.chain...))
			require.Equal(t, http.StatusUnauthorized, w.Code)
			rec := logs.String()
			require.Equal(t, 1, strings.Count(rec, "\n"), "one record")
			assert.Contains(t, rec, "level=INFO")
			assert.Contains(t, rec, tt.detail)
			t.Logf("%d bytes", len(rec))
			assert.Less(t, len(rec), tt.max, "%.300s", rec)
		})
	}
}

// certOnly is the handler of m that requires a certificate.
func certOnly(m *Middleware) http.Handler { return m.Handler(noop) }
