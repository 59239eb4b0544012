package mtls

import (
	"bytes"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
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

// handshakes returns the events of refusals at the handshake, and forgets every event.
func (e *events) handshakes() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Event
	for _, ev := range e.evs {
		if ev.Handshake {
			out = append(out, ev)
		}
	}
	e.evs = nil
	return out
}

// TestHandshakeVerifyingBase: a base whose ClientAuth verifies (directly, or in the configuration
// its GetConfigForClient returns) keeps the screen's bound: a forged chain with many CAs of the
// issuer's name, which crypto/tls would have verified (every presented certificate an
// intermediate) before any hook of the middleware, is refused by the screen, since the
// verification is done by the middleware after it. The verification still refuses what the
// base's ClientCAs do not vouch for, with an event; the base's VerifyPeerCertificate gets the
// verified chain; RequireAndVerifyClientCert still requires a certificate.
func TestHandshakeVerifyingBase(t *testing.T) {
	p := newPKI(t)
	serverCA := mtlstest.NewRootCA("Server CA")
	serverCert := serverCA.NewServer("127.0.0.1").TLSCertificate()
	issuer, root := p.issuing.Certificate.Subject.CommonName, p.root.Certificate.Subject.CommonName
	leafKey := ecKey(t, elliptic.P256())
	forged := []*x509.Certificate{mint(t, "mallory", issuer, false, leafKey.Public(), leafKey)}
	for range 12 { // forged CAs of the issuer's name, with keys slow to check
		forged = append(forged, mint(t, issuer, root, true, ecKey(t, elliptic.P521()).Public(), leafKey))
	}
	alice := p.alice.TLSCertificate()
	partner := p.other.NewClient("partner").TLSCertificate() // a CA the middleware and ClientCAs do not trust

	for _, auth := range []tls.ClientAuthType{tls.VerifyClientCertIfGiven, tls.RequireAndVerifyClientCert} {
		for _, perName := range []bool{false, true} {
			name := "VerifyClientCertIfGiven"
			if auth == tls.RequireAndVerifyClientCert {
				name = "RequireAndVerifyClientCert"
			}
			if perName {
				name += "/per-name config"
			}
			t.Run(name, func(t *testing.T) {
				var rec events
				var peerMu sync.Mutex
				var peerChains [][][]*x509.Certificate
				own := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: auth, ClientCAs: p.root.Pool(),
					VerifyPeerCertificate: func(_ [][]byte, chains [][]*x509.Certificate) error {
						peerMu.Lock()
						defer peerMu.Unlock()
						peerChains = append(peerChains, chains)
						return nil
					}}
				base := own
				if perName {
					base = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return own, nil }}
				}
				m, err := New(Config{RootCAs: p.root.Pool(), OnDecision: rec.record})
				require.NoError(t, err)
				srv := newHandshakeServer(t, m, m.TLSConfig(base))

				before := len(srv.errors())
				_, _, err = srv.call(t, serverCA, "127.0.0.1", tlsCert(leafKey, forged...), 0)
				require.Error(t, err, "the forged chain is refused at the handshake")
				logged := srv.errorsAfter(t, before)
				assert.Contains(t, logged, "mtls: certificate not trusted")
				assert.NotContains(t, logged, "x509:", "crypto/tls did not verify the chain itself")
				evs := rec.handshakes()
				require.Len(t, evs, 1)
				assert.Equal(t, stepScreen, evs[0].Step, "refused by the screen, before any signature is checked")

				status, body, err := srv.call(t, serverCA, "127.0.0.1", &alice, 0)
				require.NoError(t, err)
				assert.Equal(t, http.StatusOK, status, body)
				assert.Equal(t, "alice", body)
				peerMu.Lock()
				require.Len(t, peerChains, 1, "the base's VerifyPeerCertificate runs once the chain verified")
				require.Len(t, peerChains[0], 1, "with the verified chain")
				assert.Equal(t, p.alice.Certificate.Raw, peerChains[0][0][0].Raw)
				assert.Equal(t, p.root.Certificate.Raw, peerChains[0][0][len(peerChains[0][0])-1].Raw)
				peerMu.Unlock()

				require.Error(t, forceHandshake(srv.Listener.Addr().String(), serverCA, &partner),
					"ClientCAs does not vouch for the partner's CA")
				evs = rec.handshakes()
				require.Len(t, evs, 1)
				assert.Equal(t, ReasonCertificateUntrusted, evs[0].Reason)
				assert.Equal(t, stepVerify, evs[0].Step)

				status, reason, err := srv.call(t, serverCA, "127.0.0.1", nil, 0)
				if auth == tls.RequireAndVerifyClientCert {
					require.Error(t, err, "a certificate is still required at the handshake")
				} else {
					require.NoError(t, err)
					assert.Equal(t, http.StatusUnauthorized, status)
					assert.Equal(t, ReasonCertificateRequired, reason)
				}
				assert.Equal(t, auth, own.ClientAuth, "the base's configuration is not modified")
			})
		}
	}
}

