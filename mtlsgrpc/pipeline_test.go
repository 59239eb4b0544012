package mtlsgrpc_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlsgrpc"
	"github.com/certgate/mtls/mtlsgrpc/mtlsgrpctest"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestEvents: one event per unary call and one per stream however many messages it carries,
// with the transport and the full method; none for a method open without a certificate.
func TestEvents(t *testing.T) {
	p := newPKI(t)
	var ev events
	onlyAlice := mtls.Must(mtls.RequireURIs("spiffe://example.test/alice"))
	srv := start(t, newMiddleware(t, p, mtls.Config{}, &ev),
		mtlsgrpc.WithPolicy(mtlsgrpctest.ChatMethod, onlyAlice), mtlsgrpc.WithoutCertificate(healthCheck))
	alice, bob := srv.Dial(t, p.alice), srv.Dial(t, p.bob)

	_, err := mtlsgrpctest.Say(ctx(t), alice, "hi")
	require.NoError(t, err)
	answers, err := mtlsgrpctest.Chat(ctx(t), alice, []string{"a", "b", "c", "d"})
	require.NoError(t, err)
	require.Equal(t, []string{"alice:a", "alice:b", "alice:c", "alice:d"}, answers)
	_, err = mtlsgrpctest.Chat(ctx(t), bob, []string{"a", "b"})
	requireRefused(t, err, mtls.ReasonPolicyDenied)
	_, err = mtlsgrpctest.Say(ctx(t), srv.Dial(t, nil), "hi")
	requireRefused(t, err, mtls.ReasonCertificateRequired)
	_, err = healthpb.NewHealthClient(bob).Check(ctx(t), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)

	type brief struct {
		result    mtls.Result
		reason    string
		transport string
		method    string
		cn        string
	}
	var got []brief
	for _, e := range ev.take() {
		cn := ""
		if e.Leaf != nil {
			cn = e.Leaf.Subject.CommonName
		}
		got = append(got, brief{e.Result, e.Reason, e.Transport, e.Method, cn})
	}
	require.Equal(t, []brief{
		{mtls.Accepted, "", "grpc", mtlsgrpctest.SayMethod, "alice"},
		{mtls.Accepted, "", "grpc", mtlsgrpctest.ChatMethod, "alice"},
		{mtls.Refused, mtls.ReasonPolicyDenied, "grpc", mtlsgrpctest.ChatMethod, "bob"},
		{mtls.Refused, mtls.ReasonCertificateRequired, "grpc", mtlsgrpctest.SayMethod, ""},
	}, got)
	seen := srv.Echo.Seen()
	require.Len(t, seen, 2, "one handler run per call and per stream")
}

// TestUnknownServiceHandler: under grpc.UnknownServiceHandler every call of a method the server
// does not serve is decided, by the :path the client sent, and its event holds at most the first
// 256 bytes of it.
func TestUnknownServiceHandler(t *testing.T) {
	p := newPKI(t)
	var ev events
	var mu sync.Mutex
	var reached []string // the common names the unknown-service handler saw
	unknown := grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
		cn := "-"
		if id, ok := mtls.FromContext(stream.Context()); ok {
			cn = id.Leaf.Subject.CommonName
		}
		mu.Lock()
		defer mu.Unlock()
		reached = append(reached, cn)
		return nil
	})
	srv := mtlsgrpctest.Start(t, mtlsgrpctest.Config{Middleware: newMiddleware(t, p, mtls.Config{}, &ev), ServerOptions: []grpc.ServerOption{unknown}})
	long := "/x.Y/" + strings.Repeat("m", 1<<20)
	cases := []struct {
		name   string
		client *mtlstest.Leaf
		method string
		event  string // Event.Method
		reason string // "": accepted
	}{
		{name: "another case of a served service", method: "/mtlsgrpctest.echo/Say", event: "/mtlsgrpctest.echo/Say", reason: mtls.ReasonCertificateRequired},
		{name: "an extra slash", method: "/mtlsgrpctest.Echo/Say/", event: "/mtlsgrpctest.Echo/Say/", reason: mtls.ReasonCertificateRequired},
		{name: "three parts", method: "/a/b/c", event: "/a/b/c", reason: mtls.ReasonCertificateRequired},
		{name: "long path, refused", method: long, event: long[:256] + "...", reason: mtls.ReasonCertificateRequired},
		{name: "long path, accepted", client: p.alice, method: long, event: long[:256] + "..."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			reached = nil
			mu.Unlock()
			err := srv.Dial(t, tc.client).Invoke(ctx(t), tc.method, wrapperspb.String("x"), new(wrapperspb.StringValue))
			got := ev.take()
			require.Len(t, got, 1)
			require.Equal(t, tc.event, got[0].Method)
			mu.Lock()
			defer mu.Unlock()
			if tc.reason != "" {
				requireRefused(t, err, tc.reason)
				require.Empty(t, reached)
				return
			}
			// The handler returns no message, which the client reads as an error; it ran.
			require.Equal(t, []string{"alice"}, reached)
		})
	}
}

