package mtls_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
)

// A service in header mode answers the probe at ProbePath; ProbeProxy sends forged certificate
// headers through the proxy in front of it and names every one that reached the service. This
// proxy forwards the client's headers untouched (it should set X-SSL-Client-Cert and remove the
// others), so the probe fails.
func ExampleProbeProxy() {
	m, err := mtls.New(mtls.Config{
		RootCAs: mtlstest.NewRootCA("Clients Root CA").Pool(),
		Header: &mtls.HeaderConfig{
			Format:         mtls.MustHeaderFormat("nginx"),
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
			ProbePath:      "/.well-known/mtls-probe",
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	service := httptest.NewServer(m.Handler(http.NotFoundHandler()))
	defer service.Close()
	target, _ := url.Parse(service.URL)
	proxy := httptest.NewServer(httputil.NewSingleHostReverseProxy(target))
	defer proxy.Close()

	// X-Tenant: a header the service believes from the proxy, beyond the certificate headers
	// and their companions (such as X-SSL-Client-Verify), which are forged anyway.
	rep, err := mtls.ProbeProxy(context.Background(), http.DefaultClient, proxy.URL+"/.well-known/mtls-probe",
		mtls.ProbeHeaders("X-Tenant"))
	for _, r := range rep.Results[:1] {
		fmt.Println(r.Client, r.Spelling, "answered:", r.Answered, "trusted proxy:", r.TrustedProxy)
	}
	for _, name := range []string{"X-Ssl-Client-Cert", "X_ssl_client_cert", "X-Ssl-Client-Verify", "X-Tenant"} {
		fmt.Println("arrived:", name, slices.Contains(rep.Arrived(), name))
	}
	fmt.Println(errors.Is(err, mtls.ErrProbeForwarded))
	// Output:
	// without certificate canonical answered: true trusted proxy: true
	// arrived: X-Ssl-Client-Cert true
	// arrived: X_ssl_client_cert true
	// arrived: X-Ssl-Client-Verify true
	// arrived: X-Tenant true
	// true
}