// TestHandshakeVerifyingBaseAdvertised: with AdvertiseCAs and a verifying ClientAuth, the
// verification is against the roots in force at the handshake, which follow a reload.
func TestHandshakeVerifyingBaseAdvertised(t *testing.T) {
	p := newPKI(t)
	serverCA := mtlstest.NewRootCA("Server CA")
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	cfg := m.TLSConfig(&tls.Config{Certificates: []tls.Certificate{serverCA.NewServer("127.0.0.1").TLSCertificate()},
		ClientAuth: tls.RequireAndVerifyClientCert}, AdvertiseCAs())
	assert.Equal(t, tls.RequireAnyClientCert, cfg.ClientAuth, "crypto/tls verifies nothing: the middleware does, after the screen")
	srv := newHandshakeServer(t, m, cfg)
	alice := p.alice.TLSCertificate()
	status, body, err := srv.call(t, serverCA, "127.0.0.1", &alice, 0)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status, body)
}

// TestTLSConfigTicketKeyRotation: a configuration returned by the base's GetConfigForClient
// whose session ticket keys are rotated after it was first returned resumes no session of the
// retired key.
func TestTLSConfigTicketKeyRotation(t *testing.T) {
	p := newPKI(t)
	serverCA := mtlstest.NewRootCA("Server CA")
	tenant := &tls.Config{Certificates: []tls.Certificate{serverCA.NewServer("127.0.0.1").TLSCertificate()}}
	tenant.SetSessionTicketKeys([][32]byte{{1}})
	base := &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return tenant, nil }}
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	srv := newHandshakeServer(t, m, m.TLSConfig(base))
	alice := p.alice.TLSCertificate()
	sessions := tls.NewLRUClientSessionCache(4)
	dial := func() bool {
		c, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{RootCAs: serverCA.Pool(), ServerName: "127.0.0.1",
			Certificates: []tls.Certificate{alice}, ClientSessionCache: sessions, MaxVersion: tls.VersionTLS12})
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.Handshake())
		return c.ConnectionState().DidResume
	}
	require.False(t, dial())
	require.True(t, dial(), "the session resumes under the key in force")
	tenant.SetSessionTicketKeys([][32]byte{{2}})
	assert.False(t, dial(), "a ticket of the retired key does not resume")
	assert.True(t, dial(), "the new ticket, of the new key, resumes")
}

// TestRefusalLogBudget: refusals of ever new certificates, or of none, are logged at Info only
// within a global budget; the rest go to Debug, a record then says how many were suppressed,
// and every refusal is still an event.
func TestRefusalLogBudget(t *testing.T) {
	p := newPKI(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	clock := newRevClock()
	var rec events
	m, err := New(Config{RootCAs: p.root.Pool(), Now: clock.Now, OnDecision: rec.record,
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))})
	require.NoError(t, err)
	h := m.Handler(echoIdentity)
	const n = 3 * refusalLogBurst
	refuse := func(i int) {
		var r *http.Request
		if i%2 == 0 {
			r = mtlstest.NewRequest("GET", "/", mtlstest.NewSelfSigned("mallory").Certificate)
		} else {
			r = mtlstest.NewRequest("GET", "/")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		require.Equal(t, http.StatusUnauthorized, w.Code)
	}
	infos := func() (refused, suppressed int, last string) {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range strings.Split(logs.String(), "\n") {
			switch {
			case strings.Contains(l, `level=INFO msg="mtls: request refused"`):
				refused++
			case strings.Contains(l, "refusal records suppressed"):
				suppressed++
				last = l
			}
		}
		return refused, suppressed, last
	}
	for i := range n {
		refuse(i)
	}
	refused, suppressed, _ := infos()
	assert.Equal(t, refusalLogBurst, refused, "a burst, then nothing more at Info while the clock stands")
	assert.Zero(t, suppressed)
	rec.mu.Lock()
	assert.Len(t, rec.evs, n, "every refusal is an event")
	rec.mu.Unlock()

	clock.Advance(time.Second)
	refuse(0)
	refused, suppressed, last := infos()
	assert.Equal(t, refusalLogBurst+1, refused, "the budget refills with the clock")
	assert.Equal(t, 1, suppressed)
	assert.Contains(t, last, "level=WARN")
	assert.Contains(t, last, "suppressed="+strconv.Itoa(n-refusalLogBurst))
}

// forceHandshake makes a TLS handshake with the server at addr presenting cert, whatever CAs the
// server names in its request (Go's client would otherwise send none of another CA), and one
// read: in TLS 1.3 the server's refusal arrives after the client's handshake completed.
func forceHandshake(addr string, serverCA *mtlstest.CA, cert *tls.Certificate) error {
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: serverCA.Pool(), ServerName: "127.0.0.1",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }})
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 1))
	return err
}

// TestLogBudget: the bucket lets a burst through, refills at its rate, refills nothing when the
// clock is set back, and counts what it suppressed until the next record it lets through.
func TestLogBudget(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		name           string
		after          time.Duration // from start, for the last take
		wantOK         bool
		wantSuppressed int
	}{
		{name: "same instant", after: 0, wantOK: false},
		{name: "clock set back", after: -time.Hour, wantOK: false},
		{name: "one token's time later", after: time.Second / refusalLogRate, wantOK: true, wantSuppressed: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b logBudget
			for range refusalLogBurst {
				ok, suppressed := b.take(start)
				require.True(t, ok)
				require.Zero(t, suppressed)
			}
			ok, _ := b.take(start)
			require.False(t, ok, "the burst is spent")
			ok, suppressed := b.take(start.Add(tt.after))
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.wantSuppressed, suppressed)
		})
	}
}
