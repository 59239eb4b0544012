package mtls

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// handshakeServer serves h behind m on 127.0.0.1 with cfg, and records the server's handshake
// errors.
type handshakeServer struct {
	*httptest.Server
	mu     sync.Mutex
	errLog bytes.Buffer
}

func (s *handshakeServer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errLog.Write(p)
}

// errorsAfter waits (at most 10 seconds) for the server to log a handshake error after the first
// n bytes of its log, and returns what it logged.
func (s *handshakeServer) errorsAfter(t *testing.T, n int) string {
	t.Helper()
	var logged string
	assert.Eventually(t, func() bool {
		logged = s.errors()[n:]
		return strings.Contains(logged, "\n")
	}, 10*time.Second, 5*time.Millisecond, "the server logs the handshake error")
	return logged
}

func (s *handshakeServer) errors() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errLog.String()
}

func newHandshakeServer(t *testing.T, m *Middleware, cfg *tls.Config) *handshakeServer {
	t.Helper()
	s := &handshakeServer{Server: httptest.NewUnstartedServer(m.Handler(echoIdentity))}
	s.TLS = cfg
	s.Config.ErrorLog = log.New(s, "", 0)
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// call makes one request on a new connection to s, as host, presenting cert (none when nil), over
// TLS version (0: the default). It returns the status and the body, or the error of a failed
// handshake.
func (s *handshakeServer) call(t *testing.T, serverCA *mtlstest.CA, host string, cert *tls.Certificate, version uint16) (int, string, error) {
	t.Helper()
	cfg := &tls.Config{RootCAs: serverCA.Pool(), ServerName: host, MinVersion: tls.VersionTLS12, MaxVersion: version}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	addr := s.Listener.Addr().String()
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	res, err := client.Get("https://" + host + "/")
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 4096))
	require.NoError(t, err)
	if res.StatusCode != http.StatusOK {
		return res.StatusCode, decodeProblemBody(t, body), nil
	}
	return res.StatusCode, string(body), nil
}

// decodeProblemBody returns the reason of a refusal's body.
func decodeProblemBody(t *testing.T, body []byte) string {
	t.Helper()
	var p problem
	require.NoError(t, json.Unmarshal(body, &p), string(body))
	return p.Reason
}