// TestAuthority: the :authority must name the server the client named in the handshake.
func TestAuthority(t *testing.T) {
	p := newPKI(t)
	srv := start(t, newMiddleware(t, p, mtls.Config{}, nil))
	cases := []struct {
		name       string
		serverName string // in the handshake (SNI)
		authority  string // "": the target's, 127.0.0.1:port
		reason     string
	}{
		{name: "by address"},
		{name: "the same name", serverName: "localhost", authority: "localhost"},
		{name: "the same name and a port", serverName: "localhost", authority: "localhost:443"},
		{name: "another name", serverName: "localhost", authority: "other.example", reason: mtls.ReasonMisdirected},
		{name: "a name without SNI", serverName: "127.0.0.1", authority: "other.example", reason: mtls.ReasonMisdirected},
		{name: "a port that is not digits", serverName: "localhost", authority: "localhost:other.example", reason: mtls.ReasonMisdirected},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var opts []grpc.DialOption
			if tc.authority != "" {
				// grpc-go names in the handshake the server of the authority: a client that
				// names another one does it by hand.
				creds := fixedServerName{credentials.NewTLS(srv.ClientTLS(p.alice)), tc.serverName}
				opts = append(opts, grpc.WithAuthority(tc.authority), grpc.WithTransportCredentials(creds))
			}
			conn := srv.Dial(t, p.alice, opts...)
			for _, method := range []string{mtlsgrpctest.SayMethod, mtlsgrpctest.ChatMethod} {
				answer, err := call(ctx(t), conn, method)
				if tc.reason != "" {
					requireRefused(t, err, tc.reason)
					continue
				}
				require.NoError(t, err)
				require.Equal(t, "alice:hi", answer)
			}
		})
	}
}

