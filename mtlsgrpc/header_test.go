package mtlsgrpc_test

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlsgrpc"
	"github.com/certgate/mtls/mtlsgrpc/mtlsgrpctest"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"
)

// xfcc is the X-Forwarded-Client-Cert value Envoy writes for leaf.
func xfcc(t testing.TB, leaf *mtlstest.Leaf) string {
	t.Helper()
	values, err := mtls.MustHeaderFormat("envoy-xfcc").(mtls.Encoder).Encode(leaf.Chain())
	require.NoError(t, err)
	require.Len(t, values, 1)
	return values[0]
}

// forgedNames are spellings of the certificate metadata that a consumer may read as
// X-Forwarded-Client-Cert.
var forgedNames = []string{"x-forwarded-client-cert", "x_forwarded_client_cert", "x-forwarded_client-cert"}

// requireNoCertificateMetadata checks that the handler's metadata holds no spelling of the
// certificate metadata.
func requireNoCertificateMetadata(t testing.TB, md metadata.MD) {
	t.Helper()
	for _, name := range forgedNames {
		require.NotContains(t, md, name)
	}
}

// TestHeaderMode: a trusted proxy's metadata speaks for the client, and reaches the handler;
// the same metadata from any other peer is ignored, and removed before the handler, in every
// spelling, on unary calls and streams, over grpc-go's own transport and under net/http.
func TestHeaderMode(t *testing.T) {
	p := newPKI(t)
	local := netip.MustParsePrefix("127.0.0.1/32")
	elsewhere := netip.MustParsePrefix("192.0.2.0/24")
	cases := []struct {
		name    string
		trusted netip.Prefix
		client  *mtlstest.Leaf // on the TLS connection
		md      []string       // pairs, sent as the call's metadata
		reason  string         // "": accepted
		who     string         // the common name the handler sees
		keeps   bool           // the handler sees the certificate metadata
	}{
		{name: "trusted proxy", trusted: local, client: nil, md: []string{"x-forwarded-client-cert", "alice"}, who: "alice", keeps: true},
		{name: "trusted proxy with a certificate of its own", trusted: local, client: p.bob, md: []string{"x-forwarded-client-cert", "alice"}, who: "alice", keeps: true},
		{name: "trusted proxy forwarding none", trusted: local, client: p.bob, reason: mtls.ReasonCertificateRequired},
		{name: "trusted proxy, another spelling", trusted: local, md: []string{"x_forwarded_client_cert", "alice"}, reason: mtls.ReasonMalformedHeader},
		{name: "trusted proxy, two hops", trusted: local, md: []string{"x-forwarded-client-cert", "alice", "x-forwarded-client-cert", "bob"}, reason: mtls.ReasonMalformedHeader},
		{name: "trusted proxy, garbage", trusted: local, md: []string{"x-forwarded-client-cert", "Cert=garbage"}, reason: mtls.ReasonMalformedHeader},
		{name: "untrusted peer, forged", trusted: elsewhere, client: p.bob, md: []string{"x-forwarded-client-cert", "alice"}, who: "bob"},
		{name: "untrusted peer, forged in every spelling", trusted: elsewhere, client: p.bob,
			md: []string{"x-forwarded-client-cert", "alice", "x_forwarded_client_cert", "alice", "x-forwarded_client-cert", "alice"}, who: "bob"},
		{name: "untrusted peer, forged, no certificate", trusted: elsewhere, md: []string{"x-forwarded-client-cert", "alice"}, reason: mtls.ReasonCertificateRequired},
	}
	for _, serveHTTP := range []bool{false, true} {
		for _, tc := range cases {
			name := tc.name
			if serveHTTP {
				name = "ServeHTTP/" + name
			}
			t.Run(name, func(t *testing.T) {
				var ev events
				m := newMiddleware(t, p, mtls.Config{Header: &mtls.HeaderConfig{
					Format: mtls.MustHeaderFormat("envoy-xfcc"), TrustedProxies: []netip.Prefix{tc.trusted},
				}}, &ev)
				srv := mtlsgrpctest.Start(t, mtlsgrpctest.Config{Middleware: m, ServeHTTP: serveHTTP})
				conn := srv.Dial(t, tc.client)
				pairs := make([]string, len(tc.md))
				for i, v := range tc.md {
					switch {
					case i%2 == 0, v != "alice" && v != "bob":
						pairs[i] = v
					case v == "alice":
						pairs[i] = xfcc(t, p.alice)
					default:
						pairs[i] = xfcc(t, p.bob)
					}
				}
				for _, method := range []string{mtlsgrpctest.SayMethod, mtlsgrpctest.ChatMethod} {
					srv.Echo.Reset()
					c := metadata.NewOutgoingContext(ctx(t), metadata.Pairs(pairs...))
					answer, err := call(c, conn, method)
					if tc.reason != "" {
						requireRefused(t, err, tc.reason)
						require.Empty(t, srv.Echo.Seen())
						continue
					}
					require.NoError(t, err, method)
					require.Equal(t, tc.who+":hi", answer)
					seen := srv.Echo.Seen()
					require.Len(t, seen, 1)
					require.Equal(t, tc.who, seen[0].Identity.Leaf.Subject.CommonName)
					if tc.keeps {
						require.Equal(t, mtls.SourceHeader, seen[0].Identity.Source)
						require.Equal(t, pairs[1], seen[0].Metadata.Get("x-forwarded-client-cert")[0])
					} else {
						require.Equal(t, mtls.SourceTLS, seen[0].Identity.Source)
						requireNoCertificateMetadata(t, seen[0].Metadata)
						require.NotEmpty(t, seen[0].Metadata.Get("user-agent"), "other metadata stays")
					}
				}
				require.Len(t, ev.take(), 2, "one event per call")
			})
		}
	}
}