// TestTLSConfigPerNameConfigs: a base whose GetConfigForClient returns a configuration of its own
// per server name, each asking for no certificate, still gets certificates requested, screened
// and (with RejectAtHandshake) verified on every name; the returned configurations are not
// modified, and their own VerifyConnection still runs.
func TestTLSConfigPerNameConfigs(t *testing.T) {
	p := newPKI(t)
	serverCA := mtlstest.NewRootCA("Server CA")
	names := []string{"a.example.test", "b.example.test"}
	var mu sync.Mutex
	ownCalls := map[string]int{}
	perName := map[string]*tls.Config{}
	for _, n := range names {
		perName[n] = &tls.Config{
			Certificates: []tls.Certificate{serverCA.NewServer(n).TLSCertificate()},
			ClientAuth:   tls.NoClientCert,
			MinVersion:   tls.VersionTLS10,
			VerifyConnection: func(cs tls.ConnectionState) error {
				mu.Lock()
				defer mu.Unlock()
				ownCalls[cs.ServerName]++
				return nil
			},
		}
	}
	base := &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		return perName[hello.ServerName], nil
	}}
	alice := p.alice.TLSCertificate()
	mallory := p.other.NewClient("mallory").TLSCertificate()

	for _, tt := range []struct {
		name           string
		opts           []TLSOption
		wantUntrusted  string // the reason of the untrusted client's refusal; empty: refused at the handshake
		wantOwnPerName int    // calls of the returned config's VerifyConnection per name
	}{
		{name: "decision in HTTP", wantUntrusted: ReasonCertificateUntrusted, wantOwnPerName: 3},
		{name: "RejectAtHandshake", opts: []TLSOption{RejectAtHandshake()}, wantOwnPerName: 1},
		// Go's client sends no certificate of a CA that is not advertised.
		{name: "AdvertiseCAs", opts: []TLSOption{AdvertiseCAs()}, wantUntrusted: ReasonCertificateRequired, wantOwnPerName: 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clear(ownCalls)
			m, err := New(Config{RootCAs: p.root.Pool()})
			require.NoError(t, err)
			srv := newHandshakeServer(t, m, m.TLSConfig(base, tt.opts...))
			for _, n := range names {
				status, body, err := srv.call(t, serverCA, n, &alice, 0)
				require.NoError(t, err, n)
				assert.Equal(t, http.StatusOK, status, "%s: %s", n, body)
				assert.Equal(t, "alice", body, n)

				status, reason, err := srv.call(t, serverCA, n, &mallory, 0)
				if tt.wantUntrusted == "" {
					require.Error(t, err, "%s: the handshake refuses", n)
				} else {
					require.NoError(t, err, n)
					assert.Equal(t, http.StatusUnauthorized, status, n)
					assert.Equal(t, tt.wantUntrusted, reason, n)
				}

				status, reason, err = srv.call(t, serverCA, n, nil, 0)
				if tt.wantUntrusted == "" {
					require.Error(t, err, "%s: the handshake refuses a client without a certificate", n)
					continue
				}
				require.NoError(t, err, n)
				assert.Equal(t, http.StatusUnauthorized, status, n)
				assert.Equal(t, ReasonCertificateRequired, reason, n)
			}
			mu.Lock()
			for _, n := range names {
				assert.Equal(t, tt.wantOwnPerName, ownCalls[n], "%s: the returned config's own VerifyConnection", n)
			}
			mu.Unlock()
			for _, n := range names {
				assert.Equal(t, tls.NoClientCert, perName[n].ClientAuth, "%s: the returned config is not modified", n)
				assert.Equal(t, uint16(tls.VersionTLS10), perName[n].MinVersion, n)
				assert.Nil(t, perName[n].ClientCAs, n)
			}
		})
	}
}

// TestTLSConfigPerNameConfigsWithRejectAtHandshakeRefusesNoCertificate: the per-name configs
// refuse a client without a certificate at the handshake with RejectAtHandshake.
func TestTLSConfigPerNameConfigsWithRejectAtHandshakeRefusesNoCertificate(t *testing.T) {
	p := newPKI(t)
	serverCA := mtlstest.NewRootCA("Server CA")
	own := &tls.Config{Certificates: []tls.Certificate{serverCA.NewServer("a.example.test").TLSCertificate()}}
	base := &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return own, nil }}
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	srv := newHandshakeServer(t, m, m.TLSConfig(base, RejectAtHandshake()))
	_, _, err = srv.call(t, serverCA, "a.example.test", nil, 0)
	require.Error(t, err)
	assert.Contains(t, srv.errorsAfter(t, 0), "mtls: no client certificate")
}

// TestTLSConfigDerivedConfigs: a returned configuration is adjusted in a copy of its own for
// each handshake (so that what is set on it later is seen), and is itself never modified.
func TestTLSConfigDerivedConfigs(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	own := &tls.Config{ClientAuth: tls.NoClientCert}
	base := &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return own, nil }}
	for _, opts := range [][]TLSOption{nil, {AdvertiseCAs()}} {
		cfg := m.TLSConfig(base, opts...)
		first, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{})
		require.NoError(t, err)
		require.NotSame(t, own, first)
		assert.Equal(t, tls.RequestClientCert, first.ClientAuth)
		assert.Equal(t, uint16(tls.VersionTLS12), first.MinVersion)
		require.NotNil(t, first.VerifyConnection)
		assert.Nil(t, first.GetConfigForClient)
		again, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{})
		require.NoError(t, err)
		assert.NotSame(t, first, again, "a copy per handshake")
		if len(opts) > 0 {
			require.NotNil(t, first.ClientCAs, "AdvertiseCAs names the roots in the returned configuration's copy")
			assert.Equal(t, [][]byte{p.root.Certificate.RawSubject}, first.ClientCAs.Subjects()) //nolint:staticcheck // a pool built here
		}
		assert.Nil(t, own.ClientCAs)
		assert.Equal(t, tls.NoClientCert, own.ClientAuth)
	}
}

