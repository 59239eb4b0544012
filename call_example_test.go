package mtls_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"log/slog"
	"net/netip"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
)

// Decide runs the pipeline for a transport other than net/http, here as a gRPC interceptor would:
// the call's TLS state, peer, :authority and metadata (lower-case keys) go in; the identity, or
// a refusal whose reason code the transport maps to its own status, comes out, and the
// certificate metadata a direct client forged is removed before the handler sees it.
func ExampleMiddleware_Decide() {
	ca := mtlstest.NewRootCA("Partner Root CA")
	m, err := mtls.New(mtls.Config{
		RootCAs: ca.Pool(),
		Header: &mtls.HeaderConfig{Format: mtls.MustHeaderFormat("envoy-xfcc"),
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		Logger: slog.New(slog.DiscardHandler),
		OnDecision: func(_ context.Context, ev mtls.Event) {
			fmt.Println("event:", ev.Transport, ev.Method, ev.Status, ev.Result)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	admins := m.CallPolicy(mtls.Must(mtls.RequireSubject(mtls.Attributes{"cn": {"admin"}})))

	authorize := func(chain *mtlstest.Leaf, method string, policy mtls.Policy, md map[string][]string) {
		state := &tls.ConnectionState{ServerName: "billing.example.test"}
		if chain != nil {
			state.PeerCertificates = chain.Chain()
		}
		id, err := m.Decide(&mtls.Call{
			Context:       context.Background(),
			TLS:           state,
			Peer:          netip.MustParseAddr("192.0.2.10"), // from the connection, never from metadata
			Authority:     "billing.example.test",
			Fields:        md,
			LowerCaseKeys: true,
			Transport:     "grpc",
			Method:        method,
			Policy:        policy,
		})
		if err != nil {
			_, reason := mtls.StatusAndReason(err) // map to a gRPC code; never send the error's text
			fmt.Println("refused:", reason)
			return
		}
		md, stripped := m.StripCertificateFields(md, id) // the metadata the handler sees
		fmt.Println("accepted:", id.Leaf.Subject.CommonName, "forged metadata removed:", stripped, len(md))
	}

	client := ca.NewClient("acme-billing")
	forged := map[string][]string{"x-forwarded-client-cert": {"Hash=...;Subject=\"CN=admin\""}, "x-request-id": {"42"}}
	authorize(client, "/billing.v1.Invoices/List", nil, forged)
	authorize(client, "/billing.v1.Admin/Purge", admins, nil)
	authorize(nil, "/billing.v1.Invoices/List", nil, nil)
	// Output:
	// event: grpc /billing.v1.Invoices/List 0 accepted
	// accepted: acme-billing forged metadata removed: true 1
	// event: grpc /billing.v1.Admin/Purge 403 refused
	// refused: policy_denied
	// event: grpc /billing.v1.Invoices/List 401 refused
	// refused: certificate_required
}