// call calls method (Say or Chat) with "hi" and returns the (first) answer.
func call(c context.Context, conn *grpcConn, method string) (string, error) {
	if method == mtlsgrpctest.SayMethod {
		return mtlsgrpctest.Say(c, conn, "hi")
	}
	answers, err := mtlsgrpctest.Chat(c, conn, []string{"hi"})
	if len(answers) == 0 {
		return "", err
	}
	return answers[0], err
}

// TestHeaderBinName: grpc-go decodes the base64 of metadata whose name ends in "-bin", so a
// trusted proxy's certificate field of such a name is not what the proxy sent: refused.
func TestHeaderBinName(t *testing.T) {
	p := newPKI(t)
	m := newMiddleware(t, p, mtls.Config{Header: &mtls.HeaderConfig{
		Format: mtls.MustHeaderFormat("base64-der"), Names: []string{"X-Client-Cert-Bin"},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}}, nil)
	conn := start(t, m).Dial(t, nil)
	c := metadata.NewOutgoingContext(ctx(t), metadata.Pairs("x-client-cert-bin", string(p.alice.Certificate.Raw)))
	_, err := mtlsgrpctest.Say(c, conn, "hi")
	requireRefused(t, err, mtls.ReasonMalformedHeader)
}

// TestHeaderBinCopies: grpc-go decodes the base64 of metadata whose name ends in "-bin", so a
// client's "x-forwarded-client-cert-bin" would reach the handler as a decoded certificate field:
// the binary copies of every name of the family (the certificate metadata and its companions,
// under any spelling) are removed, from a trusted proxy's calls too, decided and open methods
// alike; other "-bin" metadata stays.
func TestHeaderBinCopies(t *testing.T) {
	p := newPKI(t)
	removed := []string{"x-forwarded-client-cert-bin", "x_forwarded_client_cert-bin", "x-client-verify-bin", "x.client.verify-bin"}
	kept := []string{"other-bin", "x-forwarded-client-cert-bin-bin", "-bin"}
	cases := []struct {
		name    string
		trusted string
		client  *mtlstest.Leaf
		who     string
	}{
		{name: "untrusted peer", trusted: "192.0.2.0/24", client: p.bob, who: "bob"},
		{name: "trusted proxy", trusted: "127.0.0.1/32", who: "alice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newMiddleware(t, p, mtls.Config{Header: &mtls.HeaderConfig{
				Format: mtls.MustHeaderFormat("envoy-xfcc"), CompanionHeaders: []string{"X-Client-Verify"},
				TrustedProxies: []netip.Prefix{netip.MustParsePrefix(tc.trusted)},
			}}, nil)
			srv := start(t, m, mtlsgrpc.WithoutCertificate(mtlsgrpctest.ChatMethod))
			conn := srv.Dial(t, tc.client)
			pairs := []string{"x-forwarded-client-cert", xfcc(t, p.alice)}
			for _, n := range append(slices.Clone(removed), kept...) {
				pairs = append(pairs, n, string(p.alice.Certificate.Raw))
			}
			for method, who := range map[string]string{mtlsgrpctest.SayMethod: tc.who, mtlsgrpctest.ChatMethod: "-"} { // Chat is open
				srv.Echo.Reset()
				answer, err := call(metadata.NewOutgoingContext(ctx(t), metadata.Pairs(pairs...)), conn, method)
				require.NoError(t, err)
				require.Equal(t, who+":hi", answer)
				md := srv.Echo.Seen()[0].Metadata
				for _, n := range removed {
					require.NotContains(t, md, n, method)
				}
				for _, n := range kept {
					require.Contains(t, md, n, method)
				}
			}
		})
	}
}