// fakeRSASigner holds an RSA public key without its private key, and signs with random bytes:
// what a forger presenting a huge key sends, since the server pays for checking the signature
// whether or not it is right.
type fakeRSASigner struct{ pub *rsa.PublicKey }

func (s fakeRSASigner) Public() crypto.PublicKey { return s.pub }

func (s fakeRSASigner) Sign(_ io.Reader, _ []byte, _ crypto.SignerOpts) ([]byte, error) {
	sig := make([]byte, (s.pub.N.BitLen()+7)/8)
	_, err := rand.Read(sig[1:])
	return sig, err
}

func tlsCert(key crypto.Signer, chain ...*x509.Certificate) *tls.Certificate {
	c := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, x := range chain {
		c.Certificate = append(c.Certificate, x.Raw)
	}
	return c
}

// TestHandshakeScreen: with the default TLSConfig, a chain that no client of the service
// presents, and whose signature would be expensive to check, is refused at the handshake,
// before crypto/tls checks the client's signature (the server's error is the middleware's, not a
// bad signature's); legit clients, with cheap or slow keys, pass, and a chain within the bounds
// that is otherwise bad keeps its readable refusal.
func TestHandshakeScreen(t *testing.T) {
	p := newPKI(t)
	serverCA := mtlstest.NewRootCA("Server CA")
	issuer := p.issuing.Certificate.Subject.CommonName
	root := p.root.Certificate.Subject.CommonName
	now := time.Now()
	past := mtlstest.WithValidity(now.Add(-48*time.Hour), now.Add(-time.Hour))

	p384 := ecKey(t, elliptic.P384())
	legitP384 := p.issuing.NewClient("p384", mtlstest.WithKey(p384))
	expiredP384 := p.issuing.NewClient("old-p384", mtlstest.WithKey(ecKey(t, elliptic.P384())), past)
	// Its whole validity before that of its CA's certificate (as after the CA's certificate was renewed).
	longExpiredP384 := p.issuing.NewClient("older-p384", mtlstest.WithKey(ecKey(t, elliptic.P384())),
		mtlstest.WithValidity(now.Add(-72*time.Hour), now.Add(-48*time.Hour)))
	serverAuthP384 := p.issuing.NewClient("server-p384", mtlstest.WithKey(ecKey(t, elliptic.P384())), mtlstest.WithExtKeyUsage(x509.ExtKeyUsageServerAuth))
	throwaway := ecKey(t, elliptic.P256())
	forgedCA := ecKey(t, elliptic.P256())
	// A chain of the forger's own CA under the issuer's name, itself naming the root.
	forged := []*x509.Certificate{mint(t, "mallory", issuer, false, p384.Public(), forgedCA),
		mint(t, issuer, root, true, forgedCA.Public(), throwaway)}
	expire := func(c *x509.Certificate) { c.NotBefore, c.NotAfter = now.Add(-48*time.Hour), now.Add(-time.Hour) }
	forgedExpired := []*x509.Certificate{mint(t, "mallory", issuer, false, p384.Public(), forgedCA, expire), forged[1]}
	huge := fakeRSASigner{pub: hugeRSA(t, 8192, 65537)}
	decoys := []*x509.Certificate{mint(t, "mallory", "Decoy CA 1", false, huge.pub, throwaway)}
	for i := range 3 {
		decoys = append(decoys, mint(t, fmt.Sprintf("Decoy CA %d", i+1), fmt.Sprintf("Decoy CA %d", i+2), true, ecKey(t, elliptic.P256()).Public(), throwaway))
	}
	hugeNamed := []*x509.Certificate{mint(t, "mallory", issuer, false, huge.pub, forgedCA),
		mint(t, issuer, root, true, forgedCA.Public(), throwaway), mint(t, issuer, root, true, ecKey(t, elliptic.P256()).Public(), throwaway)}
	limit := defaultMaxChainDepth + 1 + presentedSurplus
	tooMany := p.alice.Chain()
	for len(tooMany) <= limit {
		tooMany = append(tooMany, p.other.Certificate)
	}

	tests := []struct {
		name       string
		cert       *tls.Certificate
		wantStatus int    // 0: refused at the handshake
		want       string // the body, or the refusal's reason; at the handshake, the server's error
	}{
		{name: "legit P-256", cert: tlsCert(p.alice.Key, p.alice.Chain()...), wantStatus: 200, want: "alice"},
		{name: "legit P-384, verified at the handshake", cert: tlsCert(p384, legitP384.Chain()...), wantStatus: 200, want: "p384"},
		{name: "untrusted P-256, readable", cert: tlsCert(throwaway, p.other.NewClient("x", mtlstest.WithKey(throwaway)).Chain()...),
			wantStatus: 401, want: ReasonCertificateUntrusted},
		{name: "expired P-256, readable", cert: tlsCert(throwaway, p.issuing.NewClient("old", mtlstest.WithKey(throwaway), past).Chain()...),
			wantStatus: 401, want: ReasonCertificateExpired},
		{name: "forged P-384 chain naming the CAs", cert: tlsCert(p384, forged...), want: "mtls: certificate not trusted"},
		// A slow key that a configured CA vouches for is no forger's: its refusal is readable.
		{name: "expired P-384, readable", cert: tlsCert(expiredP384.Key, expiredP384.Chain()...), wantStatus: 401, want: ReasonCertificateExpired},
		{name: "P-384 expired before its CA's certificate began, readable", cert: tlsCert(longExpiredP384.Key, longExpiredP384.Chain()...),
			wantStatus: 401, want: ReasonCertificateExpired},
		{name: "P-384 without clientAuth, readable", cert: tlsCert(serverAuthP384.Key, serverAuthP384.Chain()...), wantStatus: 401, want: ReasonCertificateUsage},
		{name: "expired forged P-384 chain naming the CAs", cert: tlsCert(p384, forgedExpired...), want: "mtls: certificate not trusted"},
		{name: "RSA-8192 leaf and decoy CAs", cert: tlsCert(huge, decoys...), want: "mtls: certificate not trusted"},
		{name: "RSA-8192 leaf and a decoy chain with the CAs' names", cert: tlsCert(huge, hugeNamed...), want: "mtls: certificate not trusted"},
		{name: "too many certificates", cert: tlsCert(p.alice.Key, tooMany...), want: fmt.Sprintf("certificates presented, at most %d allowed", limit)},
	}
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		m, err := New(Config{RootCAs: p.root.Pool()})
		require.NoError(t, err)
		srv := newHandshakeServer(t, m, m.TLSConfig(&tls.Config{Certificates: []tls.Certificate{serverCA.NewServer("127.0.0.1").TLSCertificate()}}))
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/TLS1.%d", tt.name, version-tls.VersionTLS10), func(t *testing.T) {
				before := len(srv.errors())
				status, got, err := srv.call(t, serverCA, "127.0.0.1", tt.cert, version)
				if tt.wantStatus != 0 {
					require.NoError(t, err)
					assert.Equal(t, tt.wantStatus, status)
					assert.Equal(t, tt.want, got)
					return
				}
				require.Error(t, err, "refused at the handshake")
				logged := srv.errorsAfter(t, before)
				assert.Contains(t, logged, tt.want)
				assert.NotContains(t, logged, "signature", "refused before the client's signature was checked")
			})
		}
	}
}

