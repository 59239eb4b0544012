package mtls_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
)

// A service that requires a client certificate issued under its partner CA.
func Example() {
	// In production: mtls.Config{RootCAFiles: []string{"partners-ca.pem"}}.
	partnerCA := mtlstest.NewRootCA("Partner Root CA")
	m, err := mtls.New(mtls.Config{RootCAs: partnerCA.Pool()})
	if err != nil {
		log.Fatal(err)
	}
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := mtls.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s", id.Leaf.Subject.CommonName)
	})

	serverCA := mtlstest.NewRootCA("Server CA")
	srv := httptest.NewUnstartedServer(m.Handler(hello))
	srv.TLS = m.TLSConfig(&tls.Config{Certificates: []tls.Certificate{serverCA.NewServer("127.0.0.1").TLSCertificate()}})
	srv.StartTLS()
	defer srv.Close()

	for _, client := range []*mtlstest.Leaf{partnerCA.NewClient("acme-billing"), nil} {
		cfg := &tls.Config{RootCAs: serverCA.Pool()}
		if client != nil {
			cfg.Certificates = []tls.Certificate{client.TLSCertificate()}
		}
		res, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}).Get(srv.URL)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Printf("%d %s\n", res.StatusCode, body)
	}
	// Output:
	// 200 hello acme-billing
	// 401 {"type":"about:blank","title":"Unauthorized","status":401,"reason":"certificate_required"}
}

// Handlers read the identity from the request context; their tests put one there with NewContext.
func ExampleNewContext() {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := mtls.FromContext(r.Context())
		if !ok {
			http.Error(w, "no identity", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "account %s", id.Leaf.Subject.CommonName)
	})

	// In a handler's unit test: no TLS, no middleware, just an identity.
	alice := mtlstest.NewRootCA("Test CA").NewClient("alice")
	r := httptest.NewRequest(http.MethodGet, "/invoices", nil)
	r = r.WithContext(mtls.NewContext(r.Context(), &mtls.Identity{Leaf: alice.Certificate}))
	w := httptest.NewRecorder()
	handler.ServeHTTP(w, r)
	fmt.Println(w.Code, w.Body.String())
	// Output: 200 account alice
}

// Authenticate runs the whole check without writing anything, for code that decides itself what
// to do with an unauthenticated request.
func ExampleMiddleware_Authenticate() {
	ca := mtlstest.NewRootCA("Partner Root CA")
	m, err := mtls.New(mtls.Config{RootCAs: ca.Pool()})
	if err != nil {
		log.Fatal(err)
	}
	stranger := mtlstest.NewRootCA("Unknown CA").NewClient("stranger")

	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", stranger.Chain()...))
	status, reason := mtls.StatusAndReason(err)
	fmt.Println(errors.Is(err, mtls.ErrUntrusted), status, reason)
	// Output: true 401 certificate_untrusted
}

// A custom error handler may change the body, never its level of detail: it sends the status and
// the stable reason code, while the full error goes to the logs.
func ExampleConfig_errorHandler() {
	ca := mtlstest.NewRootCA("Partner Root CA")
	m, err := mtls.New(mtls.Config{
		RootCAs: ca.Pool(),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			status, reason := mtls.StatusAndReason(err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":%q}`, reason)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	w := httptest.NewRecorder()
	m.Handler(http.NotFoundHandler()).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	fmt.Println(w.Code, w.Body.String())
	// Output: 401 {"error":"certificate_required"}
}

// A partner's self-signed certificate is accepted by its registered SHA-256 fingerprint.
func ExampleConfig_pinnedSHA256() {
	partner := mtlstest.NewSelfSigned("partner-42")
	fingerprint := mtls.Fingerprint(partner.Certificate)

	m, err := mtls.New(mtls.Config{PinnedSHA256: []string{fingerprint}})
	if err != nil {
		log.Fatal(err)
	}
	id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", partner.Chain()...))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(id.Leaf.Subject.CommonName, id.Pinned, id.SHA256 == fingerprint)
	// Output: partner-42 true true
}

// TLSConfig prepares a server's TLS configuration: the handshake requests a certificate and
// screens it, the middleware decides. RejectAtHandshake also refuses bad certificates during the
// handshake.
func ExampleMiddleware_TLSConfig() {
	m, err := mtls.New(mtls.Config{RootCAs: mtlstest.NewRootCA("Partner Root CA").Pool()})
	if err != nil {
		log.Fatal(err)
	}
	cfg := m.TLSConfig(&tls.Config{MinVersion: tls.VersionTLS10}, mtls.RejectAtHandshake())
	fmt.Println(cfg.ClientAuth, tls.VersionName(cfg.MinVersion), cfg.VerifyConnection != nil)

	srv := &http.Server{Addr: ":8443", TLSConfig: cfg, Handler: m.Handler(http.NotFoundHandler())}
	_ = srv // srv.ListenAndServeTLS("server.pem", "server-key.pem")
	// Output: RequestClientCert TLS 1.2 true
}

// New reports every problem of a configuration at once, each naming its field.
func ExampleConfigError() {
	_, err := mtls.New(mtls.Config{
		PinnedSHA256:  []string{"not-a-fingerprint"},
		MaxChainDepth: -1,
	})
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			var ce *mtls.ConfigError
			if errors.As(e, &ce) {
				fmt.Println(ce.Field)
			}
		}
	}
	// Output:
	// MaxChainDepth
	// PinnedSHA256[0]
}