// TestHostField: a host field beside the :authority must name the same authority, with header
// mode or without, on grpc-go's own transport (which drops the field) and under net/http (which
// keeps it in the metadata).
func TestHostField(t *testing.T) {
	p := newPKI(t)
	cases := []struct {
		name   string
		host   string // "": the server's address, as the :authority
		reason string // "": accepted
	}{
		{name: "another authority", host: "other.example", reason: mtls.ReasonMisdirected},
		{name: "the same authority"},
	}
	for _, headerMode := range []bool{false, true} {
		for _, serveHTTP := range []bool{false, true} {
			for _, tc := range cases {
				name := map[bool]string{false: "direct", true: "header mode"}[headerMode] + "/" +
					map[bool]string{false: "own transport", true: "ServeHTTP"}[serveHTTP] + "/" + tc.name
				t.Run(name, func(t *testing.T) {
					cfg := mtls.Config{}
					if headerMode {
						cfg.Header = &mtls.HeaderConfig{Format: mtls.MustHeaderFormat("envoy-xfcc"),
							TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
					}
					srv := mtlsgrpctest.Start(t, mtlsgrpctest.Config{Middleware: newMiddleware(t, p, cfg, nil), ServeHTTP: serveHTTP})
					host := tc.host
					if host == "" {
						host = srv.Addr
					}
					conn := srv.Dial(t, p.alice)
					for _, method := range []string{mtlsgrpctest.SayMethod, mtlsgrpctest.ChatMethod} {
						c := metadata.NewOutgoingContext(ctx(t), metadata.Pairs("host", host))
						answer, err := call(c, conn, method)
						if tc.reason != "" && serveHTTP {
							requireRefused(t, err, tc.reason)
							continue
						}
						require.NoError(t, err, "grpc-go's own transport drops the host field")
						require.Equal(t, "alice:hi", answer)
					}
				})
			}
		}
	}
}

// fixedServerName are client credentials that name serverName in the handshake, whatever the
// authority of the connection.
type fixedServerName struct {
	credentials.TransportCredentials
	serverName string
}

func (f fixedServerName) ClientHandshake(ctx context.Context, _ string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return f.TransportCredentials.ClientHandshake(ctx, f.serverName, conn)
}

// TestThrottle: a call over its tier's rate is ResourceExhausted with the delay of its bucket;
// a certificate refused too often is ResourceExhausted until its window ends.
func TestThrottle(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	clock := func() time.Time { return now } // still: no bucket refills, no window ends
	t.Run("rate_limited", func(t *testing.T) {
		var ev events
		m := newMiddleware(t, p, mtls.Config{Now: clock, Throttle: &mtls.ThrottleConfig{
			Tiers: map[string]mtls.Tier{"slow": {Rate: 0.1, Burst: 2}}, Default: "slow",
		}}, &ev)
		conn := start(t, m).Dial(t, p.alice)
		for range 2 {
			_, err := mtlsgrpctest.Say(ctx(t), conn, "hi")
			require.NoError(t, err)
		}
		_, err := mtlsgrpctest.Chat(ctx(t), conn, []string{"hi"})
		r := requireRefused(t, err, mtls.ReasonRateLimited)
		require.NotNil(t, r.retry)
		require.Equal(t, 10*time.Second, r.retry.GetRetryDelay().AsDuration())
		events := ev.take()
		require.Len(t, events, 3)
		require.Equal(t, mtls.Throttled, events[2].Result)
		require.Equal(t, "slow", events[2].Tier)
		require.Equal(t, mtlsgrpctest.ChatMethod, events[2].Method)
	})
	t.Run("too_many_refusals", func(t *testing.T) {
		m := newMiddleware(t, p, mtls.Config{Now: clock, RefusalThrottle: &mtls.RefusalThrottleConfig{Limit: 2, Window: time.Minute}}, nil)
		conn := start(t, m).Dial(t, p.other.NewClient("mallory"))
		for range 2 {
			_, err := mtlsgrpctest.Say(ctx(t), conn, "hi")
			requireRefused(t, err, mtls.ReasonCertificateUntrusted)
		}
		_, err := mtlsgrpctest.Say(ctx(t), conn, "hi")
		r := requireRefused(t, err, mtls.ReasonTooManyRefusals)
		require.NotNil(t, r.retry)
		require.Equal(t, time.Minute, r.retry.GetRetryDelay().AsDuration())
	})
}

// TestRevocation: a certificate revoked by OCSP or by a CRL is refused; a responder that cannot
// answer is Unavailable.
func TestRevocation(t *testing.T) {
	p := newPKI(t)
	t.Run("OCSP", func(t *testing.T) {
		responder := mtlstest.NewOCSPResponder(p.issuing)
		t.Cleanup(responder.Close)
		good := p.issuing.NewClient("good", mtlstest.WithOCSPServer(responder.URL))
		revoked := p.issuing.NewClient("revoked", mtlstest.WithOCSPServer(responder.URL))
		responder.Revoke(revoked.Certificate.SerialNumber)
		unreachable := p.issuing.NewClient("unreachable", mtlstest.WithOCSPServer("http://127.0.0.1:1/"))
		srv := start(t, newMiddleware(t, p, mtls.Config{Revocation: &mtls.RevocationConfig{OCSP: &mtls.OCSPConfig{}}}, nil))
		for _, tc := range []struct {
			client *mtlstest.Leaf
			reason string
		}{{good, ""}, {revoked, mtls.ReasonCertificateRevoked}, {unreachable, mtls.ReasonRevocationUnavailable}} {
			for _, method := range []string{mtlsgrpctest.SayMethod, mtlsgrpctest.ChatMethod} {
				answer, err := call(ctx(t), srv.Dial(t, tc.client), method)
				if tc.reason != "" {
					requireRefused(t, err, tc.reason)
					continue
				}
				require.NoError(t, err)
				require.Equal(t, "good:hi", answer)
			}
		}
		require.Positive(t, responder.RequestsFor(revoked.Certificate.SerialNumber))
	})
	t.Run("CRL", func(t *testing.T) {
		revoked := p.issuing.NewClient("revoked")
		crl := p.issuing.NewCRL(mtlstest.CRL{Revoked: []*big.Int{revoked.Certificate.SerialNumber}})
		file := mtlstest.WriteFile(t.TempDir(), "issuing.crl", mtlstest.CRLPEM(crl))
		srv := start(t, newMiddleware(t, p, mtls.Config{Revocation: &mtls.RevocationConfig{CRL: &mtls.CRLConfig{Files: []string{file}}}}, nil))
		_, err := mtlsgrpctest.Say(ctx(t), srv.Dial(t, revoked), "hi")
		requireRefused(t, err, mtls.ReasonCertificateRevoked)
		_, err = mtlsgrpctest.Chat(ctx(t), srv.Dial(t, revoked), []string{"hi"})
		requireRefused(t, err, mtls.ReasonCertificateRevoked)
		answer, err := mtlsgrpctest.Say(ctx(t), srv.Dial(t, p.alice), "hi")
		require.NoError(t, err)
		require.Equal(t, "alice:hi", answer)
	})
}

// TestConcurrentStreams: streams and unary calls of two clients on connections of their own,
// interleaved; each answer is its own client's, and each stream and call is one event.
func TestConcurrentStreams(t *testing.T) {
	p := newPKI(t)
	var ev events
	srv := start(t, newMiddleware(t, p, mtls.Config{}, &ev))
	clients := []*mtlstest.Leaf{p.alice, p.bob, p.alice, p.bob}
	const streams, messages = 4, 8
	var wg sync.WaitGroup
	errs := make(chan error, len(clients)*streams*2)
	for _, client := range clients {
		conn := srv.Dial(t, client)
		cn := client.Certificate.Subject.CommonName
		for s := range streams {
			wg.Go(func() {
				msgs := make([]string, messages)
				want := make([]string, messages)
				for i := range msgs {
					msgs[i] = fmt.Sprintf("%d-%d", s, i)
					want[i] = cn + ":" + msgs[i]
				}
				answers, err := mtlsgrpctest.Chat(ctx(t), conn, msgs)
				if err == nil && !slices.Equal(want, answers) {
					err = fmt.Errorf("%s got %v", cn, answers)
				}
				errs <- err
			})
			wg.Go(func() {
				answer, err := mtlsgrpctest.Say(ctx(t), conn, "x")
				if err == nil && answer != cn+":x" {
					err = fmt.Errorf("%s got %q", cn, answer)
				}
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, ev.take(), len(clients)*streams*2)
}

// TestReload: trust swapped while calls and streams run; each call is accepted under one trust
// or refused as untrusted, and the calls after the reload see the new trust.
func TestReload(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "roots.pem")
	mtlstest.WriteFile(dir, "roots.pem", p.root.CertPEM())
	m := newMiddleware(t, p, mtls.Config{RootCAFiles: []string{file}}, nil)
	srv := start(t, m)
	mallory := p.other.NewClient("mallory")
	alice, other := srv.Dial(t, p.alice), srv.Dial(t, mallory)

	// Four clients make calls and streams while the trust is swapped back and forth: each
	// client's first call is made before the first reload, and the reloads go on until every
	// client made all of its calls.
	const workers, rounds = 4, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	started := make(chan struct{}, workers)
	done := make(chan struct{})
	for w, conn := range []*grpcConn{alice, other, alice, other} {
		wg.Go(func() {
			for i := range rounds {
				_, err := mtlsgrpctest.Chat(ctx(t), conn, []string{"a", "b"})
				if err == nil {
					_, err = mtlsgrpctest.Say(ctx(t), conn, "c")
				}
				if i == 0 {
					started <- struct{}{}
				}
				if err != nil {
					if r := refusalOf(t, err); r.info == nil || r.info.GetMetadata()["reason"] != mtls.ReasonCertificateUntrusted {
						errs <- fmt.Errorf("client %d: %w", w, err)
						return
					}
				}
			}
		})
	}
	for range workers {
		<-started
	}
	go func() { wg.Wait(); close(done) }()
	reloads := 0
	for running := true; running && reloads < 2000; reloads++ {
		pem := p.root.CertPEM()
		if reloads%2 == 0 {
			pem = p.other.CertPEM()
		}
		mtlstest.WriteFile(dir, "roots.pem", pem)
		require.NoError(t, m.Reload())
		select {
		case <-done:
			running = false
		default:
		}
	}
	<-done
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	if reloads%2 == 1 { // the last reload trusts p.other: trust p.root again
		mtlstest.WriteFile(dir, "roots.pem", p.root.CertPEM())
		require.NoError(t, m.Reload())
	}
	_, err := mtlsgrpctest.Say(ctx(t), alice, "hi")
	require.NoError(t, err)
	_, err = mtlsgrpctest.Say(ctx(t), other, "hi")
	requireRefused(t, err, mtls.ReasonCertificateUntrusted)
	mtlstest.WriteFile(dir, "roots.pem", p.other.CertPEM())
	require.NoError(t, m.Reload())
	_, err = mtlsgrpctest.Chat(ctx(t), alice, []string{"hi"})
	requireRefused(t, err, mtls.ReasonCertificateUntrusted)
	answer, err := mtlsgrpctest.Say(ctx(t), other, "hi")
	require.NoError(t, err)
	require.Equal(t, "mallory:hi", answer)
}

// TestHandshake: the server credentials negotiate "h2", which grpc-go requires, also when the
// certificate request names the trusted roots (a configuration per handshake).
func TestHandshake(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		name string
		opts []mtls.TLSOption
	}{{"plain", nil}, {"AdvertiseCAs", []mtls.TLSOption{mtls.AdvertiseCAs()}}} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMiddleware(t, p, mtls.Config{}, nil)
			srv := mtlsgrpctest.Start(t, mtlsgrpctest.Config{Middleware: m, TLSOptions: tc.opts})
			var named [][]byte
			cfg := srv.ClientTLS(nil)
			cfg.NextProtos = []string{"h2"}
			cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
				named = cri.AcceptableCAs
				c := p.alice.TLSCertificate()
				return &c, nil
			}
			c, err := tls.Dial("tcp", srv.Addr, cfg)
			require.NoError(t, err)
			require.Equal(t, "h2", c.ConnectionState().NegotiatedProtocol)
			require.NoError(t, c.Close())
			if tc.opts != nil {
				require.Equal(t, [][]byte{p.root.Certificate.RawSubject}, named)
			}
			answer, err := mtlsgrpctest.Say(ctx(t), srv.Dial(t, p.alice), "hi")
			require.NoError(t, err)
			require.Equal(t, "alice:hi", answer)
		})
	}
}

