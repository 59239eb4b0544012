package mtls_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
)

// Every decision reaches OnDecision as one event: counters for metrics, attributes for a tracing
// span, and the operator's explanation of a refusal, which the client never sees.
func ExampleConfig_onDecision() {
	partnerCA := mtlstest.NewRootCA("Partner Root CA")
	issuing := partnerCA.NewIntermediate("Partner Issuing CA")
	m, err := mtls.New(mtls.Config{
		RootCAs: partnerCA.Pool(), // the intermediate is not configured
		OnDecision: func(ctx context.Context, ev mtls.Event) {
			fmt.Printf("%s %s step=%q subject=%q expires_soon=%v\n", ev.Result, ev.Reason, ev.Step, ev.Subject(), ev.ExpiresSoon)
			if ev.Err != nil {
				fmt.Println(" ", ev.Err)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))

	billing := issuing.NewClient("acme-billing", mtlstest.WithValidity(time.Now().Add(-time.Hour), time.Now().Add(5*24*time.Hour)))
	h.ServeHTTP(httptest.NewRecorder(), mtlstest.NewRequest("GET", "https://api.example.test/", billing.Chain()...))
	h.ServeHTTP(httptest.NewRecorder(), mtlstest.NewRequest("GET", "https://api.example.test/", billing.Certificate)) // the leaf alone

	// Output:
	// accepted  step="" subject="CN=acme-billing" expires_soon=true
	// refused certificate_untrusted step="verify" subject="CN=acme-billing" expires_soon=false
	//   mtls: certificate not trusted: the client sent its certificate alone, and no configured CA is named "CN=Partner Issuing CA", its issuer: if that is an intermediate, add it to IntermediateFiles or have the client send its chain; if it is a root, it is not one this service trusts: x509: certificate signed by unknown authority
}
