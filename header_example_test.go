package mtls_test

import (
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
)

// A service behind HAProxy, which forwards the client certificate in X-SSL-Client-Cert (base64
// DER) and its intermediates in X-SSL-Client-Chain. Only HAProxy's address may set them; the
// certificate is verified here as if it had been presented directly.
func ExampleHeaderConfig() {
	clientsCA := mtlstest.NewRootCA("Clients Root CA")
	issuing := clientsCA.NewIntermediate("Clients Issuing CA")
	alice := issuing.NewClient("alice")

	m, err := mtls.New(mtls.Config{
		RootCAs: clientsCA.Pool(),
		Header: &mtls.HeaderConfig{
			Format:         mtls.MustHeaderFormat("haproxy"),
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString
	for _, from := range []string{"10.0.0.7:51000", "203.0.113.9:51000"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = from
		r.Header.Set("X-SSL-Client-Cert", b64(alice.Certificate.Raw))
		r.Header.Set("X-SSL-Client-Chain", b64(issuing.Certificate.Raw))
		id, err := m.Authenticate(r)
		if err != nil {
			fmt.Println(from, "->", err)
			continue
		}
		fmt.Println(from, "->", id.Leaf.Subject.CommonName, id.Source, id.Format, id.Proxy)
	}
	// Output:
	// 10.0.0.7:51000 -> alice header haproxy 10.0.0.7
	// 203.0.113.9:51000 -> mtls: no client certificate: no TLS connection, and the peer is not a trusted proxy
}

// nginx forwards the verification result beside the certificate, under a name of its
// configuration ("proxy_set_header X-Client-Verify $ssl_client_verify;") and, as the preset
// knows, X-SSL-Client-S-DN. A client that goes around nginx cannot forge them: from any peer but
// nginx the whole family is removed before the handler runs. From nginx they pass as it set them;
// the handler should still rely on the verified Identity, not on them.
func ExampleHeaderConfig_companionHeaders() {
	m, err := mtls.New(mtls.Config{
		RootCAs:  mtlstest.NewRootCA("Clients Root CA").Pool(),
		Optional: true, // so that the anonymous request below reaches the handler
		Header: &mtls.HeaderConfig{
			Format:           mtls.MustHeaderFormat("nginx"),
			TrustedProxies:   []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")},
			CompanionHeaders: []string{"X-Client-Verify"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("verify=%q dn=%q headers=%d\n", r.Header.Get("X-Client-Verify"),
			r.Header.Get("X-SSL-Client-S-DN"), len(r.Header))
	}))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "203.0.113.9:51000" // not nginx
	r.Header.Set("X-Client-Verify", "SUCCESS")
	r.Header.Set("X-SSL-Client-S-DN", "CN=admin")
	r.Header.Set("X_SSL_Client_Verify", "SUCCESS") // CGI-style consumers read it as X-SSL-Client-Verify
	r.Header.Set("X-Request-Id", "42")
	h.ServeHTTP(httptest.NewRecorder(), r)
	// Output:
	// verify="" dn="" headers=1
}

// The classic mistake: reading a certificate header without saying which proxy may set it.
// Any client could then send the header with someone else's (public) certificate, so New refuses.
func ExampleHeaderConfig_withoutTrustedProxies() {
	_, err := mtls.New(mtls.Config{
		RootCAs: mtlstest.NewRootCA("Clients Root CA").Pool(),
		Header:  &mtls.HeaderConfig{Format: mtls.MustHeaderFormat("nginx")},
	})
	fmt.Println(err)
	// Output:
	// mtls: Header: header mode without a trusted proxy: set Header.TrustedProxies or Header.ProxyPolicy
}

// A Go gateway in front of a service: it authenticates clients over TLS and forwards the verified
// identity as RFC 9440 headers, after removing any copy the client sent. The service behind also
// reads an X-Client-Verify of its own configuration: the gateway and the service share one format
// that names it, so that the gateway deletes a client's forged copy too.
func ExampleForward() {
	backend, _ := url.Parse("http://10.0.0.20:8080")
	rfc9440 := mtls.WithCompanions(mtls.MustHeaderFormat("rfc9440"), "X-Client-Verify")
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(backend)
		id, _ := mtls.FromContext(pr.In.Context()) // nil without a certificate: headers removed only
		if err := mtls.Forward(pr.Out, id, rfc9440); err != nil {
			panic(err) // only a format that cannot be written fails
		}
	}}
	_ = rp // serve it behind the gateway's own middleware: gateway.Handler(rp)
	// The service behind: &mtls.HeaderConfig{Format: rfc9440, TrustedProxies: the gateway's}.

	// What the next hop receives for alice, who also sent a Client-Cert header and an
	// X-Client-Verify of her own:
	clientsCA := mtlstest.NewRootCA("Clients Root CA")
	alice := clientsCA.NewClient("alice")
	gateway, err := mtls.New(mtls.Config{RootCAs: clientsCA.Pool()})
	if err != nil {
		log.Fatal(err)
	}
	id, err := gateway.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://gateway.example/", alice.Chain()...))
	if err != nil {
		log.Fatal(err)
	}
	out := httptest.NewRequest(http.MethodGet, "http://10.0.0.20:8080/", nil)
	out.Header.Set("Client-Cert", ":c3Bvb2ZlZA==:")
	out.Header.Set("X-Client-Verify", "SUCCESS")
	if err := mtls.Forward(out, id, rfc9440); err != nil {
		log.Fatal(err)
	}
	ders, _ := rfc9440.Decode([]string{out.Header.Get("Client-Cert"), out.Header.Get("Client-Cert-Chain")})
	leaf, _ := x509.ParseCertificate(ders[0])
	fmt.Println(len(out.Header.Values("Client-Cert")), leaf.Subject.CommonName)
	fmt.Printf("X-Client-Verify: %q\n", out.Header.Get("X-Client-Verify"))
	// Output:
	// 1 alice
	// X-Client-Verify: ""
}

// ConnContext makes header mode judge the proxy by the connection itself, so that a middleware
// in front that copies a client's X-Forwarded-For into r.RemoteAddr cannot make the client look
// like the proxy.
func ExampleConnContext() {
	m, err := mtls.New(mtls.Config{
		RootCAFiles: []string{"clients-ca.pem"},
		Header: &mtls.HeaderConfig{
			Format:         mtls.MustHeaderFormat("nginx"),
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Addr: ":8080", Handler: m.Handler(http.NotFoundHandler()), ConnContext: mtls.ConnContext}
	log.Fatal(srv.ListenAndServe())
}