// TestWithH2 keeps the base's protocols after "h2", and the base itself unchanged.
func TestWithH2(t *testing.T) {
	base := &tls.Config{NextProtos: []string{"http/1.1"}, ClientCAs: x509.NewCertPool()}
	got := mtlsgrpc.WithH2(base)
	require.Equal(t, []string{"h2", "http/1.1"}, got.NextProtos)
	require.Equal(t, []string{"http/1.1"}, base.NextProtos)
	require.Equal(t, []string{"h2"}, mtlsgrpc.WithH2(nil).NextProtos)
	require.Equal(t, []string{"http/1.1", "h2"}, mtlsgrpc.WithH2(&tls.Config{NextProtos: []string{"http/1.1", "h2"}}).NextProtos)
}

// TestShadow: the shadow policy's outcome of each call goes to WithOnShadow, with the call's
// context, and the call goes on.
func TestShadow(t *testing.T) {
	p := newPKI(t)
	type outcome struct {
		cn      string
		allowed bool
		peer    bool // the context is the call's: it carries its peer
	}
	var mu sync.Mutex
	var got []outcome
	m := newMiddleware(t, p, mtls.Config{ShadowPolicy: mtls.Must(mtls.RequireURIs("spiffe://example.test/alice"))}, nil)
	srv := start(t, m, mtlsgrpc.WithOnShadow(func(c context.Context, res mtls.ShadowResult) {
		_, ok := peer.FromContext(c)
		mu.Lock()
		defer mu.Unlock()
		got = append(got, outcome{res.Identity.Leaf.Subject.CommonName, res.WouldAllow(), ok})
	}))
	for _, client := range []*mtlstest.Leaf{p.alice, p.bob} {
		answer, err := mtlsgrpctest.Say(ctx(t), srv.Dial(t, client), "hi")
		require.NoError(t, err)
		require.Equal(t, client.Certificate.Subject.CommonName+":hi", answer)
	}
	require.Equal(t, []outcome{{"alice", true, true}, {"bob", false, true}}, got)
}

// TestOptional: in optional mode a call without a certificate goes on without an identity,
// unless its method has a policy.
func TestOptional(t *testing.T) {
	p := newPKI(t)
	allow := mtls.PolicyFunc(func(*mtls.Identity) error { return nil })
	srv := start(t, newMiddleware(t, p, mtls.Config{Optional: true}, nil), mtlsgrpc.WithPolicy(mtlsgrpctest.ChatMethod, allow))
	anonymous := srv.Dial(t, nil)
	answer, err := mtlsgrpctest.Say(ctx(t), anonymous, "hi")
	require.NoError(t, err)
	require.Equal(t, "-:hi", answer)
	_, err = mtlsgrpctest.Chat(ctx(t), anonymous, []string{"hi"})
	requireRefused(t, err, mtls.ReasonCertificateRequired)
	_, err = mtlsgrpctest.Say(ctx(t), srv.Dial(t, p.other.NewClient("mallory")), "hi")
	requireRefused(t, err, mtls.ReasonCertificateUntrusted)
	answers, err := mtlsgrpctest.Chat(ctx(t), srv.Dial(t, p.alice), []string{"hi"})
	require.NoError(t, err)
	require.Equal(t, []string{"alice:hi"}, answers)
}
