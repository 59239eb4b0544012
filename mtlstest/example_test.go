package mtlstest_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
)

// whoami is the handler under test: it greets the authenticated client.
func whoami(w http.ResponseWriter, r *http.Request) {
	id, ok := mtls.FromContext(r.Context())
	if !ok {
		http.Error(w, "who are you?", http.StatusUnauthorized)
		return
	}
	fmt.Fprintf(w, "hello %s (%s)", id.Leaf.Subject.CommonName, id.SPIFFEID)
}

// A handler test: mint a CA and a client certificate, put the middleware in front of the
// handler, send it a request presenting the certificate, and check what the handler saw.
func Example() {
	root := mtlstest.NewRootCA("Test Root CA")
	alice := root.NewClient("alice", mtlstest.WithURIs("spiffe://example.test/ns/prod/sa/alice"))

	m, err := mtls.New(mtls.Config{RootCAs: root.Pool()})
	if err != nil {
		log.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(whoami))

	for _, r := range []*http.Request{
		mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", alice.Chain()...),
		mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", mtlstest.NewSelfSigned("alice").Chain()...),
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		body, _ := io.ReadAll(w.Body)
		fmt.Println(w.Code, string(body))
	}
	// Output:
	// 200 hello alice (spiffe://example.test/ns/prod/sa/alice)
	// 401 {"type":"about:blank","title":"Unauthorized","status":401,"reason":"certificate_untrusted"}
}

// A unit test of the handler alone: the identity that mtls.NewIdentity builds is judged by
// policies exactly as the middleware's own.
func Example_identity() {
	root := mtlstest.NewRootCA("Test Root CA")
	alice := root.NewClient("alice", mtlstest.WithURIs("spiffe://example.test/ns/prod/sa/alice"))
	id := mtls.NewIdentity(alice.VerifiedChain())

	pinned := mtls.Must(mtls.RequireThumbprints(alice.SHA256()))
	fmt.Println("thumbprint rule:", pinned.Check(id) == nil)

	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r = r.WithContext(mtls.NewContext(r.Context(), id))
	w := httptest.NewRecorder()
	whoami(w, r)
	fmt.Println(w.Body.String())
	// Output:
	// thumbprint rule: true
	// hello alice (spiffe://example.test/ns/prod/sa/alice)
}

// A request forwarded by a TLS-terminating proxy in the nginx format, from an address the
// service trusts.
func ExampleProxy() {
	root := mtlstest.NewRootCA("Test Root CA")
	issuing := root.NewIntermediate("Test Issuing CA")
	alice := issuing.NewClient("alice")

	nginx := mtls.MustHeaderFormat("nginx")
	m, err := mtls.New(mtls.Config{
		RootCAs:       root.Pool(),
		Intermediates: issuing.Pool(), // nginx forwards the leaf alone
		Header:        &mtls.HeaderConfig{Format: nginx, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
	})
	if err != nil {
		log.Fatal(err)
	}
	proxy := mtlstest.Proxy{Format: nginx, Addr: "10.0.0.7:41000"}
	id, err := m.Authenticate(proxy.NewRequest(http.MethodGet, "/", alice.Chain()...))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id.Source, id.Format, id.Proxy, id.Leaf.Subject.CommonName)
	// Output:
	// header nginx 10.0.0.7 alice
}
