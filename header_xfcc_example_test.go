package mtls_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
)

// A service behind its Envoy sidecar, whose certificate's URI SAN is the service's SPIFFE ID.
// The sidecar (APPEND_FORWARD, with Cert among the details it forwards) appends its element
// for the caller to the X-Forwarded-Client-Cert the gateway wrote. The caller is the last
// element; the gateway's element is the gateway's word, for the audit log.
//
// The gateway forwards only Hash and Subject, which Envoy writes so that no name of its
// client's certificate can make its element look like several. A gateway that also forwards
// URI or DNS writes those names unquoted: elements after its own are then marked Ambiguous,
// and no policy should rely on them, or on how many there are.
func ExampleHeaderConfig_xfccBy() {
	meshCA := mtlstest.NewRootCA("Mesh CA")
	orders := meshCA.NewClient("orders", mtlstest.WithURIs("spiffe://example.org/ns/shop/sa/orders"))

	m, err := mtls.New(mtls.Config{
		RootCAs: meshCA.Pool(),
		Header: &mtls.HeaderConfig{
			Format:         mtls.MustHeaderFormat("envoy-xfcc"),
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, // the sidecar
			XFCCBy:         []string{"spiffe://example.org/ns/shop/sa/billing"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	// What Envoy writes: By and URI unquoted, Cert as URL-encoded PEM.
	sum := sha256.Sum256(orders.Certificate.Raw)
	cert := strings.NewReplacer("\n", "%0A", " ", "%20", "+", "%2B", "/", "%2F", "=", "%3D").
		Replace(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: orders.Certificate.Raw})))
	gateway := "By=spiffe://example.org/ns/edge/sa/gateway;Hash=" + strings.Repeat("ab", 32) +
		`;Subject="CN=partner,O=Partner Inc"`
	sidecar := "By=spiffe://example.org/ns/shop/sa/billing;Hash=" + hex.EncodeToString(sum[:]) +
		`;Cert="` + cert + `";URI=spiffe://example.org/ns/shop/sa/orders`

	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "127.0.0.1:51000"
	r.Header.Set("X-Forwarded-Client-Cert", gateway+","+sidecar)
	id, err := m.Authenticate(r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id.SPIFFEID)
	for _, hop := range id.ForwardedBy() {
		fmt.Println("via", hop.By, "for", hop.Subject, "ambiguous:", hop.Ambiguous)
	}

	// A caller cannot write an element of its own for the sidecar's.
	r.Header.Set("X-Forwarded-Client-Cert", sidecar+","+sidecar)
	_, err = m.Authenticate(r)
	fmt.Println(mtls.StatusAndReason(err))
	// Output:
	// spiffe://example.org/ns/shop/sa/orders
	// via [spiffe://example.org/ns/edge/sa/gateway] for CN=partner,O=Partner Inc ambiguous: false
	// 400 header_malformed
}