// TestHandshakeRefusalsObserved: a refusal at the handshake, whether by the default screen or by
// RejectAtHandshake, is one event marked Handshake, handed to OnDecision and logged like a
// refusal of a request, repeats at Debug only; an accepted connection gets its request's event
// alone.
func TestHandshakeRefusalsObserved(t *testing.T) {
	p := newPKI(t)
	serverCA := mtlstest.NewRootCA("Server CA")
	huge := fakeRSASigner{pub: hugeRSA(t, 8192, 65537)}
	hostile := tlsCert(huge, mint(t, "mallory", "Decoy CA", false, huge.pub, ecKey(t, elliptic.P256())))
	mallory := p.other.NewClient("mallory")
	alice := p.alice.TLSCertificate()

	for _, tt := range []struct {
		name       string
		opts       []TLSOption
		cert       *tls.Certificate
		leaf       *x509.Certificate
		wantReason string
		wantStep   string
	}{
		{name: "screen", cert: hostile, leaf: hostile.Leaf, wantReason: ReasonCertificateUntrusted, wantStep: stepVerify},
		{name: "RejectAtHandshake", opts: []TLSOption{RejectAtHandshake()}, cert: tlsCert(mallory.Key, mallory.Chain()...),
			leaf: mallory.Certificate, wantReason: ReasonCertificateUntrusted, wantStep: stepVerify},
		{name: "RejectAtHandshake, no certificate", opts: []TLSOption{RejectAtHandshake()}, wantReason: ReasonCertificateRequired, wantStep: stepClaim},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var events []Event
			var logs bytes.Buffer
			m, err := New(Config{RootCAs: p.root.Pool(),
				Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil)),
				OnDecision: func(ctx context.Context, ev Event) {
					assert.NotNil(t, ctx)
					mu.Lock()
					defer mu.Unlock()
					events = append(events, ev)
				}})
			require.NoError(t, err)
			srv := newHandshakeServer(t, m, m.TLSConfig(&tls.Config{Certificates: []tls.Certificate{serverCA.NewServer("127.0.0.1").TLSCertificate()}}, tt.opts...))

			for range 2 {
				_, _, err = srv.call(t, serverCA, "127.0.0.1", tt.cert, 0)
				require.Error(t, err, "refused at the handshake")
			}
			mu.Lock()
			require.Len(t, events, 2, "one event per refused connection")
			ev := events[0]
			assert.True(t, ev.Handshake)
			assert.Equal(t, Refused, ev.Result)
			assert.Equal(t, tt.wantReason, ev.Reason)
			assert.Equal(t, tt.wantStep, ev.Step)
			assert.Zero(t, ev.Status, "no HTTP response")
			assert.Equal(t, SourceTLS, ev.Source)
			require.Error(t, ev.Err)
			assert.Positive(t, ev.Duration)
			if tt.leaf != nil {
				assert.Equal(t, tt.leaf, ev.Leaf)
				assert.Equal(t, Fingerprint(tt.leaf), ev.SHA256)
				assert.Equal(t, tt.leaf.NotAfter, ev.NotAfter)
			}
			logged := logs.String()
			mu.Unlock()
			assert.Contains(t, logged, `msg="mtls: handshake refused" result=refused handshake=true reason=`+tt.wantReason)
			if tt.leaf != nil {
				assert.Equal(t, 1, strings.Count(logged, "mtls: handshake refused"), "a repeat within the minute is logged at Debug: %s", logged)
			}

			status, body, err := srv.call(t, serverCA, "127.0.0.1", &alice, 0)
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, status, body)
			mu.Lock()
			defer mu.Unlock()
			require.Len(t, events, 3, "an accepted connection: its request's event alone")
			assert.False(t, events[2].Handshake)
			assert.Equal(t, Accepted, events[2].Result)
		})
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestSlowKey(t *testing.T) {
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	for _, tt := range []struct {
		name string
		pub  any
		slow bool
	}{
		{"RSA-2048", hugeRSA(t, 2048, 65537), false},
		{"RSA-3072", hugeRSA(t, 3072, 65537), false},
		{"RSA-4096", hugeRSA(t, 4096, 65537), true},
		{"RSA-8192", hugeRSA(t, 8192, 65537), true},
		{"P-256", ecKey(t, elliptic.P256()).Public(), false},
		{"P-384", ecKey(t, elliptic.P384()).Public(), true},
		{"P-521", ecKey(t, elliptic.P521()).Public(), true},
		{"Ed25519", edPub, false},
	} {
		t.Run(tt.name, func(t *testing.T) { assert.Equal(t, tt.slow, slowKey(tt.pub)) })
	}
}
